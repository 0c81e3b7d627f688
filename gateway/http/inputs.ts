/**
 * Request-input helpers shared by the route plugins: list parsing, URL/peer validation and
 * the HTTP-level sanity checks of .torrent bytes and magnet links (the service does the real
 * parsing). Every failure is a `GatewayError` with the right catalogue code.
 */
import { type HostPort, parseHostPort, parseTrackerUrl } from '../config.ts'
import { GatewayError } from './errors.ts'

/** Splits comma- or newline-separated text into trimmed, non-empty items. */
export function splitList(text: string | undefined): string[] {
  if (text === undefined) return []
  return text
    .split(/[,\n]/)
    .map((s) => s.trim())
    .filter((s) => s !== '')
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

export function parseTrackers(items: readonly string[]): string[] {
  return items.map((item) => {
    try {
      return parseTrackerUrl(item)
    } catch (err) {
      throw new GatewayError('GW_ERR_BAD_REQUEST', `invalid tracker: ${reason(err)}`)
    }
  })
}

export function parsePeers(items: readonly string[]): HostPort[] {
  return items.map((item) => {
    try {
      return parseHostPort(item)
    } catch (err) {
      throw new GatewayError('GW_ERR_BAD_REQUEST', `invalid peer: ${reason(err)}`)
    }
  })
}

export function parseWebSeeds(items: readonly string[]): string[] {
  return items.map((item) => {
    let url: URL
    try {
      url = new URL(item)
    } catch {
      throw new GatewayError('GW_ERR_BAD_REQUEST', `invalid web seed: '${item}' is not a URL`)
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new GatewayError('GW_ERR_BAD_REQUEST', `invalid web seed: '${item}' must use http or https`)
    }
    return item
  })
}

/** A .torrent file is a bencoded dictionary: non-empty and starting with `d`. */
export function checkTorrentBytes(bytes: Uint8Array): Uint8Array {
  if (bytes.length === 0) throw new GatewayError('GW_ERR_BAD_TORRENT', 'The .torrent file is empty.')
  if (bytes[0] !== 0x64) {
    throw new GatewayError('GW_ERR_BAD_TORRENT', 'Not a .torrent file (expected a bencoded dictionary).')
  }
  return bytes
}

const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

export function decodeBase64Torrent(text: string): Uint8Array {
  const compact = text.replace(/\s+/g, '')
  if (!BASE64_RE.test(compact)) throw new GatewayError('GW_ERR_BAD_TORRENT', '`torrent` is not valid base64.')
  return checkTorrentBytes(new Uint8Array(Buffer.from(compact, 'base64')))
}

export function checkMagnet(magnet: string): string {
  const m = magnet.trim()
  if (!/^magnet:\?/i.test(m))
    throw new GatewayError('GW_ERR_BAD_MAGNET', 'A magnet link starts with `magnet:?`.')
  if (!/[?&]xt=urn:bt(?:ih|mh):/i.test(m)) {
    throw new GatewayError(
      'GW_ERR_BAD_MAGNET',
      'The magnet link has no `xt=urn:btih:` or `xt=urn:btmh:` topic.',
    )
  }
  return m
}

/** Info hashes travel in lower case. */
export function normalizeId(id: string): string {
  return id.toLowerCase()
}

/** `attachment` Content-Disposition with an ASCII fallback and an RFC 6266/5987 UTF-8 name. */
export function attachmentDisposition(filename: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are removed on purpose
  const cleaned = filename.replace(/[\u0000-\u001f\u007f/\\]/g, '_').trim() || 'download'
  const ascii = cleaned.replace(/[^\x20-\x7e]/g, '_').replace(/["%;]/g, '_')
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(cleaned)}`
}
