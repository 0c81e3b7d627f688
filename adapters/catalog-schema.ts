/**
 * The catalog's data model: error type, row types and states, the versioned SQLite schema with
 * its migration, and the mapping of SQLite rows to typed rows. Used by `catalog.ts` only.
 */

import type { DatabaseSync, SQLOutputValue } from 'node:sqlite'

/** Stable error codes of the catalog. */
export type CatalogErrorCode =
  /** The database cannot be opened or a statement failed. */
  | 'GW_ERR_CATALOG_IO'
  /** The database has an unknown or newer schema. */
  | 'GW_ERR_CATALOG_SCHEMA'
  /** The catalog was closed. */
  | 'GW_ERR_CATALOG_CLOSED'
  /** No torrent (or file) with that identifier. */
  | 'GW_ERR_CATALOG_NOT_FOUND'
  /** An argument is malformed (hash, state, index, CID). */
  | 'GW_ERR_CATALOG_INVALID'
  /** The stored data contradicts the call (e.g. same hash, different info dict). */
  | 'GW_ERR_CATALOG_CONFLICT'

/** Every catalog failure. */
export class CatalogError extends Error {
  readonly code: CatalogErrorCode

  constructor(code: CatalogErrorCode, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'CatalogError'
    this.code = code
  }
}

/** Lifecycle states stored for a torrent (the archive job owns the transitions). */
export const CATALOG_STATES = [
  'metadata',
  'checking',
  'downloading',
  'archiving',
  'archived',
  'seeding',
  'paused',
  'error',
] as const
export type CatalogTorrentState = (typeof CATALOG_STATES)[number]

/** Where a catalog entry came from: our own ingest, or a record imported from elsewhere. */
export type CatalogOrigin = 'ingest' | 'import'

/** Persisted per-file upload state ('uploading' exists only at run time). */
export type CatalogFileState = 'pending' | 'uploaded' | 'empty' | 'padding'

/** One torrent row. */
export interface TorrentRow {
  /** v1 info hash hex when there is one, else the v2 info hash hex. */
  readonly id: string
  readonly infoHashV1?: string
  readonly infoHashV2?: string
  readonly name: string
  readonly state: CatalogTorrentState
  readonly origin: CatalogOrigin
  /** CID of the torrent record in Codex (the archive address), once uploaded. */
  readonly recordCid?: string
  /** The exact bencoded info dictionary. */
  readonly infoBytes: Uint8Array
  /** The original .torrent, when the source was one. */
  readonly torrentBytes?: Uint8Array
  /** BEP12 tiers. */
  readonly trackers: readonly (readonly string[])[]
  /** Milliseconds since the epoch. */
  readonly createdAt: number
  readonly updatedAt: number
  readonly lastError?: string
}

/** One file row (entries of the linear piece space, padding included; v2 virtual gaps excluded). */
export interface FileRow {
  readonly torrentId: string
  /** Index into `TorrentInfo.files`. */
  readonly index: number
  readonly path: readonly string[]
  readonly length: number
  readonly padding: boolean
  readonly piecesRoot?: string
  readonly cid?: string
  readonly state: CatalogFileState
}

export const SCHEMA_VERSION = 1

const SCHEMA_V1 = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS torrents (
  id TEXT PRIMARY KEY,
  v1 TEXT UNIQUE,
  v2 TEXT UNIQUE,
  name TEXT NOT NULL,
  state TEXT NOT NULL,
  origin TEXT NOT NULL,
  record_cid TEXT,
  info BLOB NOT NULL,
  torrent BLOB,
  trackers TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  last_error TEXT
);
CREATE INDEX IF NOT EXISTS torrents_v2_prefix ON torrents (substr(v2, 1, 40));
CREATE TABLE IF NOT EXISTS files (
  torrent_id TEXT NOT NULL REFERENCES torrents(id) ON DELETE CASCADE,
  idx INTEGER NOT NULL,
  path TEXT NOT NULL,
  length INTEGER NOT NULL,
  padding INTEGER NOT NULL,
  pieces_root TEXT,
  cid TEXT,
  state TEXT NOT NULL,
  PRIMARY KEY (torrent_id, idx)
);
CREATE INDEX IF NOT EXISTS files_cid ON files (cid);
CREATE TABLE IF NOT EXISTS roots (
  pieces_root TEXT PRIMARY KEY,
  cid TEXT NOT NULL,
  length INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS resume (
  torrent_id TEXT PRIMARY KEY REFERENCES torrents(id) ON DELETE CASCADE,
  bitfield BLOB NOT NULL,
  updated_at INTEGER NOT NULL
);
`

export type Row = Record<string, SQLOutputValue>

/** Creates or upgrades the schema; refuses a database written by a newer schema. */
export function migrate(db: DatabaseSync): void {
  db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)')
  const row = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as Row | undefined
  const version = row === undefined ? 0 : Number(row.value)
  if (!Number.isInteger(version) || version < 0 || version > SCHEMA_VERSION) {
    throw new CatalogError(
      'GW_ERR_CATALOG_SCHEMA',
      `catalog schema version ${String(row?.value)} is not supported (this build knows ${SCHEMA_VERSION})`,
    )
  }
  if (version === SCHEMA_VERSION) return
  db.exec('BEGIN IMMEDIATE')
  try {
    db.exec(SCHEMA_V1)
    db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)").run(
      String(SCHEMA_VERSION),
    )
    db.exec('COMMIT')
  } catch (error) {
    db.exec('ROLLBACK')
    throw error
  }
}

function optString(value: SQLOutputValue | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined
}

export function toTorrentRow(r: Row): TorrentRow {
  const v1 = optString(r.v1)
  const v2 = optString(r.v2)
  const record = optString(r.record_cid)
  const error = optString(r.last_error)
  const torrent = r.torrent instanceof Uint8Array ? new Uint8Array(r.torrent) : undefined
  return {
    id: r.id as string,
    ...(v1 !== undefined ? { infoHashV1: v1 } : {}),
    ...(v2 !== undefined ? { infoHashV2: v2 } : {}),
    name: r.name as string,
    state: r.state as CatalogTorrentState,
    origin: r.origin as CatalogOrigin,
    ...(record !== undefined ? { recordCid: record } : {}),
    infoBytes: new Uint8Array(r.info as Uint8Array),
    ...(torrent !== undefined ? { torrentBytes: torrent } : {}),
    trackers: JSON.parse(r.trackers as string) as string[][],
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
    ...(error !== undefined ? { lastError: error } : {}),
  }
}

export function toFileRow(r: Row): FileRow {
  const root = optString(r.pieces_root)
  const cid = optString(r.cid)
  return {
    torrentId: r.torrent_id as string,
    index: Number(r.idx),
    path: JSON.parse(r.path as string) as string[],
    length: Number(r.length),
    padding: Number(r.padding) === 1,
    ...(root !== undefined ? { piecesRoot: root } : {}),
    ...(cid !== undefined ? { cid } : {}),
    state: r.state as CatalogFileState,
  }
}
