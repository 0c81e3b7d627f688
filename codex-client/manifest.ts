/**
 * The Codex manifest: protobuf encoding, decoding and JSON form (NOTES §3.4, §1.6;
 * nim-codex `codex/manifest/coders.nim`, writer semantics of nim-libp2p `minprotobuf`).
 *
 *   outer:  1 (bytes) Header
 *   Header: 1 bytes treeCid, 2 varint blockSize, 3 varint datasetSize, 4 varint codec,
 *           5 varint hcodec, 6 varint version (CidVersion ordinal: CIDv1 = 2),
 *           7 msg ErasureInfo (only if protected), 8 string filename, 9 string mimetype (if set)
 *   ErasureInfo: 1 ecK, 2 ecM, 3 bytes originalTreeCid, 4 originalDatasetSize,
 *                5 protectedStrategy, 6 msg VerificationInfo (only if verifiable)
 *   VerificationInfo: 1 bytes verifyRoot, 2 repeated bytes slotRoots, 3 cellSize,
 *                     4 verifiableStrategy
 *
 * Scalars are always written, even when zero. Decoding follows minprotobuf `getField`: a missing
 * scalar reads as 0, the last occurrence of a field wins, unknown fields are skipped, an empty
 * filename or mimetype means "absent". Malformed wire data throws `ManifestDecodeError`.
 */
import type { CID } from './cid.ts'
import { BLOCK_CODEC, decodeCid, formatCid, manifestCidFromBytes, SHA256_CODE } from './cid.ts'

export const DEFAULT_BLOCK_SIZE = 65536
/** nim-libp2p `CidVersion` ordinal of CIDv1 (`CIDvIncorrect=0, CIDv0=1, CIDv1=2`). */
export const MANIFEST_CID_VERSION_V1 = 2

export interface VerificationInfo {
  readonly verifyRoot: CID
  readonly slotRoots: readonly CID[]
  readonly cellSize: number
  readonly verifiableStrategy: number
}

export interface ErasureInfo {
  readonly ecK: number
  readonly ecM: number
  readonly originalTreeCid: CID
  readonly originalDatasetSize: number
  readonly protectedStrategy: number
  readonly verification?: VerificationInfo | undefined
}

export interface Manifest {
  readonly treeCid: CID
  /** Real byte length of the dataset (without the padding of the last block). */
  readonly datasetSize: number
  readonly blockSize: number
  /** Codec of the data blocks (codex-block 0xCD02). */
  readonly codec: number
  /** Hash codec of the data blocks (sha2-256 0x12). */
  readonly hcodec: number
  /** nim-libp2p `CidVersion` ordinal of the block CIDs (2 = CIDv1). */
  readonly version: number
  readonly filename?: string | undefined
  readonly mimetype?: string | undefined
  /** Present only for erasure-coded ("protected") manifests. */
  readonly erasure?: ErasureInfo | undefined
}

/** The JSON Codex prints for a manifest (NOTES §1.6), keys in Codex's order. */
export interface ManifestJson {
  treeCid: string
  datasetSize: number
  blockSize: number
  filename: string | null
  mimetype: string | null
  protected: boolean
  verifiable?: boolean
}

export interface DataItemJson {
  cid: string
  manifest: ManifestJson
}

export class ManifestDecodeError extends Error {
  override readonly name = 'ManifestDecodeError'
  readonly code = 'CODEX_ERR_MANIFEST_DECODE'
}

/** A plain (not erasure-coded) manifest as `POST /data` creates it. */
export function newManifest(init: {
  treeCid: CID
  datasetSize: number
  blockSize?: number
  filename?: string | undefined
  mimetype?: string | undefined
}): Manifest {
  return {
    treeCid: init.treeCid,
    datasetSize: init.datasetSize,
    blockSize: init.blockSize ?? DEFAULT_BLOCK_SIZE,
    codec: BLOCK_CODEC,
    hcodec: SHA256_CODE,
    version: MANIFEST_CID_VERSION_V1,
    filename: init.filename,
    mimetype: init.mimetype,
  }
}

/** Number of blocks of the dataset: ceil(datasetSize / blockSize). */
export function blocksCount(manifest: Manifest): number {
  if (manifest.blockSize <= 0) return 0
  return Math.ceil(manifest.datasetSize / manifest.blockSize)
}

// ---------------------------------------------------------------------------------------------
// protobuf writer

class ProtoWriter {
  readonly #parts: Uint8Array[] = []
  #length = 0

