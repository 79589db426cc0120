/**
 * End-to-end (lab `mx`): the Prometheus metrics of real daemons, not a fake source. Three
 * servers run Debian nginx through the shipped nginx module (so checkers run) and serve
 * /metrics in their namespaces. Checked: the application's and each checker's state and probe
 * latency, the log sequence, head and fold lag, UDP flows tracked after UDP traffic, the
 * failover duration histogram on the survivors after a SIGKILL, and hand-offs once the killed
 * server is back.
 */
import { spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { labStartDaemon, type LabState } from "@vipfarm/runtime"
import { addressesOf, killDaemon, rootOrSkip, startLab, status, stopLab, until, untilFarm } from "./harness.ts"

const NAME = "mx"
const FARM = fileURLToPath(new URL("../../packages/cli/bin/farm.mjs", import.meta.url))
const root = rootOrSkip("metrics.e2e.test.ts")
const skip = !root ? "needs root" : spawnSync("test", ["-x", "/usr/sbin/nginx"]).status !== 0 ? "nginx is not installed" : null
if (root && skip) console.log(`metrics.e2e.test.ts: skipped: ${skip}`)

/** One sample of the exposition text. */
interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

/** Parse Prometheus exposition text (the samples; comments skipped). */
const parseMetrics = (text: string): Array<Sample> =>
  text.split("\n").flatMap((line) => {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (m === null) return []
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2]
    return [{ name: m[1], labels, value: Number(m[3]) }]
  })

