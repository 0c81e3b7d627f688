/**
 * HTTP(S) tracker client: BEP3 announce, BEP23 compact peers (+ BEP7 `peers6`), BEP48 scrape.
 *
 * One {@link HttpTrackerClient} per announce URL. Requests go through undici with a deadline
 * (`timeoutMs`), the caller's AbortSignal, a response size cap (`maxResponseBytes`) and no
 * connection reuse (a tracker is contacted every few minutes at most). Responses are validated
 * field by field; a `failure reason` becomes a {@link TrackerError}, everything else that is not
 * a well-formed answer a {@link TrackerProtocolError}. Bodies are decoded with the gateway's one
 * bencode decoder (`protocol/bencode.ts`) under {@link TRACKER_BENCODE_LIMITS}.
 *
 * HTTP redirects (301/302/303/307/308 with a `Location`) are followed like libtorrent does, at
 * most {@link MAX_TRACKER_REDIRECTS} per request and within the same deadline, only to http(s)
 * URLs, and — libtorrent's `ssrf_mitigation` — never from a global host to a loopback, private
 * or link-local address.
 */

import { isIP } from 'node:net'
import type { Dispatcher } from 'undici'
import { request } from 'undici'
import {
  type BDict,
  type BValue,
  bytesText,
  bytesToKey,
  type DecodeOptions,
  decodeBencode,
  dictText,
  isDict,
} from '../../protocol/bencode.ts'
import { toHex } from '../../protocol/hex.ts'
import { ipv4ToBytes } from '../../protocol/ip-address.ts'
import { decodeCompactPeers } from './compact.ts'
import { DiscoveryError, type PeerAddress } from './peer-source.ts'
import {
  type AnnounceRequest,
  type AnnounceResponse,
  type ScrapeEntry,
  type ScrapeResult,
  TrackerArgumentError,
  type TrackerClient,
  TrackerError,
  TrackerNetworkError,
  TrackerProtocolError,
  type TrackerRequestOptions,
  TrackerResponseTooLargeError,
  TrackerTimeoutError,
  TrackerUrlError,
  validateAnnounceRequest,
} from './tracker-common.ts'

export interface HttpTrackerInit {
  /** Deadline for one request (connect + headers + body). @default 15_000 */
  readonly timeoutMs?: number
  /** Response bodies larger than this are rejected. @default 512 KiB */
  readonly maxResponseBytes?: number
  /** At most this many peers are returned per announce. @default 1000 */
  readonly maxPeers?: number
  /** undici dispatcher (agent/pool); the global one by default. */
  readonly dispatcher?: Dispatcher
  /** `User-Agent` header. @default 'codex-bittorrent-gateway' */
  readonly userAgent?: string
}

/**
 * Percent-encodes raw bytes for a query string (BEP3: info_hash and peer_id are sent as their
 * 20 raw bytes, URL-escaped). Only RFC 3986 unreserved characters stay literal.
 */
