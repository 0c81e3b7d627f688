/**
 * Names and paths of `.torrent` files, sanitized the way libtorrent 2.0 does it
 * (`aux::sanitize_append_path_element`, `torrent_info::resolve_duplicate_filenames`) instead of
 * rejected: torrents in the wild carry `/` inside names, `..` components, empty components,
 * control characters, invalid UTF-8 and duplicate paths, and libtorrent loads all of them.
 *
 * Only the paths we expose (`TorrentInfo.name`, `FileEntry.path`) are rewritten; the info
 * dictionary bytes, and so the info hashes, stay exactly as found.
 *
 * Security: every component this module returns is non-empty, is neither `.` nor `..`, and
 * contains no `/`, `\` or NUL (libtorrent filters those characters and drops `.`/`..`
 * components), so no path built from them can leave the torrent's directory. {@link safeComponent}
 * re-checks each result, and the storage layer checks again before touching the disk.
 *
 * Behaviour is libtorrent's on POSIX (it keeps Windows-reserved names such as `CON` and trailing
 * dots on other platforms; storage backends own platform naming). Pure: no I/O.
 */

import { MetainfoError } from './errors.ts'

const DOT = 0x2e
const UNDERSCORE = 0x5f
/** libtorrent: "any given path element should not be more than 255 characters" (cut at 240). */
const MAX_ELEMENT_BYTES = 240
/** libtorrent looks this far back from the end of an over-long element for an extension. */
const EXTENSION_LOOKBACK = 10

/**
 * Code points that change the writing direction and can disguise a name (libtorrent
 * `filter_path_character`: "these unicode characters change the writing direction of the string
 * and can be used for attacks"): dropped.
 */
const BIDI = new Set([0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x200e, 0x200f])

/** Dropped from path elements: separators (`/`, `\`), NUL and direction overrides. */
function filtered(cp: number): boolean {
  return cp === 0x2f || cp === 0x5c || cp === 0 || BIDI.has(cp)
}

/**
 * One UTF-8 code point at `i`, as libtorrent 2.0's `parse_utf8_codepoint` reads it:
 * `[code point, bytes consumed]`, the code point -1 for an invalid sequence (bad lead or
 * continuation byte, overlong form, surrogate, above U+10FFFF, truncated).
 */
function codePointAt(b: Uint8Array, i: number): [number, number] {
  const lead = b[i]!
  if (lead < 0x80) return [lead, 1]
  let len: number
  let cp: number
  if (lead >> 5 === 0b110) [len, cp] = [2, lead & 0x1f]
  else if (lead >> 4 === 0b1110) [len, cp] = [3, lead & 0x0f]
  else if (lead >> 3 === 0b11110) [len, cp] = [4, lead & 0x07]
  else if (lead >> 2 === 0b111110)
    return [-1, 5] // a 5-byte form: skipped whole, as libtorrent does
  else return [-1, 1]
  if (len > b.length - i) return [-1, b.length - i]
  for (let k = 1; k < len; k++) {
    const c = b[i + k]!
    if (c < 0x80 || c > 0xbf) return [-1, len]
    cp = (cp << 6) | (c & 0x3f)
  }
  const overlong = (len === 2 && cp < 0x80) || (len === 3 && cp < 0x800) || (len === 4 && cp < 0x10000)
  if (overlong || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return [-1, len]
  return [cp, len]
}

const UTF8 = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true })
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** True when `b` is valid UTF-8 (used to choose `name.utf-8` / `path.utf-8`). */
export function isValidUtf8(b: Uint8Array): boolean {
  try {
    STRICT_UTF8.decode(b)
    return true
  } catch {
    return false
  }
}

/**
 * Fast path: printable ASCII other than `/` and `\`, shorter than the cut, and not `..` — what
 * the sanitizer would return unchanged (the common case).
 */
function plainAscii(el: Uint8Array): boolean {
  if (el.length >= MAX_ELEMENT_BYTES || (el.length === 2 && el[0] === DOT && el[1] === DOT)) return false
  for (let i = 0; i < el.length; i++) {
    const c = el[i]!
    if (c < 0x20 || c > 0x7e || c === 0x2f || c === 0x5c) return false
  }
  return true
}

/**
 * One path element sanitized like libtorrent's `sanitize_append_path_element` (POSIX build):
 * `.` and elements that end up as nothing but one or two dots (or nothing) are dropped
 * (`undefined`); an empty element becomes `_`; `/`, `\`, NUL and direction overrides are removed;
 * other control characters and each invalid UTF-8 sequence become `_`; past 240 bytes the element
 * is cut, keeping an extension found in its last 10 bytes.
 */
