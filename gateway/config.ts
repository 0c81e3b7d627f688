/**
 * Gateway configuration: read once at start from `CODEX_BT_*` environment variables and an
 * optional JSON file (`CODEX_BT_CONFIG=/path/config.json`), validated eagerly, returned frozen.
 *
 * Precedence, highest first: environment variable → JSON file → default. The JSON file uses the
 * camelCase keys of `GatewayConfig` (`{"apiPort": 8071, "dhtBootstrap": ["host:6881"]}`).
 * Every bad value produces its own issue; all issues are collected and thrown together as one
 * `ConfigError`, so an operator fixes everything in one round. `CONFIG_TABLE` is the single
 * description of every setting (README docs and the deploy tests read it).
 *
 * A relative file path or `dataDir` is resolved against `cwd` (default: the process's).
 * An empty environment variable counts as unset, except for list settings, where the empty
 * string means "an empty list" (e.g. `CODEX_BT_DHT_BOOTSTRAP=` disables the public routers).
 */
import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { resolve } from 'node:path'

/** Log levels accepted by `CODEX_BT_LOG_LEVEL` (pino's, plus `silent`). */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type ConfigLogLevel = (typeof LOG_LEVELS)[number]

/** A `host:port` pair; IPv6 hosts are written `[::1]:6881` and stored without brackets. */
export interface HostPort {
  readonly host: string
  readonly port: number
}

/** Credentials sent to a remote Codex node (`CODEX_BT_CODEX_AUTH`). */
export type CodexAuth =
  | { readonly kind: 'basic'; readonly username: string; readonly password: string }
  | { readonly kind: 'bearer'; readonly token: string }

/** The validated, frozen configuration. Sizes and rates are in bytes (per second for rates). */
export interface GatewayConfig {
  readonly apiHost: string
  readonly apiPort: number
  readonly peerHost: string
  readonly peerPort: number
  /** Remote Codex node base URL; `undefined` means "start the embedded local Codex node". */
  readonly codexUrl: string | undefined
  readonly codexAuth: CodexAuth | undefined
  readonly localCodexHost: string
  readonly localCodexPort: number
  /** Absolute path (resolved against `cwd`). */
  readonly dataDir: string
  readonly stagingMaxBytes: number
  readonly cacheMaxBytes: number
  readonly maxConnections: number
  readonly maxConnectionsPerTorrent: number
  readonly uploadSlots: number
  /** Bytes per second; 0 = unlimited. */
  readonly downloadRateLimit: number
  /** Bytes per second; 0 = unlimited. */
  readonly uploadRateLimit: number
  readonly dht: boolean
  /** Defaults to `peerPort`. */
  readonly dhtPort: number
  readonly dhtBootstrap: readonly HostPort[]
  readonly trackers: readonly string[]
  /** `undefined` = no authentication on the HTTP API. */
  readonly apiToken: string | undefined
  readonly logLevel: ConfigLogLevel
  readonly shutdownTimeoutMs: number
  readonly bodyLimitBytes: number
}

export type ConfigKey = keyof GatewayConfig

/** Value kinds of the settings, as documented in `CONFIG_TABLE`. */
export type ConfigValueType =
  | 'host'
  | 'port'
  | 'url'
  | 'auth'
  | 'path'
  | 'size'
  | 'integer'
  | 'boolean'
  | 'host:port list'
  | 'url list'
  | 'secret'
  | 'log level'
  | 'milliseconds'

/** One documented setting. `default` is the human-readable default ('' when unset). */
export interface ConfigTableRow {
  readonly key: ConfigKey
  readonly env: string
  readonly type: ConfigValueType
  readonly default: string
  readonly description: string
  /** True for values never echoed in errors or logs. */
  readonly secret?: boolean
}

export const ENV_PREFIX = 'CODEX_BT_'
/** Environment variable naming the optional JSON config file. */
export const CONFIG_FILE_ENV = 'CODEX_BT_CONFIG'

const KiB = 1024
const MiB = 1024 * KiB
const GiB = 1024 * MiB
const TiB = 1024 * GiB

/** The public DHT routers used when `CODEX_BT_DHT_BOOTSTRAP` is not set. */
export const DEFAULT_DHT_BOOTSTRAP: readonly string[] = Object.freeze([
  'router.bittorrent.com:6881',
  'dht.transmissionbt.com:6881',
  'router.utorrent.com:6881',
])

