/**
 * BEP52 hash request / hashes / hash reject:
 *
 * 1. Fetching piece layers (v2-only magnet start) is not stalled by a seed that rejects every hash
 *    request: it is backed off and the layers come from the honest libtorrent seed.
 * 2. Serving: requests below the piece layer (base layer 0, as libtorrent sends after a failed v2
 *    piece) are answered from the stored data with a proof that verifies against the pieces root;
 *    so are requests for a file not larger than one piece and piece-layer requests; a request that
 *    would make us hash too many pieces is rejected.
 * 3. Hybrid torrent, libtorrent knowing only the btih: we dial it with the v2 bit, it answers with
 *    the v1 hash, fetches the metadata, learns it is hybrid and sends hash requests on that
 *    connection: answered, never closed; libtorrent completes.
 * 4. A v1-only torrent answers a hash request with `hash reject` and keeps the connection.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { FsPieceStore } from '../../adapters/fs-store.ts'
import { MemoryPieceStore } from '../../adapters/memory-store.ts'
import type { EngineLogger } from '../../gateway/engine/logger.ts'
import type { Session } from '../../gateway/engine/session.ts'
import { toHex } from '../../gateway/protocol/hex.ts'
import { magnetFromMetainfo } from '../../gateway/protocol/magnet.ts'
import { leafCount, nextPowerOfTwo, verifyHashes } from '../../gateway/protocol/merkle.ts'
import type { FileEntry } from '../../gateway/protocol/types.ts'
import { ExtPeer, hashRequestPayload, MSG } from '../helpers/ext-peer.ts'
import { complete, HOST, ltSeed, makeLtTorrent, startSession, waitUntil } from '../helpers/interop.ts'
import { type LtSession, startLibtorrent } from '../helpers/libtorrent.ts'
import { type TempDir, tempDir } from '../helpers/payload.ts'

const MIB = 1024 * 1024

/** A logger that keeps every record's message and fields as one line. */
function captureLogger(lines: string[]): EngineLogger {
  const make = (bindings: Record<string, unknown>): EngineLogger => {
    const out = (obj: object, msg?: string): void => {
      if (lines.length < 50_000) lines.push(`${msg ?? ''} ${JSON.stringify({ ...bindings, ...obj })}`)
    }
    return {
      trace: () => {},
      debug: out,
      info: out,
      warn: out,
      error: out,
      child: (b) => make({ ...bindings, ...b }),
    }
  }
  return make({})
}

interface HashReq {
  piecesRoot: Uint8Array
  baseLayer: number
  index: number
  length: number
  proofLayers: number
}

/** Sends a hash request and waits for the answer with the same header: `hashes` or `hash reject`. */
async function ask(peer: ExtPeer, req: HashReq): Promise<{ type: 'hashes' | 'reject'; hashes: Uint8Array }> {
  const header = hashRequestPayload(req)
  const seen = peer.received.length
  peer.send(MSG.hashRequest, header)
  let found: { type: 'hashes' | 'reject'; hashes: Uint8Array } | undefined
  await waitUntil(
    () => {
      for (const m of peer.received.slice(seen)) {
        if ((m.id === MSG.hashes || m.id === MSG.hashReject) && m.payload.subarray(0, 48).equals(header)) {
          found = {
            type: m.id === MSG.hashes ? 'hashes' : 'reject',
            hashes: new Uint8Array(m.payload.subarray(48)),
          }
          return true
        }
      }
      return false
    },
    'an answer to the hash request',
    10_000,
  )
  return found!
}

