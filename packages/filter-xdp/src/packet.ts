/**
 * Frame builders for tests and tools: Ethernet (optionally one 802.1Q tag), ARP,
 * IPv4 (options, fragments), IPv6 (extension headers, fragments), TCP, UDP, ICMP,
 * ICMPv6 and neighbour solicitations. Addresses are big-endian 32-bit words as in
 * @vipfarm/domain (`addressWords`). Checksums are not computed unless stated.
 */

/** Concatenate byte arrays. */
export const concat = (...parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}

const wordsBytes = (words: ReadonlyArray<number>): Uint8Array => {
  const b = new Uint8Array(words.length * 4)
  const dv = new DataView(b.buffer)
  words.forEach((w, i) => dv.setUint32(4 * i, w >>> 0, false))
  return b
}

/** EtherTypes. */
export const EtherType = { IPV4: 0x0800, IPV6: 0x86dd, ARP: 0x0806, VLAN: 0x8100 } as const

/** Ethernet header options. */
export interface EthernetSpec {
  readonly dst?: Uint8Array
  readonly src?: Uint8Array
  /** 802.1Q VLAN id: adds one tag. */
  readonly vlan?: number
  readonly etherType: number
}

/** A default client MAC (locally administered). */
export const CLIENT_MAC = Uint8Array.of(0x02, 0x00, 0x00, 0x00, 0x00, 0x01)

/** Ethernet frame around a payload. */
export const ethernet = (e: EthernetSpec, payload: Uint8Array): Uint8Array => {
  const hdr = new Uint8Array(e.vlan === undefined ? 14 : 18)
  const dv = new DataView(hdr.buffer)
  hdr.set(e.dst ?? Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff), 0)
  hdr.set(e.src ?? CLIENT_MAC, 6)
  if (e.vlan === undefined) dv.setUint16(12, e.etherType)
  else {
    dv.setUint16(12, EtherType.VLAN)
    dv.setUint16(14, e.vlan & 0xfff)
    dv.setUint16(16, e.etherType)
  }
  return concat(hdr, payload)
}

/** Internet checksum (one's complement sum) of bytes, with an initial partial sum. */
export const inetChecksum = (b: Uint8Array, initial = 0): number => {
  let s = initial
  for (let i = 0; i + 1 < b.length; i += 2) s += (b[i] << 8) | b[i + 1]
  if (b.length & 1) s += b[b.length - 1] << 8
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16)
  return ~s & 0xffff
}

/** IPv4 header options. */
export interface Ipv4Spec {
  readonly src: ReadonlyArray<number>
  readonly dst: ReadonlyArray<number>
  readonly proto: number
  readonly id?: number
  readonly ttl?: number
  /** More-fragments flag. */
  readonly mf?: boolean
  /** Fragment offset in 8-byte units. */
  readonly fragOffset?: number
  /** IP options (padded to a multiple of 4 bytes). */
  readonly options?: Uint8Array
}

/** IPv4 packet (header checksum computed). */
export const ipv4 = (ip: Ipv4Spec, payload: Uint8Array): Uint8Array => {
  const optLen = ip.options ? (ip.options.length + 3) & ~3 : 0
  const hdr = new Uint8Array(20 + optLen)
  const dv = new DataView(hdr.buffer)
  hdr[0] = 0x40 | ((20 + optLen) / 4)
  dv.setUint16(2, hdr.length + payload.length)
  dv.setUint16(4, ip.id ?? 0)
  dv.setUint16(6, ((ip.mf ? 1 : 0) << 13) | ((ip.fragOffset ?? 0) & 0x1fff))
  hdr[8] = ip.ttl ?? 64
  hdr[9] = ip.proto
  dv.setUint32(12, ip.src[0] >>> 0)
  dv.setUint32(16, ip.dst[0] >>> 0)
  if (ip.options) hdr.set(ip.options, 20)
  dv.setUint16(10, inetChecksum(hdr))
  return concat(hdr, payload)
}

/** An IPv6 extension header: hop-by-hop 0, routing 43, destination options 60, AH 51, fragment 44. */
export type Ipv6Ext =
  | { readonly type: 0 | 43 | 60; readonly length?: number }
  | { readonly type: 51; readonly length?: number }
  | { readonly type: 44; readonly offset?: number; readonly more?: boolean; readonly id?: number }

/** IPv6 header options. */
export interface Ipv6Spec {
  readonly src: ReadonlyArray<number>
  readonly dst: ReadonlyArray<number>
  /** Upper-layer protocol after the extension headers. */
  readonly proto: number
  readonly hopLimit?: number
  readonly ext?: ReadonlyArray<Ipv6Ext>
}

