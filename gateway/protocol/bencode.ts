/**
 * Bencode (BEP3 "bencoding") for untrusted input: a bounded, iterative decoder that returns the
 * value and the number of bytes consumed, an optional strict (canonical) mode, `dictSpan` to find
 * the exact bytes of a top-level value (BEP3/BEP52: the info hash is over the info dict "as found"),
 * and a canonical encoder.
 *
 * This is the gateway's only bencode codec: metainfo, the BEP9/10/11 extension messages
 * (`protocol/wire/`) and the HTTP tracker client (`engine/discovery/tracker-http.ts`) all decode
 * untrusted bytes here, each with its own limits, plus typed field getters (`dictInt`, ...).
 *
 * Why not decode with the `bencode` package (it is used in tests as a reference; see
 * docs/adr/0001-bencode.md): its decoder keeps its cursor in module-level state, silently clamps
 * truncated strings, loops on negative lengths, reads floats, recurses without a depth limit and
 * turns binary dictionary keys into lossy text; its encoder orders binary keys wrongly. Those are
 * exactly the hostile-input cases this module exists for, so parsing and encoding are done here.
 *
 * Value model ({@link BValue}): byte strings are `Uint8Array` views into the input (never decoded
 * as text implicitly); integers are `number` when safe, `bigint` otherwise; dictionaries are
 * `Map`s whose keys are *binary strings* (one char per byte, latin1), so any key round-trips and
 * ASCII keys read naturally (`dict.get('info')`). Use {@link textKey} / {@link keyText} for
 * non-ASCII keys (BEP52 `file tree` path components).
 */

import { BencodeError } from './errors.ts'

export { BencodeError } from './errors.ts'

/** A decoded bencode value. */
export type BValue = Uint8Array | number | bigint | BValue[] | BDict
/** A decoded dictionary: binary-string keys (latin1, one char per byte) in input order. */
export type BDict = Map<string, BValue>

/** What {@link encodeBencode} accepts: decoded values, plus text and plain objects for convenience. */
export type BEncodable =
  | Uint8Array
  | string
  | number
  | bigint
  | readonly BEncodable[]
  /** Keys are binary strings (latin1), as produced by the decoder. */
  | ReadonlyMap<string, BEncodable | undefined>
  /** Keys are text (encoded as UTF-8); `undefined` values are skipped. */
  | { readonly [key: string]: BEncodable | undefined }

export interface DecodeOptions {
  /** Reject inputs longer than this. @default 64 MiB */
  readonly maxBytes?: number
  /** Maximum nesting of lists and dictionaries. @default 256 */
  readonly maxDepth?: number
  /**
   * Maximum number of values (strings, integers, lists, dicts, keys included). Bounds memory:
   * a value costs ~70–200 bytes of heap (1M empty dicts ≈ 200 MB). @default 1,000,000
   */
  readonly maxTokens?: number
  /**
   * Whether dictionary keys count towards `maxTokens`. With `false` only values count (each key
   * still comes with a value, so at most 2 × `maxTokens` strings are read). @default true
   */
  readonly countKeys?: boolean
  /** Canonical form only (BEP3): sorted keys, no leading zeros, no `i-0e`. @default false */
  readonly strict?: boolean
  /**
   * Canonical numbers only: no leading zeros in integers or string lengths, no `i-0e`, but
   * dictionary keys may come in any order (what peers and trackers send is not always sorted).
   * Implied by `strict`. @default false
   */
  readonly canonicalNumbers?: boolean
  /** Allow bytes after the top-level value (e.g. BEP9 `data` messages). @default false */
  readonly allowTrailing?: boolean
  /**
   * What a repeated key in one dictionary does: `'reject'` throws `BT_ERR_BENCODE_DUPLICATE_KEY`;
   * `'first'` keeps the first value and skips the later ones (still decoded and counted against
   * the limits), which is what libtorrent's `bdecode_node::dict_find` sees (a linear search that
   * stops at the first match) — used for `.torrent` files, which libtorrent loads with repeated
   * keys. Ignored in `strict` mode, where a repeated key is already out of order. @default 'reject'
   */
  readonly duplicateKeys?: 'reject' | 'first'
}

export interface Decoded {
  readonly value: BValue
  /** Bytes of the top-level value (= input length unless `allowTrailing`). */
  readonly bytesConsumed: number
}

export const DEFAULT_MAX_BYTES = 64 * 1024 * 1024
export const DEFAULT_MAX_DEPTH = 256
export const DEFAULT_MAX_TOKENS = 1_000_000
/** Digits accepted in an integer: 2^64 has 20; anything much longer is an attack. */
const MAX_INT_DIGITS = 40
/** Digits accepted in a string length (safe integers have at most 16). */
const MAX_LEN_DIGITS = 15