function row(
  key: ConfigKey,
  type: ConfigValueType,
  dflt: string,
  description: string,
  secret = false,
): ConfigTableRow {
  const env = ENV_PREFIX + key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()
  return Object.freeze(
    secret
      ? { key, env, type, default: dflt, description, secret }
      : { key, env, type, default: dflt, description },
  )
}

/** Every setting: name, environment variable, type, default and description. */
export const CONFIG_TABLE: readonly ConfigTableRow[] = Object.freeze([
  row('apiHost', 'host', '127.0.0.1', 'Address the HTTP API listens on.'),
  row('apiPort', 'port', '8070', 'TCP port of the HTTP API (0 = any free port).'),
  row('peerHost', 'host', '0.0.0.0', 'Address the BitTorrent peer listener binds to.'),
  row('peerPort', 'port', '6881', 'TCP (and uTP/UDP) port for BitTorrent peers (0 = any free port).'),
  row(
    'codexUrl',
    'url',
    '',
    'Base URL of a remote Codex node (http/https). Unset: start the embedded local Codex node.',
  ),
  row(
    'codexAuth',
    'auth',
    '',
    'Credentials for the remote Codex node: `basic:USER:PASS` or `bearer:TOKEN`.',
    true,
  ),
  row(
    'localCodexHost',
    'host',
    '127.0.0.1',
    'Address of the embedded local Codex node (used when CODEX_URL is unset).',
  ),
  row('localCodexPort', 'port', '8080', 'Port of the embedded local Codex node.'),
  row('dataDir', 'path', './.data', 'Directory for gateway state (CID index, staging spill, resume data).'),
  row('stagingMaxBytes', 'size', '1GiB', 'Upper bound of verified pieces waiting for upload to Codex.'),
  row('cacheMaxBytes', 'size', '2GiB', 'Upper bound of the local read cache of Codex data served to peers.'),
  row('maxConnections', 'integer', '200', 'Maximum peer connections in total.'),
  row('maxConnectionsPerTorrent', 'integer', '50', 'Maximum peer connections per torrent.'),
  row('uploadSlots', 'integer', '4', 'Unchoked upload slots per torrent.'),
  row('downloadRateLimit', 'size', '0', 'Download rate limit in bytes per second (0 = unlimited).'),
  row('uploadRateLimit', 'size', '0', 'Upload rate limit in bytes per second (0 = unlimited).'),
  row('dht', 'boolean', 'true', 'Enable the BitTorrent DHT (BEP5).'),
  row('dhtPort', 'port', '(peer port)', 'UDP port of the DHT node; defaults to the peer port.'),
  row(
    'dhtBootstrap',
    'host:port list',
    DEFAULT_DHT_BOOTSTRAP.join(','),
    'Comma-separated DHT bootstrap nodes; the empty string means none.',
  ),
  row('trackers', 'url list', '', 'Comma-separated default tracker URLs added to every torrent.'),
  row(
    'apiToken',
    'secret',
    '',
    'Bearer token required on mutating API routes. Unset: no authentication.',
    true,
  ),
  row('logLevel', 'log level', 'info', `Log level: ${LOG_LEVELS.join(', ')}.`),
  row('shutdownTimeoutMs', 'milliseconds', '15000', 'Grace period for a clean shutdown before exiting.'),
  row('bodyLimitBytes', 'size', '16MiB', 'Maximum HTTP request body (e.g. an uploaded .torrent).'),
])

/** Where a value came from, for error messages. */
export type ConfigSource = 'env' | 'file'

export interface ConfigIssue {
  readonly key: ConfigKey | undefined
  /** The env variable or `file:<key>` that held the bad value. */
  readonly setting: string
  readonly source: ConfigSource
  readonly message: string
}

/** Thrown by `loadConfig` with every problem found; `message` lists them one per line. */
export class ConfigError extends Error {
  readonly code = 'GW_ERR_CONFIG' as const
  readonly issues: readonly ConfigIssue[]

