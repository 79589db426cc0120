/**
 * The kernel's bucket equals the shared vectors' bucket (packages/domain/test-vectors/hash.json)
 * for every packet vector: one crafted UDP packet (or fragment) per vector, bucket read back
 * from the per-bucket counters and checked by ownership.
 */
import { readFileSync } from "node:fs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { addressWords, bucketOf, type AffinityName } from "@vipfarm/domain"
import { LocalBucket } from "@vipfarm/domain"
import { baseConfig, isRoot, skipReason } from "./internal/fixtures.ts"
import { loadFilter, type FilterHandle } from "./loader.ts"
import { ethernet, EtherType, ipv4, ipv6, udp } from "./packet.ts"
import { Reason, reasonNames } from "./verdict.ts"

interface PacketVector {
  farm: string; seed: number; affinity: AffinityName; family: 4 | 6; src: string; dst: string
  sport: number; dport: number; packetId: number; fragment: boolean; bucket: number
}

const vectors = (JSON.parse(
  readFileSync(new URL("../../domain/test-vectors/hash.json", import.meta.url), "utf8")
) as { packets: Array<PacketVector> }).packets

/** The frame that carries a vector's flow identity. */
const frameOf = (v: PacketVector): Uint8Array => {
  const src = addressWords(v.src)
  const dst = addressWords(v.dst)
  if (v.family === 4) {
    const payload = v.fragment ? new Uint8Array(16) : udp({ sport: v.sport, dport: v.dport })
    return ethernet({ etherType: EtherType.IPV4 }, ipv4({ src, dst, proto: 17, id: v.packetId, mf: v.fragment }, payload))
  }
  if (v.fragment) {
    return ethernet({ etherType: EtherType.IPV6 }, ipv6({ src, dst, proto: 17, ext: [{ type: 44, more: true, id: v.packetId }] }, new Uint8Array(16)))
  }
  // IPv6 unfragmented: the packet id is the UDP checksum (16 bits on the wire).
  return ethernet({ etherType: EtherType.IPV6 }, ipv6({ src, dst, proto: 17 }, udp({ sport: v.sport, dport: v.dport, checksum: v.packetId })))
}

skipReason("hash.kernel.test.ts")

describe.skipIf(!isRoot())("kernel hash = shared vectors", () => {
  let h: FilterHandle
  beforeAll(() => {
    h = loadFilter()
  })
  afterAll(() => h?.close())

  it("puts every vector packet in the vector's bucket", () => {
    const buckets = new Uint8Array(16 * 1024)
    let last = -1
    for (const v of vectors) {
      const expected = v.bucket
      h.setConfig(baseConfig({ seed: v.seed }))
      h.setVips([{ words: addressWords(v.dst), rules: [{ proto: 17, affinity: v.affinity, table: 0, portLo: 0, portHi: 65535 }] }])
      if (last >= 0) buckets[last] = LocalBucket.FOREIGN
      buckets[expected] = LocalBucket.OWNED
      last = expected
      h.setBuckets(buckets)
      const before = h.readBucketCounter(expected)
      const c0 = h.readCounters()
      const r = h.testRun(frameOf(v))
      const c1 = h.readCounters()
      const reason = reasonNames.find((n) => c1[n].packets !== c0[n].packets)
      expect({ vector: v, reason, retval: r.retval }).toEqual({ vector: v, reason: "PASS_OWNED", retval: 2 })
      expect(h.readBucketCounter(expected) - before).toBe(1)
    }
    expect(Reason.PASS_OWNED).toBe(9)
  })
})