const CH_0 = 0x30
const CH_9 = 0x39
const CH_COLON = 0x3a
const CH_MINUS = 0x2d
const CH_D = 0x64
const CH_E = 0x65
const CH_I = 0x69
const CH_L = 0x6c

// ---------------------------------------------------------------------------------------------
// Keys.

/** Binary-string dictionary key of raw bytes. */
export function bytesToKey(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1')
}

/** Raw bytes of a binary-string dictionary key. */
export function keyToBytes(key: string): Uint8Array {
  const buf = Buffer.from(key, 'latin1')
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength)
}

/** Binary-string key for a text key (UTF-8 encoded): `dict.get(textKey('名前'))`. */
export function textKey(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1')
}

/** The text of a binary-string key, decoding UTF-8 (invalid sequences become U+FFFD). */
export function keyText(key: string): string {
  return Buffer.from(key, 'latin1').toString('utf8')
}

/** UTF-8 text of a byte string (invalid sequences become U+FFFD). */
export function bytesText(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')
}

/** True for a bencode dictionary value. */
export function isDict(v: BValue | undefined): v is BDict {
  return v instanceof Map
}

// ---------------------------------------------------------------------------------------------
// Typed field access. `key` is a binary-string key (ASCII keys as is; `textKey` for others). A
// field that is absent or has another type reads as `undefined`: callers decide whether that is
// an error (a required field) or means "ignore" (BEP10: unknown or invalid items are optional).

/** The integer at `key` when it is a safe integer (`number`), else undefined (absent, bigint, other type). */
export function dictInt(d: BDict, key: string): number | undefined {
  const v = d.get(key)
  return typeof v === 'number' ? v : undefined
}

/** The byte string at `key`, else undefined. */
export function dictBytes(d: BDict, key: string): Uint8Array | undefined {
  const v = d.get(key)
  return v instanceof Uint8Array ? v : undefined
}

/** The byte string at `key` as UTF-8 text (invalid sequences become U+FFFD), else undefined. */
export function dictText(d: BDict, key: string): string | undefined {
  const v = dictBytes(d, key)
  return v === undefined ? undefined : bytesText(v)
}

/** The dictionary at `key`, else undefined. */
export function dictDict(d: BDict, key: string): BDict | undefined {
  const v = d.get(key)
  return isDict(v) ? v : undefined
}

/** The list at `key`, else undefined. */
export function dictList(d: BDict, key: string): BValue[] | undefined {
  const v = d.get(key)
  return Array.isArray(v) ? v : undefined
}

// ---------------------------------------------------------------------------------------------
// Decoding.

interface Limits {
  readonly maxDepth: number
  readonly maxTokens: number
  readonly countKeys: boolean
  /** Sorted dictionary keys required. */
  readonly strict: boolean
  /** No leading zeros, no `i-0e`. */
  readonly canonicalNumbers: boolean
  /** Keep the first of repeated keys instead of failing. */
  readonly firstKeyWins: boolean
}

type Frame =
  | { readonly kind: 'list'; readonly list: BValue[] }
  | {
      readonly kind: 'dict'
      readonly dict: BDict
      key: string | undefined
      lastKey: string | undefined
      /** The value being read belongs to a repeated key: decode it, then drop it. */
      skip: boolean
    }

function positiveLimit(v: number | undefined, dflt: number, name: string): number {
  if (v === undefined) return dflt
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`option ${name} must be a non-negative integer`)
  return v
}

/**
 * A bounded, iterative bencode reader over `bytes` from `pos`. With `build` false it only
 * validates (and returns 0 as the value), which `dictSpan` uses to skip values.
 */
class Reader {
  readonly #b: Uint8Array
  readonly #lim: Limits
  pos: number
  tokens = 0

  constructor(bytes: Uint8Array, pos: number, limits: Limits) {
    this.#b = bytes
    this.#lim = limits
    this.pos = pos
  }

