/**
 * Property and fuzz tests (fast-check) for the untrusted-input parsers: bencode, metainfo and
 * magnet. Random bytes and thousands of mutated valid torrents (bit flips, truncations, spliced
 * numbers and lengths, inserted and duplicated bytes) must either parse — and then satisfy the
 * layout invariants — or throw the module's typed error; never anything else, never hang (each
 * test has a time limit).
 */
import assert from 'node:assert/strict'
import { before, describe, test } from 'node:test'
import fc from 'fast-check'
import {
  type BDict,
  type BValue,
  decodeBencode,
  dictSpan,
  encodeBencode,
} from '../../gateway/protocol/bencode.ts'
import { createTorrent, type TorrentSourceFile } from '../../gateway/protocol/create-torrent.ts'
import { BencodeError, MagnetError, MetainfoError } from '../../gateway/protocol/errors.ts'
import { parseMagnet } from '../../gateway/protocol/magnet.ts'
import { parseInfoDict, parseTorrent } from '../../gateway/protocol/metainfo.ts'
import type { Metainfo, TorrentInfo } from '../../gateway/protocol/types.ts'

const LIMIT = { timeout: 60_000 }
const RUNS = Number(process.env.FUZZ_RUNS ?? 5000)

function bytesOf(seed: number, length: number): Uint8Array {
  const out = new Uint8Array(length)
  let x = seed
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0
    out[i] = x >>> 24
  }
  return out
}

function memFile(path: string[], length: number, seed: number): TorrentSourceFile {
  const b = bytesOf(seed, length)
  return {
    path,
    length,
    open: async function* () {
      yield b
    },
  }
}

/** Layout invariants every accepted torrent satisfies (see FileEntry in types.ts). */
function checkInvariants(info: TorrentInfo): void {
  let offset = 0
  for (const f of info.files) {
    assert.equal(f.offset, offset)
    assert.ok(Number.isSafeInteger(f.length) && f.length >= 0)
    assert.ok(f.path.length > 0)
    for (const c of f.path)
      assert.ok(c !== '' && c !== '.' && c !== '..' && !c.includes('/') && !c.includes('\0'))
    if (f.piecesRoot) assert.equal(f.piecesRoot.byteLength, 32)
    if (info.version !== 'v1' && !f.padding && f.length > 0) {
      assert.equal(f.offset % info.pieceLength, 0, 'v2 files start on a piece boundary')
      assert.ok(f.piecesRoot)
    }
    offset += f.length
  }
  assert.equal(info.totalLength, offset)
  assert.equal(info.pieceCount, Math.ceil(offset / info.pieceLength))
  assert.ok(info.payloadLength > 0)
  if (info.pieces) assert.equal(info.pieces.byteLength, 20 * info.pieceCount)
  assert.equal(info.infoHashV1 !== undefined, info.version !== 'v2')
  assert.equal(info.infoHashV2 !== undefined, info.version !== 'v1')
}

function parseOrTypedError(bytes: Uint8Array): Metainfo | undefined {
  try {
    const m = parseTorrent(bytes)
    checkInvariants(m.info)
    return m
  } catch (err) {
    if (err instanceof MetainfoError) return undefined
    throw err
  }
}

/** A mutation of a valid torrent. */
type Mutation =
  | { kind: 'flip'; at: number[]; bits: number[] }
  | { kind: 'truncate'; at: number }
  | { kind: 'splice-number'; which: number; value: string }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'duplicate'; at: number; length: number; to: number }

const numberText = fc.oneof(
  fc.integer({ min: -5, max: 70_000 }).map(String),
  fc.constantFrom(
    '0',
    '00',
    '-0',
    '9007199254740993',
    '99999999999999999999999',
    '1e3',
    '',
    '-',
    '4294967296',
    '32768',
  ),
)

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    kind: fc.constant('flip' as const),
    at: fc.array(fc.nat(), { minLength: 1, maxLength: 8 }),
    bits: fc.array(fc.nat(7), { minLength: 8, maxLength: 8 }),
  }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('splice-number' as const), which: fc.nat(), value: numberText }),
  fc.record({
    kind: fc.constant('insert' as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 12 }),
  }),
  fc.record({
    kind: fc.constant('duplicate' as const),
    at: fc.nat(),
    length: fc.integer({ min: 1, max: 200 }),
    to: fc.nat(),
  }),
)