export function percentEncodeBytes(bytes: Uint8Array): string {
  let out = ''
  for (const b of bytes) {
    const unreserved =
      (b >= 0x30 && b <= 0x39) ||
      (b >= 0x41 && b <= 0x5a) ||
      (b >= 0x61 && b <= 0x7a) ||
      b === 0x2d ||
      b === 0x2e ||
      b === 0x5f ||
      b === 0x7e
    out += unreserved ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`
  }
  return out
}

/** Parses and checks an http(s) tracker URL (no fragment allowed). */
function parseHttpUrl(url: string): URL {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new TrackerUrlError(url, 'not a valid URL')
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new TrackerUrlError(url, `unsupported scheme ${parsed.protocol}`)
  }
  return parsed
}

/** Redirects followed for one request (libtorrent's HTTP tracker connections follow 5). */
export const MAX_TRACKER_REDIRECTS = 5
const REDIRECT_STATUS = new Set([301, 302, 303, 307, 308])

/**
 * True for hosts on this machine or a local network (loopback, RFC 1918, link-local, unspecified,
 * IPv6 ULA/link-local, IPv4-mapped forms of those, `localhost`). Names other than `localhost` are
 * not resolved here, so they count as global: the check stops redirects to literal addresses.
 */
export function isLocalHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase()
  if (host === 'localhost' || host.endsWith('.localhost')) return true
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(host)
  const v4 = ipv4ToBytes(mapped ? mapped[1]! : host)
  if (v4) {
    const a = v4[0]!
    const b = v4[1]!
    return (
      a === 127 ||
      a === 10 ||
      a === 0 ||
      (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168) ||
      (a === 169 && b === 254)
    )
  }
  if (isIP(host) !== 6) return false
  if (/^::ffff:[0-9a-f]{1,4}:[0-9a-f]{1,4}$/.test(host)) {
    // IPv4-mapped in hex form (URL parsing normalises ::ffff:127.0.0.1 to ::ffff:7f00:1)
    const [hi, lo] = host
      .slice(7)
      .split(':')
      .map((h) => Number.parseInt(h, 16)) as [number, number]
    return isLocalHost(`${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`)
  }
  const first = Number.parseInt(host.split(':')[0] || '0', 16)
  return host === '::1' || host === '::' || (first & 0xfe00) === 0xfc00 || (first & 0xffc0) === 0xfe80
}

/**
 * Where a redirect from `current` to `location` leads: resolved against `current`, without a
 * fragment; refused (TrackerProtocolError) unless http(s), or when it goes from a global host to
 * a local one (SSRF).
 */
function redirectTarget(trackerUrl: string, current: string, location: string): string {
  let next: URL
  try {
    next = new URL(location, current)
  } catch {
    throw new TrackerProtocolError(trackerUrl, 'redirect to an invalid URL')
  }
  if (next.protocol !== 'http:' && next.protocol !== 'https:') {
    throw new TrackerProtocolError(trackerUrl, `redirect to unsupported scheme ${next.protocol}`)
  }
  if (isLocalHost(next.hostname) && !isLocalHost(new URL(current).hostname)) {
    throw new TrackerProtocolError(trackerUrl, 'redirect from a global host to a local address refused')
  }
  next.hash = ''
  return next.toString()
}

/** Appends `query` to `url`, keeping an existing query string (e.g. a passkey). */
function withQuery(url: string, query: string): string {
  const hash = url.indexOf('#')
  const base = hash === -1 ? url : url.slice(0, hash)
  return `${base}${base.includes('?') ? '&' : '?'}${query}`
}

/** The full BEP3 announce URL for `req`; `compact=1` asks for BEP23 peers. */
export function buildAnnounceUrl(announceUrl: string, req: AnnounceRequest): string {
  validateAnnounceRequest(req)
  parseHttpUrl(announceUrl)
  const params = [
    `info_hash=${percentEncodeBytes(req.infoHash)}`,
    `peer_id=${percentEncodeBytes(req.peerId)}`,
    `port=${req.port}`,
    `uploaded=${req.uploaded}`,
    `downloaded=${req.downloaded}`,
    `left=${req.left}`,
    'compact=1',
  ]
  if (req.event !== undefined) params.push(`event=${req.event}`)
  if (req.numwant !== undefined) params.push(`numwant=${req.numwant}`)
  if (req.key !== undefined) params.push(`key=${req.key.toString(16).padStart(8, '0')}`)
  if (req.trackerId !== undefined) params.push(`trackerid=${percentEncodeBytes(req.trackerId)}`)
  return withQuery(announceUrl, params.join('&'))
}

/**
 * BEP48: the scrape URL is the announce URL with `announce` replaced by `scrape` in the path.
 * Following the long-standing convention, the replaced text must begin the last path segment
 * (`/announce`, `/announce.php`, `/x/announce?passkey=…`). Returns undefined when the tracker
 * has no scrape URL by this rule.
 */
export function scrapeUrlFromAnnounce(announceUrl: string): string | undefined {
  let parsed: URL
  try {
    parsed = parseHttpUrl(announceUrl)
  } catch {
    return undefined
  }
  const slash = parsed.pathname.lastIndexOf('/')
  const last = parsed.pathname.slice(slash + 1)
  if (!last.startsWith('announce')) return undefined
  parsed.pathname = `${parsed.pathname.slice(0, slash + 1)}scrape${last.slice('announce'.length)}`
  return parsed.toString()
}

/** The scrape URL for a set of 20-byte info hashes (BEP48: `info_hash` repeated). */
export function buildScrapeUrl(announceUrl: string, infoHashes: readonly Uint8Array[]): string {
  const scrapeUrl = scrapeUrlFromAnnounce(announceUrl)
  if (scrapeUrl === undefined) throw new TrackerUrlError(announceUrl, 'no scrape URL (BEP48 rule)')
  for (const h of infoHashes) {
    if (h.byteLength !== 20) throw new TrackerArgumentError('scrape info hashes must be 20 bytes')
  }
  return withQuery(scrapeUrl, infoHashes.map((h) => `info_hash=${percentEncodeBytes(h)}`).join('&'))
}

/**
 * Structural limits for tracker response bodies (which are also capped by `maxResponseBytes`):
 * at most 32 levels of nesting and 100,000 values (dictionary keys included), canonical numbers
 * (no leading zeros, no `i-0e`), keys in any order, no duplicate keys, nothing after the value.
 */
export const TRACKER_BENCODE_LIMITS = {
  maxDepth: 32,
  maxTokens: 100_000,
  canonicalNumbers: true,
} as const satisfies DecodeOptions

function optionalCount(url: string, dict: BDict, key: string): number | undefined {
  const v = dict.get(key)
  if (v === undefined) return undefined
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new TrackerProtocolError(url, `\`${key}\` is not a non-negative integer`)
  }
  return v
}

