/**
 * Codex CIDs: codecs, parsing with nim-libp2p's exact acceptance rules, and the z-base58btc
 * text form Codex prints (NOTES §1.1, §3.1–3.3).
 *
 * Parsing follows nim-libp2p `libp2p/cid.nim` `decode` (vendored by nim-codex), not the
 * `multiformats` parser, because they disagree at the edges:
 * - a 46-character string starting with `Qm` is decoded as plain base58btc (CIDv0);
 * - otherwise the first character selects a multibase. nim-libp2p decodes identity (NUL),
 *   base32 `b B c C v V t T`, base58 `z Z` and base64 `m M u U`. Its base16 (`f`/`F`) decoder
 *   is a stub that always fails (`libp2p/multibase.nim` `b16d` is `discard`), and base2/8/10,
 *   base32z and base36 have no decoder: all of these give `Incorrect Cid`;
 * - a multibase payload starting with 0x12 (a binary CIDv0) is refused;
 * - binary form: 34 bytes `12 20 …` is CIDv0, otherwise version varint must be 1, the codec
 *   must be in nim-libp2p's content-id list plus Codex's `contentids_exts.nim`, and the rest must
 *   start with a valid multihash (known hash code, exact digest size). Trailing bytes after the
 *   multihash are accepted and kept (nim-libp2p `MultiHash.validate` allows them, and `$cid`
 *   prints the whole buffer);
 * - varints are libp2p "LP" varints: minimal encoding only, below 2^63.
 *
 * Text output (`formatCid`) is nim-libp2p `$cid`: base58btc of the CID bytes, `z`-prefixed for
 * CIDv1 and bare (`Qm…`) for CIDv0.
 */
import { createHash } from 'node:crypto'
import {
  base32,
  base32hex,
  base32hexpad,
  base32hexpadupper,
  base32hexupper,
  base32pad,
  base32padupper,
  base32upper,
} from 'multiformats/bases/base32'
import { base58btc, base58flickr } from 'multiformats/bases/base58'
import { base64, base64pad, base64url, base64urlpad } from 'multiformats/bases/base64'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'

export { CID }

/** Multicodec codes used by Codex (`codex/multicodec_exts.nim`) and a few standard ones. */
export const CODEX_CODECS = Object.freeze({
  'codex-manifest': 0xcd01,
  'codex-block': 0xcd02,
  'codex-root': 0xcd03,
  'codex-slot-root': 0xcd04,
  'codex-proving-root': 0xcd05,
  'codex-slot-cell': 0xcd06,
  raw: 0x55,
  'dag-pb': 0x70,
  'torrent-info': 0x7b,
  'torrent-file': 0x7c,
  'sha2-256': 0x12,
  sha1: 0x11,
} as const)

export const MANIFEST_CODEC = CODEX_CODECS['codex-manifest']
export const BLOCK_CODEC = CODEX_CODECS['codex-block']
export const DATASET_ROOT_CODEC = CODEX_CODECS['codex-root']
export const SHA256_CODE = CODEX_CODECS['sha2-256']

/**
 * CIDv1 content types nim-codex accepts: nim-libp2p `ContentIdsList` plus Codex's
 * `ContentIdsExts`.
 */
const CONTENT_ID_CODECS: ReadonlySet<number> = new Set([
  0x55, // raw
  0x70, // dag-pb
  0x71, // dag-cbor
  0x0129, // dag-json
  0x72, // libp2p-key
  0x78, // git-raw
  0x90, // eth-block
  0x91, // eth-block-list
  0x92, // eth-tx-trie
  0x93, // eth-tx
  0x94, // eth-tx-receipt-trie
  0x95, // eth-tx-receipt
  0x96, // eth-state-trie
  0x97, // eth-account-snapshot
  0x98, // eth-storage-trie
  0xb0, // bitcoin-block
  0xb1, // bitcoin-tx
  0xc0, // zcash-block
  0xc1, // zcash-tx
  0xd0, // stellar-block
  0xd1, // stellar-tx
  0xe0, // decred-block
  0xe1, // decred-tx
  0xf0, // dash-block
  0xf1, // dash-tx
  0x7b, // torrent-info
  0x7c, // torrent-file
  0xed, // ed25519-pub
  0xcd01, // codex-manifest
  0xcd02, // codex-block
  0xcd03, // codex-root
  0xcd04, // codex-slot-root
  0xcd05, // codex-proving-root
  0xcd06, // codex-slot-cell
])