describe.skipIf(skip !== null)("metrics of a real farm (lab mx)", () => {
  let lab: LabState

  /** Every sample a server's /metrics serves now. */
  const scrape = (node: string): Array<Sample> => {
    const s = lab.servers.find((x) => x.node === node)!
    const r = spawnSync("ip", ["netns", "exec", s.ns, "curl", "-sf", "-m", "3", "http://127.0.0.1:9469/metrics"], { encoding: "utf8" })
    expect(r.status, `metrics of ${node}: ${r.stderr}`).toBe(0)
    return parseMetrics(r.stdout)
  }
  /** The one sample of `name` whose labels include `labels` (undefined when none). */
  const one = (samples: ReadonlyArray<Sample>, name: string, labels: Record<string, string> = {}) => {
    const hits = samples.filter((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v))
    expect(hits.length, `${name}${JSON.stringify(labels)}: ${hits.length} samples`).toBeLessThanOrEqual(1)
    return hits[0]?.value
  }
  const sum = (samples: ReadonlyArray<Sample>, name: string) => samples.filter((x) => x.name === name).reduce((a, x) => a + x.value, 0)

  beforeAll(async () => {
    lab = await startLab({ name: NAME, app: "nginx", extraConfig: () => `metrics: {listen: "127.0.0.1:9469"}\n` })
  }, 90_000)

  afterAll(() => {
    if (root) expect(stopLab(NAME)).toEqual([])
  })

  it("the application's and its checkers' state and probe latency; the log sequence, head and fold lag", async () => {
    // the checkers report up once they passed twice; the daemon only asked for buckets after that
    await until("s1's checkers up in /metrics", async () => one(scrape("s1"), "vipfarm_app_checker_state", { checker: "http", state: "up" }) === 1, 10_000)
    for (const s of lab.servers) {
      const m = scrape(s.node)
      expect(one(m, "vipfarm_app_state", { module: "nginx", state: "up" }), `${s.node} app up`).toBe(1)
      expect(one(m, "vipfarm_app_state", { module: "nginx", state: "unhealthy" }), `${s.node} app not unhealthy`).toBe(0)
      for (const checker of ["nginx-master", "http"]) {
        expect(one(m, "vipfarm_app_checker_state", { checker, state: "up" }), `${s.node} ${checker} up`).toBe(1)
        expect(one(m, "vipfarm_app_checker_state", { checker, state: "down" }), `${s.node} ${checker} not down`).toBe(0)
        const latency = one(m, "vipfarm_app_checker_latency_seconds", { checker })
        expect(latency, `${s.node} ${checker} latency`).toBeGreaterThan(0)
        expect(latency!).toBeLessThan(1) // the checker's timeout
      }
      const folded = one(m, "vipfarm_log_sequence")!
      const head = one(m, "vipfarm_log_head_sequence")!
      const lag = one(m, "vipfarm_log_fold_lag")
      expect(folded).toBeGreaterThan(0)
      expect(head).toBeGreaterThanOrEqual(folded)
      expect(lag).toBe(head - folded)
      expect(one(m, "vipfarm_log_records_folded_total")).toBeGreaterThan(0)
      // the status the daemon shows agrees with its metrics
      const st = await status(lab, s.node)
      expect(one(m, "vipfarm_buckets_owned")).toBe(st.members.find((x) => x.name === s.node)!.buckets)
    }
    // farm status prints the audit chain head to record, the same on every server once they folded the same records
    const heads = lab.servers.map((s) => {
      const r = spawnSync(process.execPath, [FARM, "status", "--socket", s.control], { encoding: "utf8", timeout: 20_000 })
      expect(r.status, r.stderr).toBe(0)
      const m = /^chain {3}head seq (\d+) ([0-9a-f]{64}) /m.exec(r.stdout)
      expect(m, r.stdout).not.toBeNull()
      return { seq: Number(m![1]), head: m![2] }
    })
    const last = heads.reduce((a, h) => (h.seq > a.seq ? h : a))
    for (const h of heads) if (h.seq === last.seq) expect(h.head).toBe(last.head)
  }, 60_000)

  it("counts the UDP flows it tracks after UDP traffic to the VIP", async () => {
    const before = lab.servers.map((s) => one(scrape(s.node), "vipfarm_udp_flows_tracked") ?? -1)
    expect(before.every((v) => v >= 0)).toBe(true)
    // 20 flows (one source address and port each), 3 datagrams each: a flow is tracked from its second packet
    const sources = addressesOf(lab).slice(0, 20)
    const sender = `const d=require("dgram");const [vip,...srcs]=process.argv.slice(1);let answered=0;
(async()=>{for(const src of srcs){const s=d.createSocket("udp4");await new Promise((r)=>s.bind(0,src,r));s.on("message",()=>answered++);
for(let i=0;i<3;i++){s.send("m"+i,5300,vip);await new Promise((r)=>setTimeout(r,30))}await new Promise((r)=>setTimeout(r,150));s.close()}
console.log(JSON.stringify({answered}))})()`
    const c1 = lab.clients[0]
    const r = spawnSync("ip", ["netns", "exec", c1.ns, process.execPath, "-e", sender, lab.vip, ...sources], { encoding: "utf8", timeout: 30_000 })
    expect(r.status, r.stderr).toBe(0)
    const answered = JSON.parse(r.stdout).answered as number
    expect(answered).toBeGreaterThanOrEqual(sources.length * 2) // the farm answered (each datagram by its bucket's owner)
    const after = lab.servers.map((s) => one(scrape(s.node), "vipfarm_udp_flows_tracked")!)
    console.log(`UDP flows tracked before ${before.join(" ")}, after 20 flows ${after.join(" ")}`)
    const added = after.reduce((a, v) => a + v, 0) - before.reduce((a, v) => a + v, 0)
    expect(added).toBeGreaterThanOrEqual(sources.length)
  }, 60_000)

  it("a SIGKILL shows in the survivors' failover histogram; hand-offs are counted once the server is back", async () => {
    const beforeKill = Object.fromEntries(["s1", "s2"].map((n) => [n, scrape(n)]))
    for (const n of ["s1", "s2"]) expect(sum(beforeKill[n], "vipfarm_failover_duration_seconds_count"), `${n} failovers before`).toBe(0)
    killDaemon(lab, "s3")
    await untilFarm(lab, "s3 down and its share taken", async () => {
      const st = await status(lab, "s1")
      return st.members.find((m) => m.name === "s3")?.state === "down" && (st.members.find((m) => m.name === "s3")?.buckets ?? 1) === 0
    }, 15_000)
    const failovers = ["s1", "s2"].map((n) => {
      const m = scrape(n)
      return { node: n, count: sum(m, "vipfarm_failover_duration_seconds_count"), sum: sum(m, "vipfarm_failover_duration_seconds_sum"), le1: one(m, "vipfarm_failover_duration_seconds_bucket", { le: "1" }) ?? 0 }
    })
    console.log(`failover histogram after SIGKILL of s3: ${JSON.stringify(failovers)}`)
    expect(failovers.some((f) => f.count > 0)).toBe(true)
    for (const f of failovers) {
      if (f.count === 0) continue
      expect(f.le1, `${f.node}: failovers within 1 s`).toBe(f.count) // the lab's lease: fenced after 250 ms
      expect(f.sum / f.count).toBeGreaterThan(0.1)
    }
    // members by state as the survivors see it
    expect(one(scrape("s1"), "vipfarm_members", { state: "down" })).toBe(1)

    const handoffs = (n: string) => {
      const m = scrape(n)
      return { started: sum(m, "vipfarm_handoffs_started_total"), completed: sum(m, "vipfarm_handoffs_completed_total") }
    }
    const before = handoffs("s1")
    labStartDaemon(lab, "s3")
    await untilFarm(lab, "s3 back with a share", async () => ((await status(lab, "s1")).members.find((m) => m.name === "s3")?.buckets ?? 0) > 250, 30_000)
    // a graceful hand-off waits for the flows s1 holds in the moving buckets, the UDP flows of the
    // test before included, at most handoff.maxMs (30 s by default): wait for that bound, plus margin
    await until("the hand-offs to s3 completed", async () => handoffs("s1").completed > before.completed && one(scrape("s1"), "vipfarm_handoffs_open") === 0, 45_000)
    const after = handoffs("s1")
    console.log(`hand-offs on s1 before s3 returned ${JSON.stringify(before)}, after ${JSON.stringify(after)}`)
    expect(after.started).toBeGreaterThan(before.started)
    expect(after.completed).toBeGreaterThan(before.completed)
    expect(one(scrape("s1"), "vipfarm_members", { state: "up" })).toBe(3)
  }, 120_000)
})
