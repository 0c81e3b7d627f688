/**
 * Minimal types for the `bencode` package (v4). `decode` returns `unknown` on purpose: every
 * caller must validate the shape of what a remote party sent. Dictionary keys are decoded as
 * UTF-8 text, or as lowercase hex when the key is not valid UTF-8 (package behaviour).
 */
declare module 'bencode' {
  /** A value `encode` accepts: strings are written as UTF-8 byte strings, booleans as 0/1. */
  export type BencodeInput =
    | number
    | boolean
    | string
    | Uint8Array
    | readonly BencodeInput[]
    | ReadonlyMap<string | Uint8Array, BencodeInput>
    | { readonly [key: string]: BencodeInput | undefined }

  /**
   * Decodes one value starting at offset 0 (or `start`). With `encoding` ('utf8'), byte strings
   * become text. WARNING: the package does not validate its input thoroughly (negative string
   * lengths can loop forever, truncated strings are silently shortened); validate untrusted bytes
   * first. Integers are plain numbers (no bigint).
   */
  export interface BencodeDecode {
    (data: Uint8Array, encoding?: string): unknown
    (data: Uint8Array, start: number, end?: number, encoding?: string): unknown
    /** After a call: bytes consumed by the value just decoded (module-level state). */
    readonly position: number
    /** After a call: length of the (sliced) input. */
    readonly bytes: number
  }

  export interface BencodeEncode {
    (value: BencodeInput): Uint8Array
    /** After a call: length of the last encoding. */
    readonly bytes: number
  }

  export interface Bencode {
    readonly encode: BencodeEncode
    readonly decode: BencodeDecode
    byteLength(value: BencodeInput): number
    encodingLength(value: BencodeInput): number
  }

  const bencode: Bencode
  export default bencode
}
