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

  it("client-network puts an IPv4 /24 and an IPv6 /48 on one key; another prefix makes another key", () => {
    const word = fc.integer({ min: 0, max: 0xffffffff })
    const flow = (src: Array<number>, sport: number) => ({ src, dst: src.map(() => 1), sport, dport: 80, packetId: sport, fragment: false })
    fc.assert(fc.property(word, fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 65535 }), (ip, low, sport) => {
      const a = flow([ip], 1)
      const b = flow([((ip & 0xffffff00) | low) >>> 0], sport)
      expect(affinityKey("client-network", b)).toEqual(affinityKey("client-network", a))
      expect(affinityKey("client-network", a)).toEqual([(ip & 0xffffff00) >>> 0])
      const other = flow([(ip ^ 0x100) >>> 0], 1)
      expect(affinityKey("client-network", other)).not.toEqual(affinityKey("client-network", a))
    }))
    fc.assert(fc.property(fc.array(word, { minLength: 4, maxLength: 4 }), fc.array(word, { minLength: 3, maxLength: 3 }), fc.integer({ min: 0, max: 47 }), (src, rest, bit) => {
      const a = flow(src, 1)
      // the same /48: words 0 and the top half of word 1 kept, everything after it anything
      const same = flow([src[0], ((src[1] & 0xffff0000) | (rest[0] & 0xffff)) >>> 0, rest[1], rest[2]], 9)
      expect(affinityKey("client-network", same)).toEqual(affinityKey("client-network", a))
      expect(bucketOf("client-network", same, 5)).toBe(bucketOf("client-network", a, 5))
      expect(affinityKey("client-network", a)).toEqual([src[0], (src[1] & 0xffff0000) >>> 0])
      // one bit flipped inside the /48: another network, another key
      const flipped = src.slice()
      flipped[bit >> 5] = (flipped[bit >> 5] ^ (1 << (31 - (bit & 31)))) >>> 0
      expect(affinityKey("client-network", flow(flipped, 1))).not.toEqual(affinityKey("client-network", a))
    }))
  })

  it("per-packet: each packet of a flow has its own key; every fragment of a datagram one bucket", () => {
    const word = fc.integer({ min: 0, max: 0xffffffff })
    fc.assert(fc.property(fc.boolean(), fc.array(word, { minLength: 4, maxLength: 4 }), fc.integer({ min: 0, max: 65535 }), word, word, fc.integer({ min: 0, max: 65535 }), (v6, words, sport, id1, id2, otherPort) => {
      const src = v6 ? words : words.slice(0, 1)
      const p = { src, dst: src.map(() => 7), sport, dport: 53, packetId: id1, fragment: false }
      expect(affinityKey("per-packet", p)).toEqual([...src, sport, id1])
      if (id1 !== id2) expect(affinityKey("per-packet", { ...p, packetId: id2 })).not.toEqual(affinityKey("per-packet", p))
      // fragments carry no ports (only the first has them): the datagram's id alone decides
      const frag = { ...p, fragment: true }
      expect(affinityKey("per-packet", frag)).toEqual([...src, id1])
      expect(bucketOf("per-packet", { ...frag, sport: otherPort }, 3)).toBe(bucketOf("per-packet", frag, 3))
    }))
    // one flow's packets spread over the buckets (4096 ids: ~1005 of 1024 buckets expected)
    const seen = new Set<number>()
    for (let id = 0; id < 4096; id++) seen.add(bucketOf("per-packet", { src: [0xc6120001], dst: [0xc6120064], sport: 5353, dport: 53, packetId: id, fragment: false }, farmSeed("dns")))
    expect(seen.size).toBeGreaterThan(950)
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
