/**
 * A synthetic libp2p identity for the local node, so `/peerid`, `/spr` and `/debug/info` answer
 * with values of the right shape: a secp256k1 key (kept in `<dataDir>/node-key`, stable across
 * restarts), its peer id (`16Uiu2…`) and a signed peer record (`spr:…`, a libp2p signed envelope
 * over a PeerRecord that lists one loopback address). The node has no peers and no DHT.
 */
import { createECDH, createHash, createPrivateKey, sign } from 'node:crypto'
import { readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { base58btc } from 'multiformats/bases/base58'

export interface NodeIdentity {
  /** base58btc peer id. */
  readonly peerId: string
  /** `spr:` + base64url signed envelope. */
  readonly spr: string
  /** Multiaddrs the (absent) libp2p transport would listen on. */
  readonly addrs: readonly string[]
  /** Hex node id of the discovery table entry. */
  readonly nodeId: string
}

function varint(n: number): number[] {
  const out: number[] = []
  let v = n
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80)
    v >>>= 7
  }
  out.push(v)
  return out
}

function field(num: number, bytes: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(varint(num * 8 + 2)), Buffer.from(varint(bytes.length)), bytes])
}

function uintField(num: number, value: number): Buffer {
  return Buffer.from([...varint(num * 8), ...varint(value)])
}

async function loadKey(dataDir: string): Promise<Buffer> {
  const path = join(dataDir, 'node-key')
  try {
    const hex = (await readFile(path, 'utf8')).trim()
    if (/^[0-9a-f]{64}$/.test(hex)) return Buffer.from(hex, 'hex')
  } catch {
    // create below
  }
  const ecdh = createECDH('secp256k1')
  ecdh.generateKeys()
  const key = ecdh.getPrivateKey()
  const tmp = `${path}.tmp`
  await writeFile(tmp, key.toString('hex'), { mode: 0o600 })
  await rename(tmp, path)
  return key
}

const LISTEN_PORT = 8070

export async function loadIdentity(dataDir: string): Promise<NodeIdentity> {
  const priv = await loadKey(dataDir)
  const ecdh = createECDH('secp256k1')
  ecdh.setPrivateKey(priv)
  const compressed = ecdh.getPublicKey(null, 'compressed')
  const uncompressed = ecdh.getPublicKey()
  const publicKeyProto = Buffer.concat([uintField(1, 2), field(2, compressed)]) // KeyType Secp256k1 = 2
  const peerIdBytes = Buffer.concat([Buffer.from([0x00, publicKeyProto.length]), publicKeyProto])
  const peerId = base58btc.baseEncode(peerIdBytes)

  const multiaddr = Buffer.from([0x04, 127, 0, 0, 1, 0x06, LISTEN_PORT >> 8, LISTEN_PORT & 0xff])
  const record = Buffer.concat([field(1, peerIdBytes), uintField(2, 1), field(3, field(1, multiaddr))])
  const payloadType = Buffer.from([0x03, 0x01]) // multicodec libp2p-peer-record
  const domain = Buffer.from('libp2p-routing-state')
  const signed = Buffer.concat([
    Buffer.from(varint(domain.length)),
    domain,
    Buffer.from(varint(payloadType.length)),
    payloadType,
    Buffer.from(varint(record.length)),
    record,
  ])
  const key = createPrivateKey({
    format: 'jwk',
    key: {
      kty: 'EC',
      crv: 'secp256k1',
      d: priv.toString('base64url'),
      x: uncompressed.subarray(1, 33).toString('base64url'),
      y: uncompressed.subarray(33, 65).toString('base64url'),
    },
  })
  const signature = sign('sha256', signed, key)
  const envelope = Buffer.concat([
    field(1, publicKeyProto),
    field(2, payloadType),
    field(3, record),
    field(5, signature),
  ])
  return {
    peerId,
    spr: `spr:${envelope.toString('base64url')}`,
    addrs: [`/ip4/127.0.0.1/tcp/${LISTEN_PORT}`],
    nodeId: createHash('sha256').update(uncompressed.subarray(1)).digest('hex'),
  }
}

/**
 * True when Codex would answer `text/plain` for this `Accept` header. Codex compares
 * `preferredContentType()` (chronos, called without candidate types) with `"text/plain"`: that is
 * the media type of the FIRST entry with the highest `q`, compared exactly. So
 * `text/plain, application/json` → text; `text/*` → JSON; `text/html, text/plain` → JSON; no or a
 * malformed `Accept` (chronos then assumes any type) → JSON.
 */
export function prefersText(accept: string | undefined): boolean {
  if (accept === undefined || accept.trim() === '') return false
  let best: string | undefined
  let bestQ = -1
  for (const part of accept.split(',')) {
    const [rangeRaw, ...params] = part.split(';')
    const range = (rangeRaw ?? '').trim().toLowerCase()
    if (!/^[^\s/]+\/[^\s/]+$/.test(range)) return false // malformed: chronos assumes any type
    let q = 1
    for (const p of params) {
      const [k, v] = p.split('=')
      if (k?.trim().toLowerCase() !== 'q') continue
      q = Number(v?.trim())
      if (!Number.isFinite(q) || q < 0 || q > 1) return false
    }
    if (q > bestQ) {
      best = range
      bestQ = q
    }
  }
  return best === 'text/plain'
}
