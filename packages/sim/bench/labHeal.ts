// Lab check of issue 16's recovery targets (root): a real 3-server lab (lab NAME, default ho2),
// 30 client addresses polling the VIP (a GET every 50 ms, 100 ms timeout), then s3 partitioned
// from s1,s2 for 8 s and healed, then s3's link flapping 5 times in 10 s (1 s down, 1 s up).
// Prints, per fault: the longest silence of any address after the heal, how many addresses had a
// silence longer than 300 ms (a request that fails after one retry) starting after the heal, and
// the time until every address was served again.
// usage: node --import tsx packages/sim/bench/labHeal.ts [NAME]
import { readFileSync } from "node:fs"
import { Effect } from "effect"
import { addressesOf, labDown, labHealPartition, labLink, labPartition, labUp, type PollResult, silences, startProbe, waitFarmUp } from "../../runtime/src/index.ts"

const name = process.argv[2] ?? "ho2"
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const lab = await Effect.runPromise(labUp({ name, servers: 3, clients: 1, addressesPerClient: 40, app: "builtin", daemons: true }))
try {
  await waitFarmUp(lab)
  const addrs = addressesOf(lab).slice(0, 30)
  const poll = startProbe<PollResult>(lab, "c1", ["poll", lab.vip, "62", ...addrs])
  await poll.ready
  // a window without a fault first: what the prober sees on this machine anyway (its CPU stalls)
  const marks: Array<[string, number, number, number]> = []
  const quiet = Date.now()
  await sleep(4000)
  marks.push(["no fault (baseline)", quiet, quiet, 4000])
  let t = Date.now()
  await Effect.runPromise(labPartition(lab, ["s1", "s2"], ["s3"]))
  await sleep(8000)
  await Effect.runPromise(labHealPartition(lab))
  marks.push(["partition {s1,s2} / {s3} 8 s", t, Date.now(), 15000])
  await sleep(16000)
  t = Date.now()
  for (let i = 0; i < 5; i++) {
    await Effect.runPromise(labLink(lab, "s3", false))
    await sleep(1000)
    await Effect.runPromise(labLink(lab, "s3", true))
    if (i < 4) await sleep(1000)
  }
  marks.push(["s3's link flapping 5x in 10 s", t, Date.now(), 15000])
  const result = await poll.result
  for (const [what, from, heal, windowMs] of marks) {
    const to = heal + windowMs
    let worst = 0
    let failedAfterRetry = 0
    let allServedAt = heal
    let duringFault = 0
    for (const p of result) {
      let failed = false
      for (const [ms, start] of silences(p.samples, from)) {
        const end = start + ms
        if (start < heal && end > from) duringFault = Math.max(duringFault, Math.min(end, heal) - Math.max(start, from))
        if (end <= heal || start >= to) continue
        worst = Math.max(worst, end - Math.max(start, heal))
        if (start >= heal && ms > 300) failed = true
        allServedAt = Math.max(allServedAt, end)
      }
      if (failed) failedAfterRetry++
    }
    const lagged = result.reduce((n, p) => n + (p.lagged ?? 0), 0)
    console.log(`${what}: all served ${allServedAt - heal} ms after the heal; worst silence after it ${worst} ms; addresses with a failure after one retry (silence > 300 ms starting after the heal, ${windowMs / 1000} s): ${failedAfterRetry}/${result.length}; longest silence during the fault ${duringFault} ms; prober stalls ${lagged}`)
  }
  // what the daemons logged: failed appends (and their backoff) and when s3 was back in the farm
  for (const s of lab.servers) {
    const lines = readFileSync(`${lab.dir}/${s.node}-daemon.log`, "utf8").split("\n")
    const at = (l: string) => Date.parse(/^ts=(\S+)/.exec(l)?.[1] ?? "")
    for (const [what, from, heal] of marks.slice(1)) {
      const window = lines.filter((l) => at(l) >= from && at(l) < heal + 15000)
      const failed = window.filter((l) => l.includes("op=ctl.append-failed"))
      const errors = [...new Set(failed.map((l) => /error=("[^"]*"|\S+)/.exec(l)?.[1] ?? "?"))]
      const joined = window.find((l) => l.includes("op=ctl.appended") && /msgId=join-/.test(l))
      console.log(`${s.node} ${what}: ${failed.length} failed appends (${errors.join(", ")}); ${joined ? `rejoined ${at(joined) - heal} ms after the heal` : "no join"}`)
    }
  }
} finally {
  labDown(name)
}
