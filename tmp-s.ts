import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startLocalCodexNode } from './codex-client/local-node/index.ts'
const dir = await mkdtemp(join(tmpdir(), 'cn-'))
const node = await startLocalCodexNode({ dataDir: dir })
const api = node.apiUrl
const show = async (label: string, r: Response) => console.log(label, r.status, r.headers.get('content-type'), JSON.stringify((await r.text()).slice(0, 200)))
await show('upload', await fetch(api + '/data', { method: 'POST', body: new TextEncoder().encode('some file contents') }))
await show('space', await fetch(api + '/space'))
await show('list', await fetch(api + '/data'))
const r = await fetch(api + '/data/zDvZRwzm1ePSzKSXt57D5YxHwcSDmsCyYN65wW4HT7fuX9HrzFXy'); console.log([...r.headers]); await show('dl', r)
await show('exists', await fetch(api + '/data/zDvZRwzm1ePSzKSXt57D5YxHwcSDmsCyYN65wW4HT7fuX9HrzFXy/exists'))
await show('bad', await fetch(api + '/data/invalid-cid/exists'))
await show('mime', await fetch(api + '/data', { method: 'POST', body: 'x', headers: {'content-type': 'text/plain;charset=UTF-8'} }))
await show('fn', await fetch(api + '/data', { method: 'POST', body: new Uint8Array(3), headers: {'content-disposition': 'attachment; filename="exam*ple.txt"'} }))
await show('empty', await fetch(api + '/data', { method: 'POST', body: new Uint8Array(0) }))
await show('up2', await fetch(api + '/data', { method: 'POST', body: new Uint8Array(200000).fill(7), headers: {'content-type': 'application/octet-stream', 'content-disposition': 'attachment; filename="a.bin"'} }))
await show('list', await fetch(api + '/data'))
await show('peerid', await fetch(api + '/peerid', { headers: { accept: 'text/plain' } }))
await show('spr', await fetch(api + '/spr'))
await show('sales', await fetch(api + '/sales/slots'))
await show('404', await fetch(api + '/nope'))
await show('del', await fetch(api + '/data/zDvZRwzm1ePSzKSXt57D5YxHwcSDmsCyYN65wW4HT7fuX9HrzFXy', { method: 'DELETE' }))
await show('space', await fetch(api + '/space'))
await show('info', await fetch(api + '/debug/info'))
await node.close()
