/**
 * Differential test: random frames (valid, mutated, truncated, random bytes) through the
 * kernel program (BPF_PROG_TEST_RUN) and the TypeScript model, with random rule sets and
 * bucket tables. Action, reason (from the verdict counters), bucket (from the per-bucket
 * counters), the VIP counted (per-VIP counters: which VIP, reason, packets and bytes),
 * output bytes and the UDP flow maps must agree on every frame, and the per-VIP counters
 * over each scenario.
 */
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { affinityNames, BUCKETS } from "@vipfarm/domain"
import { decideFrame } from "./frame.ts"
import { CLIENT6, baseConfig, catchAll, FAR_FUTURE, IFMAC, isRoot, monoNow, skipReason, VIP4, VIP4B, VIP6, VMAC } from "./internal/fixtures.ts"
import { vipKey } from "./encode.ts"
import { loadFilter, type FilterHandle, type VerdictCounters } from "./loader.ts"
import { countVip, emptyFlows, flowKey, modelTables, parsePacket, type ModelFlows, type ModelVipCounters } from "./model.ts"
import { arp, ethernet, EtherType, icmp, ipv4, ipv6, neighborSolicitation, solicitedNode, tcp, udp, type Ipv6Ext } from "./packet.ts"
import type { FilterConfig, FlowTuple, VipEntry, VipRule } from "./types.ts"
import { reasonNames, xdpCodeOfAction, type ReasonName } from "./verdict.ts"

skipReason("differential.test.ts")

const SRC4 = [0xcb007101, 0xcb007102, 0x0a000001, 0xc0a80105]
const SRC6 = [CLIENT6, [0x20010db8, 0x2, 0, 0x99], [0xfe800000, 0, 0, 1]]
const PORTS = [53, 80, 443, 1024, 40000, 65535]

const mac = fc.constantFrom(VMAC, IFMAC, Uint8Array.of(255, 255, 255, 255, 255, 255), Uint8Array.of(2, 9, 9, 9, 9, 9))
const port = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...PORTS) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 65535 }) })
const ext6 = fc.constantFrom<Ipv6Ext>(
  { type: 0 }, { type: 0, length: 1 }, { type: 43 }, { type: 60 }, { type: 60, length: 2 }, { type: 51 },
  { type: 44, more: true, id: 7 }, { type: 44, offset: 10, id: 9 }, { type: 44 }
)

/** A structured frame: Ethernet(/VLAN) + ARP | IPv4 | IPv6 + TCP | UDP | ICMP | other. */
const structured = fc
  .record({
    dmac: mac,
    vlan: fc.option(fc.integer({ min: 0, max: 4095 }), { nil: undefined }),
    family: fc.constantFrom(4, 4, 6, 6, 0),
    dst: fc.constantFrom("vip", "vip", "vip", "vipb", "other"),
    srcI: fc.nat(3),
    proto: fc.constantFrom(6, 6, 6, 17, 17, 17, 1, 58, 47),
    sport: port,
    dport: port,
    flags: fc.oneof(fc.constantFrom(0x02, 0x12, 0x10, 0x18, 0x11, 0x04), fc.integer({ min: 0, max: 255 })),
    id: fc.integer({ min: 0, max: 0xffff }),
    frag: fc.constantFrom("none", "none", "none", "first", "later"),
    options: fc.option(fc.uint8Array({ minLength: 1, maxLength: 12 }), { nil: undefined }),
    ext: fc.oneof(fc.constant([]), fc.array(ext6, { maxLength: 7 })),
    icmpType: fc.constantFrom(8, 128, 8, 128, 135, 135, 0, 3, 11, 12, 1, 2, 4, 129, 133, 136, 200),
    arpOp: fc.constantFrom(1, 2),
    arpSpa: fc.constantFrom(0, 0xcb007101, VIP4[0]),
    nsSll: fc.boolean(),
    nsSrcZero: fc.boolean(),
    checksum: fc.integer({ min: 0, max: 0xffff }),
    payload: fc.uint8Array({ maxLength: 24 })
  })
  .map((r): Uint8Array => {
    const eth = (etherType: number, body: Uint8Array) => ethernet({ dst: r.dmac, vlan: r.vlan, etherType }, body)
    const dst4 = r.dst === "vip" ? VIP4 : r.dst === "vipb" ? VIP4B : [0x08080808]
    const dst6 = r.dst === "other" ? [0x20010db8, 0, 0, 0x55] : VIP6
    if (r.family === 0) {
      if (r.dst === "vipb" && r.proto === 58) {
        const src = r.nsSrcZero ? [0, 0, 0, 0] : SRC6[r.srcI % 3]
        return eth(EtherType.IPV6, ipv6({ src, dst: solicitedNode(VIP6), proto: 58, hopLimit: 255 }, neighborSolicitation(VIP6, r.nsSll ? VMAC : null)))
      }
      return eth(EtherType.ARP, arp({ op: r.arpOp, sha: Uint8Array.of(2, 0, 0, 0, 0, 7), spa: r.arpSpa, tpa: dst4[0] }))
    }
    const l4 = (family: 4 | 6): Uint8Array => {
      if (r.proto === 6) return tcp({ sport: r.sport, dport: r.dport, flags: r.flags, checksum: r.checksum }, r.payload)
      if (r.proto === 17) return udp({ sport: r.sport, dport: r.dport, checksum: r.checksum }, r.payload)
      if (r.proto === (family === 4 ? 1 : 58)) {
        if (family === 6 && r.icmpType === 135) return neighborSolicitation(VIP6, r.nsSll ? VMAC : null)
        return icmp(r.icmpType, 0, r.payload)
      }
      return r.payload
    }
    if (r.family === 4) {
      return eth(EtherType.IPV4, ipv4({
        src: [SRC4[r.srcI]], dst: dst4, proto: r.proto, id: r.id, options: r.options,
        mf: r.frag === "first", fragOffset: r.frag === "later" ? 100 : 0
      }, r.frag === "later" ? r.payload : l4(4)))
    }
    const src = r.nsSrcZero && r.proto === 58 ? [0, 0, 0, 0] : SRC6[r.srcI % 3]
    return eth(EtherType.IPV6, ipv6({ src, dst: dst6, proto: r.proto, ext: r.ext, hopLimit: 255 }, l4(6)))
  })