/** Throws {@link TrackerError} when the dictionary carries a BEP3 `failure reason`. */
function throwOnFailure(url: string, dict: BDict): void {
  const failure = dict.get('failure reason')
  if (failure !== undefined) {
    throw new TrackerError(url, failure instanceof Uint8Array ? bytesText(failure) : String(failure))
  }
}

function decodeDict(url: string, body: Uint8Array): BDict {
  let value: BValue
  try {
    value = decodeBencode(body, TRACKER_BENCODE_LIMITS).value
  } catch (err) {
    throw new TrackerProtocolError(url, 'response is not bencoded', { cause: err })
  }
  if (!isDict(value)) throw new TrackerProtocolError(url, 'response is not a dictionary')
  return value
}

/** BEP3 dictionary-model peer list: `[{ 'peer id', ip, port }]`; non-IP hosts are skipped. */
function parseDictPeers(url: string, list: readonly BValue[], maxPeers: number, out: PeerAddress[]): void {
  for (const entry of list) {
    if (out.length >= maxPeers) return
    if (!isDict(entry)) throw new TrackerProtocolError(url, 'peer entry is not a dictionary')
    const host = dictText(entry, 'ip')
    const port = entry.get('port')
    if (host === undefined || typeof port !== 'number') {
      throw new TrackerProtocolError(url, 'peer entry lacks ip or port')
    }
    // BEP3 allows DNS names here; we only hand IP literals to the engine.
    if (isIP(host) === 0 || !Number.isInteger(port) || port < 1 || port > 65535) continue
    out.push({ host, port })
  }
}

/**
 * Parses a BEP3 announce response body. Peers: BEP23 compact string or BEP3 list in `peers`,
 * BEP7 compact IPv6 in `peers6`.
 */
