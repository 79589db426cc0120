/**
 * Domain benchmark: events folded per second and assignment recomputations per second
 * for farms of 2 to 128 servers.
 * Run: node --import tsx packages/domain/bench/reducer.bench.ts
 */
import { performance } from "node:perf_hooks"
import { assign, BUCKETS, type Command, type FarmEvent, foldLog, initialState } from "../src/index.ts"
import { execute, operatorCause, settle } from "../src/testkit.ts"

const cause = operatorCause("bench")

/** Build a settled farm of n servers and the log that made it. */
const farmOf = (n: number) => {
  let s = initialState("bench")
  const log: Array<FarmEvent> = []
  for (let i = 0; i < n; i++) {
    const node = `s${i}`
    for (const c of [
      { _tag: "Join", node, address: "198.18.0.1", weight: 100 + (i % 3) * 50, priority: i + 1, rulesDigest: "d", cause },
      { _tag: "Ready", node, cause }
    ] as Array<Command>) {
      const r = execute(s, c)
      log.push(...r.events)
      s = r.state
    }
    s = settle(s, log)
  }
  return { state: s, log }
}

const time = (f: () => void, minMs = 300): { ops: number; ms: number } => {
  let ops = 0
  const t0 = performance.now()
  let t = t0
  while (t - t0 < minMs) {
    f()
    ops++
    t = performance.now()
  }
  return { ops, ms: t - t0 }
}

console.log("servers | log events | events folded/s | full replays/s | assignments/s")
console.log("------- | ---------- | --------------- | -------------- | -------------")
for (const n of [2, 8, 32, 128]) {
  const { state, log } = farmOf(n)
  const json = log.map((e) => JSON.parse(JSON.stringify(e)))
  const replay = time(() => foldLog(initialState("bench"), json))
  const eventsPerSec = (replay.ops * json.length) / (replay.ms / 1000)
  const current = state.tables[0].map((b) => b.owner)
  const candidates = state.members.map((m, i) => ({ name: m.name, weight: i === 0 ? 0 : m.weight }))
  const a = time(() => assign(current, candidates))
  console.log(`${String(n).padStart(7)} | ${String(json.length).padStart(10)} | ${Math.round(eventsPerSec).toLocaleString("en").padStart(15)} | ${(replay.ops / (replay.ms / 1000)).toFixed(1).padStart(14)} | ${Math.round(a.ops / (a.ms / 1000)).toLocaleString("en").padStart(13)}`)
}
console.log(`(buckets per table: ${BUCKETS}; events are decoded from JSON with Effect Schema and folded; an assignment recomputes one table after one server leaves)`)