/** Well-formed VIP flow packets (TCP, UDP, ICMP echo) from a small client pool: the bucket logic. */
const flowFrame = fc
  .record({ family: fc.constantFrom(4, 6), srcI: fc.nat(3), kind: fc.constantFrom("tcp", "udp", "echo"), sport: port, dport: port, syn: fc.boolean(), vmac: fc.boolean() })
  .map((r): Uint8Array => {
    const l4 = r.kind === "tcp" ? tcp({ sport: r.sport, dport: r.dport, flags: r.syn ? 0x02 : 0x10 })
      : r.kind === "udp" ? udp({ sport: r.sport, dport: r.dport })
      : icmp(r.family === 4 ? 8 : 128)
    const proto = r.kind === "tcp" ? 6 : r.kind === "udp" ? 17 : r.family === 4 ? 1 : 58
    const dst = r.vmac ? VMAC : IFMAC
    return r.family === 4
      ? ethernet({ dst, etherType: EtherType.IPV4 }, ipv4({ src: [SRC4[r.srcI]], dst: VIP4, proto }, l4))
      : ethernet({ dst, etherType: EtherType.IPV6 }, ipv6({ src: SRC6[r.srcI % 3], dst: VIP6, proto }, l4))
  })

/** Neighbour solicitations for the VIP (multicast or unicast, with or without options). */
const nsFrame = fc
  .record({ vlan: fc.option(fc.nat(4095), { nil: undefined }), srcI: fc.nat(3), unicast: fc.boolean(), sll: fc.boolean(), zero: fc.nat(7) })
  .map(({ vlan, srcI, unicast, sll, zero }) =>
    ethernet({ vlan, etherType: EtherType.IPV6 }, ipv6({
      src: zero === 0 ? [0, 0, 0, 0] : SRC6[srcI % 3], dst: unicast ? VIP6 : solicitedNode(VIP6), proto: 58, hopLimit: 255
    }, neighborSolicitation(VIP6, sll ? Uint8Array.of(2, 0, 0, 0, 0, 9) : null))))

/** Structured frames, then truncated, bit-flipped, or plain random bytes. */
const frame = fc.oneof(
  { weight: 1, arbitrary: nsFrame },
  { weight: 5, arbitrary: structured },
  { weight: 3, arbitrary: flowFrame },
  { weight: 2, arbitrary: fc.tuple(structured, fc.nat()).map(([f, n]) => f.subarray(0, Math.max(14, n % (f.length + 1)))) },
  {
    weight: 2,
    arbitrary: fc.tuple(structured, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }))
      .map(([f, flips]) => {
        const g = f.slice()
        for (const [i, v] of flips) g[i % g.length] = v
        return g
      })
  },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.uint8Array({ minLength: 14, maxLength: 120 }), fc.constantFrom(0x0800, 0x86dd, 0x0806, 0x8100, -1), fc.boolean())
      .map(([b, et, vip]) => {
        const g = b.slice()
        if (et >= 0) { g[12] = et >> 8; g[13] = et & 0xff }
        if (vip && et === 0x0800 && g.length >= 34) g.set([198, 18, 0, 1], 30)
        return g
      })
  }
)