export function parseAnnounceResponse(url: string, body: Uint8Array, maxPeers = 1000): AnnounceResponse {
  const dict = decodeDict(url, body)
  throwOnFailure(url, dict)
  const peers: PeerAddress[] = []
  try {
    const p4 = dict.get('peers')
    if (p4 instanceof Uint8Array) peers.push(...decodeCompactPeers(p4, 'ipv4', maxPeers))
    else if (Array.isArray(p4)) parseDictPeers(url, p4, maxPeers, peers)
    else if (p4 !== undefined) throw new TrackerProtocolError(url, '`peers` has the wrong type')
    const p6 = dict.get('peers6')
    if (p6 instanceof Uint8Array) peers.push(...decodeCompactPeers(p6, 'ipv6', maxPeers - peers.length))
    else if (p6 !== undefined) throw new TrackerProtocolError(url, '`peers6` has the wrong type')
  } catch (err) {
    if (err instanceof TrackerProtocolError) throw err
    throw new TrackerProtocolError(url, 'bad peer list', { cause: err })
  }
  const trackerId = dict.get('tracker id')
  const warning = dictText(dict, 'warning message')
  return {
    intervalS: optionalCount(url, dict, 'interval'),
    minIntervalS: optionalCount(url, dict, 'min interval'),
    complete: optionalCount(url, dict, 'complete'),
    incomplete: optionalCount(url, dict, 'incomplete'),
    ...(trackerId instanceof Uint8Array ? { trackerId } : {}),
    ...(warning !== undefined ? { warning } : {}),
    peers,
  }
}

/** Parses a BEP48 scrape response for the hashes that were asked for. */
export function parseScrapeResponse(
  url: string,
  body: Uint8Array,
  infoHashes: readonly Uint8Array[],
): ScrapeResult {
  const dict = decodeDict(url, body)
  throwOnFailure(url, dict)
  const files = dict.get('files')
  if (!isDict(files)) throw new TrackerProtocolError(url, 'scrape response has no `files` dictionary')
  const result = new Map<string, ScrapeEntry>()
  for (const h of infoHashes) {
    const hex = toHex(h)
    // BEP48 keys are the 20 raw bytes; some trackers send hex text or the Latin-1→UTF-8 mangling.
    const entry = files.get(bytesToKey(h)) ?? files.get(hex) ?? files.get(bytesToKey(latin1AsUtf8(h)))
    if (!isDict(entry)) continue
    result.set(hex, {
      complete: optionalCount(url, entry, 'complete') ?? 0,
      incomplete: optionalCount(url, entry, 'incomplete') ?? 0,
      downloaded: optionalCount(url, entry, 'downloaded') ?? 0,
    })
  }
  return result
}

/**
 * The bytes some trackers (e.g. `bittorrent-tracker` v11) send as scrape keys: the info hash
 * taken as a Latin-1 string and written out as UTF-8. Only used to match hashes we asked for.
 */
function latin1AsUtf8(bytes: Uint8Array): Uint8Array {
  return Buffer.from(Buffer.from(bytes).toString('latin1'), 'utf8')
}

/** HTTP tracker client for one announce URL. Stateless apart from its options. */
export class HttpTrackerClient implements TrackerClient {
  readonly url: string
  readonly #timeoutMs: number
  readonly #maxResponseBytes: number
  readonly #maxPeers: number
  readonly #dispatcher: Dispatcher | undefined
  readonly #userAgent: string

  constructor(url: string, init: HttpTrackerInit = {}) {
    parseHttpUrl(url)
    this.url = url
    this.#timeoutMs = positive('timeoutMs', init.timeoutMs ?? 15_000)
    this.#maxResponseBytes = positive('maxResponseBytes', init.maxResponseBytes ?? 512 * 1024)
    this.#maxPeers = positive('maxPeers', init.maxPeers ?? 1000)
    this.#dispatcher = init.dispatcher
    this.#userAgent = init.userAgent ?? 'codex-bittorrent-gateway'
  }