  constructor(issues: readonly ConfigIssue[]) {
    const lines = issues.map((i) => `  - ${i.setting}: ${i.message}`)
    super(
      `invalid configuration (${issues.length} problem${issues.length === 1 ? '' : 's'}):\n${lines.join('\n')}`,
    )
    this.name = 'ConfigError'
    this.issues = Object.freeze([...issues])
  }
}

export interface LoadConfigInit {
  /** Usually `process.env`. */
  readonly env: Readonly<Record<string, string | undefined>>
  /** A JSON file path, or an already-parsed object; overrides `env.CODEX_BT_CONFIG`. */
  readonly file?: string | Readonly<Record<string, unknown>>
  /** Base for a relative `dataDir`; defaults to `process.cwd()`. */
  readonly cwd?: string
}

// ---------------------------------------------------------------------------------------------
// Value parsers. Each returns the parsed value or throws `ValueProblem` with a readable reason.

class ValueProblem extends Error {
  override readonly name = 'ValueProblem'
}

type Raw = string | number | boolean | readonly unknown[] | null | Record<string, unknown>

const HOSTNAME_RE = /^(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?$/

function describe(raw: Raw): string {
  return typeof raw === 'string' ? `'${raw}'` : JSON.stringify(raw)
}

function asString(raw: Raw, what: string): string {
  if (typeof raw === 'string') return raw.trim()
  if (typeof raw === 'number' && Number.isFinite(raw)) return String(raw)
  throw new ValueProblem(`expected ${what}, got ${describe(raw)}`)
}

/** A hostname (RFC 1123) or an IPv4/IPv6 address. */
export function parseHost(value: string): string {
  const v = value.trim()
  const unbracketed = v.startsWith('[') && v.endsWith(']') ? v.slice(1, -1) : v
  if (isIP(unbracketed) !== 0) return unbracketed
  if (HOSTNAME_RE.test(v) && !/^[0-9.]+$/.test(v)) return v
  throw new ValueProblem(`'${value}' is not a valid hostname or IP address`)
}

function parseIntegerText(text: string, what: string): number {
  if (!/^[+]?\d+$/.test(text)) throw new ValueProblem(`'${text}' is not ${what}`)
  const n = Number(text)
  if (!Number.isSafeInteger(n)) throw new ValueProblem(`'${text}' is too large`)
  return n
}

export function parsePort(raw: Raw): number {
  const n = typeof raw === 'number' ? raw : parseIntegerText(asString(raw, 'a port number'), 'a port number')
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new ValueProblem(`${describe(raw)} is not a port number (an integer from 0 to 65535)`)
  }
  return n
}

function parseInteger(raw: Raw, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = typeof raw === 'number' ? raw : parseIntegerText(asString(raw, 'an integer'), 'an integer')
  if (!Number.isSafeInteger(n)) throw new ValueProblem(`${describe(raw)} is not an integer`)
  if (n < min || n > max) {
    throw new ValueProblem(
      `${describe(raw)} is out of range (${max === Number.MAX_SAFE_INTEGER ? `at least ${min}` : `${min} to ${max}`})`,
    )
  }
  return n
}

const SIZE_UNITS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  kib: KiB,
  mib: MiB,
  gib: GiB,
  tib: TiB,
  k: 1000,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  tb: 1000 ** 4,
}

/** Bytes: a plain integer or a number with a unit (`512MiB`, `1GiB`, `1.5GiB`, `10MB`, `64KiB`). */
export function parseSize(raw: Raw, min = 0): number {
  let n: number
  if (typeof raw === 'number') {
    n = raw
  } else {
    const text = asString(raw, 'a size')
    const m = /^(\d+(?:\.\d+)?)\s*([A-Za-z]*)$/.exec(text)
    const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined
    if (!m || unit === undefined) {
      throw new ValueProblem(
        `'${text}' is not a size (use bytes, or a number with B, KiB, MiB, GiB, TiB, KB, MB, GB)`,
      )
    }
    n = Number(m[1]) * unit
  }
  if (!Number.isSafeInteger(n)) throw new ValueProblem(`${describe(raw)} is not a whole number of bytes`)
  if (n < min) throw new ValueProblem(`${describe(raw)} is too small (minimum ${min} bytes)`)
  return n
}

