/**
 * The catalog: the gateway's embedded, persistent index (SQLite through `node:sqlite`, WAL mode).
 *
 * It answers "what do we hold and where is it in Codex": torrents (info hashes, exact info-dict
 * bytes, original .torrent bytes, trackers, state, record CID), their files (path, length, BEP47
 * padding, BEP52 `pieces root`, Codex manifest CID), a `pieces root → CID` lookup for dedup across
 * torrents (a v2 root never equals a Codex CID: NOTES.md §2 "v2 roots versus the Codex tree"),
 * and resume data (the verified-pieces bitfield, BEP3 bit order). Records imported from another
 * gateway are torrents with `origin = 'import'`.
 *
 * All statements are prepared once; multi-row updates run in transactions. The schema version is
 * kept in the `meta` table; a database written by a newer schema is refused. Calls are
 * synchronous (SQLite in-process); the catalog is not shared between processes.
 */

import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite'
import { toHex } from '../gateway/protocol/hex.ts'
import type { FileEntry, TorrentInfo } from '../gateway/protocol/types.ts'
import {
  CATALOG_STATES,
  CatalogError,
  type CatalogFileState,
  type CatalogOrigin,
  type CatalogTorrentState,
  type FileRow,
  migrate,
  type Row,
  type TorrentRow,
  toFileRow,
  toTorrentRow,
} from './catalog-schema.ts'

export {
  CATALOG_STATES,
  CatalogError,
  type CatalogErrorCode,
  type CatalogFileState,
  type CatalogOrigin,
  type CatalogTorrentState,
  type FileRow,
  type TorrentRow,
} from './catalog-schema.ts'

/** Input of `upsertTorrent`. */
export interface UpsertTorrentInput {
  readonly info: TorrentInfo
  /** The original .torrent bytes, when the source was a .torrent. */
  readonly torrentBytes?: Uint8Array
  readonly trackers?: readonly (readonly string[])[]
  /** @default 'metadata' for new rows; unchanged for existing rows unless given */
  readonly state?: CatalogTorrentState
  /** @default 'ingest' */
  readonly origin?: CatalogOrigin
  readonly recordCid?: string
}

const HEX40 = /^[0-9a-f]{40}$/
const HEX64 = /^[0-9a-f]{64}$/
/** Generous sanity bound for a CID text (Codex CIDs are ~60 characters). */
const MAX_CID_TEXT = 256

/** The persistent index. Open with `Catalog.open(path)` (`':memory:'` for a throw-away catalog). */
export class Catalog {
  readonly path: string
  readonly #db: DatabaseSync
  readonly #stmts: Map<string, StatementSync> = new Map()
  #closed = false

  private constructor(path: string, db: DatabaseSync) {
    this.path = path
    this.#db = db
  }

  /** Opens (creating if needed) the catalog at `path`, in WAL mode, and checks the schema version. */
  static open(path: string): Catalog {
    let db: DatabaseSync
    try {
      db = new DatabaseSync(path)
      db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;')
      db.exec('PRAGMA busy_timeout = 5000;')
    } catch (cause) {
      throw new CatalogError('GW_ERR_CATALOG_IO', `cannot open catalog ${path}`, { cause })
    }
    try {
      migrate(db)
    } catch (error) {
      db.close()
      if (error instanceof CatalogError) throw error
      throw new CatalogError('GW_ERR_CATALOG_IO', `cannot initialise catalog ${path}`, { cause: error })
    }
    return new Catalog(path, db)
  }

