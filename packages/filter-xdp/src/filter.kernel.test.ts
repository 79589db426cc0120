/**
 * The XDP program under BPF_PROG_TEST_RUN on crafted frames: every parser branch,
 * ARP / ND answers byte for byte, MAC rewrite, moving buckets with real loopback TCP
 * sockets, liveness expiry, UDP probation / promotion and the foreign-flow map.
 */
import { createServer, connect, type Server, type Socket } from "node:net"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { addressWords, bucketOf } from "@vipfarm/domain"
import { LocalBucket } from "@vipfarm/domain"
import {
  baseConfig, catchAll, CLIENT4, CLIENT6, IFMAC, isRoot, monoNow, SEED, skipReason, VIP4, VIP6, VMAC
} from "./internal/fixtures.ts"
import { loadFilter, type FilterHandle } from "./loader.ts"
import {
  arp, CLIENT_MAC, concat, ethernet, EtherType, icmp, icmp6Checksum, ipv4, ipv6, neighborSolicitation,
  solicitedNode, tcp, TcpFlag, udp, type Ipv6Ext
} from "./packet.ts"
import type { FilterConfig, VipEntry } from "./types.ts"
import { reasonNames, type ReasonName } from "./verdict.ts"

skipReason("filter.kernel.test.ts")

const OTHER_MAC = Uint8Array.of(2, 0x11, 0x22, 0x33, 0x44, 0x55)
const tcp4 = (o: { src?: Array<number>; dst?: Array<number>; sport?: number; dport?: number; flags?: number; vlan?: number; dmac?: Uint8Array; options?: Uint8Array } = {}) =>
  ethernet({ dst: o.dmac ?? IFMAC, vlan: o.vlan, etherType: EtherType.IPV4 }, ipv4({ src: o.src ?? CLIENT4, dst: o.dst ?? VIP4, proto: 6, options: o.options },
    tcp({ sport: o.sport ?? 40000, dport: o.dport ?? 80, flags: o.flags ?? TcpFlag.ACK })))
const udp4 = (sport = 40000, dport = 53, src = CLIENT4) =>
  ethernet({ dst: IFMAC, etherType: EtherType.IPV4 }, ipv4({ src, dst: VIP4, proto: 17 }, udp({ sport, dport }, new Uint8Array(8))))
const ip6 = (proto: number, l4: Uint8Array, ext: Array<Ipv6Ext> = [], src = CLIENT6, dst = VIP6) =>
  ethernet({ dst: IFMAC, etherType: EtherType.IPV6 }, ipv6({ src, dst, proto, ext }, l4))

