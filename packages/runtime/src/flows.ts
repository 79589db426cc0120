/**
 * Flows this server holds, by bucket: TCP sockets from /proc/net/tcp{,6} and UDP flows from
 * the filter's flow map. The controller completes a graceful hand-off once the old owner
 * holds no more flows in its moving-out buckets.
 */
import { readFileSync } from "node:fs"
import { addressWords, type AffinityName, bucketOf, BUCKETS, portRanges, ruleTables, type Vip } from "@vipfarm/domain"

/** A TCP socket of the host: client and local ends, state code. */
export interface HostSocket {
  readonly local: ReadonlyArray<number>
  readonly localPort: number
  readonly remote: ReadonlyArray<number>
  readonly remotePort: number
  readonly state: number
}

/** TCP states that are no connection to keep: SYN_SENT (outgoing), TIME_WAIT, CLOSE, LISTEN. */
const NOT_A_FLOW = new Set([0x02, 0x06, 0x07, 0x0a])

const swapWord = (hex: string): number => {
  const b = hex.match(/../g)!.reverse().join("")
  return parseInt(b, 16) >>> 0
}

const parseAddr = (text: string): { words: Array<number>; port: number } => {
  const [addr, port] = text.split(":")
  const words: Array<number> = []
  for (let i = 0; i < addr.length; i += 8) words.push(swapWord(addr.slice(i, i + 8)))
  return { words, port: parseInt(port, 16) }
}

/** Parse /proc/net/tcp or /proc/net/tcp6 text. */
export const parseProcNetTcp = (text: string): Array<HostSocket> =>
  text
    .split("\n")
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length > 4)
    .map((f) => {
      const l = parseAddr(f[1])
      const r = parseAddr(f[2])
      return { local: l.words, localPort: l.port, remote: r.words, remotePort: r.port, state: parseInt(f[3], 16) }
    })

/** The host's TCP connections (both families) that a hand-off must keep: listeners and TIME_WAIT excluded. */
export const hostTcpSockets = (): Array<HostSocket> => {
  const out: Array<HostSocket> = []
  for (const f of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    try {
      out.push(...parseProcNetTcp(readFileSync(f, "utf8")).filter((s) => !NOT_A_FLOW.has(s.state)))
    } catch {
      // no IPv6 on this host
    }
  }
  return out
}

const sameWords = (a: ReadonlyArray<number>, b: ReadonlyArray<number>) => a.length === b.length && a.every((w, i) => w === b[i])

/** A compiled view of the VIP rules for classifying flows: (vip words, proto, port) → table/affinity. */
export const classifier = (vips: ReadonlyArray<Vip>) => {
  const tables = ruleTables(vips)
  const compiled = vips.map((v, i) => ({
    words: addressWords(v.address),
    rules: v.rules.map((r, j) => ({ proto: r.proto === "tcp" ? 6 : 17, affinity: r.affinity as AffinityName, table: tables[i][j], ranges: portRanges(r) }))
  }))
  return (vip: ReadonlyArray<number>, proto: number, port: number): { table: number; affinity: AffinityName } | null => {
    const v = compiled.find((c) => sameWords(c.words, vip))
    if (v === undefined) return null
    const r = v.rules.find((x) => x.proto === proto && x.ranges.some((g) => port >= g.lo && port <= g.hi))
    return r === undefined ? null : { table: r.table, affinity: r.affinity }
  }
}

/** A UDP flow as the filter's flow map holds it. */
export interface UdpFlow {
  readonly src: ReadonlyArray<number>
  readonly dst: ReadonlyArray<number>
  readonly sport: number
  readonly dport: number
}

/**
 * The host's flows per bucket (index table*BUCKETS+bucket): TCP sockets and UDP flows
 * whose local end is a VIP, classified by the VIP's rules. IPv4-mapped sockets of an
 * IPv6 listener count as IPv4.
 */
export const flowsPerBucket = (
  vips: ReadonlyArray<Vip>,
  seed: number,
  sockets: ReadonlyArray<HostSocket>,
  udp: ReadonlyArray<UdpFlow>
): Uint32Array => {
  const out = new Uint32Array(16 * BUCKETS)
  const classify = classifier(vips)
  const count = (proto: number, src: ReadonlyArray<number>, dst: ReadonlyArray<number>, sport: number, dport: number) => {
    const mapped = src.length === 4 && src[0] === 0 && src[1] === 0 && src[2] === 0xffff
    const s = mapped ? [src[3]] : src
    const d = mapped && dst.length === 4 ? [dst[3]] : dst
    const c = classify(d, proto, dport)
    if (c === null) return
    out[c.table * BUCKETS + bucketOf(c.affinity, { src: s, dst: d, sport, dport, packetId: 0, fragment: false }, seed)]++
  }
  for (const s of sockets) count(6, s.remote, s.local, s.remotePort, s.localPort)
  for (const f of udp) count(17, f.src, f.dst, f.sport, f.dport)
  return out
}

/** How many of the host's flows fall in buckets whose code in `mask` is `code` (e.g. its moving-out buckets). */
export const countFlowsIn = (
  mask: Uint8Array,
  code: number,
  vips: ReadonlyArray<Vip>,
  seed: number,
  sockets: ReadonlyArray<HostSocket>,
  udp: ReadonlyArray<UdpFlow>
): number => {
  const per = flowsPerBucket(vips, seed, sockets, udp)
  let n = 0
  for (let i = 0; i < per.length && i < mask.length; i++) if (mask[i] === code) n += per[i]
  return n
}
