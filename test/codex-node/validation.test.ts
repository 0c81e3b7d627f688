/**
 * Upload metadata rules of Codex (NOTES §1.3): Nim `os.isValidFilename` (as built for Linux),
 * the `Content-Disposition` extraction of nim-codex, and Nim `std/mimetypes` `getExt`.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  isValidCodexFilename,
  isValidCodexFilenameBytes,
  parseContentDispositionFilename,
} from '../../codex-client/filename.ts'
import { isValidCodexMimetype, NIM_MIMETYPE_VALUES } from '../../codex-client/mimetypes.ts'

describe('isValidCodexFilename (Nim os.isValidFilename)', () => {
  const valid = [
    'a',
    'a.txt',
    'example.txt',
    'con.bar.txt', // stem "con.bar" is not reserved
    'COM10', // only COM0-COM9
    'file name.txt',
    '.bashrc', // no extension: the stem is ".bashrc"
    'a.b*c', // the extension is not searched for forbidden characters
    'dir/name.txt', // on Linux only the stem after the last "/" is checked
    'x'.repeat(259),
    `${'x'.repeat(255)}.txt`,
    'naïve.txt',
    'a.txt"', // the quote is in the extension, which Nim does not check
    'a.txt"; x=', // what `attachment; filename="a.txt"; x=y` yields: accepted
  ]
  const invalid = [
    '',
    ' foo',
    'foo ',
    'foo.',
    'exam*ple.txt', // the upstream integration test
    'a:b',
    'a?b',
    'a"b',
    'a<b',
    'a>b',
    'a|b',
    'a^b',
    'a\\b',
    'a\u0000b',
    'con',
    'CON',
    'con.txt',
    'aux.bat',
    'Nul',
    'com0',
    'LPT9.log',
    'foo/', // empty stem
    '/',
    'x'.repeat(260),
    `${'x'.repeat(256)}.txt`,
    'a"b.txt', // a quote in the stem
    'a..b', // splitFile gives stem "a." (ends with a dot) and extension ".b"
  ]
  for (const name of valid)
    test(`valid: ${JSON.stringify(name)}`, () => assert.equal(isValidCodexFilename(name), true))
  for (const name of invalid)
    test(`invalid: ${JSON.stringify(name)}`, () => assert.equal(isValidCodexFilename(name), false))

  test('the length limit counts bytes, not characters', () => {
    const name = 'é'.repeat(130) // 260 bytes in UTF-8
    assert.equal(isValidCodexFilename(name), false)
    assert.equal(isValidCodexFilenameBytes(Buffer.from('é'.repeat(129), 'utf8')), true)
  })
})

describe('parseContentDispositionFilename (nim-codex getFilenameFromContentDisposition)', () => {
  const cases: [string, string | undefined][] = [
    ['attachment; filename="example.txt"', 'example.txt'],
    ['filename="x"', 'x'], // go-codex-client sends it without "attachment;"
    ['attachment', undefined],
    ['', undefined],
    ['attachment; filename=example.txt', undefined], // unquoted: ignored
    ["attachment; filename*=UTF-8''a.txt", undefined], // RFC 5987: ignored
    ['attachment; filename="a.txt"; x=y', 'a.txt"; x='], // garbled (but a valid filename)
    ['attachment; filename="  spaced.txt"  ', 'spaced.txt'], // stripped, then last char dropped
    ['attachment; filename="', ''],
    ['attachment; filename="a"; filename="b"', 'a"'], // the text between the first two markers
    ['attachment; FILENAME="a.txt"', undefined], // the marker is case-sensitive
  ]
  for (const [header, expected] of cases) {
    test(JSON.stringify(header), () => assert.equal(parseContentDispositionFilename(header), expected))
  }
})

describe('isValidCodexMimetype (Nim std/mimetypes getExt)', () => {
  const valid = [
    'application/octet-stream',
    'text/plain',
    'TEXT/PLAIN',
    'Application/JSON',
    'application/json',
    'image/png',
    'video/mp4',
    'application/x-bittorrent',
    'text/html',
    'application/zip',
    'application/gzip',
    'audio/mpeg',
    'application/pdf',
    'text/markdown',
  ]
  const invalid = [
    '',
    'hello/world', // the upstream integration test
    'text/plain; charset=utf-8', // parameters are not stripped
    'text/plain;charset=UTF-8', // what fetch() adds for string bodies
    ' text/plain',
    'application/*',
    '*/*',
    'chemical/x-molconn-Z', // a table value with an upper-case letter can never match
    'chemical/x-molconn-z',
    'application/vnd.\u212Ade.karbon', // Kelvin sign: JS would lowercase it to "k", Nim does not
  ]
  for (const v of valid)
    test(`valid: ${JSON.stringify(v)}`, () => assert.equal(isValidCodexMimetype(v), true))
  for (const v of invalid)
    test(`invalid: ${JSON.stringify(v)}`, () => assert.equal(isValidCodexMimetype(v), false))

  test('the table holds the values of Nim lib/pure/mimetypes.nim', () => {
    assert.ok(NIM_MIMETYPE_VALUES.size > 900, `only ${NIM_MIMETYPE_VALUES.size} values`)
    assert.ok(NIM_MIMETYPE_VALUES.has('application/vnd.kde.karbon'))
    assert.ok(NIM_MIMETYPE_VALUES.has('application/x-trash')) // the last entry ("~")
    assert.ok(NIM_MIMETYPE_VALUES.has('application/vnd.lotus-1-2-3')) // the first entry ("123")
  })
})
