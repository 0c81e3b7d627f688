/**
 * A fixed-size bitfield over piece indices, in BEP3 bit order.
 *
 * BEP3 (`bitfield` message): "The high bit in the first byte corresponds to piece index 0. Bits
 * that are cleared indicated a missing piece, and set bits indicate a valid and available piece.
 * Spare bits at the end are set to zero." Used for our own "have" set, each peer's "have" set and
 * the storage `completion()` state. Pure: no I/O.
 */

/** Thrown when bytes received from a peer or read from disk are not a valid bitfield. */
export class BitfieldError extends Error {
  readonly code: 'GW_ERR_BITFIELD_LENGTH' | 'GW_ERR_BITFIELD_SPARE_BITS' | 'GW_ERR_BITFIELD_INDEX'

  constructor(code: BitfieldError['code'], message: string) {
    super(message)
    this.name = 'BitfieldError'
    this.code = code
  }
}

/** Number of bytes a bitfield for `size` pieces occupies on the wire (BEP3). */
export function bitfieldByteLength(size: number): number {
  return Math.ceil(size / 8)
}

/** A mutable set of piece indices in `[0, size)`, stored as BEP3 bytes, with a cached count. */
export class Bitfield {
  /** Number of pieces (bits) this bitfield covers. */
  readonly size: number
  readonly #bytes: Uint8Array
  #count = 0

  /** An empty bitfield (no bit set) for `size` pieces. */
  constructor(size: number) {
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new BitfieldError('GW_ERR_BITFIELD_LENGTH', `invalid bitfield size ${size}`)
    }
    this.size = size
    this.#bytes = new Uint8Array(bitfieldByteLength(size))
  }

  /**
   * Parses BEP3 bytes (copying them). Throws `BitfieldError` if the length is not exactly
   * `ceil(size / 8)` or a spare bit past `size` is set (BEP3: "Spare bits at the end are set to zero").
   */
  static fromBytes(bytes: Uint8Array, size: number): Bitfield {
    const field = new Bitfield(size)
    if (bytes.length !== field.#bytes.length) {
      throw new BitfieldError(
        'GW_ERR_BITFIELD_LENGTH',
        `bitfield has ${bytes.length} bytes, expected ${field.#bytes.length} for ${size} pieces`,
      )
    }
    const spare = field.#bytes.length * 8 - size
    if (spare > 0) {
      const last = bytes[bytes.length - 1] ?? 0
      if ((last & ((1 << spare) - 1)) !== 0) {
        throw new BitfieldError('GW_ERR_BITFIELD_SPARE_BITS', 'bitfield has spare bits set')
      }
    }
    field.#bytes.set(bytes)
    let count = 0
    for (const byte of field.#bytes) count += popcount8(byte)
    field.#count = count
    return field
  }

  /** A bitfield with every piece set (e.g. BEP6 `have all`, or a seed's own state). */
  static full(size: number): Bitfield {
    const field = new Bitfield(size)
    field.setAll()
    return field
  }

  /** Number of set bits. O(1). */
  get count(): number {
    return this.#count
  }

  /** True when every piece is set (a 0-piece bitfield is complete). */
  get complete(): boolean {
    return this.#count === this.size
  }

  /** True when no piece is set. */
  get empty(): boolean {
    return this.#count === 0
  }

  /** Whether `index` is set; out-of-range indices read as false. */
  has(index: number): boolean {
    if (!Number.isInteger(index) || index < 0 || index >= this.size) return false
    return ((this.#bytes[index >> 3] ?? 0) & (0x80 >> (index & 7))) !== 0
  }

  /** Sets `index`; returns true if it was not set before. Throws on out-of-range indices. */
  set(index: number): boolean {
    this.#check(index)
    const mask = 0x80 >> (index & 7)
    const byte = this.#bytes[index >> 3] ?? 0
    if ((byte & mask) !== 0) return false
    this.#bytes[index >> 3] = byte | mask
    this.#count++
    return true
  }

  /** Clears `index`; returns true if it was set before. Throws on out-of-range indices. */
  clear(index: number): boolean {
    this.#check(index)
    const mask = 0x80 >> (index & 7)
    const byte = this.#bytes[index >> 3] ?? 0
    if ((byte & mask) === 0) return false
    this.#bytes[index >> 3] = byte & ~mask
    this.#count--
    return true
  }

  /** Sets every piece. */
  setAll(): void {
    this.#bytes.fill(0xff)
    const spare = this.#bytes.length * 8 - this.size
    if (spare > 0) this.#bytes[this.#bytes.length - 1] = (0xff << spare) & 0xff
    this.#count = this.size
  }

  /** Clears every piece. */
  clearAll(): void {
    this.#bytes.fill(0)
    this.#count = 0
  }

  /** A copy of the BEP3 wire bytes (spare bits zero). */
  toBytes(): Uint8Array {
    return this.#bytes.slice()
  }

  /** An independent copy. */
  clone(): Bitfield {
    return Bitfield.fromBytes(this.#bytes, this.size)
  }

  /** Set indices in ascending order (skips zero bytes, so sparse fields iterate quickly). */
  *setIndices(): Generator<number> {
    for (let i = 0; i < this.#bytes.length; i++) {
      const byte = this.#bytes[i] ?? 0
      if (byte === 0) continue
      for (let bit = 0; bit < 8; bit++) {
        if ((byte & (0x80 >> bit)) !== 0) yield i * 8 + bit
      }
    }
  }

  /** Missing (clear) indices in ascending order (skips full bytes). */
  *missingIndices(): Generator<number> {
    for (let i = 0; i < this.#bytes.length; i++) {
      const byte = this.#bytes[i] ?? 0
      if (byte === 0xff) continue
      for (let bit = 0; bit < 8; bit++) {
        const index = i * 8 + bit
        if (index >= this.size) return
        if ((byte & (0x80 >> bit)) === 0) yield index
      }
    }
  }

  #check(index: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.size) {
      throw new BitfieldError('GW_ERR_BITFIELD_INDEX', `piece index ${index} out of range [0, ${this.size})`)
    }
  }
}

function popcount8(byte: number): number {
  let b = byte - ((byte >> 1) & 0x55)
  b = (b & 0x33) + ((b >> 2) & 0x33)
  return (b + (b >> 4)) & 0x0f
}