  #fail(code: ConstructorParameters<typeof BencodeError>[0], msg: string, at = this.pos): never {
    throw new BencodeError(code, msg, at)
  }

  #count(): void {
    if (++this.tokens > this.#lim.maxTokens) {
      this.#fail('BT_ERR_BENCODE_TOO_LARGE', `more than ${this.#lim.maxTokens} values`)
    }
  }

  /** Reads decimal digits up to `end`; returns them as a string (validated). */
  #digits(end: number, maxDigits: number, what: string): string {
    const b = this.#b
    let i = this.pos
    while (i < b.length && b[i] !== end) {
      const c = b[i]!
      if (c < CH_0 || c > CH_9) this.#fail('BT_ERR_BENCODE_SYNTAX', `bad character in ${what}`, i)
      if (i - this.pos >= maxDigits) this.#fail('BT_ERR_BENCODE_NUMBER_TOO_LARGE', `${what} too long`, i)
      i++
    }
    if (i >= b.length) this.#fail('BT_ERR_BENCODE_TRUNCATED', `unterminated ${what}`, i)
    if (i === this.pos) this.#fail('BT_ERR_BENCODE_SYNTAX', `empty ${what}`, i)
    const s = String.fromCharCode(...b.subarray(this.pos, i))
    if (this.#lim.canonicalNumbers && s.length > 1 && s.charCodeAt(0) === CH_0) {
      this.#fail('BT_ERR_BENCODE_NOT_CANONICAL', `leading zero in ${what}`)
    }
    this.pos = i + 1
    return s
  }

  /** `<len>:<bytes>` at `pos` (BEP3 strings). */
  readString(): Uint8Array {
    const start = this.pos
    const len = Number(this.#digits(CH_COLON, MAX_LEN_DIGITS, 'string length'))
    if (len > this.#b.length - this.pos) {
      this.#fail('BT_ERR_BENCODE_TRUNCATED', `string of ${len} bytes runs past the end`, start)
    }
    const s = this.#b.subarray(this.pos, this.pos + len)
    this.pos += len
    return s
  }

  /** `i<digits>e` at `pos` (BEP3 integers: no `-0`, no leading zeros in strict mode). */
  #readInt(): number | bigint {
    const start = this.pos
    this.pos++ // 'i'
    let neg = false
    if (this.#b[this.pos] === CH_MINUS) {
      neg = true
      this.pos++
    }
    const digits = this.#digits(CH_E, MAX_INT_DIGITS, 'integer')
    if (neg && /^0+$/.test(digits) && this.#lim.canonicalNumbers) {
      this.#fail('BT_ERR_BENCODE_NOT_CANONICAL', 'negative zero', start)
    }
    const n = Number(digits)
    if (Number.isSafeInteger(n)) return neg && n !== 0 ? -n : n
    const big = BigInt(digits)
    return neg ? -big : big
  }

  /** Reads one complete value starting at `pos`; iterative, so nesting cannot overflow the stack. */
  readValue(build: boolean): BValue {
    const b = this.#b
    const stack: Frame[] = []
    let result: BValue | undefined
    // Each iteration consumes at least one byte, so the loop is bounded by the input length.
    for (;;) {
      if (this.pos >= b.length) this.#fail('BT_ERR_BENCODE_TRUNCATED', 'unexpected end of input')
      const top = stack[stack.length - 1]
      const c = b[this.pos]!
      let value: BValue | undefined
      if (c === CH_E && top !== undefined) {
        if (top.kind === 'dict' && top.key !== undefined) {
          this.#fail('BT_ERR_BENCODE_SYNTAX', 'dictionary key without a value')
        }
        this.pos++
        stack.pop()
        value = top.kind === 'list' ? top.list : top.dict
      } else if (top?.kind === 'dict' && top.key === undefined) {
        // A dictionary key: must be a string (BEP3), unique, sorted in strict mode.
        if (c < CH_0 || c > CH_9) this.#fail('BT_ERR_BENCODE_SYNTAX', 'dictionary key is not a string')
        const keyAt = this.pos
        if (this.#lim.countKeys) this.#count()
        const key = bytesToKey(this.readString())
        top.skip = top.dict.has(key)
        if (top.skip && !this.#lim.firstKeyWins) {
          this.#fail('BT_ERR_BENCODE_DUPLICATE_KEY', 'duplicate dictionary key', keyAt)
        }
        if (this.#lim.strict && top.lastKey !== undefined && key <= top.lastKey) {
          this.#fail('BT_ERR_BENCODE_NOT_CANONICAL', 'dictionary keys not sorted', keyAt)
        }
        top.key = key
        top.lastKey = key
        if (!build) top.dict.set(key, 0) // remember the key for the duplicate check only
        continue
      } else if (c === CH_L || c === CH_D) {
        this.#count()
        if (stack.length >= this.#lim.maxDepth) {
          this.#fail('BT_ERR_BENCODE_TOO_DEEP', `nesting deeper than ${this.#lim.maxDepth}`)
        }
        this.pos++
        stack.push(
          c === CH_L
            ? { kind: 'list', list: [] }
            : { kind: 'dict', dict: new Map(), key: undefined, lastKey: undefined, skip: false },
        )
        continue
      } else if (c === CH_I) {
        this.#count()
        value = this.#readInt()
      } else if (c >= CH_0 && c <= CH_9) {
        this.#count()
        value = this.readString()
      } else {
        this.#fail('BT_ERR_BENCODE_SYNTAX', `unexpected byte 0x${c.toString(16).padStart(2, '0')}`)
      }
      // Attach the completed value to its parent, or finish.
      const parent = stack[stack.length - 1]
      if (parent === undefined) {
        result = value
        break
      }
      if (parent.kind === 'list') {
        if (build) parent.list.push(value)
      } else {
        if (build && !parent.skip) parent.dict.set(parent.key!, value)
        parent.key = undefined
        parent.skip = false
      }
    }
    return build ? result! : 0
  }
}

