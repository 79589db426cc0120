/**
 * The VIP lookup table (struct vf_vip_set in the program's .bss): the encoder places every
 * VIP within VIP_PROBES slots of its home, and the kernel finds exactly the configured VIPs
 * with full tables (256 per family), colliding homes and a double-buffered replacement.
 * Each VIP keeps its counter index (`vip_counters`) while it stays configured.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { LocalBucket } from "@vipfarm/domain"
import { encodeVipSet, findVip, MAX_VIPS, vipHome, vipKey, vipSetAddresses } from "./encode.ts"
import { baseConfig, CLIENT4, CLIENT6, IFMAC, isRoot, skipReason } from "./internal/fixtures.ts"
import { loadFilter, type FilterHandle } from "./loader.ts"
import { ethernet, EtherType, ipv4, ipv6, tcp, TcpFlag } from "./packet.ts"
import type { VipEntry } from "./types.ts"
import { VipIndex } from "./vipIndex.ts"

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

describe("VIP counter indices", () => {
  it("keeps a VIP's index, reuses freed indices last, and numbers the families apart", () => {
    const x = new VipIndex()
    const p1 = x.plan([v4(1), v6(1), v4(2)])
    expect(x.indexOf.size).toBe(0) // nothing until commit
    p1.commit()
    expect([...x.indexOf]).toEqual([[vipKey(v4(1)), 0], [vipKey(v6(1)), MAX_VIPS], [vipKey(v4(2)), 1]])
    expect(p1.added).toEqual([0, MAX_VIPS, 1])
    const p2 = x.plan([v4(2), v4(3)]) // v4(1) and v6(1) removed
    p2.commit()
    expect([...x.indexOf]).toEqual([[vipKey(v4(2)), 1], [vipKey(v4(3)), 2]])
    expect(p2.added).toEqual([2])
    // fill the IPv4 family: the freed index 0 comes last
    const all = Array.from({ length: MAX_VIPS }, (_, i) => v4(100 + i))
    const p3 = x.plan([v4(2), v4(3), ...all.slice(0, MAX_VIPS - 2)])
    expect(p3.added.at(-1)).toBe(0)
    expect(() => x.plan([v4(2), v4(3), ...all.slice(0, MAX_VIPS - 1)])).toThrow(/at most 256 IPv4/)
  })

  it("encodes each VIP at the index given, and rejects a missing or out-of-family index", () => {
    const set = encodeVipSet([{ words: v4(1), rules: rule(1) }, { words: v6(1), rules: rule(1) }], new Map([[vipKey(v4(1)), 7], [vipKey(v6(1)), MAX_VIPS + 9]]))
    expect(findVip(set, v4(1))).toBe(7)
    expect(findVip(set, v6(1))).toBe(MAX_VIPS + 9)
    expect(() => encodeVipSet([{ words: v4(1), rules: rule(1) }], new Map())).toThrow(/rules index undefined/)
    expect(() => encodeVipSet([{ words: v6(1), rules: rule(1) }], new Map([[vipKey(v6(1)), 3]]))).toThrow(/outside 256..511/)
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
  it("counts each VIP's packets and bytes by verdict, keeps them across set changes, and starts a reused index's VIP at zero", () => {
    const owned = new Uint8Array(16 * 1024).fill(LocalBucket.OWNED)
    h.setBuckets(owned)
    const counts = () => new Map(h.readVipCounters().map((v) => [vipKey(v.words), v.counters]))
    h.setVips([{ words: v4(10), rules: rule(80) }, { words: v6(10), rules: rule(80) }])
    const a = f4(v4(10), 80)
    const b = f6(v6(10), 80)
    h.testRun(a)
    h.testRun(a)
    h.testRun(f4(v4(10), 81)) // no rule
    h.testRun(b)
    h.testRun(f4(v4(11), 80)) // not a VIP: counted in no VIP
    let c = counts()
    expect([...c.keys()]).toEqual([vipKey(v4(10)), vipKey(v6(10))])
    expect(c.get(vipKey(v4(10)))!.PASS_OWNED).toEqual({ packets: 2n, bytes: 2n * BigInt(a.length) })
    expect(c.get(vipKey(v4(10)))!.DROP_NO_RULE.packets).toBe(1n)
    expect(c.get(vipKey(v6(10)))!.PASS_OWNED).toEqual({ packets: 1n, bytes: BigInt(b.length) })
    // another VIP added: the first keeps its counts
    h.setVips([{ words: v4(11), rules: rule(80) }, { words: v4(10), rules: rule(80) }])
    h.setBuckets(new Uint8Array(16 * 1024).fill(LocalBucket.FOREIGN))
    h.testRun(a)
    h.testRun(f4(v4(11), 80))
    c = counts()
    expect(c.get(vipKey(v4(10)))!.PASS_OWNED.packets).toBe(2n)
    expect(c.get(vipKey(v4(10)))!.DROP_FOREIGN).toEqual({ packets: 1n, bytes: BigInt(a.length) })
    expect(c.get(vipKey(v4(11)))!.DROP_FOREIGN.packets).toBe(1n)
    expect(c.has(vipKey(v6(10)))).toBe(false)
    // a full IPv4 family reuses the freed indices: a new VIP starts at zero, the totals keep every count
    const total0 = h.readCounters()
    const many: Array<VipEntry> = Array.from({ length: MAX_VIPS }, (_, i) => ({ words: v4(1000 + i), rules: rule(80) }))
    h.setVips(many)
    c = counts()
    expect(c.size).toBe(MAX_VIPS)
    for (const v of c.values()) expect([v.PASS_OWNED.packets, v.DROP_FOREIGN.packets, v.DROP_NO_RULE.packets]).toEqual([0n, 0n, 0n])
    h.testRun(f4(v4(1000), 80))
    expect(counts().get(vipKey(v4(1000)))!.DROP_FOREIGN.packets).toBe(1n)
    const total1 = h.readCounters()
    expect(total1.DROP_FOREIGN.packets - total0.DROP_FOREIGN.packets).toBe(1n)
    expect(total1.PASS_OWNED.packets).toBe(total0.PASS_OWNED.packets)
    h.setBuckets(owned)
  })
})
