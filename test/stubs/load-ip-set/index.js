// Stub for load-ip-set (webtorrent's blocklist loader). Blocklists are never configured in tests.
export default function loadIPSet(input, opts, cb) {
  const done = typeof opts === 'function' ? opts : cb
  queueMicrotask(() => done(new Error('blocklists are not supported in codex-bittorrent-gateway tests')))
}