  #raw(bytes: Uint8Array): void {
    this.#parts.push(bytes)
    this.#length += bytes.length
  }

  #varint(value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`invalid protobuf varint ${value}`)
    const out: number[] = []
    let v = value
    while (v >= 0x80) {
      out.push((v % 0x80) | 0x80)
      v = Math.floor(v / 0x80)
    }
    out.push(v)
    this.#raw(Uint8Array.from(out))
  }

  uint(field: number, value: number): this {
    this.#varint(field * 8)
    this.#varint(value)
    return this
  }

  bytes(field: number, value: Uint8Array): this {
    this.#varint(field * 8 + 2)
    this.#varint(value.length)
    this.#raw(value)
    return this
  }

  string(field: number, value: string): this {
    return this.bytes(field, Buffer.from(value, 'utf8'))
  }

  finish(): Uint8Array {
    return Buffer.concat(this.#parts, this.#length)
  }
}

/** Protobuf bytes of a manifest, byte-exact with Codex. */
export function encodeManifest(manifest: Manifest): Uint8Array {
  const header = new ProtoWriter()
    .bytes(1, manifest.treeCid.bytes)
    .uint(2, manifest.blockSize)
    .uint(3, manifest.datasetSize)
    .uint(4, manifest.codec)
    .uint(5, manifest.hcodec)
    .uint(6, manifest.version)
  const erasure = manifest.erasure
  if (erasure !== undefined) {
    const info = new ProtoWriter()
      .uint(1, erasure.ecK)
      .uint(2, erasure.ecM)
      .bytes(3, erasure.originalTreeCid.bytes)
      .uint(4, erasure.originalDatasetSize)
      .uint(5, erasure.protectedStrategy)
    const v = erasure.verification
    if (v !== undefined) {
      const vw = new ProtoWriter().bytes(1, v.verifyRoot.bytes)
      for (const root of v.slotRoots) vw.bytes(2, root.bytes)
      vw.uint(3, v.cellSize).uint(4, v.verifiableStrategy)
      info.bytes(6, vw.finish())
    }
    header.bytes(7, info.finish())
  }
  if (manifest.filename !== undefined && manifest.filename !== '') header.string(8, manifest.filename)
  if (manifest.mimetype !== undefined && manifest.mimetype !== '') header.string(9, manifest.mimetype)
  return new ProtoWriter().bytes(1, header.finish()).finish()
}

/** Encoded bytes and CID of a manifest. */
export function encodeManifestBlock(manifest: Manifest): { bytes: Uint8Array; cid: CID } {
  const bytes = encodeManifest(manifest)
  return { bytes, cid: manifestCidFromBytes(bytes) }
}

// ---------------------------------------------------------------------------------------------
// protobuf reader

type ProtoValue = { wire: 0; value: number } | { wire: 2; value: Uint8Array }

function readVarint(buf: Uint8Array, offset: number, what: string): [number, number] {
  let value = 0
  let scale = 1
  for (let i = offset; i < buf.length && i - offset < 10; i++) {
    const b = buf[i]!
    value += (b & 0x7f) * scale
    if ((b & 0x80) === 0) {
      if (!Number.isSafeInteger(value)) throw new ManifestDecodeError(`${what}: varint out of range`)
      return [value, i - offset + 1]
    }
    scale *= 0x80
  }
  throw new ManifestDecodeError(`${what}: truncated varint`)
}

/** Parses a protobuf message into its fields (last occurrence last); throws on malformed input. */
function readFields(buf: Uint8Array, what: string): Map<number, ProtoValue[]> {
  const fields = new Map<number, ProtoValue[]>()
  let offset = 0
  while (offset < buf.length) {
    const [key, kl] = readVarint(buf, offset, what)
    offset += kl
    const field = Math.floor(key / 8)
    const wire = key % 8
    if (field === 0) throw new ManifestDecodeError(`${what}: field number 0`)
    let entry: ProtoValue
    if (wire === 0) {
      const [value, vl] = readVarint(buf, offset, what)
      offset += vl
      entry = { wire: 0, value }
    } else if (wire === 2) {
      const [length, ll] = readVarint(buf, offset, what)
      offset += ll
      if (offset + length > buf.length) throw new ManifestDecodeError(`${what}: truncated field ${field}`)
      entry = { wire: 2, value: buf.subarray(offset, offset + length) }
      offset += length
    } else if (wire === 1 || wire === 5) {
      const size = wire === 1 ? 8 : 4
      if (offset + size > buf.length) throw new ManifestDecodeError(`${what}: truncated field ${field}`)
      offset += size
      continue
    } else {
      throw new ManifestDecodeError(`${what}: unsupported wire type ${wire}`)
    }
    const list = fields.get(field)
    if (list === undefined) fields.set(field, [entry])
    else list.push(entry)
  }
  return fields
}