export function parseBoolean(raw: Raw): boolean {
  if (typeof raw === 'boolean') return raw
  const text = asString(raw, 'a boolean').toLowerCase()
  if (['true', '1', 'yes', 'on'].includes(text)) return true
  if (['false', '0', 'no', 'off'].includes(text)) return false
  throw new ValueProblem(`'${text}' is not a boolean (use true/false, 1/0, yes/no, on/off)`)
}

/** `host:port`, with IPv6 hosts in brackets (`[::1]:6881`). */
export function parseHostPort(text: string): HostPort {
  const t = text.trim()
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(t) ?? /^([^:[\]]+):(\d+)$/.exec(t)
  if (!m) throw new ValueProblem(`'${text}' is not host:port (IPv6 as [addr]:port)`)
  const host = parseHost(m[1]!)
  const port = parsePort(m[2]!)
  if (port === 0) throw new ValueProblem(`'${text}' has port 0`)
  return Object.freeze({ host, port })
}

function splitList(raw: Raw, what: string): string[] {
  if (Array.isArray(raw)) {
    return raw.map((item) => {
      if (typeof item !== 'string')
        throw new ValueProblem(`list item ${JSON.stringify(item)} is not a string`)
      return item.trim()
    })
  }
  const text = asString(raw, what)
  if (text === '') return []
  const items = text.split(',').map((s) => s.trim())
  if (items.some((s) => s === '')) throw new ValueProblem(`'${text}' has an empty item in the comma list`)
  return items
}

export function parseHostPortList(raw: Raw): readonly HostPort[] {
  const problems: string[] = []
  const out: HostPort[] = []
  for (const item of splitList(raw, 'a comma list of host:port')) {
    try {
      out.push(parseHostPort(item))
    } catch (err) {
      problems.push((err as Error).message)
    }
  }
  if (problems.length > 0) throw new ValueProblem(problems.join('; '))
  return Object.freeze(out)
}

function parseUrl(text: string, schemes: readonly string[]): string {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new ValueProblem(`'${text}' is not a URL`)
  }
  const scheme = url.protocol.slice(0, -1)
  if (!schemes.includes(scheme)) {
    throw new ValueProblem(`'${text}' must use ${schemes.join(' or ')} (got ${scheme})`)
  }
  if (url.username !== '' || url.password !== '') {
    throw new ValueProblem('credentials in the URL are not allowed (use CODEX_BT_CODEX_AUTH)')
  }
  if (url.hostname === '') throw new ValueProblem(`'${text}' has no host`)
  return text
}

/** Tracker URL schemes: HTTP(S) (BEP3), UDP (BEP15), WebSocket (WebTorrent). */
export const TRACKER_SCHEMES: readonly string[] = Object.freeze(['http', 'https', 'udp', 'ws', 'wss'])

export function parseTrackerUrl(text: string): string {
  return parseUrl(text.trim(), TRACKER_SCHEMES)
}

function parseUrlList(raw: Raw): readonly string[] {
  const problems: string[] = []
  const out: string[] = []
  for (const item of splitList(raw, 'a comma list of URLs')) {
    try {
      out.push(parseTrackerUrl(item))
    } catch (err) {
      problems.push((err as Error).message)
    }
  }
  if (problems.length > 0) throw new ValueProblem(problems.join('; '))
  return Object.freeze(out)
}

function parseAuth(raw: Raw): CodexAuth {
  const text = asString(raw, 'credentials')
  const colon = text.indexOf(':')
  const kind = colon < 0 ? text : text.slice(0, colon)
  const rest = colon < 0 ? '' : text.slice(colon + 1)
  if (kind === 'bearer') {
    if (rest === '') throw new ValueProblem('bearer credentials need a token (bearer:TOKEN)')
    return Object.freeze({ kind: 'bearer', token: rest })
  }
  if (kind === 'basic') {
    const sep = rest.indexOf(':')
    if (sep <= 0) throw new ValueProblem('basic credentials must be basic:USER:PASS with a non-empty user')
    return Object.freeze({ kind: 'basic', username: rest.slice(0, sep), password: rest.slice(sep + 1) })
  }
  throw new ValueProblem("must be 'basic:USER:PASS' or 'bearer:TOKEN'")
}

function parseSecret(raw: Raw): string {
  if (typeof raw !== 'string') throw new ValueProblem('must be a string')
  if (/\s/.test(raw)) throw new ValueProblem('must not contain whitespace')
  return raw
}