/**
 * Hash codes nim-libp2p's multihash table knows (plus Codex's `multihash_exts.nim`), with their
 * digest size (0 = any size, identity).
 */
const HASH_SIZES: ReadonlyMap<number, number> = new Map<number, number>([
  [0x00, 0], // identity
  [0x11, 20], // sha1
  [0x56, 32], // dbl-sha2-256
  [0x12, 32], // sha2-256
  [0x13, 64], // sha2-512
  [0x17, 28], // sha3-224
  [0x16, 32], // sha3-256
  [0x15, 48], // sha3-384
  [0x14, 64], // sha3-512
  [0x18, 32], // shake-128
  [0x19, 64], // shake-256
  [0x1a, 28], // keccak-224
  [0x1b, 32], // keccak-256
  [0x1c, 48], // keccak-384
  [0x1d, 64], // keccak-512
  ...Array.from({ length: 64 }, (_, i): [number, number] => [0xb201 + i, i + 1]), // blake2b-8..512
  ...Array.from({ length: 32 }, (_, i): [number, number] => [0xb241 + i, i + 1]), // blake2s-8..256
  [0xcd10, 32], // poseidon2-alt_bn_128-sponge-r2
  [0xcd11, 32], // poseidon2-alt_bn_128-merkle-2kb
])

interface BaseDecoder {
  baseDecode(text: string): Uint8Array
}

const identityBase: BaseDecoder = { baseDecode: (text) => Buffer.from(text, 'latin1') }

/** Multibase prefixes nim-libp2p can actually decode. */
const MULTIBASE_DECODERS: ReadonlyMap<string, BaseDecoder> = new Map<string, BaseDecoder>([
  ['\u0000', identityBase],
  ['b', base32],
  ['B', base32upper],
  ['c', base32pad],
  ['C', base32padupper],
  ['v', base32hex],
  ['V', base32hexupper],
  ['t', base32hexpad],
  ['T', base32hexpadupper],
  ['z', base58btc],
  ['Z', base58flickr],
  ['m', base64],
  ['M', base64pad],
  ['u', base64url],
  ['U', base64urlpad],
])

/** Thrown by `parseCid`. The server answers it with 400 and the body `Incorrect Cid`. */
export class InvalidCidError extends Error {
  override readonly name = 'InvalidCidError'
  readonly code = 'CODEX_ERR_INVALID_CID'
  /** The text that failed to parse. */
  readonly input: string

  constructor(input: string, options?: ErrorOptions) {
    super('Incorrect Cid', options)
    this.input = input
  }
}

const TWO_POW_63 = 2n ** 63n

/**
 * nim-libp2p `LP.getUVarint`: minimal encoding, value below 2^63. Returns [value, length] or
 * undefined. Values that do not fit a JS number safely are returned as -1 (never a valid code).
 */
function readLpVarint(bytes: Uint8Array, offset: number): [number, number] | undefined {
  let value = 0n
  let shift = 0n
  for (let i = offset; i < bytes.length && i - offset < 10; i++) {
    const b = bytes[i]!
    value |= BigInt(b & 0x7f) << shift
    shift += 7n
    if ((b & 0x80) === 0) {
      const length = i - offset + 1
      if (value >= TWO_POW_63 || value >= 2n ** 64n) return undefined
      // minimal encoding: the number of bytes needed for `value`
      let needed = 1
      for (let v = value >> 7n; v > 0n; v >>= 7n) needed++
      if (needed !== length) return undefined
      return [value > BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(value), length]
    }
  }
  return undefined
}

