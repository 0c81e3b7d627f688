/**
 * Public barrel of the Codex REST client: the client, its errors, response types, retry policy
 * and the CID helpers. The client knows nothing of BitTorrent.
 */

export type { UploadInput } from './body.ts'
export type { CallOptions, CidInput } from './calls.ts'
export { CID, CODEX_CODECS, formatCid, InvalidCidError, isManifestCid, parseCid } from './cid.ts'
export { CodexClient, type CodexClientInit } from './client.ts'
export type {
  CodexDownload,
  CodexRangeDownload,
  DownloadMode,
  DownloadOptions,
  RangeSupport,
} from './download.ts'
export * from './errors.ts'
export { backoffDelayMs, DEFAULT_RETRY_POLICY, type RetryPolicy } from './retry.ts'
export type { CodexAuth, CodexObserver, CodexRequestEvent } from './transport.ts'
export type * from './types.ts'
export type { UploadOptions } from './upload.ts'