const rule: fc.Arbitrary<VipRule> = fc.record({
  proto: fc.constantFrom<6 | 17>(6, 17),
  affinity: fc.constantFrom(...affinityNames),
  table: fc.nat(3),
  portLo: fc.constantFrom(0, 53, 80, 443, 1024),
  portHi: fc.constantFrom(53, 80, 443, 1023, 65535)
})

const scenario = fc.record({
  rules4: fc.tuple(fc.array(rule, { maxLength: 4 }), fc.boolean()).map(([r, all]) => (all ? [...r, ...catchAll(VIP4).rules] : r)),
  rules6: fc.tuple(fc.array(rule, { maxLength: 4 }), fc.boolean()).map(([r, all]) => (all ? [...r, ...catchAll(VIP6).rules] : r)),
  bucketSeed: fc.nat(),
  bucketMix: fc.constantFrom("all", "owned", "foreign", "moving", "moving"),
  fenced: fc.boolean().chain((b) => (b ? fc.constantFrom(false, false, false, true) : fc.constant(false))),
  answer: fc.boolean(),
  frames: fc.array(frame, { minLength: 1, maxLength: 8 }).chain((fs) => fc.shuffledSubarray(fs).map((again) => [...fs, ...again])),
  flowSeeds: fc.array(fc.tuple(fc.nat(3), fc.constantFrom(...PORTS), fc.constantFrom(...PORTS), fc.constantFrom("fresh", "stale", "foreign")), { maxLength: 4 }),
  /** Flows of the scenario's own UDP frames to seed: (frame index, kind). */
  ownSeeds: fc.array(fc.tuple(fc.nat(), fc.constantFrom("fresh", "stale", "foreign")), { maxLength: 6 })
})

const fillBuckets = (seed: number, mix: string): Uint8Array => {
  const b = new Uint8Array(16 * BUCKETS)
  let s = seed >>> 0
  for (let i = 0; i < 4 * BUCKETS; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    const r = s >>> 24
    b[i] = mix === "owned" ? (r < 200 ? 1 : r % 5) : mix === "foreign" ? (r < 200 ? 0 : r % 5) : mix === "moving" ? 2 + (r % 3) : r % 5
  }
  return b
}

const reasonOf = (a: Record<ReasonName, { packets: bigint }>, b: Record<ReasonName, { packets: bigint }>): Array<ReasonName> =>
  reasonNames.filter((n) => b[n].packets !== a[n].packets)

/** The kernel's per-VIP counters by vipKey. */
const vipSnapshot = (h: FilterHandle): Map<string, VerdictCounters> =>
  new Map(h.readVipCounters().map((v) => [vipKey(v.words), v.counters]))

/** Every (VIP, reason) whose counters differ between two snapshots: "vip reason +packets +bytes". */
const vipDelta = (a: Map<string, VerdictCounters>, b: Map<string, VerdictCounters>): Array<string> => {
  const out: Array<string> = []
  for (const [vip, c] of b) {
    for (const n of reasonNames) {
      const dp = c[n].packets - (a.get(vip)?.[n].packets ?? 0n)
      const db = c[n].bytes - (a.get(vip)?.[n].bytes ?? 0n)
      if (dp !== 0n || db !== 0n) out.push(`${vip} ${n} +${dp} +${db}`)
    }
  }
  return out
}