const extHeader = (e: Ipv6Ext, next: number): Uint8Array => {
  if (e.type === 44) {
    const h = new Uint8Array(8)
    const dv = new DataView(h.buffer)
    h[0] = next
    dv.setUint16(2, (((e.offset ?? 0) & 0x1fff) << 3) | (e.more ? 1 : 0))
    dv.setUint32(4, (e.id ?? 0) >>> 0)
    return h
  }
  if (e.type === 51) {
    const words = Math.max(3, e.length ?? 3) // AH length in 4-byte units minus 2
    const h = new Uint8Array(words * 4)
    h[0] = next
    h[1] = words - 2
    return h
  }
  const units = e.length ?? 0 // (units + 1) * 8 bytes
  const h = new Uint8Array((units + 1) * 8)
  h[0] = next
  h[1] = units
  if (e.type !== 43) h[2] = 1 // PadN option
  if (e.type !== 43) h[3] = h.length - 4
  return h
}

/** IPv6 packet with extension headers (in order) before the payload. */
export const ipv6 = (ip: Ipv6Spec, payload: Uint8Array): Uint8Array => {
  const exts = ip.ext ?? []
  const parts: Array<Uint8Array> = []
  for (let i = 0; i < exts.length; i++) parts.push(extHeader(exts[i], i + 1 < exts.length ? exts[i + 1].type : ip.proto))
  const body = concat(...parts, payload)
  const hdr = new Uint8Array(40)
  const dv = new DataView(hdr.buffer)
  dv.setUint32(0, 0x60000000)
  dv.setUint16(4, body.length)
  hdr[6] = exts.length ? exts[0].type : ip.proto
  hdr[7] = ip.hopLimit ?? 64
  hdr.set(wordsBytes(ip.src), 8)
  hdr.set(wordsBytes(ip.dst), 24)
  return concat(hdr, body)
}

/** TCP flag bits. */
export const TcpFlag = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const

/** TCP segment (checksum field as given, default 0). */
export const tcp = (
  t: { sport: number; dport: number; flags: number; checksum?: number; options?: Uint8Array; dataOffset?: number },
  payload: Uint8Array = new Uint8Array(0)
): Uint8Array => {
  const optLen = t.options ? (t.options.length + 3) & ~3 : 0
  const hdr = new Uint8Array(20 + optLen)
  const dv = new DataView(hdr.buffer)
  dv.setUint16(0, t.sport)
  dv.setUint16(2, t.dport)
  hdr[12] = (t.dataOffset ?? (20 + optLen) / 4) << 4
  hdr[13] = t.flags
  dv.setUint16(14, 65535)
  dv.setUint16(16, t.checksum ?? 0)
  if (t.options) hdr.set(t.options, 20)
  return concat(hdr, payload)
}

/** UDP datagram (checksum field as given, default 0). */
export const udp = (u: { sport: number; dport: number; checksum?: number }, payload: Uint8Array = new Uint8Array(0)): Uint8Array => {
  const hdr = new Uint8Array(8)
  const dv = new DataView(hdr.buffer)
  dv.setUint16(0, u.sport)
  dv.setUint16(2, u.dport)
  dv.setUint16(4, 8 + payload.length)
  dv.setUint16(6, u.checksum ?? 0)
  return concat(hdr, payload)
}

/** ICMP / ICMPv6 message: type, code, checksum 0, 4 bytes of rest-of-header, payload. */
export const icmp = (type: number, code = 0, payload: Uint8Array = new Uint8Array(4)): Uint8Array =>
  concat(Uint8Array.of(type, code, 0, 0, 0, 0, 0, 0), payload)

/** ARP (Ethernet/IPv4) packet; op 1 request, 2 reply. */
export const arp = (a: {
  op: number
  sha: Uint8Array
  spa: number
  tha?: Uint8Array
  tpa: number
}): Uint8Array => {
  const b = new Uint8Array(28)
  const dv = new DataView(b.buffer)
  dv.setUint16(0, 1)
  dv.setUint16(2, EtherType.IPV4)
  b[4] = 6
  b[5] = 4
  dv.setUint16(6, a.op)
  b.set(a.sha, 8)
  dv.setUint32(14, a.spa >>> 0)
  b.set(a.tha ?? new Uint8Array(6), 18)
  dv.setUint32(24, a.tpa >>> 0)
  return b
}

/** ICMPv6 neighbour solicitation body for `target`, with a source link-layer option unless `sll` is null. */
export const neighborSolicitation = (target: ReadonlyArray<number>, sll: Uint8Array | null = CLIENT_MAC): Uint8Array => {
  const base = concat(Uint8Array.of(135, 0, 0, 0, 0, 0, 0, 0), wordsBytes(target))
  return sll ? concat(base, Uint8Array.of(1, 1), sll) : base
}

/** The solicited-node multicast address ff02::1:ffXX:XXXX of an IPv6 address. */
export const solicitedNode = (words: ReadonlyArray<number>): Array<number> => [
  0xff020000, 0, 1, (0xff000000 | (words[3] & 0xffffff)) >>> 0
]

/** ICMPv6 checksum of an ICMPv6 message between two addresses. */
export const icmp6Checksum = (src: ReadonlyArray<number>, dst: ReadonlyArray<number>, msg: Uint8Array): number => {
  let s = 0
  for (const w of [...src, ...dst]) s += (w >>> 16) + (w & 0xffff)
  s += msg.length + 58
  return inetChecksum(msg, s)
}
