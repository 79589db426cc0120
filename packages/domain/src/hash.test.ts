import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import fc from "fast-check"
import { addressWords, affinityKey, type AffinityName, bucketOf, BUCKETS, farmSeed, formatAddress, jhash2, virtualMac } from "./hash.ts"

const vectors = JSON.parse(readFileSync(new URL("../test-vectors/hash.json", import.meta.url), "utf8"))

describe("hash spec", () => {
  it("reproduces every shared jhash2 vector", () => {
    expect(vectors.jhash2.length).toBeGreaterThan(30)
    for (const v of vectors.jhash2) expect(jhash2(v.words, v.initval)).toBe(v.hash)
  })

  it("reproduces every shared packet vector (key, hash, bucket)", () => {
    expect(vectors.packets.length).toBeGreaterThan(100)
    for (const v of vectors.packets) {
      const f = { src: addressWords(v.src), dst: addressWords(v.dst), sport: v.sport, dport: v.dport, packetId: v.packetId, fragment: v.fragment }
      expect(farmSeed(v.farm)).toBe(v.seed)
      expect(affinityKey(v.affinity as AffinityName, f)).toEqual(v.key)
      expect(bucketOf(v.affinity as AffinityName, f, v.seed)).toBe(v.bucket)
    }
  })

  it("matches lookup3 on the empty key (initval 0xdeadbeef)", () => {
    expect(jhash2([], 0)).toBe(0xdeadbeef)
  })

  it("client-ip keeps a client on one bucket whatever its ports", () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 65535 }), (ip, p1, p2) => {
      const a = { src: [ip], dst: [0xc6120064], sport: p1, dport: 80, packetId: 1, fragment: false }
      const b = { ...a, sport: p2, packetId: 9 }
      expect(bucketOf("client-ip", a, 7)).toBe(bucketOf("client-ip", b, 7))
    }))
  })

  it("symmetric-pair gives both directions the same bucket", () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: 4, maxLength: 4 }), fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: 4, maxLength: 4 }), (s, d) => {
      const a = { src: s, dst: d, sport: 1, dport: 2, packetId: 0, fragment: false }
      const b = { src: d, dst: s, sport: 2, dport: 1, packetId: 0, fragment: false }
      expect(bucketOf("symmetric-pair", a, 1)).toBe(bucketOf("symmetric-pair", b, 1))
    }))
  })

  it("client-network puts a /24 on one bucket", () => {
    const base = addressWords("198.18.7.0")[0]
    const buckets = new Set(Array.from({ length: 256 }, (_, i) => bucketOf("client-network", { src: [base + i], dst: [1], sport: i, dport: 80, packetId: 0, fragment: false }, 3)))
    expect(buckets.size).toBe(1)
  })

  it("spreads client addresses evenly over the buckets", () => {
    const counts = new Array(BUCKETS).fill(0)
    const n = 200_000
    for (let i = 0; i < n; i++) counts[bucketOf("client-ip", { src: [0xc6130000 + i], dst: [1], sport: 0, dport: 0, packetId: 0, fragment: false }, farmSeed("web"))]++
    const mean = n / BUCKETS
    const max = Math.max(...counts)
    const min = Math.min(...counts)
    expect(max / mean).toBeLessThan(1.35)
    expect(min / mean).toBeGreaterThan(0.65)
  })

  it("parses and formats addresses", () => {
    expect(addressWords("198.18.0.1")).toEqual([0xc6120001])
    expect(addressWords("2001:db8::1")).toEqual([0x20010db8, 0, 0, 1])
    expect(addressWords("::ffff:198.18.0.1")).toEqual([0, 0, 0xffff, 0xc6120001])
    expect(formatAddress([0x20010db8, 0, 0, 1])).toBe("2001:db8::1")
    expect(() => addressWords("198.18.0.256")).toThrow(/not an IP address/)
    expect(() => addressWords("1::2::3")).toThrow(/not an IP address/)
    fc.assert(fc.property(fc.ipV6(), (a) => {
      expect(addressWords(formatAddress(addressWords(a)))).toEqual(addressWords(a))
    }))
  })

  it("derives a locally administered unicast virtual MAC from the farm name", () => {
    const mac = virtualMac("web")
    expect(mac).toMatch(/^02:fa(:[0-9a-f]{2}){4}$/)
    expect(parseInt(mac.slice(0, 2), 16) & 1).toBe(0)
    expect(virtualMac("web")).not.toBe(virtualMac("dns"))
  })
})
