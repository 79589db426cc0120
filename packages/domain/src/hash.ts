/**
 * The one specification of how a packet's affinity key maps to a bucket.
 *
 * Implemented here in TypeScript and in C by the XDP filter
 * (packages/filter-xdp/bpf/hash.h); both test suites read the shared vectors in
 * packages/domain/test-vectors/hash.json.
 *
 * - Addresses are sequences of 32-bit words read big-endian from the wire
 *   (198.18.0.1 is the word 0xC6120001; an IPv6 address is four words).
 * - The affinity decides which words form the key (see {@link affinityKey}).
 * - The key is hashed with Bob Jenkins' lookup3 `hashword`, as the Linux kernel's
 *   `jhash2`, with the farm's seed as `initval`.
 * - The bucket is `(hash * BUCKETS) >> 32` (the kernel's `reciprocal_scale`).
 */

/** Number of buckets in every bucket table: fine enough for weights of 128 servers. */
export const BUCKETS = 1024

/** Affinity modes and the numeric codes the filter's rule map uses. */
export const Affinity = {
  "client-ip": 0,
  "client-ip-port": 1,
  "client-network": 2,
  "symmetric-pair": 3,
  "per-packet": 4
} as const

/** Name of an affinity mode. */
export type AffinityName = keyof typeof Affinity

/** All affinity names, in code order. */
export const affinityNames = Object.keys(Affinity) as ReadonlyArray<AffinityName>

const rol32 = (x: number, k: number): number => ((x << k) | (x >>> (32 - k))) >>> 0

/** Linux `jhash2` (lookup3 hashword) over 32-bit words with `initval`; returns an unsigned 32-bit value. */
export const jhash2 = (words: ReadonlyArray<number>, initval: number): number => {
  let length = words.length
  let a = (0xdeadbeef + (length << 2) + initval) >>> 0
  let b = a
  let c = a
  let i = 0
  while (length > 3) {
    a = (a + words[i]) >>> 0
    b = (b + words[i + 1]) >>> 0
    c = (c + words[i + 2]) >>> 0
    // __jhash_mix
    a = (a - c) >>> 0; a = (a ^ rol32(c, 4)) >>> 0; c = (c + b) >>> 0
    b = (b - a) >>> 0; b = (b ^ rol32(a, 6)) >>> 0; a = (a + c) >>> 0
    c = (c - b) >>> 0; c = (c ^ rol32(b, 8)) >>> 0; b = (b + a) >>> 0
    a = (a - c) >>> 0; a = (a ^ rol32(c, 16)) >>> 0; c = (c + b) >>> 0
    b = (b - a) >>> 0; b = (b ^ rol32(a, 19)) >>> 0; a = (a + c) >>> 0
    c = (c - b) >>> 0; c = (c ^ rol32(b, 4)) >>> 0; b = (b + a) >>> 0
    length -= 3
    i += 3
  }
  if (length === 0) return c
  if (length === 3) c = (c + words[i + 2]) >>> 0
  if (length >= 2) b = (b + words[i + 1]) >>> 0
  a = (a + words[i]) >>> 0
  // __jhash_final
  c = (c ^ b) >>> 0; c = (c - rol32(b, 14)) >>> 0
  a = (a ^ c) >>> 0; a = (a - rol32(c, 11)) >>> 0
  b = (b ^ a) >>> 0; b = (b - rol32(a, 25)) >>> 0
  c = (c ^ b) >>> 0; c = (c - rol32(b, 16)) >>> 0
  a = (a ^ c) >>> 0; a = (a - rol32(c, 4)) >>> 0
  b = (b ^ a) >>> 0; b = (b - rol32(a, 14)) >>> 0
  c = (c ^ b) >>> 0; c = (c - rol32(b, 24)) >>> 0
  return c
}

/** The farm's hash seed: FNV-1a (32 bit) of the farm name's UTF-8 bytes. */
export const farmSeed = (farm: string): number => {
  let h = 0x811c9dc5
  for (const byte of new TextEncoder().encode(farm)) {
    h ^= byte
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h >>> 0
}

/** The farm's virtual MAC: locally administered unicast 02:fa followed by the seed's four bytes. */
export const virtualMac = (farm: string): string => {
  const s = farmSeed(farm)
  const bytes = [0x02, 0xfa, s >>> 24, (s >>> 16) & 0xff, (s >>> 8) & 0xff, s & 0xff]
  return bytes.map((b) => b.toString(16).padStart(2, "0")).join(":")
}

/** What the hash needs to know of a packet. Addresses are 1 (IPv4) or 4 (IPv6) words. */
export interface FlowIdentity {
  readonly src: ReadonlyArray<number>
  readonly dst: ReadonlyArray<number>
  readonly sport: number
  readonly dport: number
  /**
   * Per-packet discriminator: the IPv4 identification field; for IPv6 the UDP checksum
   * (or, for a fragment, the fragment header's identification).
   */
  readonly packetId: number
  /** True for every fragment of a fragmented datagram (first one included). */
  readonly fragment: boolean
}

const lexLess = (a: ReadonlyArray<number>, b: ReadonlyArray<number>): boolean => {
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return a[i] < b[i]
  }
  return false
}

