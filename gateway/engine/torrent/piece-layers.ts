/**
 * Completing a torrent's metainfo once every piece is verified, so that it is a whole .torrent
 * (what the archive record is built from):
 *
 * - BEP52 `piece layers`: every file larger than one piece needs its layer. Layers received from
 *   peers (magnet start) or from the .torrent are in the verifier; any still missing (e.g. a hybrid
 *   downloaded on its v1 hashes) are computed from the verified local data — all of it is local
 *   now — through storage reads: the leaf hashes of each piece (`hashPiece` with v2 leaves), folded
 *   to the piece-layer hash (`hashPieceV2`). The verifier accepts a layer only if it hashes up to the
 *   file's `pieces root`, so a wrong layer can never enter the metainfo.
 * - Only the info dict is trusted; the outer parts (trackers, web seeds) are kept as they are.
 *
 * Memory: one file's layer at a time (32 bytes per piece); reads go through `hashPiece`
 * (bounded by the storage's hashing helper).
 */
import { hashPieceV2 } from '../../protocol/hashers.ts'
import { toHex } from '../../protocol/hex.ts'
import type { AbortOptions, Metainfo } from '../../protocol/types.ts'
import type { StorageFacade } from '../storage-facade.ts'
import type { PieceVerifier } from './verifier.ts'

/** Computes the missing piece layers from storage; returns the files whose layer is still missing. */
export async function computeMissingLayers(
  metainfo: Metainfo,
  verifier: PieceVerifier,
  storage: StorageFacade,
  options: AbortOptions = {},
): Promise<number[]> {
  const info = metainfo.info
  const failed: number[] = []
  for (const fileIndex of verifier.missingLayers()) {
    const f = info.files[fileIndex]
    if (!f || f.pieceCount === 0) continue
    const layer = new Uint8Array(f.pieceCount * 32)
    for (let i = 0; i < f.pieceCount; i++) {
      options.signal?.throwIfAborted()
      const hashes = await storage.hashPiece(f.firstPiece + i, { v1: false, v2: true }, options)
      const leaves = hashes.v2Leaves
      if (!leaves || leaves.length === 0) throw new Error(`no leaf hashes for piece ${f.firstPiece + i}`)
      layer.set(hashPieceV2(leaves, info.pieceLength), i * 32)
    }
    if (!verifier.addLayer(fileIndex, layer)) failed.push(fileIndex)
  }
  return failed
}

/** `metainfo` with every piece layer the verifier knows (files larger than one piece only). */
export function withPieceLayers(metainfo: Metainfo, verifier: PieceVerifier): Metainfo {
  const info = metainfo.info
  if (info.version === 'v1') return metainfo
  const layers = new Map(metainfo.pieceLayers)
  for (const f of info.files) {
    if (f.padding || !f.piecesRoot || f.length <= info.pieceLength) continue
    const hex = toHex(f.piecesRoot)
    const layer = verifier.layer(hex)
    if (layer && !layers.has(hex)) layers.set(hex, layer)
  }
  return { ...metainfo, pieceLayers: layers }
}