describe.skipIf(!isRoot())("kernel = model on random frames", () => {
  let h: FilterHandle
  beforeAll(() => {
    h = loadFilter()
  })
  afterAll(() => h?.close())

  it("agrees on verdict, reason, bucket, per-VIP counters, output bytes and UDP flow state", () => {
    const seen = new Map<ReasonName, number>()
    fc.assert(
      fc.property(scenario, (sc) => {
        const config: FilterConfig = baseConfig({ deadlineNs: sc.fenced ? 0n : FAR_FUTURE, answerNeighbours: sc.answer, udpIdleMs: 1000 })
        const vips: Array<VipEntry> = [
          { words: VIP4, rules: sc.rules4 },
          { words: VIP4B, rules: [{ proto: 17, affinity: "per-packet", table: 1, portLo: 0, portHi: 65535 }] },
          { words: VIP6, rules: sc.rules6 }
        ]
        const buckets = fillBuckets(sc.bucketSeed, sc.bucketMix)
        h.setConfig(config)
        h.setVips(vips)
        h.setBuckets(buckets)
        h.clear("udp_flows")
        h.clear("udp_probation")
        const flows: ModelFlows = emptyFlows()
        const foreign: Array<FlowTuple> = []
        const now = monoNow()
        const seeds: Array<[FlowTuple, string]> = sc.flowSeeds.map(([si, sport, dport, kind]) => [
          si < 2 ? { family: 4, src: [SRC4[si]], dst: VIP4, sport, dport } : { family: 6, src: SRC6[si % 3], dst: VIP6, sport, dport },
          kind
        ])
        for (const [i, kind] of sc.ownSeeds) {
          const p = parsePacket(sc.frames[i % sc.frames.length])
          if (p.kind === "ip" && p.proto === 17 && !p.malformed) seeds.push([p, kind])
        }
        for (const [t, kind] of seeds) {
          if (kind === "foreign") {
            foreign.push(t)
            flows.foreign.add(flowKey(t))
          } else {
            const last = kind === "fresh" ? now : 0n
            h.putFlow("udp_flows", t, last)
            flows.established.set(flowKey(t), Number(last))
          }
        }
        h.setForeignFlows(foreign)
        const tables = modelTables(config, vips, buckets)
        let c0 = h.readCounters() // then each frame's after is the next one's before
        const vStart = vipSnapshot(h)
        let v0 = vStart
        const modelVips: ModelVipCounters = new Map()
        for (const f of sc.frames) {
          const nowNs = Number(monoNow())
          const m = decideFrame(f, tables, flows, { nowNs, tcpSocket: () => "none" })
          const idx = m.bucket === undefined ? -1 : m.table! * BUCKETS + m.bucket
          const b0 = idx >= 0 ? h.readBucketCounter(idx) : 0
          const k = h.testRun(f)
          const c1 = h.readCounters()
          const v1 = vipSnapshot(h)
          const hex = Buffer.from(f).toString("hex")
          seen.set(reasonNames[m.reason], (seen.get(reasonNames[m.reason]) ?? 0) + 1)
          expect({ hex, reasons: reasonOf(c0, c1) }).toEqual({ hex, reasons: [reasonNames[m.reason]] })
          expect({ hex, retval: k.retval }).toEqual({ hex, retval: xdpCodeOfAction(m.action) })
          expect({ hex, out: Buffer.from(k.dataOut).toString("hex") }).toEqual({ hex, out: Buffer.from(m.frame).toString("hex") })
          if (idx >= 0) expect({ hex, bucketDelta: h.readBucketCounter(idx) - b0 }).toEqual({ hex, bucketDelta: 1 })
          if (m.reason === 0) expect({ hex, untouched: Buffer.from(k.dataOut).equals(Buffer.from(f)) }).toEqual({ hex, untouched: true })
          const vipCounted = m.vip === undefined ? [] : [`${vipKey(m.vip)} ${reasonNames[m.reason]} +1 +${f.length}`]
          expect({ hex, vipDelta: vipDelta(v0, v1) }).toEqual({ hex, vipDelta: vipCounted })
          countVip(modelVips, m.vip, m.reason, f.length)
          c0 = c1
          v0 = v1
        }
        // over the scenario: kernel per-VIP counters = the model's
        const counted = vipDelta(vStart, v0).sort()
        const modelled = [...modelVips].flatMap(([vip, c]) => reasonNames.flatMap((n, r) => (c.packets[r] ? [`${vip} ${n} +${c.packets[r]} +${c.bytes[r]}`] : []))).sort()
        expect(counted).toEqual(modelled)
        const keys = (map: "udp_flows" | "udp_probation") => h.readFlows(map).map((e) => flowKey(e.tuple)).sort()
        expect(keys("udp_flows")).toEqual([...flows.established.keys()].sort())
        expect(keys("udp_probation")).toEqual([...flows.probation.keys()].sort())
      }),
      { numRuns: Number(process.env.DIFF_RUNS ?? 1500) }
    )
    console.log(`differential.test.ts: reasons exercised: ${[...seen].map(([n, c]) => `${n}=${c}`).join(" ")}`)
    // Branches random frames reach without sockets: all but the socket-found ones.
    const expected: Array<ReasonName> = [
      "PASS_NOT_VIP", "PASS_NEIGH", "TX_ARP_REPLY", "TX_ND_ADVERT", "DROP_FENCED", "DROP_MALFORMED", "PASS_ICMP_ERROR",
      "DROP_NO_RULE", "DROP_FOREIGN", "PASS_OWNED", "DROP_MOVING_OUT_SYN", "DROP_MOVING_OUT_TCP", "PASS_MOVING_OUT_UDP",
      "DROP_MOVING_OUT_UDP", "PASS_MOVING_OUT_FRAG", "DROP_MOVING_OUT_ICMP", "PASS_MOVING_IN_SYN", "DROP_MOVING_IN_TCP",
      "DROP_MOVING_IN_WAIT_UDP", "PASS_MOVING_IN_UDP", "DROP_MOVING_IN_UDP", "DROP_MOVING_IN_FRAG", "PASS_MOVING_IN_ICMP"
    ]
    expect(expected.filter((n) => !seen.has(n))).toEqual([])
  })
})