/**
 * The words hashed for a packet under an affinity.
 *
 * - client-ip: the source address.
 * - client-ip-port: source address, source port.
 * - client-network: the source /24 (IPv4) or /48 (IPv6).
 * - symmetric-pair: the lower of (source, destination) then the higher, so both directions agree.
 * - per-packet: source address, source port, packet id.
 *
 * Fragments carry no ports, so every fragment of a datagram is hashed on the source
 * address alone (per-packet: source address and the datagram's id): all fragments of a
 * datagram go to one server.
 */
export const affinityKey = (affinity: AffinityName, f: FlowIdentity): Array<number> => {
  const src = f.src
  switch (affinity) {
    case "client-ip":
      return [...src]
    case "client-ip-port":
      return f.fragment ? [...src] : [...src, f.sport & 0xffff]
    case "client-network":
      return src.length === 1 ? [(src[0] & 0xffffff00) >>> 0] : [src[0], (src[1] & 0xffff0000) >>> 0]
    case "symmetric-pair":
      return lexLess(f.dst, src) ? [...f.dst, ...src] : [...src, ...f.dst]
    case "per-packet":
      return f.fragment ? [...src, f.packetId >>> 0] : [...src, f.sport & 0xffff, f.packetId >>> 0]
  }
}

/** The bucket of a 32-bit hash: `(hash * BUCKETS) >> 32`. */
export const bucketOfHash = (hash: number): number => Math.floor((hash * BUCKETS) / 4294967296)

/** The bucket a packet falls into under an affinity, for a farm seed. */
export const bucketOf = (affinity: AffinityName, f: FlowIdentity, seed: number): number =>
  bucketOfHash(jhash2(affinityKey(affinity, f), seed))

/** Parse an IPv4 or IPv6 address text into its words (big-endian 32-bit). */
export const addressWords = (address: string): Array<number> => {
  if (address.includes(":")) return ipv6Words(address)
  const parts = address.split(".")
  if (parts.length !== 4) throw new Error(`not an IP address: ${address}`)
  let w = 0
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) throw new Error(`not an IP address: ${address}`)
    w = w * 256 + Number(p)
  }
  return [w >>> 0]
}

const ipv6Words = (address: string): Array<number> => {
  const bad = () => new Error(`not an IP address: ${address}`)
  const halves = address.split("::")
  if (halves.length > 2) throw bad()
  const parse = (s: string): Array<number> => {
    if (s === "") return []
    const groups = s.split(":")
    const out: Array<number> = []
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i]
      if (g.includes(".") && i === groups.length - 1) {
        const [w] = addressWords(g)
        out.push(w >>> 16, w & 0xffff)
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(g)) throw bad()
        out.push(parseInt(g, 16))
      }
    }
    return out
  }
  const head = parse(halves[0])
  const tail = halves.length === 2 ? parse(halves[1]) : []
  const missing = 8 - head.length - tail.length
  if ((halves.length === 1 && missing !== 0) || missing < 0 || (halves.length === 2 && missing < 1)) throw bad()
  const groups = [...head, ...Array<number>(halves.length === 2 ? missing : 0).fill(0), ...tail]
  return [0, 1, 2, 3].map((i) => ((groups[2 * i] << 16) | groups[2 * i + 1]) >>> 0)
}

/** Format address words back to text (IPv4 dotted quad or full IPv6 groups, zero-compressed). */
export const formatAddress = (words: ReadonlyArray<number>): string => {
  if (words.length === 1) {
    const w = words[0]
    return [w >>> 24, (w >>> 16) & 0xff, (w >>> 8) & 0xff, w & 0xff].join(".")
  }
  const groups = words.flatMap((w) => [w >>> 16, w & 0xffff])
  let best = -1
  let bestLen = 1
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLen) { best = i; bestLen = j - i }
    i = j
  }
  const hex = groups.map((g) => g.toString(16))
  if (best < 0) return hex.join(":")
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLen).join(":")}`
}
