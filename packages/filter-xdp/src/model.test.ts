/** Model unit tests (no root needed): parser fields, decision branches, flow state, header parity. */
import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { bucketOf } from "@vipfarm/domain"
import { LocalBucket } from "@vipfarm/domain"
import { decodeFlowKey, decodeVipKey, encodeConfig, encodeFlowKey, encodeVipKey, encodeVipValue } from "./encode.ts"
import { decideFrame } from "./frame.ts"
import { baseConfig, catchAll, CLIENT4, CLIENT6, IFMAC, SEED, VIP4, VIP6, VMAC } from "./internal/fixtures.ts"
import { decide, emptyFlows, emptyParsed, flowKey, modelTables, parsePacket, type ModelEnv, type Parsed } from "./model.ts"
import { ethernet, EtherType, icmp, icmp6Checksum, ipv4, ipv6, neighborSolicitation, solicitedNode, tcp, TcpFlag, udp } from "./packet.ts"
import { Reason, REASONS, reasonNames } from "./verdict.ts"

const env = (nowNs = 1e12): ModelEnv => ({ nowNs, tcpSocket: () => "none" })
const tables = (code: number) => modelTables(baseConfig(), [catchAll(VIP4), catchAll(VIP6)], new Uint8Array(16 * 1024).fill(code))

describe("parsePacket", () => {
  it("reads a TCP/IPv4 frame behind a VLAN tag", () => {
    const f = ethernet({ vlan: 3, etherType: EtherType.IPV4 }, ipv4({ src: CLIENT4, dst: VIP4, proto: 6, id: 99 }, tcp({ sport: 1234, dport: 80, flags: TcpFlag.SYN })))
    const p = parsePacket(f)
    expect(p).toMatchObject({ kind: "ip", l3: 18, family: 4, src: CLIENT4, dst: VIP4, proto: 6, sport: 1234, dport: 80, packetId: 99, tcpFlags: 2, malformed: false, fragment: false })
  })

  it("reads IPv6 extension headers and fragments", () => {
    const f = ethernet({ etherType: EtherType.IPV6 }, ipv6({ src: CLIENT6, dst: VIP6, proto: 17, ext: [{ type: 0 }, { type: 44, more: true, id: 0xdeadbeef }] }, new Uint8Array(8)))
    expect(parsePacket(f)).toMatchObject({ family: 6, proto: 17, fragment: true, packetId: 0xdeadbeef, ext: 2 })
    const u = ethernet({ etherType: EtherType.IPV6 }, ipv6({ src: CLIENT6, dst: VIP6, proto: 17, ext: [{ type: 60 }] }, udp({ sport: 5, dport: 53, checksum: 0xabcd })))
    expect(parsePacket(u)).toMatchObject({ proto: 17, fragment: false, sport: 5, dport: 53, packetId: 0xabcd })
  })

  it("marks unreadable destinations as other and bad headers as malformed", () => {
    expect(parsePacket(new Uint8Array(10)).kind).toBe("other")
    expect(parsePacket(ethernet({ etherType: EtherType.IPV4 }, new Uint8Array(19))).kind).toBe("other")
    const t = ethernet({ etherType: EtherType.IPV4 }, ipv4({ src: CLIENT4, dst: VIP4, proto: 6 }, new Uint8Array(10)))
    expect(parsePacket(t)).toMatchObject({ kind: "ip", malformed: true })
  })
})

