/**
 * The VIP lookup table (struct vf_vip_set in the program's .bss): the encoder places every
 * VIP within VIP_PROBES slots of its home, and the kernel finds exactly the configured VIPs
 * with full tables (256 per family), colliding homes and a double-buffered replacement.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { LocalBucket } from "@vipfarm/domain"
import { encodeVipSet, findVip, MAX_VIPS, vipHome, vipSetAddresses } from "./encode.ts"
import { baseConfig, CLIENT4, CLIENT6, IFMAC, isRoot, skipReason } from "./internal/fixtures.ts"
import { loadFilter, type FilterHandle } from "./loader.ts"
import { ethernet, EtherType, ipv4, ipv6, tcp, TcpFlag } from "./packet.ts"
import type { VipEntry } from "./types.ts"

const rule = (portLo: number): VipEntry["rules"] => [{ proto: 6, affinity: "client-ip", table: 0, portLo, portHi: portLo }]
const v4 = (i: number): Array<number> => [(0xc6120000 + i) >>> 0] // 198.18.x.y
const v6 = (i: number): Array<number> => [0x20010db8, 0, 0, i]

describe("VIP set encoding", () => {
  it("finds every VIP and nothing else, full tables included", () => {
    const vips: Array<VipEntry> = []
    for (let i = 0; i < MAX_VIPS; i++) vips.push({ words: v4(i * 7), rules: rule(i) }, { words: v6(i * 13), rules: rule(i) })
    const set = encodeVipSet(vips)
    for (let i = 0; i < MAX_VIPS; i++) {
      expect(findVip(set, v4(i * 7))).toBeGreaterThanOrEqual(0)
      expect(findVip(set, v6(i * 13))).toBeGreaterThanOrEqual(MAX_VIPS)
    }
    for (let i = 0; i < 2000; i++) {
      if (i % 7) expect(findVip(set, v4(i))).toBe(-1)
      if (i % 13) expect(findVip(set, v6(i))).toBe(-1)
    }
    expect(vipSetAddresses(set)).toHaveLength(2 * MAX_VIPS)
  })

  it("keeps the last entry of a repeated address and rejects too many VIPs", () => {
    const set = encodeVipSet([{ words: v4(1), rules: rule(1) }, { words: v4(1), rules: rule(2) }])
    expect(vipSetAddresses(set)).toEqual([v4(1)])
    expect(() => encodeVipSet(Array.from({ length: MAX_VIPS + 1 }, (_, i) => ({ words: v4(i), rules: [] })))).toThrow(/at most 256/)
  })

  it("places addresses sharing one home slot", () => {
    const mul = 0x9e3779b1
    const home = vipHome(v4(0), mul)
    const same: Array<VipEntry> = []
    for (let i = 1; same.length < 6 && i < 1 << 20; i++) if (vipHome(v4(i), mul) === home) same.push({ words: v4(i), rules: rule(i) })
    const set = encodeVipSet(same)
    for (const v of same) expect(findVip(set, v.words)).toBeGreaterThanOrEqual(0)
  })
})

skipReason("vipset.test.ts")

describe.skipIf(!isRoot())("VIP set in the kernel", () => {
  let h: FilterHandle
  beforeAll(() => {
    h = loadFilter()
    h.setConfig(baseConfig())
    h.setBuckets(new Uint8Array(16 * 1024).fill(LocalBucket.OWNED))
  })
  afterAll(() => h?.close())
  const f4 = (dst: Array<number>, dport: number) =>
    ethernet({ dst: IFMAC, etherType: EtherType.IPV4 }, ipv4({ src: CLIENT4, dst, proto: 6 }, tcp({ sport: 40000, dport, flags: TcpFlag.ACK })))
  const f6 = (dst: Array<number>, dport: number) =>
    ethernet({ dst: IFMAC, etherType: EtherType.IPV6 }, ipv6({ src: CLIENT6, dst, proto: 6 }, tcp({ sport: 40000, dport, flags: TcpFlag.ACK })))

  it("passes owned traffic of each of 256 + 256 VIPs on its own rule, and non-VIP traffic as not for a VIP", () => {
    const vips: Array<VipEntry> = []
    for (let i = 0; i < MAX_VIPS; i++) vips.push({ words: v4(i * 3), rules: rule(1000 + i) }, { words: v6(i * 5), rules: rule(2000 + i) })
    h.setVips(vips)
    expect(h.vipAddresses()).toHaveLength(2 * MAX_VIPS)
    const before = h.readCounters()
    for (let i = 0; i < MAX_VIPS; i++) {
      expect(h.testRun(f4(v4(i * 3), 1000 + i)).retval).toBe(2)
      expect(h.testRun(f4(v4(i * 3), 999)).retval).toBe(1) // another VIP's port: no rule
      expect(h.testRun(f6(v6(i * 5), 2000 + i)).retval).toBe(2)
      expect(h.testRun(f6(v6(i * 5), 1999)).retval).toBe(1)
    }
    for (let i = 1; i < 3 * MAX_VIPS; i += 3) expect(h.testRun(f4(v4(i), 1000)).retval).toBe(2)
    const after = h.readCounters()
    expect(after.PASS_OWNED.packets - before.PASS_OWNED.packets).toBe(2n * BigInt(MAX_VIPS))
    expect(after.DROP_NO_RULE.packets - before.DROP_NO_RULE.packets).toBe(2n * BigInt(MAX_VIPS))
    expect(after.PASS_NOT_VIP.packets - before.PASS_NOT_VIP.packets).toBe(BigInt(MAX_VIPS))
  })

  it("replaces the set: removed VIPs are no longer matched", () => {
    h.setVips([{ words: v4(1), rules: rule(80) }])
    h.setVips([{ words: v4(2), rules: rule(80) }])
    expect(h.vipAddresses()).toEqual([v4(2)])
    const c0 = h.readCounters()
    h.testRun(f4(v4(1), 80))
    expect(h.readCounters().PASS_NOT_VIP.packets - c0.PASS_NOT_VIP.packets).toBe(1n)
    expect(h.testRun(f4(v4(2), 81)).retval).toBe(1)
    h.clear("vips")
    expect(h.vipAddresses()).toEqual([])
  })
})
