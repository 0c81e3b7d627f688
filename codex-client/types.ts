/**
 * Response and request types of the Codex REST API, as the node really sends them
 * (NOTES.md §1.6 for the JSON shapes, §1.7 where they differ from `openapi.yaml`), plus the small
 * shape checks the client runs on JSON answers (`parse*`: they throw `TypeError` on mismatch, the
 * client turns that into `CodexResponseError`).
 *
 * Checks are deliberately shallow for debug and marketplace answers (object / array only): the
 * gateway does not use them and their shapes vary across node versions.
 */

import { parseCid } from './cid.ts'

/**
 * Manifest JSON (NOTES.md §1.6): `verifiable` only appears when `protected` is true. Newer builds
 * (Logos Storage) omit `protected` (read as false) and may add fields (`manifestVersion`, …),
 * which are ignored.
 */
export interface Manifest {
  /** Tree root CID, z-base58btc (`zDzS…`). */
  readonly treeCid: string
  /** Real byte length of the dataset (padding excluded). */
  readonly datasetSize: number
  /** Always 65536 on master (NOTES.md §1.3). */
  readonly blockSize: number
  readonly filename: string | null
  readonly mimetype: string | null
  /** false when the node does not send it. */
  readonly protected: boolean
  readonly verifiable?: boolean
}

/** `{cid, manifest}`: one stored dataset. */
export interface DataItem {
  /** Manifest CID, z-base58btc (`zDvZ…`). */
  readonly cid: string
  readonly manifest: Manifest
}

/** `GET /data`. */
export interface DataList {
  readonly content: readonly DataItem[]
}

/** `GET /space`: all integers (NOTES.md §1.6). */
export interface Space {
  readonly totalBlocks: number
  readonly quotaMaxBytes: number
  readonly quotaUsedBytes: number
  readonly quotaReservedBytes: number
}

/** One entry of the DHT routing table in `debug/info`. */
export interface DebugNode {
  readonly nodeId: string
  readonly peerId: string
  readonly record: string
  readonly address: string | null
  readonly seen: boolean
}

/** `GET /debug/info`. */
export interface DebugInfo {
  readonly id: string
  readonly addrs: readonly string[]
  readonly repo: string
  readonly spr: string
  readonly announceAddresses: readonly string[]
  readonly table: { readonly localNode: DebugNode; readonly nodes: readonly DebugNode[] }
  readonly codex: { readonly version?: string; readonly revision?: string; readonly contracts?: string }
}

/** `GET /debug/peer/{peerId}` (only on nodes built with `codex_enable_api_debug_peers`). */
export interface DebugPeer {
  readonly peerId: string
  readonly seqNo: number
  readonly addresses: readonly string[]
}

/** `GET /spr` with `Accept: application/json`. */
export interface Spr {
  readonly spr: string
}

/** `GET /peerid` with `Accept: application/json`. */
export interface PeerId {
  readonly id: string
}

/** Text or JSON form of `/spr` and `/peerid`, chosen by the `Accept` header (NOTES.md §1.7.5). */
export type NodeInfoFormat = 'text' | 'json'

// ---------------------------------------------------------------- marketplace (openapi.yaml)

/** Body of `POST /sales/availability` (and, partially, `PATCH /sales/availability/{id}`). */
export interface SalesAvailability {
  readonly totalSize: number
  readonly duration: number
  /** Decimal string. */
  readonly minPricePerBytePerSecond: string
  /** Decimal string. */
  readonly totalCollateral: string
  readonly enabled?: boolean
  readonly until?: number
}

/** `SalesAvailabilityREAD`. */
export interface SalesAvailabilityRead extends SalesAvailability {
  readonly id: string
  readonly freeSize: number
  readonly totalRemainingCollateral: string
}

/** `PATCH /sales/availability/{id}` body: any subset (the node refuses `freeSize`). */
export type SalesAvailabilityPatch = Partial<SalesAvailability>

export interface StorageAsk {
  readonly slots: number
  readonly slotSize: number
  readonly duration: number
  readonly proofProbability: string
  readonly pricePerBytePerSecond: string
  readonly collateralPerByte: string
  readonly maxSlotLoss: number
}

export interface StorageRequest {
  readonly id: string
  readonly client: string
  readonly ask: StorageAsk
  readonly content: { readonly cid: string }
  readonly expiry: number
  readonly nonce: string
}

export interface Slot {
  readonly id: string
  readonly request: StorageRequest
  readonly slotIndex: number
}

export interface Reservation {
  readonly id: string
  readonly availabilityId: string
  readonly size: number
  readonly requestId: string
  readonly slotIndex: number
  readonly validUntil: number
}

export type SlotState =
  | 'SaleCancelled'
  | 'SaleDownloading'
  | 'SaleErrored'
  | 'SaleFailed'
  | 'SaleFilled'
  | 'SaleFilling'
  | 'SaleFinished'
  | 'SaleIgnored'
  | 'SaleInitialProving'
  | 'SalePayout'
  | 'SalePreparing'
  | 'SaleProving'
  | 'SaleUnknown'

/** `GET /sales/slots/{slotId}`. */
export interface SlotAgent {
  readonly slotIndex: number
  readonly requestId: string
  readonly request?: StorageRequest
  readonly reservation?: Reservation
  readonly state: SlotState
}