function lastOf(fields: Map<number, ProtoValue[]>, field: number): ProtoValue | undefined {
  const list = fields.get(field)
  return list === undefined ? undefined : list[list.length - 1]
}

function uintField(fields: Map<number, ProtoValue[]>, field: number, name: string): number {
  const v = lastOf(fields, field)
  if (v === undefined) return 0
  if (v.wire !== 0) throw new ManifestDecodeError(`Unable to decode \`${name}\` from manifest!`)
  return v.value
}

function bytesField(fields: Map<number, ProtoValue[]>, field: number, name: string): Uint8Array {
  const v = lastOf(fields, field)
  if (v === undefined) return new Uint8Array(0)
  if (v.wire !== 2) throw new ManifestDecodeError(`Unable to decode \`${name}\` from manifest!`)
  return v.value
}

function cidField(fields: Map<number, ProtoValue[]>, field: number, name: string): CID {
  const bytes = bytesField(fields, field, name)
  try {
    return decodeCid(Uint8Array.from(bytes))
  } catch (err) {
    throw new ManifestDecodeError(`Unable to decode \`${name}\` from manifest!`, { cause: err })
  }
}

function optionalString(fields: Map<number, ProtoValue[]>, field: number, name: string): string | undefined {
  const bytes = bytesField(fields, field, name)
  return bytes.length === 0 ? undefined : Buffer.from(bytes).toString('utf8')
}

/** Decodes manifest protobuf bytes; throws `ManifestDecodeError` on malformed input. */
export function decodeManifest(bytes: Uint8Array): Manifest {
  const outer = readFields(bytes, 'manifest')
  const headerBytes = bytesField(outer, 1, 'Header')
  const header = readFields(headerBytes, 'manifest header')
  const treeCid = cidField(header, 1, 'treeCid')
  const blockSize = uintField(header, 2, 'blockSize')
  const datasetSize = uintField(header, 3, 'datasetSize')
  const codec = uintField(header, 4, 'codec')
  const hcodec = uintField(header, 5, 'hcodec')
  const version = uintField(header, 6, 'version')
  if (version > 3) throw new ManifestDecodeError('Unable to decode `version` from manifest!')
  const erasureBytes = bytesField(header, 7, 'erasureInfo')
  let erasure: ErasureInfo | undefined
  if (erasureBytes.length > 0) {
    const info = readFields(erasureBytes, 'manifest erasure info')
    const verificationBytes = bytesField(info, 6, 'verificationInfo')
    let verification: VerificationInfo | undefined
    if (verificationBytes.length > 0) {
      const vf = readFields(verificationBytes, 'manifest verification info')
      const slotRoots = (vf.get(2) ?? []).map((entry) => {
        if (entry.wire !== 2) throw new ManifestDecodeError('Unable to decode `slotRoots` from manifest!')
        try {
          return decodeCid(Uint8Array.from(entry.value))
        } catch (err) {
          throw new ManifestDecodeError('Unable to decode `slotRoots` from manifest!', { cause: err })
        }
      })
      verification = {
        verifyRoot: cidField(vf, 1, 'verifyRoot'),
        slotRoots,
        cellSize: uintField(vf, 3, 'cellSize'),
        verifiableStrategy: uintField(vf, 4, 'verifiableStrategy'),
      }
    }
    erasure = {
      ecK: uintField(info, 1, 'ecK'),
      ecM: uintField(info, 2, 'ecM'),
      originalTreeCid: cidField(info, 3, 'originalTreeCid'),
      originalDatasetSize: uintField(info, 4, 'originalDatasetSize'),
      protectedStrategy: uintField(info, 5, 'protectedStrategy'),
      verification,
    }
  }
  return {
    treeCid,
    blockSize,
    datasetSize,
    codec,
    hcodec,
    version,
    filename: optionalString(header, 8, 'filename'),
    mimetype: optionalString(header, 9, 'mimetype'),
    erasure,
  }
}

/** Manifest JSON exactly as Codex serializes it (field order, `verifiable` only if protected). */
export function manifestToJson(manifest: Manifest): ManifestJson {
  const json: ManifestJson = {
    treeCid: formatCid(manifest.treeCid),
    datasetSize: manifest.datasetSize,
    blockSize: manifest.blockSize,
    filename: manifest.filename ?? null,
    mimetype: manifest.mimetype ?? null,
    protected: manifest.erasure !== undefined,
  }
  if (manifest.erasure !== undefined) json.verifiable = manifest.erasure.verification !== undefined
  return json
}

export function dataItemToJson(cid: CID, manifest: Manifest): DataItemJson {
  return { cid: formatCid(cid), manifest: manifestToJson(manifest) }
}
