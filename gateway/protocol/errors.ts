/**
 * Typed errors of the protocol layer. Every error carries a stable `code` (`BT_ERR_…`) that
 * callers, tests and the HTTP error handler switch on; messages are for humans and may change.
 *
 * `ProtocolError` is the base class; each codec has its own subclass (bencode, metainfo, magnet,
 * torrent creation). Other protocol modules may add their own subclasses in their own files.
 */

/** Base class of every error thrown for malformed protocol input. */
export class ProtocolError extends Error {
  readonly code: string

  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'ProtocolError'
    this.code = code
  }
}

/** Failure kinds of the bencode codec (BEP3 "bencoding"). */
export type BencodeErrorCode =
  /** The input ends in the middle of a value. */
  | 'BT_ERR_BENCODE_TRUNCATED'
  /** An unexpected byte (not a valid start of a value, bad digit, missing `:` or `e`). */
  | 'BT_ERR_BENCODE_SYNTAX'
  /** Lists/dictionaries nested deeper than `maxDepth`. */
  | 'BT_ERR_BENCODE_TOO_DEEP'
  /** Input longer than `maxBytes`, or more values than `maxTokens`. */
  | 'BT_ERR_BENCODE_TOO_LARGE'
  /** An integer or string length with more digits than we accept. */
  | 'BT_ERR_BENCODE_NUMBER_TOO_LARGE'
  /** Bytes after the top-level value when trailing data is not allowed. */
  | 'BT_ERR_BENCODE_TRAILING'
  /** Strict mode: unsorted keys, leading zeros, `i-0e`. */
  | 'BT_ERR_BENCODE_NOT_CANONICAL'
  /** The same key twice in one dictionary (always rejected: ambiguous). */
  | 'BT_ERR_BENCODE_DUPLICATE_KEY'
  /** `encodeBencode` was given something bencode cannot represent. */
  | 'BT_ERR_BENCODE_UNENCODABLE'

export class BencodeError extends ProtocolError {
  declare readonly code: BencodeErrorCode
  /** Byte offset of the problem in the input (-1 when not applicable). */
  readonly offset: number

  constructor(code: BencodeErrorCode, message: string, offset = -1) {
    super(code, offset >= 0 ? `${message} at offset ${offset}` : message)
    this.name = 'BencodeError'
    this.offset = offset
  }
}

/** Failure kinds of `.torrent` / info dictionary validation (BEP3, 12, 19, 27, 47, 52). */
export type MetainfoErrorCode =
  /** The input is larger than `maxBytes`. */
  | 'BT_ERR_METAINFO_TOO_LARGE'
  /** Not well-formed bencode (the cause is the `BencodeError`). */
  | 'BT_ERR_METAINFO_BENCODE'
  /** A required key is absent. */
  | 'BT_ERR_METAINFO_MISSING_FIELD'
  /** Keys that exclude each other are both present (BEP3 `length` and `files`). */
  | 'BT_ERR_METAINFO_CONFLICTING_FIELDS'
  /** A key maps to a value of the wrong bencode type. */
  | 'BT_ERR_METAINFO_WRONG_TYPE'
  /** `meta version` is not one we implement (BEP52: checked first). */
  | 'BT_ERR_METAINFO_UNSUPPORTED_VERSION'
  /** `name` is empty or unsafe. */
  | 'BT_ERR_METAINFO_BAD_NAME'
  /** A file length (or the total) is negative, too large or not an integer. */
  | 'BT_ERR_METAINFO_BAD_LENGTH'
  /** `piece length` breaks BEP3 / BEP52 rules. */
  | 'BT_ERR_METAINFO_BAD_PIECE_LENGTH'
  /** `pieces` is not 20 × piece count bytes. */
  | 'BT_ERR_METAINFO_BAD_PIECES'
  /** A path (or `symlink path`) is empty, absolute, has `.`/`..`, `/`, NUL or empty components. */
  | 'BT_ERR_METAINFO_BAD_PATH'
  /** Two files with the same path, or a file that is also a directory. */
  | 'BT_ERR_METAINFO_DUPLICATE_PATH'
  /** More files than `maxFiles`, or more pieces than `maxPieces`. */
  | 'BT_ERR_METAINFO_TOO_MANY_FILES'
  | 'BT_ERR_METAINFO_TOO_MANY_PIECES'
  /** The torrent describes no data at all. */
  | 'BT_ERR_METAINFO_EMPTY'
  /** BEP52 `file tree` structure violated. */
  | 'BT_ERR_METAINFO_BAD_FILE_TREE'
  /** A `pieces root` is not 32 bytes, or is missing for a non-empty file. */
  | 'BT_ERR_METAINFO_BAD_PIECES_ROOT'
  /** A `piece layers` entry is missing for a file larger than one piece. */
  | 'BT_ERR_METAINFO_MISSING_PIECE_LAYER'
  /** A `piece layers` entry has the wrong size or does not hash up to its `pieces root`. */
  | 'BT_ERR_METAINFO_BAD_PIECE_LAYER'
  /** The v1 and v2 halves of a hybrid torrent describe different files or alignment. */
  | 'BT_ERR_METAINFO_HYBRID_MISMATCH'

export class MetainfoError extends ProtocolError {
  declare readonly code: MetainfoErrorCode
  /** Which field was wrong, as a path: `info.files[3].path[1]`, `piece layers`, ... */
  readonly field: string

  constructor(code: MetainfoErrorCode, field: string, message: string, options?: ErrorOptions) {
    super(code, field ? `${field}: ${message}` : message, options)
    this.name = 'MetainfoError'
    this.field = field
  }
}

/** Failure kinds of magnet URI parsing and building (BEP9, BEP53). */
export type MagnetErrorCode =
  /** Not a `magnet:?` URI, too long, or bad percent-encoding. */
  | 'BT_ERR_MAGNET_SYNTAX'
  /** No BitTorrent `xt` (neither `urn:btih:` nor `urn:btmh:`). */
  | 'BT_ERR_MAGNET_NO_INFO_HASH'
  /** A malformed or conflicting `btih` / `btmh` value. */
  | 'BT_ERR_MAGNET_BAD_INFO_HASH'
  /** A malformed `tr` / `ws` URL. */
  | 'BT_ERR_MAGNET_BAD_URL'
  /** A malformed `x.pe` peer address. */
  | 'BT_ERR_MAGNET_BAD_PEER'
  /** A malformed BEP53 `so` list. */
  | 'BT_ERR_MAGNET_BAD_SELECT_ONLY'

export class MagnetError extends ProtocolError {
  declare readonly code: MagnetErrorCode
  /** The magnet parameter at fault (`xt`, `tr`, `x.pe`, `so`, ...), or '' for the whole URI. */
  readonly param: string

  constructor(code: MagnetErrorCode, param: string, message: string, options?: ErrorOptions) {
    super(code, param ? `${param}: ${message}` : message, options)
    this.name = 'MagnetError'
    this.param = param
  }
}

/** Failure kinds of torrent creation. */
export type CreateTorrentErrorCode =
  /** Bad options (no files, bad piece length, bad path, ...). */
  | 'BT_ERR_CREATE_INVALID'
  /** A file stream produced more or fewer bytes than its declared length. */
  | 'BT_ERR_CREATE_LENGTH_MISMATCH'
  /** Reading the source failed (the cause is the I/O error). */
  | 'BT_ERR_CREATE_IO'

export class CreateTorrentError extends ProtocolError {
  declare readonly code: CreateTorrentErrorCode

  constructor(code: CreateTorrentErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options)
    this.name = 'CreateTorrentError'
  }
}
