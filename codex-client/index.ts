/**
 * Public barrel of the Codex REST client: the client, its errors, response types, retry policy
 * and the CID helpers. The client knows nothing of BitTorrent.
 */

export type { UploadInput } from './body.ts'
export { CID, CODEX_CODECS, formatCid, InvalidCidError, isManifestCid, parseCid } from './cid.ts'
export {
  type CallOptions,
  type CidInput,
  CodexClient,
  type CodexClientInit,
  type CodexDownload,
  type CodexRangeDownload,
  type DownloadMode,
  type DownloadOptions,
  type RangeSupport,
  type UploadOptions,
} from './client.ts'
export * from './errors.ts'
export { backoffDelayMs, DEFAULT_RETRY_POLICY, type RetryPolicy } from './retry.ts'
export type { CodexAuth, CodexObserver, CodexRequestEvent } from './transport.ts'
export type * from './types.ts'