function parseLogLevel(raw: Raw): ConfigLogLevel {
  const text = asString(raw, 'a log level').toLowerCase()
  const level = LOG_LEVELS.find((l) => l === text)
  if (level === undefined) throw new ValueProblem(`'${text}' is not a log level (${LOG_LEVELS.join(', ')})`)
  return level
}

function parsePath(raw: Raw): string {
  const text = asString(raw, 'a path')
  if (text === '') throw new ValueProblem('must not be empty')
  if (text.includes('\0')) throw new ValueProblem('must not contain NUL')
  return text
}

/** Parsers by key. `dhtPort` is resolved after the others (it defaults to `peerPort`). */
const PARSERS: { readonly [K in ConfigKey]: (raw: Raw) => GatewayConfig[K] } = {
  apiHost: (r) => parseHost(asString(r, 'a host')),
  apiPort: parsePort,
  peerHost: (r) => parseHost(asString(r, 'a host')),
  peerPort: parsePort,
  codexUrl: (r) => parseUrl(asString(r, 'a URL'), ['http', 'https']).replace(/\/+$/, ''),
  codexAuth: parseAuth,
  localCodexHost: (r) => parseHost(asString(r, 'a host')),
  localCodexPort: parsePort,
  dataDir: parsePath,
  stagingMaxBytes: (r) => parseSize(r, 1),
  cacheMaxBytes: (r) => parseSize(r, 0),
  maxConnections: (r) => parseInteger(r, 1, 100_000),
  maxConnectionsPerTorrent: (r) => parseInteger(r, 1, 100_000),
  uploadSlots: (r) => parseInteger(r, 1, 1000),
  downloadRateLimit: (r) => parseSize(r, 0),
  uploadRateLimit: (r) => parseSize(r, 0),
  dht: parseBoolean,
  dhtPort: parsePort,
  dhtBootstrap: parseHostPortList,
  trackers: parseUrlList,
  apiToken: parseSecret,
  logLevel: parseLogLevel,
  shutdownTimeoutMs: (r) => parseInteger(r, 0, 600_000),
  bodyLimitBytes: (r) => parseSize(r, 1024),
}

const LIST_KEYS: ReadonlySet<ConfigKey> = new Set<ConfigKey>(['dhtBootstrap', 'trackers'])

function tableRow(key: ConfigKey): ConfigTableRow {
  const r = CONFIG_TABLE.find((x) => x.key === key)
  if (r === undefined) throw new Error(`no CONFIG_TABLE row for ${key}`)
  return r
}

/** Defaults as raw values (parsed like user input, so the table and behaviour cannot drift). */
function defaultRaw(key: ConfigKey): Raw | undefined {
  const r = tableRow(key)
  if (key === 'dhtPort') return undefined
  if (r.default === '' && !LIST_KEYS.has(key)) return undefined
  return r.default
}

function readFileObject(
  fileRef: string | Readonly<Record<string, unknown>>,
  cwd: string,
  issues: ConfigIssue[],
): Readonly<Record<string, unknown>> {
  if (typeof fileRef !== 'string') return fileRef
  const file = resolve(cwd, fileRef)
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message
    issues.push({
      key: undefined,
      setting: CONFIG_FILE_ENV,
      source: 'file',
      message: `cannot read '${file}' (${reason})`,
    })
    return {}
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    issues.push({
      key: undefined,
      setting: CONFIG_FILE_ENV,
      source: 'file',
      message: `'${file}' is not valid JSON (${(err as Error).message})`,
    })
    return {}
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    issues.push({
      key: undefined,
      setting: CONFIG_FILE_ENV,
      source: 'file',
      message: `'${file}' must hold a JSON object`,
    })
    return {}
  }
  return parsed as Record<string, unknown>
}

/**
 * Reads, validates and freezes the configuration.
 * @throws ConfigError listing every bad value (one issue per setting).
 */
