/**
 * Bencode codec (gateway/protocol/bencode.ts): BEP3 values, strict/canonical mode, limits against
 * hostile input, exact `dictSpan`s, canonical encoding, typed field getters, agreement with the
 * `bencode` package on well-formed input, and the package's bugs that docs/adr/0001-bencode.md
 * cites (why the runtime does not decode with it).
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import bencode from 'bencode'
import fc from 'fast-check'
import {
  type BDict,
  type BValue,
  bytesToKey,
  decodeBencode,
  dictBytes,
  dictDict,
  dictInt,
  dictList,
  dictSpan,
  dictText,
  encodeBencode,
  isCanonical,
  keyText,
  keyToBytes,
  textKey,
} from '../../gateway/protocol/bencode.ts'
import { BencodeError } from '../../gateway/protocol/errors.ts'

const enc = new TextEncoder()
const b = (s: string): Uint8Array => enc.encode(s)
const text = (u: unknown): string => Buffer.from(u as Uint8Array).toString('latin1')

function code(fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof BencodeError, `expected BencodeError, got ${String(err)}`)
    return err.code
  }
  assert.fail('expected an error')
}

describe('decodeBencode', () => {
  test('decodes the BEP3 examples', () => {
    assert.equal(text(decodeBencode(b('4:spam')).value), 'spam')
    assert.equal(decodeBencode(b('i3e')).value, 3)
    assert.equal(decodeBencode(b('i-3e')).value, -3)
    assert.equal(decodeBencode(b('i0e')).value, 0)
    const list = decodeBencode(b('l4:spam4:eggse')).value as BValue[]
    assert.deepEqual(list.map(text), ['spam', 'eggs'])
    const dict = decodeBencode(b('d3:cow3:moo4:spam4:eggse')).value as Map<string, BValue>
    assert.deepEqual([...dict.keys()], ['cow', 'spam'])
    assert.equal(text(dict.get('cow')), 'moo')
    const nested = decodeBencode(b('d4:spaml1:a1:bee')).value as Map<string, BValue>
    assert.deepEqual((nested.get('spam') as BValue[]).map(text), ['a', 'b'])
    assert.equal(text(decodeBencode(b('0:')).value), '')
  })

  test('byte strings stay bytes, including binary dictionary keys', () => {
    const raw = new Uint8Array([0x64, 0x31, 0x3a, 0xff, 0x32, 0x3a, 0x00, 0x80, 0x65]) // d1:\xff2:\0\x80e
    const d = decodeBencode(raw).value as Map<string, BValue>
    const [key] = [...d.keys()]
    assert.deepEqual([...keyToBytes(key!)], [0xff])
    assert.deepEqual([...(d.get(key!) as Uint8Array)], [0, 0x80])
    assert.equal(keyText(textKey('名前/ü')), '名前/ü')
    assert.equal(bytesToKey(keyToBytes('\u00ff\u0000a')), '\u00ff\u0000a')
  })

  test('integers beyond 2^53 become bigint', () => {
    assert.equal(decodeBencode(b('i9007199254740991e')).value, 9007199254740991)
    assert.equal(decodeBencode(b('i9007199254740993e')).value, 9007199254740993n)
    assert.equal(decodeBencode(b('i-18446744073709551616e')).value, -18446744073709551616n)
  })

  test('reports bytes consumed and rejects trailing bytes unless allowed', () => {
    const input = b('d1:ai1ee<piece data>')
    assert.equal(
      code(() => decodeBencode(input)),
      'BT_ERR_BENCODE_TRAILING',
    )
    const r = decodeBencode(input, { allowTrailing: true })
    assert.equal(r.bytesConsumed, 'd1:ai1ee'.length)
    assert.equal(decodeBencode(b('i42e')).bytesConsumed, 4)
  })

  test('rejects malformed input with typed errors', () => {
    const cases: [string, string][] = [
      ['', 'BT_ERR_BENCODE_TRUNCATED'],
      ['i42', 'BT_ERR_BENCODE_TRUNCATED'],
      ['4:spa', 'BT_ERR_BENCODE_TRUNCATED'],
      ['l4:spam', 'BT_ERR_BENCODE_TRUNCATED'],
      ['d3:cow', 'BT_ERR_BENCODE_TRUNCATED'],
      ['d3:cowe', 'BT_ERR_BENCODE_SYNTAX'],
      ['ie', 'BT_ERR_BENCODE_SYNTAX'],
      ['i-e', 'BT_ERR_BENCODE_SYNTAX'],
      ['i1.5e', 'BT_ERR_BENCODE_SYNTAX'],
      ['i+1e', 'BT_ERR_BENCODE_SYNTAX'],
      ['i--1e', 'BT_ERR_BENCODE_SYNTAX'],
      ['-1:a', 'BT_ERR_BENCODE_SYNTAX'],
      ['x', 'BT_ERR_BENCODE_SYNTAX'],
      ['e', 'BT_ERR_BENCODE_SYNTAX'],
      ['di1ei2ee', 'BT_ERR_BENCODE_SYNTAX'],
      ['d1:a1:b1:a1:ce', 'BT_ERR_BENCODE_DUPLICATE_KEY'],
      ['99999999999:x', 'BT_ERR_BENCODE_TRUNCATED'],
      ['9999999999999999999999:x', 'BT_ERR_BENCODE_NUMBER_TOO_LARGE'],
      [`i${'9'.repeat(100)}e`, 'BT_ERR_BENCODE_NUMBER_TOO_LARGE'],
    ]
    for (const [input, expected] of cases)
      assert.equal(
        code(() => decodeBencode(b(input))),
        expected,
        input,
      )
  })

  test('depth bombs and token floods hit limits instead of the stack or the heap', () => {
    assert.equal(
      code(() => decodeBencode(b('l'.repeat(1_000_000)))),
      'BT_ERR_BENCODE_TOO_DEEP',
    )
    assert.equal(
      code(() => decodeBencode(b(`${'l'.repeat(10)}${'e'.repeat(10)}`), { maxDepth: 9 })),
      'BT_ERR_BENCODE_TOO_DEEP',
    )
    assert.ok(decodeBencode(b(`${'l'.repeat(10)}${'e'.repeat(10)}`), { maxDepth: 10 }))
    assert.equal(
      code(() => decodeBencode(b(`l${'le'.repeat(1000)}e`), { maxTokens: 100 })),
      'BT_ERR_BENCODE_TOO_LARGE',
    )
    assert.equal(
      code(() => decodeBencode(b('4:spam'), { maxBytes: 5 })),
      'BT_ERR_BENCODE_TOO_LARGE',
    )
  })

  test('lenient mode accepts what real torrents contain; strict mode insists on canonical form', () => {
    const nonCanonical = ['d1:bi1e1:ai2ee', 'i03e', 'i-0e', '03:abc']
    for (const input of nonCanonical) {
      assert.ok(decodeBencode(b(input)), input)
      assert.equal(
        code(() => decodeBencode(b(input), { strict: true })),
        'BT_ERR_BENCODE_NOT_CANONICAL',
        input,
      )
      assert.equal(isCanonical(b(input)), false)
    }
    assert.equal(decodeBencode(b('i-0e')).value, 0)
    assert.equal(isCanonical(b('d1:ai2e1:bi1ee')), true)
  })

  test('canonicalNumbers: canonical integers and lengths, keys in any order', () => {
    for (const input of ['i03e', 'i-0e', '03:abc', 'li00ee', 'd1:a01:xe']) {
      assert.equal(
        code(() => decodeBencode(b(input), { canonicalNumbers: true })),
        'BT_ERR_BENCODE_NOT_CANONICAL',
        input,
      )
    }
    const d = decodeBencode(b('d1:bi1e1:ai-2e1:c0:e'), { canonicalNumbers: true }).value as BDict
    assert.deepEqual([...d.keys()], ['b', 'a', 'c'])
    assert.equal(
      code(() => decodeBencode(b('d1:bi1e1:ai-2ee'), { canonicalNumbers: true, strict: true })),
      'BT_ERR_BENCODE_NOT_CANONICAL',
    )
    // still no duplicate keys, in any mode
    assert.equal(
      code(() => decodeBencode(b('d1:ai1e1:ai1ee'), { canonicalNumbers: true })),
      'BT_ERR_BENCODE_DUPLICATE_KEY',
    )
  })

  test('countKeys: false counts values only against maxTokens', () => {
    const input = b('d1:ai1e1:bi2ee') // 1 dict + 2 values (+ 2 keys)
    assert.ok(decodeBencode(input, { maxTokens: 3, countKeys: false }))
    assert.equal(
      code(() => decodeBencode(input, { maxTokens: 4 })),
      'BT_ERR_BENCODE_TOO_LARGE',
    )
    assert.ok(decodeBencode(input, { maxTokens: 5 }))
    assert.equal(
      code(() => decodeBencode(input, { maxTokens: 2, countKeys: false })),
      'BT_ERR_BENCODE_TOO_LARGE',
    )
  })
})

describe('typed field getters', () => {
  test('return the value when the type matches, else undefined', () => {
    const dict = decodeBencode(b('d1:bi9007199254740993e1:dd1:xi1ee1:ll1:ae1:ni-7e1:s5:étée')).value as BDict
    assert.equal(dictInt(dict, 'n'), -7)
    assert.equal(dictInt(dict, 'b'), undefined, 'a bigint is not a safe integer')
    assert.equal(dictInt(dict, 's'), undefined)
    assert.equal(dictInt(dict, 'missing'), undefined)
    assert.deepEqual(dictBytes(dict, 's'), b('été'))
    assert.equal(dictBytes(dict, 'n'), undefined)
    assert.equal(dictText(dict, 's'), 'été')
    assert.equal(dictText(dict, 'l'), undefined)
    assert.equal(dictInt(dictDict(dict, 'd')!, 'x'), 1)
    assert.equal(dictDict(dict, 'l'), undefined)
    assert.deepEqual(dictList(dict, 'l')?.map(text), ['a'])
    assert.equal(dictList(dict, 'd'), undefined)
  })
})

describe('dictSpan', () => {
  test('finds the exact bytes of a top-level value', () => {
    const input = b('d8:announce3:url4:infod4:name1:x6:lengthi5ee1:zi0ee')
    const span = dictSpan(input, 'info')!
    assert.equal(Buffer.from(input.subarray(span.start, span.end)).toString(), 'd4:name1:x6:lengthi5ee')
    assert.equal(dictSpan(input, 'name'), undefined) // nested keys are not top-level
    assert.equal(dictSpan(input, 'missing'), undefined)
    const z = dictSpan(input, 'z')!
    assert.equal(Buffer.from(input.subarray(z.start, z.end)).toString(), 'i0e')
  })

  test('validates the whole input', () => {
    assert.equal(
      code(() => dictSpan(b('l4:infoe'), 'info')),
      'BT_ERR_BENCODE_SYNTAX',
    )
    assert.equal(
      code(() => dictSpan(b('d4:infod'), 'info')),
      'BT_ERR_BENCODE_TRUNCATED',
    )
    assert.equal(
      code(() => dictSpan(b('d4:infoi1e4:infoi2ee'), 'info')),
      'BT_ERR_BENCODE_DUPLICATE_KEY',
    )
    assert.equal(
      code(() => dictSpan(b('d4:infoi1eeXX'), 'info')),
      'BT_ERR_BENCODE_TRAILING',
    )
    assert.equal(
      code(() => dictSpan(b(`d4:info${'l'.repeat(5000)}`), 'info')),
      'BT_ERR_BENCODE_TOO_DEEP',
    )
  })
})

describe('encodeBencode', () => {
  test('sorts keys as raw bytes and round-trips binary keys', () => {
    const m = new Map<string, BValue>([
      [bytesToKey(new Uint8Array([0x80])), 1],
      ['z', 2],
      ['B', 3],
      ['', 4],
    ])
    const out = encodeBencode(m)
    assert.equal(Buffer.from(out).toString('latin1'), 'd0:i4e1:Bi3e1:zi2e1:\x80i1ee')
    assert.ok(isCanonical(out))
    const back = decodeBencode(out, { strict: true }).value as Map<string, BValue>
    assert.deepEqual(
      [...back.entries()],
      [...m.entries()].sort((x, y) => (x[0] < y[0] ? -1 : 1)),
    )
  })

  test('objects have UTF-8 text keys; undefined values are skipped', () => {
    const out = encodeBencode({ ü: 'é', a: [1, 2n, b('x')], skip: undefined })
    assert.equal(Buffer.from(out).toString(), 'd1:ali1ei2e1:xe2:ü2:ée')
  })

  test('refuses what bencode cannot represent', () => {
    assert.equal(
      code(() => encodeBencode(1.5)),
      'BT_ERR_BENCODE_UNENCODABLE',
    )
    assert.equal(
      code(() => encodeBencode(Number.NaN)),
      'BT_ERR_BENCODE_UNENCODABLE',
    )
    assert.equal(
      code(() => encodeBencode(true as unknown as number)),
      'BT_ERR_BENCODE_UNENCODABLE',
    )
    const cyclic: unknown[] = []
    cyclic.push(cyclic)
    assert.equal(
      code(() => encodeBencode(cyclic as never)),
      'BT_ERR_BENCODE_UNENCODABLE',
    )
  })
})

/** Random bencode values with ASCII keys: the subset the `bencode` package handles faithfully. */
const asciiValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.uint8Array({ maxLength: 20 }),
    fc.integer({ min: -1e12, max: 1e12 }),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(
      fc.string({ unit: fc.constantFrom('a', 'b', 'c', 'x', 'y', ' ', '0'), maxLength: 4 }),
      tie('value'),
      {
        maxKeys: 4,
        noNullPrototype: true,
      },
    ),
  ),
})).value

