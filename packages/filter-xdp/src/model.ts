/**
 * A TypeScript model of the XDP filter's decision (bpf/vipfarm.bpf.c), branch for
 * branch: `parsePacket` mirrors the C parser, `decide` the C decision. The simulator
 * builds `Parsed` values directly; the differential test checks model == kernel.
 */
import { affinityNames, bucketOf, BUCKETS, type FlowIdentity } from "@vipfarm/domain"
import { LocalBucket, MAX_TABLES } from "@vipfarm/domain"
import { vipKey } from "./encode.ts"
import type { FilterConfig, VipEntry, VipRule } from "./types.ts"
import { Reason, actionOfReason, REASONS, type Action, type ReasonCode } from "./verdict.ts"

/** How far the parser got: "other" frames (not ARP/IP, or unreadable destination) pass untouched. */
export type ParsedKind = "other" | "arp" | "ip"

/** What the filter knows of a frame. Addresses are big-endian words (1 or 4). */
export interface Parsed extends FlowIdentity {
  kind: ParsedKind
  /** Frame length in bytes (counted in the verdict byte counters). */
  len: number
  /** Offset of the L3 header (14, or 18 with a VLAN tag). */
  l3: number
  family: 4 | 6
  src: Array<number>
  dst: Array<number>
  /** IP protocol (after IPv6 extension headers; the fragment header's next header for fragments). */
  proto: number
  /** Invalid IP header, truncated extension header chain or L4 header. */
  malformed: boolean
  /** True for every fragment (MF or offset ≠ 0), first included. */
  fragment: boolean
  sport: number
  dport: number
  packetId: number
  tcpFlags: number
  icmpType: number
  /** IPv6 extension headers walked. */
  ext: number
  /** IPv6 neighbour discovery message (ICMPv6 133..137, unfragmented, well formed). */
  nd: boolean
  /** Target of a neighbour solicitation directly after the IPv6 header (24 bytes present), else null. */
  nsTarget: Array<number> | null
  /** ARP: Ethernet/IPv4 ARP with all 28 bytes present. */
  arpOp: number
  arpSpa: number
  arpTpa: number
}

/** A Parsed value with every field at its neutral value. */
export const emptyParsed = (): Parsed => ({
  kind: "other", len: 0, l3: 14, family: 4, src: [0], dst: [0], proto: 0, malformed: false, fragment: false,
  sport: 0, dport: 0, packetId: 0, tcpFlags: 0, icmpType: 0, ext: 0, nd: false, nsTarget: null,
  arpOp: 0, arpSpa: 0, arpTpa: 0
})

const be16 = (b: Uint8Array, o: number): number => (b[o] << 8) | b[o + 1]
const be32 = (b: Uint8Array, o: number): number => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0
const words = (b: Uint8Array, o: number, n: number): Array<number> => {
  const w = new Array<number>(n)
  for (let i = 0; i < n; i++) w[i] = be32(b, o + 4 * i)
  return w
}
const isExt = (nh: number): boolean => nh === 0 || nh === 43 || nh === 60 || nh === 51 || nh === 44

const parseL4 = (p: Parsed, b: Uint8Array, o: number): void => {
  const len = b.length
  if (p.proto === 6) {
    if (o + 20 > len) return void (p.malformed = true)
    const doff = (b[o + 12] >> 4) * 4
    if (doff < 20 || o + doff > len) return void (p.malformed = true)
    p.sport = be16(b, o)
    p.dport = be16(b, o + 2)
    p.tcpFlags = b[o + 13]
    if (p.family === 6) p.packetId = be16(b, o + 16)
  } else if (p.proto === 17) {
    if (o + 8 > len) return void (p.malformed = true)
    p.sport = be16(b, o)
    p.dport = be16(b, o + 2)
    if (p.family === 6) p.packetId = be16(b, o + 6)
  } else if (p.proto === (p.family === 4 ? 1 : 58)) {
    if (o + 8 > len) return void (p.malformed = true)
    p.icmpType = b[o]
  }
}

