/**
 * Turns the API's torrent inputs (.torrent bytes, magnet link, info hash) into what the engine
 * needs, mapping protocol errors to the API's stable error codes.
 */
import { GatewayError } from '../http/errors.ts'
import type { AddTorrentInput, HostPort } from '../http/service.ts'
import { fromHex } from '../protocol/hex.ts'
import { parseMagnet } from '../protocol/magnet.ts'
import { parseTorrent } from '../protocol/metainfo.ts'
import type { Metainfo } from '../protocol/types.ts'

export type ParsedInput =
  | { readonly kind: 'torrent'; readonly metainfo: Metainfo; readonly bytes: Uint8Array }
  | {
      readonly kind: 'magnet' | 'infohash'
      readonly infoHashV1?: Uint8Array
      readonly infoHashV2?: Uint8Array
      readonly name?: string
      readonly trackers: readonly string[]
      readonly peers: readonly HostPort[]
    }

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e)
}

export function parseAddInput(input: AddTorrentInput): ParsedInput {
  if (input.torrent) {
    try {
      return { kind: 'torrent', metainfo: parseTorrent(input.torrent), bytes: input.torrent }
    } catch (e) {
      throw new GatewayError('GW_ERR_BAD_TORRENT', `invalid .torrent: ${message(e)}`)
    }
  }
  if (input.magnet !== undefined) {
    try {
      const m = parseMagnet(input.magnet)
      return {
        kind: 'magnet',
        ...(m.infoHashV1 ? { infoHashV1: m.infoHashV1 } : {}),
        ...(m.infoHashV2 ? { infoHashV2: m.infoHashV2 } : {}),
        ...(m.name ? { name: m.name } : {}),
        trackers: m.trackers,
        peers: m.peers.map((p) => ({ host: p.host, port: p.port })),
      }
    } catch (e) {
      throw new GatewayError('GW_ERR_BAD_MAGNET', `invalid magnet link: ${message(e)}`)
    }
  }
  if (input.infoHash !== undefined) {
    const hex = input.infoHash.toLowerCase()
    if (/^[0-9a-f]{40}$/.test(hex))
      return { kind: 'infohash', infoHashV1: fromHex(hex, 20), trackers: [], peers: [] }
    if (/^[0-9a-f]{64}$/.test(hex))
      return { kind: 'infohash', infoHashV2: fromHex(hex, 32), trackers: [], peers: [] }
    throw new GatewayError('GW_ERR_BAD_REQUEST', 'infoHash must be 40 (v1) or 64 (v2) hex characters')
  }
  throw new GatewayError('GW_ERR_BAD_REQUEST', 'one of torrent, magnet or infoHash is required')
}
