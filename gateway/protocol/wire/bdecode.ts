/**
 * Bounded bencode decoding of *untrusted* extension payloads (BEP10, BEP9, BEP11).
 *
 * The `bencode` package does the actual decoding, but it trusts its input: a negative string
 * length can move its cursor backwards (an endless loop), deep nesting overflows the stack, a
 * truncated string is silently accepted and a `__proto__` key replaces an object's prototype.
 * So every payload is first *scanned* here, iteratively and with limits (depth, item count,
 * canonical integers and string lengths, bounds), which also tells how many bytes the value
 * occupies: BEP9 `data` messages are a dictionary FOLLOWED by raw bytes, so the end of the
 * dictionary must be known exactly (never `indexOf('ee')`, STYLE.md §3). Only a value that passed
 * the scan is handed to `bencode.decode`.
 */
import bencode, { type BencodeInput } from 'bencode'
import { fail, ok, WireProtocolError, type WireResult } from './errors.ts'

/** A decoded bencode value: integers, byte strings, lists and dictionaries (keys as text). */
export type BValue = number | Uint8Array | BValue[] | BDict
export interface BDict {
  readonly [key: string]: BValue | undefined
}

/** Values `bencode.encode` accepts from us. */
export type BEncodable =
  | number
  | string
  | Uint8Array
  | readonly BEncodable[]
  | { readonly [key: string]: BEncodable | undefined }

export interface BDecodeLimits {
  /** Maximum nesting of lists/dictionaries. @default 16 */
  readonly maxDepth?: number
  /** Maximum number of values (every integer, string, list and dictionary counts). @default 4096 */
  readonly maxItems?: number
}

const DEFAULT_MAX_DEPTH = 16
const DEFAULT_MAX_ITEMS = 4096
/** Longest accepted integer literal: 20 digits covers every 64-bit value. */
const MAX_INT_DIGITS = 20
/** Longest accepted string length prefix (10 digits > any payload we accept). */
const MAX_LEN_DIGITS = 10

const CH_I = 0x69
const CH_L = 0x6c
const CH_D = 0x64
const CH_E = 0x65
const CH_COLON = 0x3a
const CH_MINUS = 0x2d
const CH_0 = 0x30
const CH_9 = 0x39

const isDigit = (c: number | undefined): boolean => c !== undefined && c >= CH_0 && c <= CH_9

/** Bounds of the canonical byte string starting at `pos`, or undefined. */
function scanString(bytes: Uint8Array, pos: number): { end: number; start: number } | undefined {
  let p = pos
  const first = bytes[p]
  if (!isDigit(first)) return undefined
  // canonical: no leading zeros ("0:" is the empty string)
  if (first === CH_0 && bytes[p + 1] !== CH_COLON) return undefined
  let len = 0
  let digits = 0
  while (isDigit(bytes[p])) {
    len = len * 10 + ((bytes[p] ?? 0) - CH_0)
    p++
    if (++digits > MAX_LEN_DIGITS) return undefined
  }
  if (bytes[p] !== CH_COLON) return undefined
  const start = p + 1
  if (start + len > bytes.length) return undefined
  return { start, end: start + len }
}

function scanInt(bytes: Uint8Array, pos: number): number {
  // pos points at 'i'
  let p = pos + 1
  if (bytes[p] === CH_MINUS) p++
  const firstDigit = p
  while (isDigit(bytes[p])) p++
  const digits = p - firstDigit
  if (digits === 0 || digits > MAX_INT_DIGITS || bytes[p] !== CH_E) return -1
  // canonical: no leading zeros, no "-0"
  if (bytes[firstDigit] === CH_0 && (digits > 1 || firstDigit !== pos + 1)) return -1
  return p + 1
}

const PROTO_KEY = new TextEncoder().encode('__proto__')

function isProtoKey(bytes: Uint8Array, start: number, end: number): boolean {
  if (end - start !== PROTO_KEY.length) return false
  for (let i = 0; i < PROTO_KEY.length; i++) if (bytes[start + i] !== PROTO_KEY[i]) return false
  return true
}

/**
 * Validates the bencoded value starting at `offset` and returns the offset just after it.
 * Iterative (explicit stack), so hostile nesting cannot overflow the call stack.
 */
