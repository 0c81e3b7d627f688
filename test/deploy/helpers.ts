/** Shared helpers of the deploy tests: repository paths, Prometheus binaries, PromQL parsing. */
import { accessSync, constants, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parse, parseAllDocuments } from 'yaml'

export const REPO = fileURLToPath(new URL('../../', import.meta.url))
export const DEPLOY = fileURLToPath(new URL('../../deploy/', import.meta.url))

export function readText(relativeToRepo: string): string {
  return readFileSync(REPO + relativeToRepo, 'utf8')
}

export function readYaml<T>(relativeToRepo: string): T {
  return parse(readText(relativeToRepo)) as T
}

export function readYamlDocuments(relativeToRepo: string): unknown[] {
  return parseAllDocuments(readText(relativeToRepo)).map((d) => {
    if (d.errors.length > 0)
      throw new Error(`${relativeToRepo}: ${d.errors.map((e) => e.message).join('; ')}`)
    return d.toJS() as unknown
  })
}

/** Finds an executable: `$ENV_VAR`, then /usr/bin, /usr/local/bin. Throws a clear error if absent. */
export function findBinary(name: string, envVar: string): string {
  const candidates = [process.env[envVar], `/usr/bin/${name}`, `/usr/local/bin/${name}`].filter(
    (c): c is string => typeof c === 'string' && c !== '',
  )
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK)
      return c
    } catch {
      // try the next one
    }
  }
  throw new Error(`${name} not found (install the Debian package 'prometheus', or set ${envVar})`)
}

const KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'offset',
  'inf',
  'nan',
  'atan2',
])

/**
 * Metric names an expression selects (PromQL subset used by our rules and dashboards): string
 * literals, label matchers, ranges and grouping label lists are removed, then every identifier
 * not followed by `(` (a function or aggregation) and not a keyword is a metric name.
 */
export function metricNamesIn(expr: string): string[] {
  let s = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
  s = s.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/gi, ' ')
  const names = new Set<string>()
  for (const m of s.matchAll(/(?<![\w.:$])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![a-zA-Z0-9_:]|\s*\()/g)) {
    const word = m[1]!
    if (KEYWORDS.has(word.toLowerCase())) continue
    names.add(word)
  }
  return [...names]
}

/** Grafana template variables replaced by values Prometheus accepts. */
export function expandGrafanaVariables(expr: string): string {
  return expr
    .replaceAll('$__rate_interval', '1m')
    .replaceAll('$__interval', '15s')
    .replaceAll('$__range', '1h')
}

export interface DashboardPanel {
  readonly title: string
  readonly type: string
  readonly datasource?: { uid?: string }
  readonly targets?: readonly { expr?: string; datasource?: { uid?: string } }[]
  readonly panels?: readonly DashboardPanel[]
}

/** Every `{ title, expr }` of a Grafana dashboard (rows included). */
export function dashboardExpressions(dashboard: {
  panels: readonly DashboardPanel[]
}): { title: string; expr: string }[] {
  const out: { title: string; expr: string }[] = []
  const walk = (panels: readonly DashboardPanel[]): void => {
    for (const p of panels) {
      for (const t of p.targets ?? []) if (t.expr) out.push({ title: p.title, expr: t.expr })
      if (p.panels) walk(p.panels)
    }
  }
  walk(dashboard.panels)
  return out
}

export interface AlertRule {
  readonly alert?: string
  readonly record?: string
  readonly expr: string
  readonly for?: string
}

export function alertRules(): AlertRule[] {
  const doc = readYaml<{ groups: { rules: AlertRule[] }[] }>('deploy/prometheus/alerts.yml')
  return doc.groups.flatMap((g) => g.rules)
}