export function sanitizeElement(el: Uint8Array): string | undefined {
  if (el.length === 1 && el[0] === DOT) return undefined
  if (el.length === 0) return '_'
  if (plainAscii(el)) return Buffer.from(el.buffer, el.byteOffset, el.byteLength).toString('latin1')
  const out: number[] = []
  let added = 0
  let dots = 0
  let foundExtension = false
  // Bounded: `i` only grows (the extension jump moves it forward to a later dot).
  for (let i = 0; i < el.length; ) {
    const [cp, len] = codePointAt(el, i)
    if (cp >= 0 && filtered(cp)) {
      i += len
      continue
    }
    if (cp < 0x20) {
      // invalid UTF-8 (-1) or a control character: one '_' for the whole sequence
      out.push(UNDERSCORE)
      added++
    } else {
      for (let k = i; k < i + len; k++) out.push(el[k]!)
      if (cp === DOT) dots++
      added += len
    }
    // libtorrent checks the length only after a valid character; we check after a '_' too, so
    // a megabyte of invalid bytes cannot become a megabyte-long name (NAME_MAX is 255 anyway).
    if (added >= MAX_ELEMENT_BYTES && !foundExtension) {
      let dot = -1
      for (let j = el.length - 1; j > Math.max(el.length - EXTENSION_LOOKBACK, i); j--) {
        if (el[j] === DOT) {
          dot = j
          break
        }
      }
      if (dot === -1) break // no extension: cut here
      foundExtension = true
      i = dot // continue with the extension
      continue
    }
    i += len
  }
  if (added === dots && added <= 2) return undefined // '', '.', '..' after filtering
  return UTF8.decode(Uint8Array.from(out))
}

/** True for a component that cannot escape a directory: not empty, `.`, `..`; no `/`, `\`, NUL. */
export function isSafeComponent(c: string): boolean {
  return c !== '' && c !== '.' && c !== '..' && !/[/\\\0]/.test(c)
}

/** Fails unless `c` is a component that cannot escape a directory (defence in depth). */
export function safeComponent(c: string, field: string): string {
  if (!isSafeComponent(c)) {
    throw new MetainfoError('BT_ERR_METAINFO_BAD_PATH', field, `unsafe path component '${c.slice(0, 64)}'`)
  }
  return c
}

/**
 * A file path (BEP3 `path` list, or the keys leading to a BEP52 `file tree` leaf), each element
 * sanitized; dropped elements vanish and a path with nothing left becomes `['_']` (libtorrent:
 * "if all path elements were sanitized away, we need to use another name instead").
 */
export function sanitizePath(elements: readonly Uint8Array[], field: string): string[] {
  const out: string[] = []
  for (const el of elements) {
    const c = sanitizeElement(el)
    if (c !== undefined) out.push(safeComponent(c, field))
  }
  return out.length > 0 ? out : ['_']
}

// ---------------------------------------------------------------------------------------------
// Duplicate paths.

/** libtorrent compares paths case-insensitively, ASCII letters only (`to_lower`). */
function foldCase(s: string): string {
  return /[A-Z]/.test(s) ? s.replace(/[A-Z]+/g, (m) => m.toLowerCase()) : s
}

/** The parts of an entry {@link resolveDuplicatePaths} looks at. */
export interface PathEntry {
  readonly path: readonly string[]
  readonly padding: boolean
}

/**
 * New paths for entries whose path is taken, the way libtorrent's
 * `resolve_duplicate_filenames_slow` renames them: every directory of every entry is taken
 * first (so a file never shadows a directory: the file is renamed), then, in order, each real
 * file takes its path or, if that is taken (ASCII case-insensitively), the first free
 * `<base>.<n><ext>` (`a.bin` → `a.1.bin`, `a` → `a.1`, `.x` → `.1.x`), n = 1, 2, ...
 * Padding entries are never stored, so they are neither renamed nor in the way (libtorrent also
 * lets pad files of one size share a path).
 *
 * Returns one path per entry (the same array object when unchanged). Linear in the total length
 * of all path components: a path is keyed as (id of its parent directory, last component), never
 * as a joined string, so deep paths cost no more than their length; the counter of each base name
 * only moves forward, which gives the same result as restarting at 1 since taken names are never
 * released.
 */
export function resolveDuplicatePaths(entries: readonly PathEntry[]): (readonly string[])[] {
  // Directory ids: `${parent id}/${folded component}` → id; the torrent root is 0.
  const dirs = new Map<string, number>()
  const parents: number[] = []
  // Consecutive entries mostly share directories: reuse the ids of the common prefix.
  let prev: readonly string[] = []
  const prevIds: number[] = [0]
  for (const e of entries) {
    const depth = e.path.length - 1
    let k = 0
    while (k < depth && k < prev.length - 1 && e.path[k] === prev[k]) k++
    let id = prevIds[k]!
    for (; k < depth; k++) {
      const key = `${id}/${foldCase(e.path[k]!)}`
      let next = dirs.get(key)
      if (next === undefined) {
        next = dirs.size + 1
        dirs.set(key, next)
      }
      id = next
      prevIds[k + 1] = id
    }
    prev = e.path
    parents.push(id)
  }
  // Taken names share the directories' key space, so a file named like a directory clashes.
  const taken = new Set<string>(dirs.keys())
  const next = new Map<string, number>()
  return entries.map((e, i) => {
    if (e.padding) return e.path
    const parent = parents[i]!
    const last = e.path[e.path.length - 1]!
    const key = `${parent}/${foldCase(last)}`
    if (!taken.has(key)) {
      taken.add(key)
      return e.path
    }
    const dot = last.lastIndexOf('.')
    const base = dot < 0 ? last : last.slice(0, dot)
    const ext = dot < 0 ? '' : last.slice(dot)
    const counterKey = `${parent}/${foldCase(base)}\0${foldCase(ext)}`
    // Terminates: each failed try meets a distinct taken name, and there are finitely many.
    for (let n = (next.get(counterKey) ?? 0) + 1; ; n++) {
      const name = `${base}.${n}${ext}`
      const candidate = `${parent}/${foldCase(name)}`
      if (taken.has(candidate)) continue
      taken.add(candidate)
      next.set(counterKey, n)
      return [...e.path.slice(0, -1), name]
    }
  })
}