function limitsOf(opts: DecodeOptions): Limits {
  const strict = opts.strict ?? false
  return {
    maxDepth: positiveLimit(opts.maxDepth, DEFAULT_MAX_DEPTH, 'maxDepth'),
    maxTokens: positiveLimit(opts.maxTokens, DEFAULT_MAX_TOKENS, 'maxTokens'),
    countKeys: opts.countKeys ?? true,
    strict,
    canonicalNumbers: strict || (opts.canonicalNumbers ?? false),
    firstKeyWins: !strict && opts.duplicateKeys === 'first',
  }
}

function checkInput(bytes: Uint8Array, opts: DecodeOptions): void {
  if (!(bytes instanceof Uint8Array)) throw new BencodeError('BT_ERR_BENCODE_SYNTAX', 'input is not bytes')
  const maxBytes = positiveLimit(opts.maxBytes, DEFAULT_MAX_BYTES, 'maxBytes')
  if (bytes.byteLength > maxBytes) {
    throw new BencodeError(
      'BT_ERR_BENCODE_TOO_LARGE',
      `input of ${bytes.byteLength} bytes exceeds ${maxBytes}`,
    )
  }
  if (bytes.byteLength === 0) throw new BencodeError('BT_ERR_BENCODE_TRUNCATED', 'empty input', 0)
}

/**
 * Decodes one bencoded value from the start of `bytes`. Byte strings in the result are views
 * into `bytes` (copy them if `bytes` will be reused). Throws {@link BencodeError} on any
 * malformed, oversized or (with `strict`) non-canonical input; never recurses.
 */
export function decodeBencode(bytes: Uint8Array, opts: DecodeOptions = {}): Decoded {
  checkInput(bytes, opts)
  const r = new Reader(bytes, 0, limitsOf(opts))
  const value = r.readValue(true)
  if (!opts.allowTrailing && r.pos !== bytes.byteLength) {
    throw new BencodeError('BT_ERR_BENCODE_TRAILING', 'trailing bytes after the value', r.pos)
  }
  return { value, bytesConsumed: r.pos }
}

/** Byte range `[start, end)` of a value inside its input. */
export interface Span {
  readonly start: number
  readonly end: number
}

/**
 * The exact byte span of the value of top-level key `key` (text, compared as UTF-8 bytes) in the
 * bencoded dictionary `bytes`, or `undefined` when the key is absent. Validates the whole input
 * with the same limits as {@link decodeBencode} (no trailing bytes unless `allowTrailing`; a
 * repeated key fails unless `duplicateKeys: 'first'`, which returns the first occurrence).
 */
export function dictSpan(bytes: Uint8Array, key: string, opts: DecodeOptions = {}): Span | undefined {
  checkInput(bytes, opts)
  const wanted = textKey(key)
  const limits = limitsOf(opts)
  if (bytes[0] !== CH_D) throw new BencodeError('BT_ERR_BENCODE_SYNTAX', 'not a dictionary', 0)
  const r = new Reader(bytes, 1, { ...limits, maxDepth: Math.max(0, limits.maxDepth - 1) })
  const seen = new Set<string>()
  let last: string | undefined
  let found: Span | undefined
  // Bounded: every key and value consumes at least one byte.
  for (;;) {
    if (r.pos >= bytes.byteLength)
      throw new BencodeError('BT_ERR_BENCODE_TRUNCATED', 'unterminated dictionary', r.pos)
    if (bytes[r.pos] === CH_E) {
      r.pos++
      break
    }
    const c = bytes[r.pos]!
    if (c < CH_0 || c > CH_9)
      throw new BencodeError('BT_ERR_BENCODE_SYNTAX', 'dictionary key is not a string', r.pos)
    const keyAt = r.pos
    const k = bytesToKey(r.readString())
    const repeated = seen.has(k)
    if (repeated && !limits.firstKeyWins) {
      throw new BencodeError('BT_ERR_BENCODE_DUPLICATE_KEY', 'duplicate dictionary key', keyAt)
    }
    if (limits.strict && last !== undefined && k <= last) {
      throw new BencodeError('BT_ERR_BENCODE_NOT_CANONICAL', 'dictionary keys not sorted', keyAt)
    }
    seen.add(k)
    last = k
    const start = r.pos
    r.readValue(false)
    // With `duplicateKeys: 'first'` the span is the first occurrence's, like the decoded value.
    if (k === wanted && !repeated) found = { start, end: r.pos }
  }
  if (!opts.allowTrailing && r.pos !== bytes.byteLength) {
    throw new BencodeError('BT_ERR_BENCODE_TRAILING', 'trailing bytes after the value', r.pos)
  }
  return found
}