/** Binary CID decode with nim-libp2p's rules; throws InvalidCidError. */
function decodeCidBytes(bytes: Uint8Array, input: string): CID {
  if (bytes.length === 34 && bytes[0] === 0x12 && bytes[1] === 0x20) {
    return new CID(0, 0x70, Digest.create(0x12, bytes.subarray(2)), bytes)
  }
  const version = readLpVarint(bytes, 0)
  if (version === undefined || version[0] !== 1) throw new InvalidCidError(input)
  const codec = readLpVarint(bytes, version[1])
  if (codec === undefined || !CONTENT_ID_CODECS.has(codec[0])) throw new InvalidCidError(input)
  // MultiHash.validate on the remainder
  const hashStart = version[1] + codec[1]
  if (bytes.length - hashStart < 2) throw new InvalidCidError(input)
  const hashCode = readLpVarint(bytes, hashStart)
  if (hashCode === undefined || hashStart + hashCode[1] >= bytes.length) throw new InvalidCidError(input)
  const size = readLpVarint(bytes, hashStart + hashCode[1])
  if (size === undefined || size[0] < 0 || size[0] > 0x7fffffff) throw new InvalidCidError(input)
  const expected = HASH_SIZES.get(hashCode[0])
  if (expected === undefined || (expected !== 0 && expected !== size[0])) throw new InvalidCidError(input)
  const digestStart = hashStart + hashCode[1] + size[1]
  if (digestStart + size[0] > bytes.length) throw new InvalidCidError(input)
  const digest = Digest.create(hashCode[0], bytes.slice(digestStart, digestStart + size[0]))
  return new CID(1, codec[0], digest, bytes)
}

/**
 * Parses CID text exactly as Codex's REST API does (nim-libp2p `Cid.init(string)`).
 * @throws InvalidCidError (`code` `CODEX_ERR_INVALID_CID`, message `Incorrect Cid`)
 */
export function parseCid(text: string): CID {
  if (typeof text !== 'string' || text.length < 2) throw new InvalidCidError(String(text))
  let bytes: Uint8Array | undefined
  try {
    if (text.length === 46 && text.startsWith('Qm')) {
      bytes = base58btc.baseDecode(text)
    } else {
      const decoder = MULTIBASE_DECODERS.get(text[0]!)
      if (decoder === undefined) throw new InvalidCidError(text)
      bytes = decoder.baseDecode(text.slice(1))
      if (bytes.length === 0 || bytes[0] === 0x12) throw new InvalidCidError(text)
    }
  } catch (err) {
    if (err instanceof InvalidCidError) throw err
    throw new InvalidCidError(text, { cause: err })
  }
  return decodeCidBytes(bytes, text)
}

/** `parseCid` that answers `undefined` instead of throwing. */
export function tryParseCid(text: string): CID | undefined {
  try {
    return parseCid(text)
  } catch {
    return undefined
  }
}

/** Decodes a binary CID (e.g. the `treeCid` field of a manifest) with the same rules as `parseCid`. */
export function decodeCid(bytes: Uint8Array): CID {
  return decodeCidBytes(bytes, Buffer.from(bytes).toString('hex'))
}

/** The text Codex prints for a CID: `z` + base58btc for CIDv1, bare base58btc (`Qm…`) for CIDv0. */
export function formatCid(cid: CID): string {
  return cid.version === 0 ? base58btc.baseEncode(cid.bytes) : base58btc.encode(cid.bytes)
}

export function isManifestCid(cid: CID): boolean {
  return cid.version === 1 && cid.code === MANIFEST_CODEC
}

export function isBlockCid(cid: CID): boolean {
  return cid.version === 1 && cid.code === BLOCK_CODEC
}

/** CIDv1 with the given codec over a sha2-256 digest (32 bytes). */
export function sha256Cid(codec: number, digest: Uint8Array): CID {
  if (digest.length !== 32) throw new RangeError(`sha2-256 digest must be 32 bytes, got ${digest.length}`)
  return CID.createV1(codec, Digest.create(SHA256_CODE, digest))
}

export function sha256(bytes: Uint8Array): Uint8Array {
  return createHash('sha256').update(bytes).digest()
}

/** `manifestCid = CIDv1(codex-manifest, sha2-256(encodedManifest))` (NOTES §3.4). */
export function manifestCidFromBytes(bytes: Uint8Array): CID {
  return sha256Cid(MANIFEST_CODEC, sha256(bytes))
}

/** `blockCid = CIDv1(codex-block, sha2-256 digest of the padded block)` (NOTES §3.2). */
export function blockCidFromDigest(digest: Uint8Array): CID {
  return sha256Cid(BLOCK_CODEC, digest)
}

/** `treeCid = CIDv1(codex-root, sha2-256-multihash(root))` (NOTES §3.3). */
export function treeCidFromRoot(root: Uint8Array): CID {
  return sha256Cid(DATASET_ROOT_CODEC, root)
}