export function loadConfig(init: LoadConfigInit): GatewayConfig {
  const { env } = init
  const issues: ConfigIssue[] = []
  const fileRef = init.file ?? (env[CONFIG_FILE_ENV] ? env[CONFIG_FILE_ENV] : undefined)
  const cwd = init.cwd ?? process.cwd()
  const fileObj = fileRef === undefined ? {} : readFileObject(fileRef, cwd, issues)

  const known = new Set<string>(CONFIG_TABLE.map((r) => r.key))
  for (const k of Object.keys(fileObj)) {
    if (!known.has(k)) {
      issues.push({
        key: undefined,
        setting: `file:${k}`,
        source: 'file',
        message: `unknown setting (known: ${[...known].join(', ')})`,
      })
    }
  }

  const out: Partial<Record<ConfigKey, unknown>> = {}
  const sourceOf: Partial<Record<ConfigKey, ConfigSource | 'default'>> = {}
  for (const r of CONFIG_TABLE) {
    const envValue = env[r.env]
    let raw: Raw | undefined
    let source: ConfigSource | 'default' = 'default'
    if (envValue !== undefined && (envValue !== '' || LIST_KEYS.has(r.key))) {
      raw = envValue
      source = 'env'
    } else if (Object.hasOwn(fileObj, r.key) && fileObj[r.key] !== undefined) {
      raw = fileObj[r.key] as Raw
      source = 'file'
    } else {
      raw = defaultRaw(r.key)
    }
    sourceOf[r.key] = source
    if (raw === undefined) {
      out[r.key] = undefined
      continue
    }
    try {
      out[r.key] = PARSERS[r.key](raw)
    } catch (err) {
      if (!(err instanceof ValueProblem)) throw err
      const setting = source === 'env' ? r.env : `file:${r.key}`
      const message = r.secret ? err.message.replace(/'[^']*'/g, "'***'") : err.message
      issues.push({ key: r.key, setting, source: source === 'default' ? 'file' : source, message })
    }
  }

  if (out.dhtPort === undefined) out.dhtPort = out.peerPort
  if (
    typeof out.maxConnections === 'number' &&
    typeof out.maxConnectionsPerTorrent === 'number' &&
    out.maxConnectionsPerTorrent > out.maxConnections
  ) {
    const r = tableRow('maxConnectionsPerTorrent')
    issues.push({
      key: r.key,
      setting: sourceOf.maxConnectionsPerTorrent === 'env' ? r.env : `file:${r.key}`,
      source: sourceOf.maxConnectionsPerTorrent === 'env' ? 'env' : 'file',
      message: `${out.maxConnectionsPerTorrent} exceeds CODEX_BT_MAX_CONNECTIONS (${out.maxConnections})`,
    })
  }

  if (issues.length > 0) throw new ConfigError(issues)
  out.dataDir = resolve(cwd, out.dataDir as string)
  return Object.freeze(out as unknown as GatewayConfig)
}

/** `CODEX_BT_*` variables present in `env` that name no setting (likely typos); for a warning. */
export function unknownEnvVars(env: Readonly<Record<string, string | undefined>>): string[] {
  const known = new Set<string>([CONFIG_FILE_ENV, ...CONFIG_TABLE.map((r) => r.env)])
  return Object.keys(env)
    .filter((k) => k.startsWith(ENV_PREFIX) && !known.has(k))
    .sort()
}

/** A copy of the config safe to log: secrets replaced by `'***'`. */
export function redactConfig(config: GatewayConfig): Record<string, unknown> {
  const copy: Record<string, unknown> = { ...config }
  for (const r of CONFIG_TABLE) if (r.secret && copy[r.key] !== undefined) copy[r.key] = '***'
  return copy
}

/** `CONFIG_TABLE` as a Markdown table (for the README). */
export function configTableMarkdown(): string {
  const cell = (s: string) => s.replace(/\|/g, '\\|')
  const lines = ['| Variable | Type | Default | Description |', '| --- | --- | --- | --- |']
  for (const r of CONFIG_TABLE) {
    const dflt = r.default === '' ? '(unset)' : `\`${cell(r.default)}\``
    lines.push(`| \`${r.env}\` | ${cell(r.type)} | ${dflt} | ${cell(r.description)} |`)
  }
  lines.push(
    '',
    `Also \`${CONFIG_FILE_ENV}=/path/config.json\`: a JSON object with the camelCase keys (${CONFIG_TABLE.map((r) => `\`${r.key}\``).join(', ')}); environment variables override it.`,
  )
  return lines.join('\n')
}