describe('BEP52 hash exchange', { timeout: 85_000 }, () => {
  let lt: LtSession
  let tmp: TempDir

  before(async () => {
    tmp = await tempDir('codex-bt-ext-hashes-')
    lt = await startLibtorrent()
  })

  after(async () => {
    await lt?.close()
    await tmp?.cleanup()
  })

  test('v2 magnet: a seed rejecting every hash request does not stall the piece layers', async () => {
    const made = await makeLtTorrent(
      lt,
      join(tmp.path, 'layers'),
      {
        name: 'layers',
        seed: 'ext-layers',
        files: [
          { path: ['a.bin'], size: 3 * MIB + 4567 },
          { path: ['b.bin'], size: 2 * MIB + 1 },
          { path: ['c.bin'], size: MIB + 7 },
        ],
      },
      'v2',
      32 * 1024,
    )
    await ltSeed(lt, made)
    const v2 = made.metainfo.info.infoHashV2!
    let session: Session | undefined
    let hostile: ExtPeer | undefined
    try {
      session = await startSession('ext-hashes-layers')
      const t = await session.addTorrent({ infoHashV2: v2, store: new MemoryPieceStore() })
      // A "seed" on the v2 swarm that never unchokes and rejects every hash request, connected first.
      hostile = await ExtPeer.dial({
        port: session.port,
        infoHash: v2.subarray(0, 20),
        reserved: { v2: true },
        have: 'all',
        hashRequests: 'reject',
      })
      await waitUntil(() => t.peers.size === 1, 'the hostile peer attached')
      t.addPeers([{ host: HOST, port: lt.port }])
      await complete(t, 40_000)
      assert.ok(hostile.hashRequests >= 1, 'the rejecting seed was asked')
      assert.ok(!hostile.closed, 'rejecting is not misbehaviour')
      assert.equal(t.stats.piecesFailed, 0)
      assert.equal(t.stats.peersBanned, 0)
      const layers = t.verifier!.layers()
      assert.equal(made.metainfo.pieceLayers.size, 3)
      for (const [root, layer] of made.metainfo.pieceLayers)
        assert.equal(toHex(layers.get(root)!), toHex(layer))
    } finally {
      hostile?.close()
      await session?.stop()
    }
  })

  for (const version of ['v2', 'hybrid'] as const) {
    test(`serving (${version}): base layer 0 from the stored data, single-piece files, piece layers; bounded`, async () => {
      const made = await makeLtTorrent(
        lt,
        join(tmp.path, `serve-${version}`),
        {
          name: 'serve',
          seed: 'ext-serve',
          files: [
            { path: ['big.bin'], size: MIB + 12_345 },
            { path: ['small.txt'], size: 40_000 },
          ],
        },
        version,
        64 * 1024,
      )
      let session: Session | undefined
      let peer: ExtPeer | undefined
      try {
        session = await startSession(`ext-hashes-serve-${version}`)
        const t = await session.addTorrent({
          metainfo: made.metainfo,
          store: new FsPieceStore({ directory: made.payload.root }),
        })
        await complete(t, 20_000)
        peer = await ExtPeer.dial({
          port: session.port,
          infoHash: made.metainfo.info.infoHashV2!.subarray(0, 20),
          reserved: { v2: true },
        })
        const files = made.metainfo.info.files.filter((f) => !f.padding)
        const big = files.find((f) => f.path.at(-1) === 'big.bin')!
        const small = files.find((f) => f.path.at(-1) === 'small.txt')!
        const width = (f: FileEntry): number => nextPowerOfTwo(leafCount(f.length))
        const height = (f: FileEntry): number => Math.log2(width(f))
        const check = async (
          f: FileEntry,
          baseLayer: number,
          index: number,
          length: number,
        ): Promise<void> => {
          const proofLayers = height(f) - baseLayer - 1
          const req = { piecesRoot: f.piecesRoot!, baseLayer, index, length, proofLayers }
          const a = await ask(peer!, req)
          assert.equal(a.type, 'hashes', `answered: base ${baseLayer} index ${index} length ${length}`)
          assert.equal(
            verifyHashes(f.piecesRoot!, baseLayer, index, length, proofLayers, a.hashes, width(f)),
            'ok',
            `the proof verifies: base ${baseLayer} index ${index} length ${length}`,
          )
        }
        // 64 KiB pieces = 4 leaves. Piece 5's leaves; half of piece 5; the last (partial) piece.
        await check(big, 0, 20, 4)
        await check(big, 0, 22, 2)
        await check(big, 0, 64, 4)
        // Base layer 1 (pairs of leaves) inside a piece.
        await check(big, 1, 4, 2)
        // The piece layer (layer 2): its whole padded width in one request.
        await check(big, 2, 0, 32)
        // A file not larger than one piece has no piece layer: 3 leaves, padded to 4.
        await check(small, 0, 0, 4)
        // Eight pieces' worth of leaves in one request: more than we hash per request.
        const tooMany = await ask(peer, {
          piecesRoot: big.piecesRoot!,
          baseLayer: 0,
          index: 0,
          length: 32,
          proofLayers: height(big) - 1,
        })
        assert.equal(tooMany.type, 'reject')
        assert.ok(!peer.closed, 'answers and rejects keep the connection')
      } finally {
        peer?.close()
        await session?.stop()
      }
    })
  }

  test('hybrid, libtorrent knows only the btih: hash requests on the v1-hash connection are answered', async () => {
    const made = await makeLtTorrent(
      lt,
      join(tmp.path, 'hybrid'),
      {
        name: 'hybrid',
        seed: 'ext-hybrid',
        files: [
          { path: ['a.bin'], size: 3_000_000 },
          { path: ['b.txt'], size: 100 },
        ],
      },
      'hybrid',
      64 * 1024,
    )
    const lines: string[] = []
    let session: Session | undefined
    let h: number | undefined
    try {
      session = await startSession('ext-hashes-hybrid', { logger: captureLogger(lines) })
      const t = await session.addTorrent({
        metainfo: made.metainfo,
        store: new FsPieceStore({ directory: made.payload.root }),
      })
      await complete(t, 20_000)
      const magnet = magnetFromMetainfo(made.metainfo).replace(/&?xt=urn:btmh:[0-9a-f]+/, '')
      assert.ok(magnet.includes('btih') && !magnet.includes('btmh'))
      h = await lt.add({ magnet, savePath: join(tmp.path, 'hybrid', 'dest') })
      t.addPeers([{ host: HOST, port: lt.port }])
      await lt.waitFor(h, (s) => s.is_seeding, { timeoutMs: 30_000, intervalMs: 100 })
      const closedForV2 = lines.filter((l) => /peer closed/.test(l) && /BEP52|hash/.test(l))
      assert.deepEqual(closedForV2, [], 'no connection closed for BEP52 hash messages')
    } finally {
      if (h !== undefined) await lt.remove(h).catch(() => {})
      await session?.stop()
    }
  })

  test('v1-only torrent: a hash request gets a hash reject, the connection stays', async () => {
    const made = await makeLtTorrent(
      lt,
      join(tmp.path, 'v1'),
      { name: 'v1.bin', seed: 'ext-v1', size: 200_000 },
      'v1',
      32 * 1024,
    )
    let session: Session | undefined
    let peer: ExtPeer | undefined
    try {
      session = await startSession('ext-hashes-v1')
      await session.addTorrent({ metainfo: made.metainfo, store: new MemoryPieceStore() })
      peer = await ExtPeer.dial({
        port: session.port,
        infoHash: made.metainfo.info.infoHashV1!,
        reserved: { v2: true },
      })
      const a = await ask(peer, {
        piecesRoot: new Uint8Array(32).fill(7),
        baseLayer: 0,
        index: 0,
        length: 2,
        proofLayers: 0,
      })
      assert.equal(a.type, 'reject')
      await new Promise((r) => setTimeout(r, 300))
      assert.ok(!peer.closed, 'not closed for a hash message')
    } finally {
      peer?.close()
      await session?.stop()
    }
  })
})