/** Parse a frame exactly as the XDP program does. */
export const parsePacket = (b: Uint8Array): Parsed => {
  const p = emptyParsed()
  const len = b.length
  p.len = len
  if (len < 14) return p
  let proto = be16(b, 12)
  let l3 = 14
  if (proto === 0x8100) {
    if (len < 18) return p
    proto = be16(b, 16)
    l3 = 18
  }
  p.l3 = l3
  if (proto === 0x0800) {
    if (l3 + 20 > len) return p
    p.kind = "ip"
    p.family = 4
    p.src = [be32(b, l3 + 12)]
    p.dst = [be32(b, l3 + 16)]
    p.proto = b[l3 + 9]
    p.packetId = be16(b, l3 + 4)
    p.fragment = (be16(b, l3 + 6) & 0x3fff) !== 0
    const ihl = (b[l3] & 0x0f) * 4
    if (b[l3] >> 4 !== 4 || ihl < 20 || l3 + ihl > len) p.malformed = true
    else if (!p.fragment) parseL4(p, b, l3 + ihl)
    return p
  }
  if (proto === 0x86dd) {
    if (l3 + 40 > len) return p
    p.kind = "ip"
    p.family = 6
    p.src = words(b, l3 + 8, 4)
    p.dst = words(b, l3 + 24, 4)
    if (b[l3 + 6] === 58 && l3 + 64 <= len && b[l3 + 40] === 135) p.nsTarget = words(b, l3 + 48, 4)
    if (b[l3] >> 4 !== 6) p.malformed = true
    let nh = b[l3 + 6]
    let cur = l3 + 40
    let bad = false
    let done = false
    for (let i = 0; i < 6 && !done && !bad; i++) {
      if (!isExt(nh)) break
      const h = cur
      if (nh === 44) {
        if (h + 8 > len) { bad = true; break }
        p.ext++
        p.packetId = be32(b, h + 4)
        nh = b[h]
        cur = h + 8
        if (be16(b, h + 2) & 0xfff9) { p.fragment = true; done = true }
        continue
      }
      if (h + 2 > len) { bad = true; break }
      p.ext++
      cur = h + (nh === 51 ? (b[h + 1] + 2) * 4 : (b[h + 1] + 1) * 8)
      nh = b[h]
    }
    if (!bad && !done && isExt(nh)) bad = true
    p.proto = nh
    if (bad) {
      p.malformed = true
      return p
    }
    if (!p.fragment && !p.malformed) {
      parseL4(p, b, cur)
      if (nh === 58 && !p.malformed && p.icmpType >= 133 && p.icmpType <= 137) p.nd = true
    }
    return p
  }
  if (proto === 0x0806) {
    if (l3 + 28 > len) return p
    if (be16(b, l3) !== 1 || be16(b, l3 + 2) !== 0x0800 || b[l3 + 4] !== 6 || b[l3 + 5] !== 4) return p
    p.kind = "arp"
    p.arpOp = be16(b, l3 + 6)
    p.arpSpa = be32(b, l3 + 14)
    p.arpTpa = be32(b, l3 + 24)
    return p
  }
  return p
}

/** The filter's tables as the model reads them (see {@link modelTables}). */
export interface ModelTables {
  readonly seed: number
  /** CLOCK_MONOTONIC ns; fenced when now >= deadline. */
  readonly deadlineNs: number
  readonly answerNeighbours: boolean
  readonly udpIdleMs: number
  /** Virtual MAC (answers) and the interface MAC (frame source, rewrite target). */
  readonly vmac: Uint8Array
  readonly ifmac: Uint8Array
  /** IPv4 VIPs by address word. */
  readonly vips4: ReadonlyMap<number, ReadonlyArray<VipRule>>
  /** IPv6 VIPs by `addrKey(words)`. */
  readonly vips6: ReadonlyMap<string, ReadonlyArray<VipRule>>
  /** LocalBucket code per table*1024+bucket (16384 entries). */
  readonly buckets: Uint8Array
}

/** Map key of an IPv6 address. */
export const addrKey = (w: ReadonlyArray<number>): string => `${w[0]}:${w[1]}:${w[2]}:${w[3]}`

/** Build model tables from the same inputs as the loader. */
export const modelTables = (config: FilterConfig, vips: ReadonlyArray<VipEntry>, buckets: Uint8Array): ModelTables => {
  const vips4 = new Map<number, ReadonlyArray<VipRule>>()
  const vips6 = new Map<string, ReadonlyArray<VipRule>>()
  for (const v of vips) {
    if (v.words.length === 1) vips4.set(v.words[0] >>> 0, v.rules.slice(0, 16))
    else vips6.set(addrKey(v.words), v.rules.slice(0, 16))
  }
  if (buckets.length !== MAX_TABLES * BUCKETS) throw new Error(`buckets must hold ${MAX_TABLES * BUCKETS} codes`)
  return {
    seed: config.seed >>> 0, deadlineNs: Number(config.deadlineNs), answerNeighbours: config.answerNeighbours,
    udpIdleMs: config.udpIdleMs, vmac: config.vmac.slice(0, 6), ifmac: config.ifmac.slice(0, 6), vips4, vips6, buckets
  }
}

