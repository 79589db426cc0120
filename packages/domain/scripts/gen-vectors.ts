/**
 * Writes packages/domain/test-vectors/hash.json: the shared test vectors that the
 * TypeScript hash and the C filter must both reproduce. Deterministic (fixed LCG).
 * The vectors come from the TypeScript hash; src/hash.reference.test.ts checks them against
 * an independent C reference written from the kernel's jhash.h (scripts/hash-reference.c).
 * Run: npx tsx packages/domain/scripts/gen-vectors.ts
 */
import { writeFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { affinityKey, affinityNames, bucketOfHash, farmSeed, formatAddress, jhash2 } from "../src/hash.ts"

let state = 0x2545f491
const next = (): number => {
  state = (Math.imul(state, 1664525) + 1013904223) >>> 0
  return state
}

const jhash = [] as Array<{ words: Array<number>; initval: number; hash: number }>
for (let len = 0; len <= 10; len++) {
  for (let k = 0; k < 3; k++) {
    const words = Array.from({ length: len }, next)
    const initval = k === 0 ? 0 : next()
    jhash.push({ words, initval, hash: jhash2(words, initval) })
  }
}

const packets = [] as Array<Record<string, unknown>>
const farms = ["web", "dns", "vipfarm-test"]
for (let i = 0; i < 120; i++) {
  const family = i % 2 === 0 ? 4 : 6
  const words = family === 4 ? 1 : 4
  const src = Array.from({ length: words }, next)
  const dst = Array.from({ length: words }, next)
  const f = {
    src, dst,
    sport: next() & 0xffff, dport: next() & 0xffff,
    fragment: i % 7 === 3,
    // IPv4: the 16-bit IP id; IPv6: the 32-bit fragment id for fragments, else the 16-bit UDP checksum
    packetId: family === 6 && i % 7 === 3 ? next() : next() & 0xffff
  }
  const affinity = affinityNames[i % affinityNames.length]
  const farm = farms[i % farms.length]
  const seed = farmSeed(farm)
  const key = affinityKey(affinity, f)
  const hash = jhash2(key, seed)
  packets.push({
    farm, seed, affinity, family,
    src: formatAddress(src), dst: formatAddress(dst),
    sport: f.sport, dport: f.dport, packetId: f.packetId, fragment: f.fragment,
    key, hash, bucket: bucketOfHash(hash)
  })
}

const out = fileURLToPath(new URL("../test-vectors/hash.json", import.meta.url))
writeFileSync(out, JSON.stringify({
  spec: "packages/domain/src/hash.ts",
  buckets: 1024,
  farmSeeds: farms.map((farm) => ({ farm, seed: farmSeed(farm) })),
  jhash2: jhash,
  packets
}, null, 1) + "\n")
console.log(`wrote ${out}: ${jhash.length} jhash2 vectors, ${packets.length} packet vectors`)
