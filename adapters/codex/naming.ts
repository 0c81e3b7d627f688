/**
 * Upload metadata for Codex datasets: a filename Codex accepts (Nim `isValidFilename`,
 * NOTES.md §1.3) derived from a torrent path, and a mimetype guessed from the extension that is
 * in Nim's mimetype table (NOTES.md §1.3: exact lookup, else 422), falling back to
 * `application/octet-stream`.
 */

import { isValidCodexFilename } from '../../codex-client/filename.ts'
import { isValidCodexMimetype } from '../../codex-client/mimetypes.ts'

/** Longest name we send (Nim allows 259 bytes; leave room for suffixes). */
const MAX_NAME_BYTES = 200
/** Characters Codex refuses in a filename (NOTES.md §1.3), plus control characters. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we strip
const UNSAFE_CHARS = /[/\\:*?"<>|^\u0000-\u001f\u007f]/g
/** The same set, without the global flag (stateless `test`). */
const UNSAFE_CHAR = new RegExp(UNSAFE_CHARS.source)

export const DEFAULT_MIMETYPE = 'application/octet-stream'

/** Common extensions → mimetype; each value is re-checked against Codex's table at lookup. */
const EXTENSION_MIMETYPES: Readonly<Record<string, string>> = {
  txt: 'text/plain',
  md: 'text/markdown',
  csv: 'text/csv',
  html: 'text/html',
  htm: 'text/html',
  css: 'text/css',
  js: 'application/javascript',
  json: 'application/json',
  xml: 'application/xml',
  pdf: 'application/pdf',
  epub: 'application/epub+zip',
  zip: 'application/zip',
  gz: 'application/gzip',
  tgz: 'application/gzip',
  bz2: 'application/x-bzip2',
  xz: 'application/x-xz',
  tar: 'application/x-tar',
  '7z': 'application/x-7z-compressed',
  rar: 'application/x-rar-compressed',
  iso: 'application/x-iso9660-image',
  torrent: 'application/x-bittorrent',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
  svg: 'image/svg+xml',
  bmp: 'image/bmp',
  tif: 'image/tiff',
  tiff: 'image/tiff',
  ico: 'image/x-icon',
  mp3: 'audio/mpeg',
  flac: 'audio/x-flac',
  ogg: 'audio/ogg',
  opus: 'audio/ogg',
  wav: 'audio/wave',
  m4a: 'audio/mp4',
  aac: 'audio/x-aac',
  mp4: 'video/mp4',
  m4v: 'video/x-m4v',
  mkv: 'video/x-matroska',
  webm: 'video/webm',
  avi: 'video/x-msvideo',
  mov: 'video/quicktime',
  mpg: 'video/mpeg',
  mpeg: 'video/mpeg',
  srt: 'application/x-subrip',
  wasm: 'application/wasm',
}

/**
 * A filename for the Codex dataset of a torrent file: the path's last component when Codex
 * accepts it, else a sanitised version (unsafe characters replaced, trimmed, shortened keeping
 * the extension), else `fallback`.
 */
export function codexFilename(path: readonly string[], fallback: string): string {
  const last = path[path.length - 1] ?? ''
  if (isAcceptable(last)) return last
  let name = last.replace(UNSAFE_CHARS, '_').trim()
  name = name.replace(/[.\s]+$/, '')
  name = shorten(name)
  if (isAcceptable(name)) return name
  return fallback
}

/** The mimetype for a filename: from its extension when Codex knows it, else octet-stream. */
export function guessMimetype(filename: string): string {
  const dot = filename.lastIndexOf('.')
  if (dot <= 0 || dot === filename.length - 1) return DEFAULT_MIMETYPE
  const ext = filename.slice(dot + 1).toLowerCase()
  const type = Object.hasOwn(EXTENSION_MIMETYPES, ext) ? EXTENSION_MIMETYPES[ext] : undefined
  return type !== undefined && isValidCodexMimetype(type) ? type : DEFAULT_MIMETYPE
}

function isAcceptable(name: string): boolean {
  return (
    name !== '' &&
    Buffer.byteLength(name, 'utf8') <= MAX_NAME_BYTES &&
    !UNSAFE_CHAR.test(name) &&
    isValidCodexFilename(name)
  )
}

/** Cuts `name` to `MAX_NAME_BYTES` UTF-8 bytes, keeping a short extension, on character boundaries. */
function shorten(name: string): string {
  if (Buffer.byteLength(name, 'utf8') <= MAX_NAME_BYTES) return name
  const dot = name.lastIndexOf('.')
  const ext = dot > 0 && name.length - dot <= 16 ? name.slice(dot) : ''
  let stem = ext === '' ? name : name.slice(0, dot)
  const budget = MAX_NAME_BYTES - Buffer.byteLength(ext, 'utf8')
  const chars = [...stem]
  // Bounded: removes one character per round.
  while (chars.length > 0 && Buffer.byteLength(chars.join(''), 'utf8') > budget) chars.pop()
  stem = chars.join('').trimEnd()
  return stem + ext
}
