/**
 * Cost of signed, chained records per record: signing an append, verifying a record and folding
 * it with the chain check, for a small record (one MemberReady) and a large one (a HandoffStarted
 * moving 1024 buckets). Run: npx tsx packages/runtime/bench/signing.bench.ts [N]
 */
import { writeFileSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { applyEntry, initialState, recordHash } from "@vipfarm/domain"
import { generateKeys, loadSigner, signRecord, verifyRecord } from "../src/signing.ts"

const N = Number(process.argv[2] ?? 2000)
const dir = mkdtempSync(join(tmpdir(), "vipfarm-signing-bench-"))
const k = generateKeys()
writeFileSync(join(dir, "s1.key"), k.privatePem, { mode: 0o600 })
const s = await Effect.runPromise(loadSigner("s1", { key: join(dir, "s1.key"), keys: { s1: k.publicBase64 } }, { needKey: true }))
rmSync(dir, { recursive: true, force: true })
const cause = { kind: "daemon", by: "s1" }
const small = [{ _tag: "MemberReady", v: 1, cause, node: "s1" }]
const large = [{ _tag: "HandoffStarted", v: 1, cause, handoff: "h@1", mode: "graceful", moves: Array.from({ length: 1024 }, (_, b) => ({ table: 0, bucket: b, from: "s1", to: "s2" })) }]

for (const [name, events] of [["small (MemberReady)", small], ["large (HandoffStarted, 1024 moves)", large]] as const) {
  const n = name.startsWith("large") ? Math.max(50, Math.floor(N / 20)) : N
  const t0 = performance.now()
  const signed: Array<unknown> = []
  let prev = ""
  for (let i = 0; i < n; i++) {
    const r = signRecord(s, { v: 1, events, prev })
    signed.push(r)
    prev = recordHash(r)
  }
  const t1 = performance.now()
  for (const r of signed) verifyRecord(s, JSON.parse(JSON.stringify(r)))
  const t2 = performance.now()
  let st = initialState("bench")
  for (const r of signed) st = applyEntry(st, r) // chain check + decode (most events are rejected after the first: the state does not matter here)
  const t3 = performance.now()
  const us = (a: number, b: number) => (((b - a) * 1000) / n).toFixed(1)
  console.log(`${name}: ${n} records; sign+hash ${us(t0, t1)} µs, verify ${us(t1, t2)} µs, fold with chain check ${us(t2, t3)} µs per record`)
}
