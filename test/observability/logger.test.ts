/** Logger: redaction of secrets, child bindings, the silent logger. */
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { describe, test } from 'node:test'
import {
  childLogger,
  componentLogger,
  createLogger,
  createSilentLogger,
  REDACTED,
} from '../../gateway/observability/logger.ts'

function capture(): { stream: Writable; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = []
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'))
      cb()
    },
  })
  return {
    stream,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  }
}

describe('createLogger', () => {
  test('redacts authorization headers, tokens, passwords and Codex credentials', () => {
    const out = capture()
    const log = createLogger({ level: 'info', destination: out.stream })
    log.info(
      {
        req: { headers: { authorization: 'Bearer s3cr3t-a', cookie: 'sid=s3cr3t-b', host: 'x' } },
        headers: { authorization: 'Basic s3cr3t-c' },
        token: 's3cr3t-d',
        config: { apiToken: 's3cr3t-e', codexAuth: { kind: 'basic', password: 's3cr3t-f' }, apiPort: 8070 },
        upstream: { headers: { authorization: 'Bearer s3cr3t-g' } },
      },
      'hello',
    )
    const [line] = out.lines()
    const text = JSON.stringify(line)
    assert.ok(!/s3cr3t/.test(text), text)
    assert.ok(text.includes(REDACTED))
    const l = line as {
      req: { headers: { host: string } }
      config: { apiPort: number }
      msg: string
      level: string
    }
    assert.equal(l.req.headers.host, 'x', 'other fields are kept')
    assert.equal(l.config.apiPort, 8070)
    assert.equal(l.msg, 'hello')
    assert.equal(l.level, 'info')
  })

  test('child loggers carry structured bindings; levels filter', () => {
    const out = capture()
    const root = createLogger({ level: 'info', destination: out.stream, base: { version: '1.2.3' } })
    const engine = componentLogger(root, 'engine')
    const torrent = childLogger(engine, { infoHash: 'ab'.repeat(20), peer: '127.0.0.1:6881' })
    torrent.info({ piece: 3 }, 'hash failed')
    torrent.debug('not shown at info')
    const lines = out.lines()
    assert.equal(lines.length, 1)
    assert.equal(lines[0]!.component, 'engine')
    assert.equal(lines[0]!.infoHash, 'ab'.repeat(20))
    assert.equal(lines[0]!.peer, '127.0.0.1:6881')
    assert.equal(lines[0]!.piece, 3)
    assert.equal(lines[0]!.version, '1.2.3')
    assert.equal(typeof lines[0]!.time, 'string')
  })

  test('errors are serialised with type, message and stack', () => {
    const out = capture()
    const log = createLogger({ destination: out.stream })
    log.error({ err: new TypeError('bad thing') }, 'failed')
    const err = out.lines()[0]!.err as { type: string; message: string; stack: string }
    assert.equal(err.type, 'TypeError')
    assert.equal(err.message, 'bad thing')
    assert.match(err.stack, /TypeError: bad thing/)
  })

  test('the silent logger writes nothing and still makes children', () => {
    const log = createSilentLogger()
    assert.equal(log.level, 'silent')
    const child = componentLogger(log, 'x')
    assert.equal(child.isLevelEnabled('error'), false)
  })
})