/** Digit runs: string length prefixes and integer values, the fields attacks target. */
function digitRuns(b: Uint8Array): [number, number][] {
  const runs: [number, number][] = []
  for (let i = 0; i < b.length; i++) {
    if (b[i]! >= 0x30 && b[i]! <= 0x39) {
      const start = i
      while (i < b.length && b[i]! >= 0x30 && b[i]! <= 0x39) i++
      runs.push([start, i])
    }
  }
  return runs
}

function apply(base: Uint8Array, m: Mutation): Uint8Array {
  const b = Buffer.from(base)
  if (b.length === 0) return b
  switch (m.kind) {
    case 'flip':
      m.at.forEach((a, i) => {
        b[a % b.length]! ^= 1 << m.bits[i]!
      })
      return b
    case 'truncate':
      return b.subarray(0, m.at % b.length)
    case 'splice-number': {
      const runs = digitRuns(b)
      if (runs.length === 0) return b
      const [s, e] = runs[m.which % runs.length]!
      return Buffer.concat([b.subarray(0, s), Buffer.from(m.value), b.subarray(e)])
    }
    case 'insert': {
      const at = m.at % (b.length + 1)
      return Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)])
    }
    case 'duplicate': {
      const at = m.at % b.length
      const to = m.to % (b.length + 1)
      return Buffer.concat([b.subarray(0, to), b.subarray(at, at + m.length), b.subarray(to)])
    }
  }
}

let bases: Uint8Array[] = []

before(async () => {
  const files = () => [
    memFile(['b.bin'], 40_000, 1),
    memFile(['empty'], 0, 2),
    memFile(['sub', 'z.bin'], 33_000, 3),
    memFile(['a', 'x'], 5, 4),
  ]
  bases = []
  for (const version of ['v1', 'v2', 'hybrid'] as const) {
    const opts = {
      trackers: [['http://127.0.0.1:1/a'], ['udp://127.0.0.1:1']],
      webseeds: ['http://127.0.0.1:1/'],
      comment: 'c',
    }
    bases.push(
      (await createTorrent({ name: 'd', files: files(), version, pieceLength: 16384, ...opts })).bytes,
    )
    bases.push(
      (await createTorrent({ name: 's', files: [memFile(['s'], 40_000, 5)], version, pieceLength: 16384 }))
        .bytes,
    )
  }
})