describe.skipIf(!isRoot())("XDP filter in the kernel", () => {
  let h: FilterHandle
  let config: FilterConfig
  const vips: Array<VipEntry> = [
    { words: VIP4, rules: [{ proto: 6, affinity: "client-ip", table: 0, portLo: 80, portHi: 80 }, { proto: 17, affinity: "client-ip-port", table: 1, portLo: 0, portHi: 65535 }] },
    { words: VIP6, rules: [{ proto: 6, affinity: "client-ip", table: 0, portLo: 80, portHi: 80 }, { proto: 17, affinity: "client-ip", table: 0, portLo: 0, portHi: 65535 }] }
  ]
  const tableFill = (code: number): Uint8Array => new Uint8Array(16 * 1024).fill(code)

  const run = (frame: Uint8Array): { reason: ReasonName; retval: number; out: Uint8Array } => {
    const c0 = h.readCounters()
    const r = h.testRun(frame)
    const c1 = h.readCounters()
    const changed = reasonNames.filter((n) => c1[n].packets !== c0[n].packets)
    expect(changed).toHaveLength(1)
    expect(c1[changed[0]].bytes - c0[changed[0]].bytes).toBe(BigInt(frame.length))
    return { reason: changed[0], retval: r.retval, out: r.dataOut }
  }
  const reason = (frame: Uint8Array): ReasonName => run(frame).reason

  beforeAll(() => {
    h = loadFilter()
  })
  afterAll(() => h?.close())
  beforeEach(() => {
    config = baseConfig()
    h.setConfig(config)
    h.setVips(vips)
    h.setBuckets(tableFill(LocalBucket.OWNED))
    h.setForeignFlows([])
    h.clear("udp_flows")
    h.clear("udp_probation")
  })

  describe("parsing", () => {
    it("passes non-VIP traffic untouched", () => {
      for (const f of [
        tcp4({ dst: [0x08080808], dmac: VMAC }),
        ip6(6, tcp({ sport: 1, dport: 80, flags: 2 }), [], CLIENT6, addressWords("2001:db8::99")),
        ethernet({ etherType: 0x88cc }, new Uint8Array(40)),
        ethernet({ etherType: EtherType.IPV4 }, new Uint8Array(19)), // truncated before the destination
        ethernet({ etherType: EtherType.IPV6 }, new Uint8Array(39)),
        ethernet({ vlan: 5, etherType: 0x8100 }, new Uint8Array(40)) // second tag: not followed
      ]) {
        const r = run(f)
        expect([r.reason, r.retval]).toEqual(["PASS_NOT_VIP", 2])
        expect(Buffer.from(r.out).equals(Buffer.from(f))).toBe(true)
      }
    })

    it("reads through one VLAN tag and IPv4 options", () => {
      expect(reason(tcp4({ vlan: 42 }))).toBe("PASS_OWNED")
      expect(reason(tcp4({ options: Uint8Array.of(1, 1, 1, 0) }))).toBe("PASS_OWNED")
      expect(reason(tcp4({ options: new Uint8Array(40) }))).toBe("PASS_OWNED")
      expect(reason(tcp4({ vlan: 42, dport: 81 }))).toBe("DROP_NO_RULE") // the port was read behind the tag
    })

    it("walks IPv6 extension headers", () => {
      const seg = tcp({ sport: 40000, dport: 80, flags: TcpFlag.ACK })
      expect(reason(ip6(6, seg, [{ type: 0 }, { type: 43 }, { type: 60, length: 2 }, { type: 51 }]))).toBe("PASS_OWNED")
      expect(reason(ip6(6, tcp({ sport: 40000, dport: 81, flags: TcpFlag.ACK }), [{ type: 0 }, { type: 60 }]))).toBe("DROP_NO_RULE")
      expect(reason(ip6(6, seg, [{ type: 44 }]))).toBe("PASS_OWNED") // atomic fragment: parsed through
      const six: Array<Ipv6Ext> = Array.from({ length: 6 }, () => ({ type: 60 }))
      expect(reason(ip6(6, seg, six))).toBe("PASS_OWNED")
      expect(reason(ip6(6, seg, [...six, { type: 60 }]))).toBe("DROP_MALFORMED") // longer than followed
      expect(reason(ip6(6, seg, [{ type: 0 }]).subarray(0, 14 + 40 + 1))).toBe("DROP_MALFORMED")
    })

    it("drops truncated or malformed VIP headers", () => {
      expect(reason(tcp4().subarray(0, 14 + 20 + 19))).toBe("DROP_MALFORMED")
      expect(reason(udp4().subarray(0, 14 + 20 + 7))).toBe("DROP_MALFORMED")
      const badDoff = tcp4()
      badDoff[14 + 20 + 12] = 0x40
      expect(reason(badDoff)).toBe("DROP_MALFORMED")
      const longDoff = tcp4()
      longDoff[14 + 20 + 12] = 0xf0
      expect(reason(longDoff)).toBe("DROP_MALFORMED")
      const badIhl = tcp4()
      badIhl[14] = 0x4f // 60-byte header, not present
      expect(reason(badIhl.subarray(0, 14 + 40))).toBe("DROP_MALFORMED")
      const badVersion = tcp4()
      badVersion[14] = 0x55
      expect(reason(badVersion)).toBe("DROP_MALFORMED")
      expect(reason(ip6(58, Uint8Array.of(128, 0, 0)))).toBe("DROP_MALFORMED")
    })

    it("hashes fragments on the source alone with the protocol's first rule", () => {
      const frag4 = (mf: boolean, off: number, src = CLIENT4) =>
        ethernet({ dst: IFMAC, etherType: EtherType.IPV4 }, ipv4({ src, dst: VIP4, proto: 6, id: 77, mf, fragOffset: off }, new Uint8Array(24)))
      const b = bucketOf("client-ip", { src: CLIENT4, dst: VIP4, sport: 0, dport: 0, packetId: 77, fragment: true }, SEED)
      const buckets = tableFill(LocalBucket.FOREIGN)
      buckets[b] = LocalBucket.OWNED
      h.setBuckets(buckets)
      expect(reason(frag4(true, 0))).toBe("PASS_OWNED")
      expect(reason(frag4(false, 100))).toBe("PASS_OWNED")
      buckets[b] = LocalBucket.MOVING_OUT
      h.setBuckets(buckets)
      expect(reason(frag4(false, 100))).toBe("PASS_MOVING_OUT_FRAG")
      buckets[b] = LocalBucket.MOVING_IN
      h.setBuckets(buckets)
      expect(reason(frag4(true, 0))).toBe("DROP_MOVING_IN_FRAG")
      h.setBuckets(tableFill(LocalBucket.MOVING_OUT))
      expect(reason(ip6(17, new Uint8Array(16), [{ type: 0 }, { type: 44, more: true, id: 5 }]))).toBe("PASS_MOVING_OUT_FRAG")
      expect(reason(ip6(6, new Uint8Array(16), [{ type: 44, offset: 3, id: 5 }]))).toBe("PASS_MOVING_OUT_FRAG")
      expect(reason(ip6(132, new Uint8Array(16), [{ type: 44, offset: 3, id: 5 }]))).toBe("DROP_NO_RULE")
    })
  })

  describe("ICMP", () => {
    it("passes errors everywhere, buckets echo by client, drops the rest", () => {
      h.setBuckets(tableFill(LocalBucket.FOREIGN))
      const v4 = (type: number) => ethernet({ dst: IFMAC, etherType: EtherType.IPV4 }, ipv4({ src: CLIENT4, dst: VIP4, proto: 1 }, icmp(type)))
      for (const t of [3, 11, 12]) expect(reason(v4(t))).toBe("PASS_ICMP_ERROR")
      for (const t of [1, 2, 3, 4]) expect(reason(ip6(58, icmp(t)))).toBe("PASS_ICMP_ERROR")
      expect(reason(v4(8))).toBe("DROP_FOREIGN")
      expect(reason(ip6(58, icmp(128)))).toBe("DROP_FOREIGN")
      expect(reason(v4(0))).toBe("DROP_NO_RULE")
      expect(reason(ip6(58, icmp(129)))).toBe("DROP_NO_RULE")
      h.setBuckets(tableFill(LocalBucket.OWNED))
      expect(reason(v4(8))).toBe("PASS_OWNED")
      h.setBuckets(tableFill(LocalBucket.MOVING_IN_WAIT))
      expect(reason(ip6(58, icmp(128)))).toBe("PASS_MOVING_IN_ICMP")
      h.setBuckets(tableFill(LocalBucket.MOVING_OUT))
      expect(reason(v4(8))).toBe("DROP_MOVING_OUT_ICMP")
    })
  })

  describe("virtual MAC", () => {
    it("rewrites the virtual MAC to the interface MAC on pass only", () => {
      const r = run(tcp4({ dmac: VMAC }))
      expect(r.reason).toBe("PASS_OWNED")
      expect(Array.from(r.out.subarray(0, 6))).toEqual(Array.from(IFMAC))
      expect(Array.from(run(tcp4({ dmac: OTHER_MAC })).out.subarray(0, 6))).toEqual(Array.from(OTHER_MAC))
      h.setBuckets(tableFill(LocalBucket.FOREIGN))
      const d = run(tcp4({ dmac: VMAC }))
      expect([d.reason, d.retval]).toEqual(["DROP_FOREIGN", 1])
    })
  })

  describe("ARP and ND", () => {
    const request = (tpa = VIP4[0], spa = CLIENT4[0], vlan?: number) =>
      ethernet({ vlan, etherType: EtherType.ARP }, arp({ op: 1, sha: CLIENT_MAC, spa, tpa }))

    it("answers an ARP request for a VIP with the virtual MAC, from the interface MAC", () => {
      const r = run(request())
      expect([r.reason, r.retval]).toEqual(["TX_ARP_REPLY", 3])
      const want = ethernet({ dst: CLIENT_MAC, src: IFMAC, etherType: EtherType.ARP },
        arp({ op: 2, sha: VMAC, spa: VIP4[0], tha: CLIENT_MAC, tpa: CLIENT4[0] }))
      expect(Buffer.from(r.out).toString("hex")).toBe(Buffer.from(want).toString("hex"))
      const tagged = run(request(VIP4[0], CLIENT4[0], 7))
      expect(tagged.reason).toBe("TX_ARP_REPLY")
      expect(Array.from(tagged.out.subarray(12, 18))).toEqual([0x81, 0, 0, 7, 0x08, 0x06])
    })

    it("passes other ARP untouched", () => {
      expect(reason(request(0x08080808))).toBe("PASS_NOT_VIP")
      expect(reason(request(VIP4[0], 0))).toBe("PASS_NEIGH") // probe
      expect(reason(request(VIP4[0], VIP4[0]))).toBe("PASS_NEIGH") // gratuitous
      expect(reason(ethernet({ etherType: EtherType.ARP }, arp({ op: 2, sha: CLIENT_MAC, spa: CLIENT4[0], tpa: VIP4[0] })))).toBe("PASS_NEIGH")
      h.setConfig({ ...config, answerNeighbours: false })
      expect(reason(request())).toBe("PASS_NEIGH")
      h.setConfig({ ...config, deadlineNs: 0n })
      const r = run(request())
      expect(r.reason).toBe("PASS_NEIGH")
      expect(Buffer.from(r.out).equals(Buffer.from(request()))).toBe(true)
    })

    const ns = (o: { sll?: boolean; vlan?: number; dst?: Array<number>; src?: Array<number> } = {}) =>
      ethernet({ vlan: o.vlan, etherType: EtherType.IPV6 }, ipv6({ src: o.src ?? CLIENT6, dst: o.dst ?? solicitedNode(VIP6), proto: 58, hopLimit: 255 },
        neighborSolicitation(VIP6, o.sll === false ? null : CLIENT_MAC)))
    const expectedNa = (vlan?: number) => {
      const body = concat(Uint8Array.of(136, 0, 0, 0, 0x60, 0, 0, 0), ns().subarray(14 + 48, 14 + 64), Uint8Array.of(2, 1), VMAC)
      const c = icmp6Checksum(VIP6, CLIENT6, body)
      body[2] = c >> 8
      body[3] = c & 0xff
      return ethernet({ dst: CLIENT_MAC, src: IFMAC, vlan, etherType: EtherType.IPV6 }, ipv6({ src: VIP6, dst: CLIENT6, proto: 58, hopLimit: 255 }, body))
    }

    it("answers a neighbour solicitation with a checksummed advertisement", () => {
      for (const [frame, vlan] of [[ns(), undefined], [ns({ sll: false }), undefined], [ns({ vlan: 9 }), 9], [ns({ dst: VIP6 }), undefined]] as const) {
        const r = run(frame)
        expect([r.reason, r.retval]).toEqual(["TX_ND_ADVERT", 3])
        expect(Buffer.from(r.out).toString("hex")).toBe(Buffer.from(expectedNa(vlan)).toString("hex"))
        const l3 = vlan === undefined ? 14 : 18
        expect(icmp6Checksum(VIP6, CLIENT6, r.out.subarray(l3 + 40))).toBe(0)
      }
      const longer = concat(ns(), new Uint8Array(16)) // shrinks to the advertisement
      expect(Buffer.from(run(longer).out).toString("hex")).toBe(Buffer.from(expectedNa()).toString("hex"))
    })

    it("passes other ND untouched", () => {
      expect(reason(ns({ src: [0, 0, 0, 0] }))).toBe("PASS_NEIGH") // DAD
      expect(reason(ip6(58, icmp(136, 0, new Uint8Array(20))))).toBe("PASS_NEIGH")
      expect(reason(ip6(58, icmp(133)))).toBe("PASS_NEIGH")
      h.setConfig({ ...config, deadlineNs: 0n })
      expect(reason(ns())).toBe("PASS_NEIGH")
    })
  })

  describe("liveness", () => {
    it("fences all VIP traffic once the deadline passes", async () => {
      h.setConfig({ ...config, deadlineNs: monoNow() + 50_000_000n })
      expect(reason(tcp4())).toBe("PASS_OWNED")
      await new Promise((r) => setTimeout(r, 80))
      expect(reason(tcp4())).toBe("DROP_FENCED")
      expect(reason(udp4())).toBe("DROP_FENCED")
      expect(reason(tcp4({ dst: [0x08080808] }))).toBe("PASS_NOT_VIP")
      h.setConfig({ ...config, deadlineNs: 0n })
      expect(reason(tcp4())).toBe("DROP_FENCED")
    })

    it("takes a moved deadline into account at once", async () => {
      h.setConfig({ ...config, deadlineNs: monoNow() + 10_000_000_000n })
      expect(reason(tcp4())).toBe("PASS_OWNED")
      h.setConfig({ ...config, deadlineNs: monoNow() - 1n }) // moved into the past
      expect(reason(tcp4())).toBe("DROP_FENCED")
      expect(reason(udp4())).toBe("DROP_FENCED")
      const soon = monoNow() + 30_000_000n // within the coarse clock's slack: the precise clock decides
      h.setConfig({ ...config, deadlineNs: soon })
      expect(reason(tcp4())).toBe(monoNow() >= soon ? "DROP_FENCED" : "PASS_OWNED")
      await new Promise((r) => setTimeout(r, Number(soon - monoNow()) / 1e6 + 5))
      expect(reason(tcp4())).toBe("DROP_FENCED")
    })

    it("fences at the deadline once the fast path has remembered it (fence memo, jiffies)", async () => {
      const tcp6 = () => ip6(6, tcp({ sport: 40000, dport: 80, flags: TcpFlag.ACK }))
      const deadline = monoNow() + 250_000_000n // beyond the slack: the fast path remembers it
      h.setConfig({ ...config, deadlineNs: deadline })
      for (let i = 0; i < 3; i++) {
        expect(reason(tcp4())).toBe("PASS_OWNED")
        expect(reason(tcp6())).toBe("PASS_OWNED")
        expect(h.testRun(tcp4(), 10_000).retval).toBe(2)
      }
      // the memo of an earlier deadline never answers for a new one
      h.setConfig({ ...config, deadlineNs: monoNow() - 1n })
      expect(reason(tcp4())).toBe("DROP_FENCED")
      h.setConfig({ ...config, deadlineNs: deadline })
      expect(reason(tcp4())).toBe(monoNow() >= deadline ? "DROP_FENCED" : "PASS_OWNED")
      while (monoNow() < deadline) {
        const r = h.testRun(tcp4(), 1000).retval
        if (monoNow() < deadline - 1_000_000n) expect(r).toBe(2)
        await new Promise((r) => setTimeout(r, 2))
      }
      expect(reason(tcp4())).toBe("DROP_FENCED")
      expect(reason(tcp6())).toBe("DROP_FENCED")
      expect(reason(udp4())).toBe("DROP_FENCED")
    })
  })

  describe("UDP flows", () => {
    const tuple = (sport: number) => ({ family: 4 as const, src: CLIENT4, dst: VIP4, sport, dport: 53 })

    it("promotes a flow from probation on its second packet", () => {
      expect(reason(udp4(1111))).toBe("PASS_OWNED")
      expect(h.readFlows("udp_probation").map((f) => f.tuple)).toEqual([tuple(1111)])
      expect(h.readFlows("udp_flows")).toEqual([])
      expect(reason(udp4(1111))).toBe("PASS_OWNED")
      expect(h.readFlows("udp_probation")).toEqual([])
      expect(h.readFlows("udp_flows").map((f) => f.tuple)).toEqual([tuple(1111)])
    })

    it("a flood of single-packet flows churns only probation", () => {
      reason(udp4(2222))
      reason(udp4(2222))
      for (let i = 0; i < 2000; i++) h.testRun(udp4(10000 + i, 53, [0x0a000000 + i]))
      expect(h.readFlows("udp_flows").map((f) => f.tuple)).toEqual([tuple(2222)])
      expect(h.readFlows("udp_probation").length).toBeGreaterThan(1000)
    })

    it("keeps fresh own flows while moving out", () => {
      h.setBuckets(tableFill(LocalBucket.MOVING_OUT))
      h.putFlow("udp_flows", tuple(3333), monoNow())
      h.putFlow("udp_flows", tuple(4444), monoNow() - 2_000_000_000n)
      expect(reason(udp4(3333))).toBe("PASS_MOVING_OUT_UDP")
      expect(reason(udp4(4444))).toBe("DROP_MOVING_OUT_UDP") // idle longer than udpIdleMs
      expect(reason(udp4(5555))).toBe("DROP_MOVING_OUT_UDP")
      const seen = h.readFlows("udp_flows").find((f) => f.tuple.sport === 3333)!
      expect(seen.lastSeenNs).toBeGreaterThan(0n)
    })

    it("moving in: takes flows the previous owner does not hold", () => {
      h.setBuckets(tableFill(LocalBucket.MOVING_IN_WAIT))
      expect(reason(udp4(6666))).toBe("DROP_MOVING_IN_WAIT_UDP")
      h.setBuckets(tableFill(LocalBucket.MOVING_IN))
      h.setForeignFlows([tuple(7777)])
      expect(reason(udp4(7777))).toBe("DROP_MOVING_IN_UDP")
      expect(reason(udp4(6666))).toBe("PASS_MOVING_IN_UDP")
      expect(h.readFlows("udp_probation").map((f) => f.tuple)).toEqual([tuple(6666)])
      h.setForeignFlows([])
      expect(reason(udp4(7777))).toBe("PASS_MOVING_IN_UDP")
    })
  })

  describe("TCP in moving buckets (real loopback sockets)", () => {
    let server: Server
    let client: Socket
    let accepted: Socket
    let port: number
    const LO = [0x7f000001]
    const loTcp = (sport: number, flags: number) => tcp4({ src: LO, dst: LO, sport, dport: port, flags })

    beforeAll(async () => {
      server = createServer((s) => { accepted = s })
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
      port = (server.address() as { port: number }).port
      client = connect(port, "127.0.0.1")
      await new Promise<void>((r) => client.on("connect", r))
      while (!accepted) await new Promise((r) => setTimeout(r, 5))
    })
    afterAll(() => {
      client?.destroy()
      accepted?.destroy()
      server?.close()
    })
    beforeEach(() => {
      h.setVips([...vips, { words: LO, rules: [{ proto: 6, affinity: "client-ip-port", table: 2, portLo: 0, portHi: 65535 }] }])
    })

    it("moving out: keeps flows with a socket, gives away new ones", () => {
      h.setBuckets(tableFill(LocalBucket.MOVING_OUT))
      expect(reason(loTcp(client.localPort!, TcpFlag.ACK))).toBe("PASS_MOVING_OUT_TCP")
      expect(reason(loTcp(client.localPort!, TcpFlag.ACK | TcpFlag.PSH))).toBe("PASS_MOVING_OUT_TCP")
      expect(reason(loTcp(1, TcpFlag.ACK))).toBe("DROP_MOVING_OUT_TCP") // only the listener matches
      expect(reason(loTcp(client.localPort!, TcpFlag.SYN))).toBe("DROP_MOVING_OUT_SYN")
    })

    it("moving in: takes new flows and flows it already holds", () => {
      for (const code of [LocalBucket.MOVING_IN_WAIT, LocalBucket.MOVING_IN]) {
        h.setBuckets(tableFill(code))
        expect(reason(loTcp(1, TcpFlag.SYN))).toBe("PASS_MOVING_IN_SYN")
        expect(reason(loTcp(1, TcpFlag.ACK))).toBe("DROP_MOVING_IN_TCP")
        expect(reason(loTcp(client.localPort!, TcpFlag.ACK))).toBe("PASS_MOVING_IN_TCP")
        expect(reason(loTcp(1, TcpFlag.SYN | TcpFlag.ACK))).toBe("DROP_MOVING_IN_TCP")
      }
    })
  })
})