  /** Closes the database. Idempotent. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#stmts.clear()
    this.#db.close()
  }

  get closed(): boolean {
    return this.#closed
  }

  /** Runs `fn` in one transaction (nested calls join the outer one). */
  transaction<T>(fn: () => T): T {
    this.#check()
    if (this.#db.isTransaction) return fn()
    this.#db.exec('BEGIN IMMEDIATE')
    try {
      const result = fn()
      this.#db.exec('COMMIT')
      return result
    } catch (error) {
      this.#db.exec('ROLLBACK')
      throw error
    }
  }

  // ---- torrents ------------------------------------------------------------------------------

  /**
   * Inserts a torrent and its file rows, or updates an existing one (same id). The info bytes of
   * an existing row must be identical (an info hash names exactly one info dict). File rows are
   * created once; their CIDs and states are kept on later upserts.
   */
  upsertTorrent(input: UpsertTorrentInput): TorrentRow {
    const { info } = input
    const v1 = info.infoHashV1 ? toHex(info.infoHashV1) : undefined
    const v2 = info.infoHashV2 ? toHex(info.infoHashV2) : undefined
    const id = v1 ?? v2
    if (id === undefined) throw new CatalogError('GW_ERR_CATALOG_INVALID', 'torrent has no info hash')
    if (input.state !== undefined) checkState(input.state)
    if (input.recordCid !== undefined) checkCidText(input.recordCid)
    const trackers = input.trackers === undefined ? undefined : JSON.stringify(input.trackers)
    return this.transaction(() => {
      const now = Date.now()
      const existing = this.#stmt('SELECT info, torrent FROM torrents WHERE id = ?').get(id)
      if (existing === undefined) {
        this.#stmt(
          `INSERT INTO torrents (id, v1, v2, name, state, origin, record_cid, info, torrent, trackers,
             created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        ).run(
          id,
          v1 ?? null,
          v2 ?? null,
          info.name,
          input.state ?? 'metadata',
          input.origin ?? 'ingest',
          input.recordCid ?? null,
          info.infoBytes,
          input.torrentBytes ?? null,
          trackers ?? '[]',
          now,
          now,
        )
      } else {
        if (!sameBytes(existing.info as Uint8Array, info.infoBytes)) {
          throw new CatalogError('GW_ERR_CATALOG_CONFLICT', `torrent ${id} is stored with other info bytes`)
        }
        this.#stmt(
          `UPDATE torrents SET
             state = coalesce(?, state), origin = coalesce(?, origin), record_cid = coalesce(?, record_cid),
             torrent = coalesce(?, torrent), trackers = coalesce(?, trackers), updated_at = ?
           WHERE id = ?`,
        ).run(
          input.state ?? null,
          input.origin ?? null,
          input.recordCid ?? null,
          input.torrentBytes ?? null,
          trackers ?? null,
          now,
          id,
        )
      }
      const insertFile = this.#stmt(
        `INSERT OR IGNORE INTO files (torrent_id, idx, path, length, padding, pieces_root, cid, state)
         VALUES (?, ?, ?, ?, ?, ?, NULL, ?)`,
      )
      info.files.forEach((file, index) => {
        if (file.virtual) return
        insertFile.run(
          id,
          index,
          JSON.stringify(file.path),
          file.length,
          file.padding ? 1 : 0,
          file.piecesRoot ? toHex(file.piecesRoot) : null,
          initialFileState(file),
        )
      })
      return this.#requireTorrent(id)
    })
  }

  /**
   * The torrent with this id, v1 hash or v2 hash (lower- or upper-case hex); a 40-hex string also
   * matches the truncated v2 hash (BEP52 swarm id). `undefined` when unknown.
   */
  getTorrent(idOrAnyHash: string): TorrentRow | undefined {
    this.#check()
    const key = normalizeHash(idOrAnyHash)
    if (key === undefined) return undefined
    const row =
      this.#stmt('SELECT * FROM torrents WHERE id = ? OR v1 = ? OR v2 = ?').get(key, key, key) ??
      (key.length === 40
        ? this.#stmt('SELECT * FROM torrents WHERE substr(v2, 1, 40) = ?').get(key)
        : undefined)
    return row === undefined ? undefined : toTorrentRow(row)
  }

  /** Every torrent, oldest first. */
  listTorrents(): TorrentRow[] {
    this.#check()
    return this.#stmt('SELECT * FROM torrents ORDER BY created_at, id').all().map(toTorrentRow)
  }

  /** Sets the lifecycle state and (or clears) the last error. */
  setState(id: string, state: CatalogTorrentState, error?: string): void {
    checkState(state)
    const row = this.#requireTorrent(id)
    this.#stmt('UPDATE torrents SET state = ?, last_error = ?, updated_at = ? WHERE id = ?').run(
      state,
      error ?? null,
      Date.now(),
      row.id,
    )
  }

  /** Records the CID of the torrent record in Codex. */
  setRecordCid(id: string, cid: string): void {
    checkCidText(cid)
    const row = this.#requireTorrent(id)
    this.#stmt('UPDATE torrents SET record_cid = ?, updated_at = ? WHERE id = ?').run(cid, Date.now(), row.id)
  }

  /** Deletes a torrent, its files, its resume data and the dedup entries only it referenced. */
  deleteTorrent(id: string): boolean {
    this.#check()
    const row = this.getTorrent(id)
    if (row === undefined) return false
    this.transaction(() => {
      const roots = this.#stmt(
        'SELECT pieces_root, cid FROM files WHERE torrent_id = ? AND pieces_root IS NOT NULL AND cid IS NOT NULL',
      ).all(row.id)
      this.#stmt('DELETE FROM torrents WHERE id = ?').run(row.id)
      for (const r of roots) {
        const others = this.#stmt('SELECT count(*) AS n FROM files WHERE pieces_root = ? AND cid = ?').get(
          r.pieces_root as string,
          r.cid as string,
        )
        if (Number(others?.n ?? 0) === 0) {
          this.#stmt('DELETE FROM roots WHERE pieces_root = ? AND cid = ?').run(
            r.pieces_root as string,
            r.cid as string,
          )
        }
      }
    })
    return true
  }

  // ---- files ---------------------------------------------------------------------------------

  /** The file rows of a torrent, by index. */
  getFiles(id: string): FileRow[] {
    const row = this.#requireTorrent(id)
    return this.#stmt('SELECT * FROM files WHERE torrent_id = ? ORDER BY idx').all(row.id).map(toFileRow)
  }

  /**
   * Records (or, with `undefined`, forgets) the Codex manifest CID of a file. A file with a BEP52
   * `pieces root` also updates the `pieces root → CID` dedup lookup.
   */
  setFileCid(id: string, fileIndex: number, cid: string | undefined): void {
    if (cid !== undefined) checkCidText(cid)
    const row = this.#requireTorrent(id)
    this.transaction(() => {
      const file = this.#stmt('SELECT * FROM files WHERE torrent_id = ? AND idx = ?').get(row.id, fileIndex)
      if (file === undefined) {
        throw new CatalogError('GW_ERR_CATALOG_NOT_FOUND', `torrent ${row.id} has no file ${fileIndex}`)
      }
      if (Number(file.padding) === 1 || Number(file.length) === 0) {
        throw new CatalogError('GW_ERR_CATALOG_INVALID', `file ${fileIndex} of ${row.id} holds no data`)
      }
      const root = file.pieces_root as string | null
      const old = file.cid as string | null
      this.#stmt('UPDATE files SET cid = ?, state = ? WHERE torrent_id = ? AND idx = ?').run(
        cid ?? null,
        cid === undefined ? 'pending' : 'uploaded',
        row.id,
        fileIndex,
      )
      if (root === null) return
      if (cid !== undefined) {
        this.#stmt('INSERT OR REPLACE INTO roots (pieces_root, cid, length) VALUES (?, ?, ?)').run(
          root,
          cid,
          Number(file.length),
        )
      } else if (old !== null) {
        this.#stmt('DELETE FROM roots WHERE pieces_root = ? AND cid = ?').run(root, old)
      }
    })
  }

  /**
   * Dedup: the Codex CID of a file with this BEP52 `pieces root` (hex), if any torrent archived
   * one; with `length`, only a file of that length matches.
   */
  findCidByPiecesRoot(rootHex: string, length?: number): string | undefined {
    this.#check()
    const key = rootHex.toLowerCase()
    if (!HEX64.test(key))
      throw new CatalogError('GW_ERR_CATALOG_INVALID', 'a pieces root is 64 hex characters')
    const row = this.#stmt('SELECT cid, length FROM roots WHERE pieces_root = ?').get(key)
    if (row === undefined || (length !== undefined && Number(row.length) !== length)) return undefined
    return row.cid as string
  }

  /** The first torrent file stored under this Codex CID (ingested or imported), if any. */
  findTorrentByFileCid(cid: string): { torrent: TorrentRow; fileIndex: number } | undefined {
    this.#check()
    const file = this.#stmt('SELECT torrent_id, idx FROM files WHERE cid = ? ORDER BY torrent_id, idx').get(
      cid,
    )
    if (file === undefined) return undefined
    return { torrent: this.#requireTorrent(file.torrent_id as string), fileIndex: Number(file.idx) }
  }

  // ---- resume --------------------------------------------------------------------------------

  /** Stores the verified-pieces bitfield (BEP3 bit order) of a torrent. */
  saveResume(id: string, bitfield: Uint8Array): void {
    const row = this.#requireTorrent(id)
    this.#stmt(
      `INSERT INTO resume (torrent_id, bitfield, updated_at) VALUES (?, ?, ?)
       ON CONFLICT (torrent_id) DO UPDATE SET bitfield = excluded.bitfield, updated_at = excluded.updated_at`,
    ).run(row.id, bitfield, Date.now())
  }

  /** The stored verified-pieces bitfield, or `undefined`. */
  loadResume(id: string): Uint8Array | undefined {
    this.#check()
    const row = this.getTorrent(id)
    if (row === undefined) return undefined
    const r = this.#stmt('SELECT bitfield FROM resume WHERE torrent_id = ?').get(row.id)
    return r === undefined ? undefined : new Uint8Array(r.bitfield as Uint8Array)
  }

  // ---- internals -----------------------------------------------------------------------------

  #requireTorrent(id: string): TorrentRow {
    const row = this.getTorrent(id)
    if (row === undefined) throw new CatalogError('GW_ERR_CATALOG_NOT_FOUND', `unknown torrent ${id}`)
    return row
  }

  #stmt(sql: string): {
    get(...params: SQLInputValue[]): Row | undefined
    all(...params: SQLInputValue[]): Row[]
    run(...params: SQLInputValue[]): void
  } {
    this.#check()
    let stmt = this.#stmts.get(sql)
    if (stmt === undefined) {
      stmt = this.#db.prepare(sql)
      this.#stmts.set(sql, stmt)
    }
    const s = stmt
    return {
      get: (...params) => wrapSql(() => s.get(...params) as Row | undefined),
      all: (...params) => wrapSql(() => s.all(...params) as Row[]),
      run: (...params) => {
        wrapSql(() => s.run(...params))
      },
    }
  }

  #check(): void {
    if (this.#closed) throw new CatalogError('GW_ERR_CATALOG_CLOSED', 'catalog is closed')
  }
}

// ---- helpers -----------------------------------------------------------------------------------

function wrapSql<T>(fn: () => T): T {
  try {
    return fn()
  } catch (cause) {
    if (cause instanceof CatalogError) throw cause
    throw new CatalogError('GW_ERR_CATALOG_IO', `catalog statement failed: ${(cause as Error).message}`, {
      cause,
    })
  }
}

function initialFileState(file: FileEntry): CatalogFileState {
  if (file.padding) return 'padding'
  return file.length === 0 ? 'empty' : 'pending'
}

function checkState(state: string): void {
  if (!(CATALOG_STATES as readonly string[]).includes(state)) {
    throw new CatalogError('GW_ERR_CATALOG_INVALID', `unknown torrent state ${JSON.stringify(state)}`)
  }
}

function checkCidText(cid: string): void {
  if (typeof cid !== 'string' || cid.length < 2 || cid.length > MAX_CID_TEXT || /\s/.test(cid)) {
    throw new CatalogError('GW_ERR_CATALOG_INVALID', `not a CID: ${JSON.stringify(String(cid).slice(0, 80))}`)
  }
}

function normalizeHash(text: string): string | undefined {
  if (typeof text !== 'string') return undefined
  const key = text.toLowerCase()
  return HEX40.test(key) || HEX64.test(key) ? key : undefined
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b)) === 0
}