describe('fuzz: metainfo', () => {
  test('the unmutated bases parse', () => {
    for (const b of bases) assert.ok(parseOrTypedError(b))
  })

  test('mutated valid torrents: parse with valid layout, or a MetainfoError', LIMIT, () => {
    let accepted = 0
    fc.assert(
      fc.property(fc.nat(), fc.array(mutation, { minLength: 1, maxLength: 3 }), (which, ms) => {
        const bytes = ms.reduce(apply, bases[which % bases.length]!)
        if (parseOrTypedError(bytes)) accepted++
      }),
      { numRuns: RUNS },
    )
    // Some mutations keep the torrent valid (e.g. a flipped bit inside a hash): both paths run.
    assert.ok(accepted > 0)
  })

  test(
    'structural mutations (replace / delete / retype a field anywhere): parse or MetainfoError',
    LIMIT,
    () => {
      const replacement = fc.oneof(
        fc.integer({ min: -3, max: 80_000 }),
        fc.constantFrom<BValue>(2n ** 53n, 2n ** 64n, -1n, 0, 1, 2, 16384, 32768),
        fc.uint8Array({ maxLength: 40 }),
        fc.constantFrom<BValue>(
          new TextEncoder().encode('..'),
          new TextEncoder().encode('a/b'),
          new TextEncoder().encode('p'),
          new TextEncoder().encode(''),
        ),
        fc.constant<BValue>([]),
        fc.constant<BValue>(new Map()),
      )
      const action = fc.record({
        target: fc.nat(),
        op: fc.constantFrom('replace', 'delete', 'swap'),
        value: replacement,
      })
      let accepted = 0
      fc.assert(
        fc.property(fc.nat(), fc.array(action, { minLength: 1, maxLength: 3 }), (which, actions) => {
          const top = decodeBencode(bases[which % bases.length]!).value
          for (const a of actions) {
            const slots = slotsOf(top)
            if (slots.length === 0) break
            const { parent, key } = slots[a.target % slots.length]!
            if (parent instanceof Map) {
              const k = key as string
              if (a.op === 'delete') parent.delete(k)
              else parent.set(k, a.value)
            } else {
              const i = key as number
              if (a.op === 'delete') parent.splice(i, 1)
              else if (a.op === 'swap' && parent.length > 1) {
                const j = (i + 1) % parent.length
                ;[parent[i], parent[j]] = [parent[j]!, parent[i]!]
              } else parent[i] = a.value
            }
          }
          if (parseOrTypedError(encodeBencode(top))) accepted++
        }),
        { numRuns: RUNS },
      )
      assert.ok(accepted > 0)
    },
  )

  test(
    'mutated info dictionaries (BEP9 metadata): parseInfoDict parses or throws MetainfoError',
    LIMIT,
    () => {
      const infos = bases.map((b) => encodeBencode((decodeBencode(b).value as BDict).get('info')!))
      fc.assert(
        fc.property(fc.nat(), fc.array(mutation, { minLength: 1, maxLength: 3 }), (which, ms) => {
          const bytes = ms.reduce(apply, infos[which % infos.length]!)
          try {
            checkInvariants(parseInfoDict(bytes))
          } catch (err) {
            if (!(err instanceof MetainfoError)) throw err
          }
        }),
        { numRuns: RUNS },
      )
    },
  )

  test('random bytes and random bencode structures: parse or MetainfoError', LIMIT, () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => {
        parseOrTypedError(bytes)
      }),
      { numRuns: RUNS },
    )
    const value = fc.letrec((tie) => ({
      v: fc.oneof(
        { depthSize: 'small' },
        fc.uint8Array({ maxLength: 40 }),
        fc.constantFrom(
          ...[
            'info',
            'name',
            'files',
            'path',
            'length',
            'pieces',
            'file tree',
            '',
            'piece length',
            'meta version',
          ].map((s) => new TextEncoder().encode(s)),
        ),
        fc.integer({ min: -2, max: 70_000 }),
        fc.array(tie('v'), { maxLength: 4 }),
        fc.dictionary(
          fc.constantFrom(
            'info',
            'name',
            'files',
            'path',
            'length',
            'pieces',
            'file tree',
            '',
            'piece length',
            'meta version',
            'pieces root',
            'attr',
            'piece layers',
          ),
          tie('v'),
          { maxKeys: 5, noNullPrototype: true },
        ),
      ),
    })).v
    fc.assert(
      fc.property(value, (v) => {
        parseOrTypedError(encodeBencode(v as never))
      }),
      { numRuns: RUNS },
    )
  })
})