const vipRules = (t: ModelTables, family: 4 | 6, w: ReadonlyArray<number>): ReadonlyArray<VipRule> | undefined =>
  family === 4 ? t.vips4.get(w[0]) : t.vips6.get(addrKey(w))

/** UDP flow state: `udp_flows`, `udp_probation` (values: last-seen ns) and `udp_foreign`. Keys: {@link flowKey}. */
export interface ModelFlows {
  readonly established: Map<string, number>
  readonly probation: Map<string, number>
  readonly foreign: Set<string>
}

/** Empty flow state. */
export const emptyFlows = (): ModelFlows => ({ established: new Map(), probation: new Map(), foreign: new Set() })

/** Key of a UDP flow (the packet's 5-tuple). */
export const flowKey = (p: { family: number; src: ReadonlyArray<number>; dst: ReadonlyArray<number>; sport: number; dport: number }): string =>
  `${p.family}|${p.src.join(",")}|${p.dst.join(",")}|${p.sport}|${p.dport}`

/** What the kernel's socket table says about a TCP packet's 4-tuple. */
export type TcpSocketState = "none" | "listen" | "established"

/** The environment of a decision: the monotonic clock and the socket table. */
export interface ModelEnv {
  readonly nowNs: number
  readonly tcpSocket: (p: Parsed) => TcpSocketState
}

/** The outcome of a decision. `table`/`bucket` are -1 when no bucket was computed. */
export interface Decision {
  action: Action
  reason: ReasonCode
  table: number
  bucket: number
}

/** A fresh Decision to pass to {@link decide} as `out` (reuse it to avoid allocation). */
export const newDecision = (): Decision => ({ action: "pass", reason: Reason.PASS_NOT_VIP, table: -1, bucket: -1 })

/** udp_flows last-seen is rewritten at most once per this many ns (VF_UDP_REFRESH_NS). */
export const UDP_REFRESH_NS = 1_000_000

const set = (out: Decision, reason: ReasonCode): Decision => {
  out.reason = reason
  out.action = actionOfReason(reason)
  return out
}

const recordUdp = (flows: ModelFlows, key: string, now: number): void => {
  const last = flows.established.get(key)
  if (last !== undefined) {
    if (now - last >= UDP_REFRESH_NS) flows.established.set(key, now)
    return
  }
  if (flows.probation.has(key)) {
    flows.probation.delete(key)
    flows.established.set(key, now)
    return
  }
  flows.probation.set(key, now)
}

const pureSyn = (flags: number): boolean => (flags & 0x12) === 0x02

/**
 * Decide what the filter does with a parsed frame; updates `flows` as the kernel
 * updates its UDP maps. Writes into and returns `out`.
 */