export function scanBencode(bytes: Uint8Array, offset = 0, limits: BDecodeLimits = {}): WireResult<number> {
  const maxDepth = limits.maxDepth ?? DEFAULT_MAX_DEPTH
  const maxItems = limits.maxItems ?? DEFAULT_MAX_ITEMS
  // one entry per open container: true = dictionary (expects a key next), false = list
  const stack: boolean[] = []
  let items = 0
  let pos = offset
  // every iteration consumes at least one byte, so the loop is bounded by bytes.length
  while (pos < bytes.length) {
    const c = bytes[pos]
    const inDict = stack.length > 0 && stack[stack.length - 1] === true
    if (c === CH_E && stack.length > 0) {
      stack.pop()
      pos++
      if (stack.length === 0) return ok(pos)
      continue
    }
    if (inDict) {
      const key = scanString(bytes, pos)
      if (!key) return fail('GW_ERR_WIRE_BAD_BENCODE', `bad dictionary key at byte ${pos}`)
      if (isProtoKey(bytes, key.start, key.end))
        return fail('GW_ERR_WIRE_BAD_BENCODE', 'forbidden key __proto__')
      pos = key.end
      if (pos >= bytes.length) break
    }
    if (++items > maxItems) return fail('GW_ERR_WIRE_LIMIT_EXCEEDED', `more than ${maxItems} bencoded values`)
    const v = bytes[pos]
    if (v === CH_I) {
      const end = scanInt(bytes, pos)
      if (end < 0) return fail('GW_ERR_WIRE_BAD_BENCODE', `bad integer at byte ${pos}`)
      pos = end
    } else if (v === CH_L || v === CH_D) {
      if (stack.length >= maxDepth)
        return fail('GW_ERR_WIRE_LIMIT_EXCEEDED', `nesting deeper than ${maxDepth}`)
      stack.push(v === CH_D)
      pos++
      continue
    } else {
      const str = scanString(bytes, pos)
      if (!str) return fail('GW_ERR_WIRE_BAD_BENCODE', `bad value at byte ${pos}`)
      pos = str.end
    }
    if (stack.length === 0) return ok(pos)
  }
  return fail('GW_ERR_WIRE_BAD_BENCODE', 'truncated bencoded value')
}

/** A decoded value and the offset just after it in the input. */
export interface Decoded {
  readonly value: BValue
  readonly end: number
}

/**
 * Decodes the bencoded value at `offset`. Unless `allowTrailing` is set, the value must end
 * exactly at the end of `bytes` (STYLE.md §3: "rejects unused trailing bytes").
 */
export function bdecode(
  bytes: Uint8Array,
  options: BDecodeLimits & { readonly offset?: number; readonly allowTrailing?: boolean } = {},
): WireResult<Decoded> {
  const offset = options.offset ?? 0
  const scanned = scanBencode(bytes, offset, options)
  if (!scanned.ok) return scanned
  const end = scanned.value
  if (!options.allowTrailing && end !== bytes.length) {
    return fail('GW_ERR_WIRE_BAD_BENCODE', `${bytes.length - end} trailing bytes after bencoded value`)
  }
  try {
    const value = bencode.decode(bytes.subarray(offset, end)) as BValue
    return ok({ value, end })
  } catch (cause) {
    // not expected after a successful scan; still never let it escape
    return {
      ok: false,
      error: new WireProtocolError('GW_ERR_WIRE_BAD_BENCODE', 'undecodable bencode', { cause }),
    }
  }
}

/** Bencodes `value` (dictionary keys sorted, as BEP3 requires). */
export function bencodeEncode(value: BEncodable): Uint8Array {
  return bencode.encode(value as BencodeInput)
}

/** True for a decoded dictionary (not a list, string or integer). */
export function isDict(v: BValue | undefined): v is BDict {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array)
}

/** An own integer field that is a safe integer, else undefined. */
export function intField(d: BDict, key: string): number | undefined {
  const v = Object.hasOwn(d, key) ? d[key] : undefined
  return typeof v === 'number' && Number.isSafeInteger(v) ? v : undefined
}

/** An own byte-string field, else undefined. */
export function bytesField(d: BDict, key: string): Uint8Array | undefined {
  const v = Object.hasOwn(d, key) ? d[key] : undefined
  return v instanceof Uint8Array ? v : undefined
}

/** An own dictionary field, else undefined. */
export function dictField(d: BDict, key: string): BDict | undefined {
  const v = Object.hasOwn(d, key) ? d[key] : undefined
  return isDict(v) ? v : undefined
}

/** True when the dictionary has an own field `key` (whatever its type). */
export function hasField(d: BDict, key: string): boolean {
  return Object.hasOwn(d, key)
}
