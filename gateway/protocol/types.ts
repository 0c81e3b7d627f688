/**
 * Shared, immutable data types of the BitTorrent protocol layer.
 *
 * Everything in `gateway/protocol/` is pure (no sockets, timers or logging); the engine and the
 * adapters consume these types. Hashes are raw bytes (`Uint8Array`); hex strings only at edges.
 */

/** BEP3 / BEP52 / hybrid (BEP52 "upgrade path": both halves in one info dict). */
export type TorrentVersion = 'v1' | 'v2' | 'hybrid'

/** 16 KiB: the BitTorrent block size and the BEP52 Merkle leaf size. */
export const BLOCK_SIZE = 16 * 1024

/**
 * One entry of the torrent's *linear piece space*.
 *
 * The linear space is what v1 pieces cover: files back to back in order. For hybrid torrents
 * (and v1 torrents with BEP47 pad files) the pad files are real entries with `padding: true`.
 * For v2-only torrents every file starts on a piece boundary (BEP52), so the parser inserts
 * *virtual* padding entries (`padding: true`, `virtual: true`) between files to keep one global
 * piece index, exactly like libtorrent does internally. Storage never stores padding bytes: they
 * read as zeros.
 */
export interface FileEntry {
  /** Path components below the torrent name (multi-file) or `[name]` (single file); sanitized like libtorrent (never empty, `.`, `..`, or containing `/`, `\\` or NUL). */
  readonly path: readonly string[]
  readonly length: number
  /** Byte offset of this entry in the linear piece space. */
  readonly offset: number
  /** BEP47 pad file, or a v2 alignment gap. */
  readonly padding: boolean
  /** True for alignment gaps that do not exist in the info dict (v2-only torrents). */
  readonly virtual: boolean
  /** BEP47 `attr` string (`x` executable, `h` hidden, `p` padding, `l` symlink); '' if absent. */
  readonly attr: string
  /** BEP47 `symlink path`, when `attr` contains `l`. */
  readonly symlinkPath?: readonly string[]
  /** BEP52 `pieces root` (32 bytes); absent for empty files, pad files and v1-only torrents. */
  readonly piecesRoot?: Uint8Array
  /** Index of this file's first piece in the global piece index space. */
  readonly firstPiece: number
  /** Number of pieces this entry touches (0 for empty files). */
  readonly pieceCount: number
}

/** The parsed, validated `info` dictionary. */
export interface TorrentInfo {
  readonly version: TorrentVersion
  readonly name: string
  readonly pieceLength: number
  /** Length of the linear piece space, padding included (= sum of entry lengths). */
  readonly totalLength: number
  /** Sum of the lengths of the real (non-padding) files. */
  readonly payloadLength: number
  readonly pieceCount: number
  /** Entries of the linear piece space in order, padding entries included. */
  readonly files: readonly FileEntry[]
  /** v1: concatenated 20-byte SHA-1 piece hashes (v1 and hybrid only). */
  readonly pieces?: Uint8Array
  /** BEP27. */
  readonly private: boolean
  /** BEP52 `meta version` (2 for v2 and hybrid), absent for v1. */
  readonly metaVersion?: number
  /** The exact bytes of the bencoded info dictionary, as found (info hashes are over these). */
  readonly infoBytes: Uint8Array
  /** SHA-1 of `infoBytes`; present for v1 and hybrid torrents. */
  readonly infoHashV1?: Uint8Array
  /** SHA-256 of `infoBytes`; present for v2 and hybrid torrents. */
  readonly infoHashV2?: Uint8Array
}

/** A whole .torrent file: the info dictionary plus what lives outside it. */
export interface Metainfo {
  readonly info: TorrentInfo
  /** Tracker tiers (BEP12); `announce` alone becomes one tier of one URL. */
  readonly announce: readonly (readonly string[])[]
  /** BEP19 web seeds (`url-list`). */
  readonly urlList: readonly string[]
  /**
   * BEP52 `piece layers`: hex `pieces root` → concatenated 32-byte piece-layer hashes.
   * Only files larger than one piece have an entry. Each entry was checked against its root.
   */
  readonly pieceLayers: ReadonlyMap<string, Uint8Array>
  readonly comment?: string
  readonly createdBy?: string
  readonly creationDate?: number
}

/**
 * The 20-byte info hash used on the wire and in the DHT for a swarm: the v1 hash, or the v2 hash
 * truncated to 20 bytes (BEP52). A hybrid torrent takes part in both swarms.
 */
export interface SwarmId {
  readonly protocol: 'v1' | 'v2'
  readonly infoHash: Uint8Array
}

export interface AbortOptions {
  readonly signal?: AbortSignal
}