/** True when `bytes` is exactly one canonical bencoded value (BEP3: what re-encoding yields). */
export function isCanonical(bytes: Uint8Array, opts: Omit<DecodeOptions, 'strict'> = {}): boolean {
  try {
    decodeBencode(bytes, { ...opts, strict: true })
    return true
  } catch (err) {
    if (err instanceof BencodeError) return false
    throw err
  }
}

// ---------------------------------------------------------------------------------------------
// Encoding.

const UTF8 = new TextEncoder()

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.byteLength, b.byteLength)
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i]! - b[i]!
  }
  return a.byteLength - b.byteLength
}

/** Maximum nesting the encoder follows (guards against cyclic structures). */
const MAX_ENCODE_DEPTH = 1024

function encodeInto(out: Uint8Array[], v: BEncodable, depth: number): void {
  if (depth > MAX_ENCODE_DEPTH) {
    throw new BencodeError('BT_ERR_BENCODE_UNENCODABLE', 'structure nested too deeply (cyclic?)')
  }
  if (v instanceof Uint8Array) {
    out.push(UTF8.encode(`${v.byteLength}:`), v)
  } else if (typeof v === 'string') {
    const bytes = UTF8.encode(v)
    out.push(UTF8.encode(`${bytes.byteLength}:`), bytes)
  } else if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) {
      throw new BencodeError('BT_ERR_BENCODE_UNENCODABLE', `not a safe integer: ${v}`)
    }
    out.push(UTF8.encode(`i${v}e`))
  } else if (typeof v === 'bigint') {
    out.push(UTF8.encode(`i${v}e`))
  } else if (Array.isArray(v)) {
    out.push(UTF8.encode('l'))
    for (const item of v as readonly BEncodable[]) encodeInto(out, item, depth + 1)
    out.push(UTF8.encode('e'))
  } else if (v instanceof Map) {
    const entries: [Uint8Array, BEncodable][] = []
    for (const [k, val] of v as ReadonlyMap<string, BEncodable | undefined>) {
      if (typeof k !== 'string')
        throw new BencodeError('BT_ERR_BENCODE_UNENCODABLE', 'map key is not a string')
      if (val !== undefined) entries.push([keyToBytes(k), val])
    }
    encodeDict(out, entries, depth)
  } else if (typeof v === 'object' && v !== null) {
    const entries: [Uint8Array, BEncodable][] = []
    for (const [k, val] of Object.entries(v)) {
      if (val !== undefined) entries.push([UTF8.encode(k), val])
    }
    encodeDict(out, entries, depth)
  } else {
    throw new BencodeError('BT_ERR_BENCODE_UNENCODABLE', `cannot encode a ${typeof v}`)
  }
}

function encodeDict(out: Uint8Array[], entries: [Uint8Array, BEncodable][], depth: number): void {
  // BEP3: keys sorted as raw strings; duplicates (possible only via distinct texts) are refused.
  entries.sort((a, b) => compareBytes(a[0], b[0]))
  out.push(UTF8.encode('d'))
  for (let i = 0; i < entries.length; i++) {
    const [k, val] = entries[i]!
    if (i > 0 && compareBytes(entries[i - 1]![0], k) === 0) {
      throw new BencodeError('BT_ERR_BENCODE_UNENCODABLE', 'duplicate dictionary key')
    }
    out.push(UTF8.encode(`${k.byteLength}:`), k)
    encodeInto(out, val, depth + 1)
  }
  out.push(UTF8.encode('e'))
}

/** Canonical bencoding of `value` (sorted keys, BEP3); throws {@link BencodeError} if impossible. */
export function encodeBencode(value: BEncodable): Uint8Array {
  const out: Uint8Array[] = []
  encodeInto(out, value, 0)
  const buf = Buffer.concat(out)
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength)
}
