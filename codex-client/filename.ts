/**
 * The filename rules of Codex `POST /data` (NOTES §1.3).
 *
 * - `parseContentDispositionFilename`: what the server extracts from `Content-Disposition`.
 * - `isValidCodexFilename`: Nim `os.isValidFilename` (nim-lang/Nim `lib/pure/os.nim`) as compiled
 *   for Linux, where Codex runs. Nim checks the *stem* returned by `splitFile`, not the whole
 *   string: on POSIX only `/` separates directories, so `dir/name.txt` passes (stem `name`),
 *   the extension is never searched for forbidden characters (`a.b*c` passes), and the length
 *   limit applies to stem + extension in bytes.
 */

const MAX_FILENAME_BYTES = 259

/** `invalidFilenameChars` of Nim's `os` module. */
const INVALID_FILENAME_BYTES = new Set([0x2f, 0x5c, 0x3a, 0x2a, 0x3f, 0x22, 0x3c, 0x3e, 0x7c, 0x5e, 0x00])

/** `invalidFilenames` of Nim's `os` module (Windows reserved names), compared ignoring ASCII case. */
const RESERVED_NAMES = new Set([
  'con',
  'prn',
  'aux',
  'nul',
  ...Array.from({ length: 10 }, (_, i) => `com${i}`),
  ...Array.from({ length: 10 }, (_, i) => `lpt${i}`),
])

const SLASH = 0x2f
const DOT = 0x2e
const SPACE = 0x20

interface SplitFile {
  /** Start (inclusive) and end (exclusive) of the stem. */
  readonly nameStart: number
  readonly nameEnd: number
  /** Length of the extension including its dot (0 when there is none). */
  readonly extLength: number
}

/** Nim `splitFile` for POSIX (`DirSep = AltSep = '/'`), on bytes. */
function splitFile(path: Uint8Array): SplitFile {
  let namePos = 0
  let dotPos = 0
  for (let i = path.length - 1; i >= 0; i--) {
    const c = path[i]!
    if (c === SLASH || i === 0) {
      if (c === SLASH) namePos = i + 1
      if (dotPos > i) return { nameStart: namePos, nameEnd: dotPos, extLength: path.length - dotPos }
      return { nameStart: namePos, nameEnd: path.length, extLength: 0 }
    }
    if (
      c === DOT &&
      i > 0 &&
      i < path.length - 1 &&
      path[i - 1] !== SLASH &&
      path[i + 1] !== DOT &&
      dotPos === 0
    ) {
      dotPos = i
    }
  }
  return { nameStart: 0, nameEnd: 0, extLength: 0 }
}

function asciiLower(byte: number): number {
  return byte >= 0x41 && byte <= 0x5a ? byte + 32 : byte
}

/** Nim `os.isValidFilename(filename)` (maxLen 259) on the raw bytes of a filename. */
export function isValidCodexFilenameBytes(filename: Uint8Array): boolean {
  const { nameStart, nameEnd, extLength } = splitFile(filename)
  const nameLength = nameEnd - nameStart
  if (nameLength + extLength > MAX_FILENAME_BYTES || nameLength === 0) return false
  if (filename[nameStart] === SPACE || filename[nameEnd - 1] === SPACE || filename[nameEnd - 1] === DOT) {
    return false
  }
  let lowered = ''
  for (let i = nameStart; i < nameEnd; i++) {
    const b = filename[i]!
    if (INVALID_FILENAME_BYTES.has(b)) return false
    if (lowered.length <= 4) lowered += String.fromCharCode(asciiLower(b))
  }
  return !(nameLength <= 4 && RESERVED_NAMES.has(lowered))
}

/** `isValidCodexFilenameBytes` on the UTF-8 encoding of `name` (what an HTTP client would send). */
export function isValidCodexFilename(name: string): boolean {
  return isValidCodexFilenameBytes(Buffer.from(name, 'utf8'))
}

/** Nim `strutils.strip` default set: space, \t, \v, \r, \n, \f. */
function isNimWhitespace(code: number): boolean {
  return code === 0x20 || (code >= 0x09 && code <= 0x0d)
}

const FILENAME_MARKER = 'filename="'

/**
 * The filename Codex takes from a `Content-Disposition` value (nim-codex `codex/rest/api.nim`
 * `getFilenameFromContentDisposition`): the value is split on `filename="`, the second part
 * (the text between the first and any second marker) is whitespace-stripped and its last
 * character dropped (the closing quote is assumed). `undefined` when the marker is absent
 * (`filename=x` and `filename*=` are ignored). The result may be empty or contain a `"`
 * (`attachment; filename="a.txt"; x=y`); the server then rejects it with 422.
 *
 * Works on any string; the server passes the header as latin1 so each character is one byte.
 */
export function parseContentDispositionFilename(header: string): string | undefined {
  const at = header.indexOf(FILENAME_MARKER)
  if (at < 0) return undefined
  let start = at + FILENAME_MARKER.length
  const next = header.indexOf(FILENAME_MARKER, start)
  let end = next < 0 ? header.length : next
  while (start < end && isNimWhitespace(header.charCodeAt(start))) start++
  while (end > start && isNimWhitespace(header.charCodeAt(end - 1))) end--
  return header.slice(start, Math.max(start, end - 1))
}