describe("decide", () => {
  it("follows bucket states", () => {
    const p = parsePacket(ethernet({ etherType: EtherType.IPV4 }, ipv4({ src: CLIENT4, dst: VIP4, proto: 6 }, tcp({ sport: 1, dport: 80, flags: TcpFlag.ACK }))))
    const b = bucketOf("client-ip", p, SEED)
    expect(decide(p, tables(LocalBucket.OWNED), emptyFlows(), env())).toEqual({ action: "pass", reason: Reason.PASS_OWNED, table: 0, bucket: b })
    expect(decide(p, tables(LocalBucket.FOREIGN), emptyFlows(), env()).reason).toBe(Reason.DROP_FOREIGN)
    expect(decide(p, tables(LocalBucket.MOVING_OUT), emptyFlows(), env()).reason).toBe(Reason.DROP_MOVING_OUT_TCP)
    const withSocket: ModelEnv = { nowNs: 1e12, tcpSocket: () => "established" }
    expect(decide(p, tables(LocalBucket.MOVING_OUT), emptyFlows(), withSocket).reason).toBe(Reason.PASS_MOVING_OUT_TCP)
    expect(decide(p, tables(LocalBucket.MOVING_IN), emptyFlows(), { nowNs: 1e12, tcpSocket: () => "listen" }).reason).toBe(Reason.DROP_MOVING_IN_TCP)
    expect(decide({ ...p, tcpFlags: TcpFlag.SYN }, tables(LocalBucket.MOVING_IN), emptyFlows(), env()).reason).toBe(Reason.PASS_MOVING_IN_SYN)
    expect(decide(p, tables(LocalBucket.OWNED), emptyFlows(), env(2 ** 62)).reason).toBe(Reason.DROP_FENCED)
  })

  it("accepts Parsed values built without bytes (simulator use)", () => {
    const p: Parsed = { ...emptyParsed(), kind: "ip", family: 4, src: CLIENT4, dst: VIP4, proto: 17, sport: 9, dport: 53 }
    const flows = emptyFlows()
    const t = tables(LocalBucket.OWNED)
    decide(p, t, flows, env(1e12))
    expect([...flows.probation.keys()]).toEqual([flowKey(p)])
    decide(p, t, flows, env(1e12 + 1))
    expect([...flows.established.keys()]).toEqual([flowKey(p)])
    expect(flows.probation.size).toBe(0)
    const out = tables(LocalBucket.MOVING_OUT)
    expect(decide(p, out, flows, env(1e12 + 5e8)).reason).toBe(Reason.PASS_MOVING_OUT_UDP)
    expect(decide(p, out, flows, env(1e12 + 5e8 + 1.1e9)).reason).toBe(Reason.DROP_MOVING_OUT_UDP)
    flows.foreign.add(flowKey(p))
    expect(decide(p, tables(LocalBucket.MOVING_IN), flows, env()).reason).toBe(Reason.DROP_MOVING_IN_UDP)
  })

  it("builds a valid neighbour advertisement", () => {
    const f = ethernet({ etherType: EtherType.IPV6 }, ipv6({ src: CLIENT6, dst: solicitedNode(VIP6), proto: 58, hopLimit: 255 }, neighborSolicitation(VIP6, null)))
    const d = decideFrame(f, tables(LocalBucket.OWNED), emptyFlows(), env())
    expect(d.reason).toBe(Reason.TX_ND_ADVERT)
    expect(d.frame.length).toBe(14 + 40 + 32)
    expect(icmp6Checksum(VIP6, CLIENT6, d.frame.subarray(54))).toBe(0)
    expect(Array.from(d.frame.subarray(6, 12))).toEqual(Array.from(IFMAC))
    expect(Array.from(d.frame.subarray(54 + 26, 54 + 32))).toEqual(Array.from(VMAC))
  })

  it("passes ICMP errors and never touches non-VIP frames", () => {
    const e = ethernet({ dst: VMAC, etherType: EtherType.IPV4 }, ipv4({ src: CLIENT4, dst: VIP4, proto: 1 }, icmp(3)))
    const d = decideFrame(e, tables(LocalBucket.FOREIGN), emptyFlows(), env())
    expect(d.reason).toBe(Reason.PASS_ICMP_ERROR)
    expect(Array.from(d.frame.subarray(0, 6))).toEqual(Array.from(IFMAC))
    const n = ethernet({ dst: VMAC, etherType: EtherType.IPV4 }, ipv4({ src: CLIENT4, dst: [1], proto: 1 }, icmp(8)))
    expect(Buffer.from(decideFrame(n, tables(LocalBucket.OWNED), emptyFlows(), env()).frame).equals(Buffer.from(n))).toBe(true)
  })
})

describe("shared definitions", () => {
  it("reason codes equal enum vf_reason in bpf/vipfarm.h", () => {
    const h = readFileSync(new URL("../bpf/vipfarm.h", import.meta.url), "utf8")
    const inC = Object.fromEntries([...h.matchAll(/VF_([A-Z_]+) = (\d+),/g)].map((m) => [m[1], Number(m[2])]))
    for (const name of reasonNames) expect([name, inC[name]]).toEqual([name, Reason[name]])
    expect(inC.REASONS).toBe(REASONS)
  })

  it("encodes map keys and values", () => {
    expect(decodeVipKey(encodeVipKey(VIP6))).toEqual(VIP6)
    expect(Array.from(encodeVipKey(VIP4).subarray(0, 8))).toEqual([4, 0, 0, 0, 198, 18, 0, 1])
    const t = { family: 6 as const, src: CLIENT6, dst: VIP6, sport: 1, dport: 2 }
    expect(decodeFlowKey(encodeFlowKey(t))).toEqual(t)
    expect(encodeConfig(baseConfig()).length).toBe(32)
    expect(encodeVipValue(catchAll(VIP4)).subarray(0, 20)).toEqual(Uint8Array.of(2, 0, 0, 0, 6, 0, 0, 0, 0, 0, 255, 255, 17, 0, 0, 0, 0, 0, 255, 255))
  })
})