function toPackageShape(v: BValue): unknown {
  if (v instanceof Uint8Array || typeof v === 'number' || typeof v === 'bigint') return v
  if (Array.isArray(v)) return v.map(toPackageShape)
  return Object.fromEntries([...v.entries()].map(([k, x]) => [k, toPackageShape(x)]))
}

describe('agreement with the bencode package', () => {
  test('same encoding and same decoded values on well-formed ASCII-keyed data', () => {
    fc.assert(
      fc.property(asciiValue, (v) => {
        const ours = encodeBencode(v as never)
        const theirs = bencode.encode(v as never)
        assert.deepEqual(Buffer.from(ours), Buffer.from(theirs))
        const decoded = toPackageShape(decodeBencode(ours, { strict: true }).value)
        assert.deepEqual(normalize(decoded), normalize(bencode.decode(ours)))
        assert.equal(bencode.decode.position, decodeBencode(ours).bytesConsumed)
      }),
      { numRuns: 500 },
    )
  })
})

/** Uint8Array subclasses (Buffer) vs plain: compare contents only. */
function normalize(v: unknown): unknown {
  if (v instanceof Uint8Array) return [...v]
  if (Array.isArray(v)) return v.map(normalize)
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalize(x)]))
  }
  return v
}

/** Each bug of the `bencode` package cited by docs/adr/0001-bencode.md, with its minimal input. */
describe('why the runtime does not decode with the bencode package (ADR 0001)', () => {
  test('negative string length: rejected here (the package loops forever on it, so it is not run)', () => {
    assert.equal(
      code(() => decodeBencode(b('l-3:e'))),
      'BT_ERR_BENCODE_SYNTAX',
    )
  })

  test('truncated string: the package returns the bytes that exist, here it is an error', () => {
    assert.equal(text(bencode.decode(b('5:abc'))), 'abc')
    assert.equal(
      code(() => decodeBencode(b('5:abc'))),
      'BT_ERR_BENCODE_TRUNCATED',
    )
  })

  test('no depth limit: the package overflows the stack, here nesting stops at maxDepth', () => {
    const deep = b(`${'l'.repeat(100_000)}${'e'.repeat(100_000)}`)
    assert.throws(() => bencode.decode(deep), RangeError)
    assert.equal(
      code(() => decodeBencode(deep)),
      'BT_ERR_BENCODE_TOO_DEEP',
    )
  })

  test('binary keys: the package turns non-UTF-8 keys into hex text that collides with real keys', () => {
    const input = Uint8Array.from(Buffer.from('d2:\xff\xfei1e4:fffei2ee', 'latin1'))
    assert.deepEqual(bencode.decode(input), { fffe: 2 })
    const d = decodeBencode(input).value as BDict
    assert.deepEqual(
      [...d.entries()],
      [
        ['\xff\xfe', 1],
        ['fffe', 2],
      ],
    )
  })

  test('binary keys: the package encoder does not sort them by bytes (BEP3)', () => {
    const theirs = bencode.encode(
      new Map([
        [Uint8Array.of(0x09), 1],
        [Uint8Array.of(0x10), 2],
      ]) as never,
    )
    assert.equal(text(theirs), 'd1:\x10i2e1:\x09i1ee')
    const ours = encodeBencode(
      new Map([
        ['\x10', 2],
        ['\x09', 1],
      ]),
    )
    assert.equal(text(ours), 'd1:\x09i1e1:\x10i2ee')
  })
})