  async announce(req: AnnounceRequest, options: TrackerRequestOptions = {}): Promise<AnnounceResponse> {
    const body = await this.#get(buildAnnounceUrl(this.url, req), options)
    return parseAnnounceResponse(this.url, body, this.#maxPeers)
  }

  async scrape(
    infoHashes: readonly Uint8Array[],
    options: TrackerRequestOptions = {},
  ): Promise<ScrapeResult> {
    const body = await this.#get(buildScrapeUrl(this.url, infoHashes), options)
    return parseScrapeResponse(this.url, body, infoHashes)
  }

  async close(): Promise<void> {
    // No persistent resources: every request closes its connection (`reset: true`).
  }

  /**
   * GET with deadline, abort and size cap, following up to {@link MAX_TRACKER_REDIRECTS} redirects
   * (all within the one deadline); returns the body of a 2xx response.
   */
  async #get(fullUrl: string, options: TrackerRequestOptions): Promise<Uint8Array> {
    options.signal?.throwIfAborted()
    const deadline = new AbortController()
    const timer = setTimeout(() => deadline.abort(), this.#timeoutMs)
    const signal = options.signal ? AbortSignal.any([options.signal, deadline.signal]) : deadline.signal
    try {
      let url = fullUrl
      let res: Dispatcher.ResponseData
      for (let redirects = 0; ; redirects++) {
        res = await request(url, {
          method: 'GET',
          signal,
          reset: true,
          headersTimeout: this.#timeoutMs,
          bodyTimeout: this.#timeoutMs,
          headers: { 'user-agent': this.#userAgent, 'accept-encoding': 'identity' },
          ...(this.#dispatcher ? { dispatcher: this.#dispatcher } : {}),
        })
        const location = res.headers.location
        if (!REDIRECT_STATUS.has(res.statusCode) || location === undefined) break
        // The redirect's own body is never read.
        res.body.on('error', () => {})
        res.body.destroy()
        if (redirects >= MAX_TRACKER_REDIRECTS) {
          throw new TrackerProtocolError(this.url, `more than ${MAX_TRACKER_REDIRECTS} redirects`)
        }
        url = redirectTarget(this.url, url, Array.isArray(location) ? (location[0] ?? '') : location)
      }
      const body = await this.#readBody(res)
      if (res.statusCode < 200 || res.statusCode > 299) {
        // Some trackers send `failure reason` with an error status: surface it when present.
        let dict: BDict | undefined
        try {
          dict = decodeDict(this.url, body)
        } catch {
          dict = undefined
        }
        if (dict) throwOnFailure(this.url, dict)
        throw new TrackerProtocolError(this.url, `HTTP status ${res.statusCode}`)
      }
      return body
    } catch (err) {
      if (options.signal?.aborted) throw options.signal.reason
      if (deadline.signal.aborted || isUndiciTimeout(err)) {
        throw new TrackerTimeoutError(this.url, `no complete response within ${this.#timeoutMs} ms`)
      }
      if (err instanceof DiscoveryError) throw err
      throw new TrackerNetworkError(this.url, (err as Error)?.message ?? String(err), { cause: err })
    } finally {
      clearTimeout(timer)
    }
  }

  async #readBody(res: Dispatcher.ResponseData): Promise<Uint8Array> {
    const limit = this.#maxResponseBytes
    // Errors reach us through the iterator; once we stop iterating (limit hit), undici may still
    // emit an abort error on the destroyed body, which must not become an unhandled 'error'.
    res.body.on('error', () => {})
    const declared = Number(res.headers['content-length'])
    if (Number.isFinite(declared) && declared > limit) {
      res.body.destroy()
      throw new TrackerResponseTooLargeError(this.url, limit)
    }
    const chunks: Buffer[] = []
    let total = 0
    try {
      for await (const chunk of res.body) {
        const buf = chunk as Buffer
        total += buf.byteLength
        if (total > limit) throw new TrackerResponseTooLargeError(this.url, limit)
        chunks.push(buf)
      }
    } finally {
      if (!res.body.destroyed) res.body.destroy()
    }
    return Buffer.concat(chunks, total)
  }
}

function isUndiciTimeout(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  return (
    code === 'UND_ERR_HEADERS_TIMEOUT' ||
    code === 'UND_ERR_BODY_TIMEOUT' ||
    code === 'UND_ERR_CONNECT_TIMEOUT'
  )
}

function positive(name: string, v: number): number {
  if (!Number.isFinite(v) || v <= 0) throw new TrackerArgumentError(`${name} must be a positive number`)
  return v
}