export const decide = (p: Parsed, t: ModelTables, flows: ModelFlows, env: ModelEnv, out: Decision = newDecision()): Decision => {
  out.table = -1
  out.bucket = -1
  if (p.kind === "other") return set(out, Reason.PASS_NOT_VIP)
  const fenced = env.nowNs >= t.deadlineNs
  if (p.kind === "arp") {
    if (!t.vips4.has(p.arpTpa)) return set(out, Reason.PASS_NOT_VIP)
    if (fenced || !t.answerNeighbours || p.arpOp !== 1 || p.arpSpa === 0 || p.arpSpa === p.arpTpa) {
      return set(out, Reason.PASS_NEIGH)
    }
    return set(out, Reason.TX_ARP_REPLY)
  }
  const rules = vipRules(t, p.family, p.dst)
  const answerNs = (): Decision => {
    if (fenced || !t.answerNeighbours) return set(out, Reason.PASS_NEIGH)
    if ((p.src[0] | p.src[1] | p.src[2] | p.src[3]) === 0) return set(out, Reason.PASS_NEIGH)
    return set(out, Reason.TX_ND_ADVERT)
  }
  if (!rules) {
    if (p.family === 6 && p.nsTarget && t.vips6.has(addrKey(p.nsTarget))) return answerNs()
    return set(out, Reason.PASS_NOT_VIP)
  }
  if (p.nd) {
    if (p.icmpType === 135 && p.ext === 0 && p.nsTarget && t.vips6.has(addrKey(p.nsTarget))) return answerNs()
    return set(out, Reason.PASS_NEIGH)
  }
  if (fenced) return set(out, Reason.DROP_FENCED)
  if (p.malformed) return set(out, Reason.DROP_MALFORMED)

  const icmp = p.proto === (p.family === 4 ? 1 : 58)
  let table = 0
  let affinity = 0
  if (icmp && !p.fragment) {
    const ty = p.icmpType
    if (p.family === 4 ? ty === 3 || ty === 11 || ty === 12 : ty >= 1 && ty <= 4) return set(out, Reason.PASS_ICMP_ERROR)
    if (ty !== (p.family === 4 ? 8 : 128)) return set(out, Reason.DROP_NO_RULE)
  } else if (!icmp) {
    if (p.proto !== 6 && p.proto !== 17) return set(out, Reason.DROP_NO_RULE)
    let found = false
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i]
      if (r.proto === p.proto && (p.fragment || (p.dport >= r.portLo && p.dport <= r.portHi))) {
        table = r.table & (MAX_TABLES - 1)
        affinity = affinityNames.indexOf(r.affinity)
        found = true
        break
      }
    }
    if (!found) return set(out, Reason.DROP_NO_RULE)
  }
  const bucket = bucketOf(affinityNames[affinity] ?? "client-ip", p, t.seed)
  out.table = table
  out.bucket = bucket
  const state = t.buckets[table * BUCKETS + bucket]
  const now = env.nowNs
  switch (state) {
    case LocalBucket.OWNED:
      if (p.proto === 17 && !p.fragment) recordUdp(flows, flowKey(p), now)
      return set(out, Reason.PASS_OWNED)
    case LocalBucket.MOVING_OUT: {
      if (p.fragment) return set(out, Reason.PASS_MOVING_OUT_FRAG)
      if (icmp) return set(out, Reason.DROP_MOVING_OUT_ICMP)
      if (p.proto === 6) {
        if (pureSyn(p.tcpFlags)) return set(out, Reason.DROP_MOVING_OUT_SYN)
        return set(out, env.tcpSocket(p) === "established" ? Reason.PASS_MOVING_OUT_TCP : Reason.DROP_MOVING_OUT_TCP)
      }
      const key = flowKey(p)
      const last = flows.established.get(key)
      // Signed age, as the kernel: a last-seen ahead of the clock counts as fresh.
      if (last !== undefined && now - last < t.udpIdleMs * 1e6) {
        if (now - last >= UDP_REFRESH_NS) flows.established.set(key, now)
        return set(out, Reason.PASS_MOVING_OUT_UDP)
      }
      return set(out, Reason.DROP_MOVING_OUT_UDP)
    }
    case LocalBucket.MOVING_IN_WAIT:
    case LocalBucket.MOVING_IN: {
      if (p.fragment) return set(out, Reason.DROP_MOVING_IN_FRAG)
      if (icmp) return set(out, Reason.PASS_MOVING_IN_ICMP)
      if (p.proto === 6) {
        if (pureSyn(p.tcpFlags)) return set(out, Reason.PASS_MOVING_IN_SYN)
        return set(out, env.tcpSocket(p) === "established" ? Reason.PASS_MOVING_IN_TCP : Reason.DROP_MOVING_IN_TCP)
      }
      if (state === LocalBucket.MOVING_IN_WAIT) return set(out, Reason.DROP_MOVING_IN_WAIT_UDP)
      const key = flowKey(p)
      if (flows.foreign.has(key)) return set(out, Reason.DROP_MOVING_IN_UDP)
      recordUdp(flows, key, now)
      return set(out, Reason.PASS_MOVING_IN_UDP)
    }
    default:
      return set(out, Reason.DROP_FOREIGN)
  }
}

/**
 * The VIP whose counters (`vip_counters`) count a decision: the packet's destination for a
 * VIP verdict (DROP_FENCED and above), else null (frames not for a VIP, ARP and neighbour
 * discovery are counted in `verdicts` only).
 */
export const countedVip = (p: Parsed, d: Decision): ReadonlyArray<number> | null =>
  d.reason >= Reason.DROP_FENCED ? p.dst : null

/** Per-VIP counters as the filter keeps them, by `vipKey` of the address: packets and bytes per reason code. */
export type ModelVipCounters = Map<string, { readonly packets: Array<number>; readonly bytes: Array<number> }>

/** Count a frame of `len` bytes decided with `reason` for `vip` (from {@link countedVip}; none: not counted per VIP). */
export const countVip = (counters: ModelVipCounters, vip: ReadonlyArray<number> | null | undefined, reason: ReasonCode, len: number): void => {
  if (vip === null || vip === undefined) return
  const key = vipKey(vip)
  let c = counters.get(key)
  if (c === undefined) {
    c = { packets: Array<number>(REASONS).fill(0), bytes: Array<number>(REASONS).fill(0) }
    counters.set(key, c)
  }
  c.packets[reason]++
  c.bytes[reason] += len
}
