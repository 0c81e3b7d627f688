/**
 * Safe decoding of untrusted bencoded responses (trackers) with the `bencode` package.
 *
 * The package does not validate its input (a negative string length moves its cursor backwards
 * and can loop forever), so {@link decodeUntrustedBencode} first checks the syntax with a bounded,
 * iterative scanner (BEP3 "bencoding": strings, integers, lists, dictionaries with string keys;
 * no trailing bytes; depth and item count capped) and only then calls `bencode.decode`.
 *
 * Also: {@link bencodeDictKey} reproduces how the package names dictionary keys, so binary keys
 * (e.g. info hashes in a BEP48 scrape `files` dictionary) can be looked up.
 */

import bencode from 'bencode'
import { toHex } from '../../protocol/hex.ts'
import { DiscoveryError } from './peer-source.ts'

/** The bytes are not well-formed bencode, or exceed the structural limits. */
export class BencodeSyntaxError extends DiscoveryError {
  readonly offset: number

  constructor(message: string, offset: number) {
    super('GW_ERR_BENCODE_SYNTAX', `${message} at offset ${offset}`)
    this.name = 'BencodeSyntaxError'
    this.offset = offset
  }
}

export interface BencodeLimits {
  /** Maximum nesting of lists/dictionaries. @default 32 */
  readonly maxDepth?: number
  /** Maximum number of values (all levels). @default 100_000 */
  readonly maxItems?: number
}

const CH_D = 0x64
const CH_L = 0x6c
const CH_I = 0x69
const CH_E = 0x65
const CH_COLON = 0x3a
const CH_MINUS = 0x2d
const CH_0 = 0x30
const CH_9 = 0x39

const isDigit = (c: number | undefined): boolean => c !== undefined && c >= CH_0 && c <= CH_9

/** Throws {@link BencodeSyntaxError} unless `data` is exactly one well-formed bencoded value. */
export function assertWellFormedBencode(data: Uint8Array, limits: BencodeLimits = {}): void {
  const maxDepth = limits.maxDepth ?? 32
  const maxItems = limits.maxItems ?? 100_000
  // Each open container: 'l' or 'd'; for dictionaries, whether the next value is a key.
  const stack: { kind: 'l' | 'd'; expectKey: boolean }[] = []
  let pos = 0
  let items = 0
  let done = false
  if (data.byteLength === 0) throw new BencodeSyntaxError('empty input', 0)
  while (!done) {
    if (pos >= data.byteLength) throw new BencodeSyntaxError('unexpected end of data', pos)
    const top = stack[stack.length - 1]
    const c = data[pos]!
    if (c === CH_E && top !== undefined) {
      if (top.kind === 'd' && !top.expectKey)
        throw new BencodeSyntaxError('dictionary key without value', pos)
      stack.pop()
      pos++
      afterValue()
      continue
    }
    if (++items > maxItems) throw new BencodeSyntaxError('too many values', pos)
    if (top?.kind === 'd' && top.expectKey && !isDigit(c)) {
      throw new BencodeSyntaxError('dictionary key is not a string', pos)
    }
    if (c === CH_D || c === CH_L) {
      if (stack.length >= maxDepth) throw new BencodeSyntaxError('nesting too deep', pos)
      stack.push({ kind: c === CH_D ? 'd' : 'l', expectKey: true })
      pos++
      continue
    }
    if (c === CH_I) {
      let p = pos + 1
      if (data[p] === CH_MINUS) p++
      const digitsStart = p
      while (isDigit(data[p])) p++
      const nDigits = p - digitsStart
      if (nDigits === 0 || data[p] !== CH_E) throw new BencodeSyntaxError('malformed integer', pos)
      if (nDigits > 1 && data[digitsStart] === CH_0)
        throw new BencodeSyntaxError('integer with leading zero', pos)
      if (digitsStart !== pos + 1 && data[digitsStart] === CH_0)
        throw new BencodeSyntaxError('negative zero', pos)
      pos = p + 1
      afterValue()
      continue
    }
    if (isDigit(c)) {
      let p = pos
      let len = 0
      while (isDigit(data[p])) {
        len = len * 10 + (data[p]! - CH_0)
        if (len > data.byteLength) throw new BencodeSyntaxError('string longer than input', pos)
        p++
      }
      if (data[p] !== CH_COLON) throw new BencodeSyntaxError('malformed string length', pos)
      if (p - pos > 1 && c === CH_0) throw new BencodeSyntaxError('string length with leading zero', pos)
      const end = p + 1 + len
      if (end > data.byteLength) throw new BencodeSyntaxError('string longer than input', pos)
      pos = end
      if (top?.kind === 'd' && top.expectKey) {
        top.expectKey = false
        continue
      }
      afterValue()
      continue
    }
    throw new BencodeSyntaxError(`unexpected byte 0x${c.toString(16)}`, pos)
  }
  if (pos !== data.byteLength) throw new BencodeSyntaxError('trailing bytes after value', pos)

  function afterValue(): void {
    const parent = stack[stack.length - 1]
    if (parent === undefined) {
      done = true
      return
    }
    if (parent.kind === 'd') parent.expectKey = true
  }
}

/** Validates then decodes; throws {@link BencodeSyntaxError} for malformed input. */
export function decodeUntrustedBencode(data: Uint8Array, limits?: BencodeLimits): unknown {
  assertWellFormedBencode(data, limits)
  try {
    return bencode.decode(data)
  } catch (err) {
    throw new BencodeSyntaxError(`bencode decoder failed: ${(err as Error).message}`, 0)
  }
}

const utf8 = new TextDecoder()

/**
 * The key the `bencode` package uses for a dictionary key with these bytes: the UTF-8 text, or
 * lowercase hex when the bytes are not valid UTF-8.
 */
export function bencodeDictKey(keyBytes: Uint8Array): string {
  const text = utf8.decode(keyBytes)
  return text.includes('\uFFFD') ? toHex(keyBytes) : text
}

/** A plain (non-array) object as produced by the decoder for a dictionary. */
export function isBencodeDict(value: unknown): value is Record<string, unknown> {
  return (
    typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array)
  )
}

/** Byte-string value as UTF-8 text (lossy), or undefined if `value` is not a byte string. */
export function bytesToText(value: unknown): string | undefined {
  return value instanceof Uint8Array ? utf8.decode(value) : undefined
}
