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

  export interface Bencode {
    encode(value: BencodeInput): Uint8Array
    /**
     * Decodes one value starting at offset 0. With `encoding` ('utf8'), byte strings become text.
     * WARNING: the package does not validate its input thoroughly (negative string lengths can
     * loop forever); validate untrusted bytes first.
     */
    decode(data: Uint8Array, encoding?: string): unknown
    decode(data: Uint8Array, start: number, end?: number, encoding?: string): unknown
    byteLength(value: BencodeInput): number
    encodingLength(value: BencodeInput): number
  }

  const bencode: Bencode
  export default bencode
}