describe('fuzz: bencode', () => {
  test('random bytes: a value or a BencodeError', LIMIT, () => {
    const alphabet = fc.constantFrom(...'dlie0123456789:-'.split('').map((c) => c.charCodeAt(0)), 0x78, 0x00)
    const input = fc.oneof(
      fc.uint8Array({ maxLength: 500 }),
      fc.array(alphabet, { maxLength: 500 }).map((a) => new Uint8Array(a)),
    )
    fc.assert(
      fc.property(input, fc.boolean(), fc.boolean(), (bytes, strict, allowTrailing) => {
        try {
          const r = decodeBencode(bytes, { strict, allowTrailing, maxDepth: 50 })
          assert.ok(r.bytesConsumed > 0 && r.bytesConsumed <= bytes.length)
          if (!allowTrailing) assert.equal(r.bytesConsumed, bytes.length)
          if (strict) assert.deepEqual(encodeBencode(r.value), bytes.subarray(0, r.bytesConsumed))
        } catch (err) {
          if (!(err instanceof BencodeError)) throw err
        }
        try {
          const span = dictSpan(bytes, 'info', { allowTrailing })
          if (span) assert.ok(span.start < span.end && span.end <= bytes.length)
        } catch (err) {
          if (!(err instanceof BencodeError)) throw err
        }
      }),
      { numRuns: RUNS },
    )
  })

  test('encode → strict decode round trip; dictSpan finds every top-level value', LIMIT, () => {
    const value: fc.Arbitrary<BValue> = fc.letrec((tie) => ({
      v: fc.oneof(
        { depthSize: 'small' },
        fc.uint8Array({ maxLength: 30 }),
        fc.oneof(
          fc.maxSafeInteger(),
          fc.bigInt({ min: -(2n ** 80n), max: 2n ** 80n }).filter((n) => n > 2n ** 53n || n < -(2n ** 53n)),
        ),
        fc.array(tie('v'), { maxLength: 4 }),
        fc
          .array(fc.tuple(fc.uint8Array({ maxLength: 4 }), tie('v')), { maxLength: 4 })
          .map((es) => new Map(es.map(([k, v]) => [Buffer.from(k).toString('latin1'), v]))),
      ),
    })).v as fc.Arbitrary<BValue>
    fc.assert(
      fc.property(value, (v) => {
        const bytes = encodeBencode(v)
        const back = decodeBencode(bytes, { strict: true }).value
        assert.deepEqual(encodeBencode(back), bytes)
        if (back instanceof Map) {
          for (const [k, x] of back) {
            const span = dictSpan(bytes, Buffer.from(k, 'latin1').toString('utf8'))
            // Keys that are not valid UTF-8 cannot be named as text; all others must be found.
            if (Buffer.from(Buffer.from(k, 'latin1').toString('utf8')).toString('latin1') !== k) continue
            assert.ok(span)
            assert.deepEqual(bytes.subarray(span.start, span.end), encodeBencode(x))
          }
        }
      }),
      { numRuns: RUNS },
    )
  })
})

describe('fuzz: magnet', () => {
  test('random strings and random magnet-shaped strings: a link or a MagnetError', LIMIT, () => {
    const hex = fc.stringMatching(/^[0-9a-fA-F]{0,70}$/)
    const param = fc.oneof(
      hex.map((h) => `xt=urn:btih:${h}`),
      hex.map((h) => `xt=urn:btmh:${h}`),
      fc.string().map((s) => `dn=${s}`),
      fc.string().map((s) => `tr=${s}`),
      fc.webUrl().map((s) => `tr=${encodeURIComponent(s)}`),
      fc.string().map((s) => `ws=${s}`),
      fc.string().map((s) => `x.pe=${s}`),
      fc.string().map((s) => `so=${s}`),
      fc.stringMatching(/^[0-9,-]{0,30}$/).map((s) => `so=${s}`),
      fc.string(),
    )
    const uri = fc.oneof(
      fc.string({ maxLength: 300 }),
      fc.array(param, { maxLength: 8 }).map((ps) => `magnet:?${ps.join('&')}`),
    )
    fc.assert(
      fc.property(uri, (s) => {
        try {
          const m = parseMagnet(s)
          assert.ok(m.infoHashV1 || m.infoHashV2)
          if (m.infoHashV1) assert.equal(m.infoHashV1.byteLength, 20)
          if (m.infoHashV2) assert.equal(m.infoHashV2.byteLength, 32)
          for (const p of m.peers) assert.ok(p.port >= 1 && p.port <= 65535)
        } catch (err) {
          if (!(err instanceof MagnetError)) throw err
        }
      }),
      { numRuns: RUNS },
    )
  })
})

/** Every (container, key) position in a decoded value, depth-first. */
function slotsOf(root: BValue): { parent: BDict | BValue[]; key: string | number }[] {
  const out: { parent: BDict | BValue[]; key: string | number }[] = []
  const stack: BValue[] = [root]
  while (stack.length > 0) {
    const v = stack.pop()!
    if (v instanceof Map) {
      for (const [k, x] of v) {
        out.push({ parent: v, key: k })
        stack.push(x)
      }
    } else if (Array.isArray(v)) {
      v.forEach((x, i) => {
        out.push({ parent: v, key: i })
        stack.push(x)
      })
    }
  }
  return out
}