/** Body of `POST /storage/request/{cid}`. */
export interface StorageRequestCreation {
  readonly duration: number
  /** Decimal string. */
  readonly pricePerBytePerSecond: string
  /** Decimal string. */
  readonly proofProbability: string
  readonly nodes?: number
  readonly tolerance?: number
  /** Decimal string. */
  readonly collateralPerByte: string
  readonly expiry: number
}

export type PurchaseState =
  | 'cancelled'
  | 'errored'
  | 'failed'
  | 'finished'
  | 'pending'
  | 'started'
  | 'submitted'
  | 'unknown'

export interface Purchase {
  readonly state: PurchaseState
  readonly error?: string | null
  readonly request?: StorageRequest
  readonly requestId: string
}

// ---------------------------------------------------------------- shape checks

type JsonObject = Record<string, unknown>

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function fail(what: string): never {
  throw new TypeError(`unexpected JSON shape: ${what}`)
}

function asObject(v: unknown, what: string): JsonObject {
  if (!isObject(v)) fail(`${what} is not an object`)
  return v
}

function str(o: JsonObject, key: string, what: string): string {
  const v = o[key]
  if (typeof v !== 'string') fail(`${what}.${key} is not a string`)
  return v
}

function int(o: JsonObject, key: string, what: string): number {
  const v = o[key]
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    fail(`${what}.${key} is not a non-negative integer`)
  return v
}

function optStr(o: JsonObject, key: string, what: string): string | null {
  const v = o[key]
  if (v === undefined || v === null) return null
  if (typeof v !== 'string') fail(`${what}.${key} is not a string or null`)
  return v
}

/**
 * Lenient on what newer builds changed (`protected` optional, default false; unknown fields
 * ignored), strict on what the client relies on: `treeCid` (a CID), `datasetSize`, `blockSize`.
 */
export function parseManifest(v: unknown, what = 'manifest'): Manifest {
  const o = asObject(v, what)
  const prot = o.protected ?? false
  if (typeof prot !== 'boolean') fail(`${what}.protected is not a boolean`)
  const treeCid = str(o, 'treeCid', what)
  try {
    parseCid(treeCid)
  } catch {
    fail(`${what}.treeCid is not a CID`)
  }
  const blockSize = int(o, 'blockSize', what)
  if (blockSize === 0) fail(`${what}.blockSize is 0`)
  const manifest: Manifest = {
    treeCid,
    datasetSize: int(o, 'datasetSize', what),
    blockSize,
    filename: optStr(o, 'filename', what),
    mimetype: optStr(o, 'mimetype', what),
    protected: prot,
  }
  if (typeof o.verifiable === 'boolean') return { ...manifest, verifiable: o.verifiable }
  return manifest
}

export function parseDataItem(v: unknown, what = 'dataItem'): DataItem {
  const o = asObject(v, what)
  return { cid: str(o, 'cid', what), manifest: parseManifest(o.manifest, `${what}.manifest`) }
}

export function parseDataList(v: unknown): DataList {
  const o = asObject(v, 'dataList')
  const content = o.content
  if (!Array.isArray(content)) fail('dataList.content is not an array')
  return { content: content.map((item, i) => parseDataItem(item, `dataList.content[${i}]`)) }
}

export function parseSpace(v: unknown): Space {
  const o = asObject(v, 'space')
  return {
    totalBlocks: int(o, 'totalBlocks', 'space'),
    quotaMaxBytes: int(o, 'quotaMaxBytes', 'space'),
    quotaUsedBytes: int(o, 'quotaUsedBytes', 'space'),
    quotaReservedBytes: int(o, 'quotaReservedBytes', 'space'),
  }
}

/**
 * `GET /data/{cid}/exists`: the node answers `{"<cid as z-base58btc>": bool}` (NOTES.md §1.7.1),
 * the spec says `{"has": bool}`. Both have exactly one boolean value: read it, whatever the key.
 */
export function parseExists(v: unknown): boolean {
  const o = asObject(v, 'exists')
  const values = Object.values(o)
  const only = values[0]
  if (values.length !== 1 || typeof only !== 'boolean') fail('exists is not an object with one boolean value')
  return only
}

export function parseSpr(v: unknown): Spr {
  return { spr: str(asObject(v, 'spr'), 'spr', 'spr') }
}

export function parsePeerId(v: unknown): PeerId {
  return { id: str(asObject(v, 'peerid'), 'id', 'peerid') }
}

export function parseDebugInfo(v: unknown): DebugInfo {
  const o = asObject(v, 'debugInfo')
  str(o, 'id', 'debugInfo')
  if (!Array.isArray(o.addrs)) fail('debugInfo.addrs is not an array')
  asObject(o.table, 'debugInfo.table')
  return o as unknown as DebugInfo
}

/** Shallow check: a JSON object (debug peer, slot agent, purchase, availability). */
export function parseObject<T>(v: unknown, what: string): T {
  return asObject(v, what) as T
}

/** Shallow check: a JSON array (slots, availabilities, reservations). */
export function parseArray<T>(v: unknown, what: string): T[] {
  if (!Array.isArray(v)) fail(`${what} is not an array`)
  return v as T[]
}

/** `GET /storage/purchases`: an array of strings. */
export function parseStringArray(v: unknown, what: string): string[] {
  const a = parseArray<unknown>(v, what)
  for (const [i, item] of a.entries()) if (typeof item !== 'string') fail(`${what}[${i}] is not a string`)
  return a as string[]
}
