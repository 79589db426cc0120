/**
 * Simulator benchmarks: simulated packets per wall second (the packet path: one bucket per
 * flow, each server's verdict from its table, the invariants), simulated server-hours per
 * wall minute (the control plane: heartbeats, leases, the log, hand-offs) and failures per
 * wall minute (crashes and other faults, each failed over and checked). Each row also gives
 * the process's CPU time (user + system), which a machine shared with other work does not
 * inflate as much as the wall time.
 * Run: node --import tsx packages/sim/bench/sim.bench.ts [packets|control|failures|model|scenarios ...]
 */
import fc from "fast-check"
import { loadScenario, runScenario, type Scenario } from "../src/index.ts"
import { arbModelCase, buildTimeline, modelScenario } from "../src/timelineModel.ts"

const only = process.argv.slice(2)
const wanted = (what: string): boolean => only.length === 0 || only.includes(what)

const time = <T>(f: () => T): { value: T; ms: number; cpuMs: number } => {
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  const value = f()
  const ms = performance.now() - t0
  const c = process.cpuUsage(c0)
  return { value, ms, cpuMs: (c.user + c.system) / 1000 }
}
const wallCpu = (t: { ms: number; cpuMs: number }): string => `${(t.ms / 1000).toFixed(2)} s wall (${(t.cpuMs / 1000).toFixed(2)} s CPU)`

const packets: Scenario = {
  name: "bench-packets",
  duration: "20s",
  servers: { count: 3, weight: 100 },
  load: {
    tcp: { flowsPerSec: 20000, clients: 200000, packets: { median: 30, max: 5000 }, gap: "5ms", maxDuration: "5s" },
    udp: { flowsPerSec: 2000, clients: 50000, packets: { median: 30, max: 2000 }, gap: "10ms", maxDuration: "5s" }
  },
  timeline: [{ at: "8s", do: "crash", node: "s2" }, { at: "12s", do: "restart", node: "s2" }, { at: "15s", do: "drain", node: "s1" }]
}

const control: Scenario = {
  name: "bench-control",
  duration: "10m",
  servers: { count: 32, weight: 100 },
  witnesses: 1,
  load: { tcp: { flowsPerSec: 0 }, udp: { flowsPerSec: 0 } }
}

/** A crash loop: 6 servers and a witness; every second the next server crashes, back 600 ms later. */
const failures: Scenario = {
  name: "bench-failures",
  duration: "2m",
  servers: { count: 6, weight: 100 },
  witnesses: 1,
  load: { tcp: { flowsPerSec: 200, maxDuration: "2s" }, udp: { flowsPerSec: 20, maxDuration: "2s" } },
  timeline: Array.from({ length: 118 }, (_, i) => i).flatMap((i) => [
    { at: 1000 + i * 1000, do: "crash" as const, node: `s${(i % 6) + 1}` },
    { at: 1600 + i * 1000, do: "restart" as const, node: `s${(i % 6) + 1}` }
  ])
}

// warm up the JIT
runScenario({ ...packets, duration: "3s" }, { seed: 1, safetyOnly: true })

const rows: Array<string> = []
const row = (line: string): void => {
  rows.push(line)
  console.error(line)
}
if (wanted("packets")) {
  const t = time(() => runScenario(packets, { seed: 1, safetyOnly: true }))
  const r = t.value
  row(`packet path   3 servers, 20 s simulated, ${r.packets.total.toLocaleString("en-US")} packets in ${wallCpu(t)}: ${(r.packets.total / t.ms / 1000).toFixed(2)} M simulated packets/s wall, ${(r.packets.total / t.cpuMs / 1000).toFixed(2)} M per CPU-second (${r.ok ? "clean" : "VIOLATIONS"})`)
}
if (wanted("control")) {
  const t = time(() => runScenario(control, { seed: 1, safetyOnly: true }))
  const serverHours = (32 * t.value.simulatedMs) / 3_600_000
  row(`control plane 32 servers + 1 witness, 10 min simulated, no traffic, in ${wallCpu(t)}: ${(serverHours / (t.ms / 60000)).toFixed(1)} simulated server-hours per wall minute, ${(serverHours / (t.cpuMs / 60000)).toFixed(1)} per CPU-minute`)
}
if (wanted("failures")) {
  const t = time(() => runScenario(failures, { seed: 1 }))
  const r = t.value
  const handled = r.failovers.filter((f) => f.fault === "crash" && f.durationMs !== null).length
  row(`failures      crash loop, 6 servers, 2 min simulated, ${handled} crashes failed over (median ${r.failover.medianMs} ms, worst ${r.failover.worstMs} ms), ${r.packets.total.toLocaleString("en-US")} packets, in ${wallCpu(t)}: ${Math.round(handled / (t.ms / 60000))} failures per wall minute, ${Math.round(handled / (t.cpuMs / 60000))} per CPU-minute (${r.ok ? "clean" : "VIOLATIONS"})`)
}
if (wanted("model")) {
  // the generated scenarios of generated.test.ts (seeds 1-20 of sweep.ts ... model): every fault kind
  const cases = Array.from({ length: 20 }, (_, i) => fc.sample(arbModelCase(), { numRuns: 1, seed: i + 1 })[0])
  let faults = 0
  let failovers = 0
  let simulatedMs = 0
  const t = time(() => {
    for (const c of cases) {
      const timeline = buildTimeline(c)
      const r = runScenario(modelScenario(c.farm, timeline), { seed: c.seed })
      faults += timeline.length
      failovers += r.failovers.length
      simulatedMs += r.simulatedMs
    }
  })
  row(`model runs    20 generated scenarios (${(simulatedMs / 60000).toFixed(1)} min simulated), ${faults} timeline faults and operations, ${failovers} failovers measured, in ${wallCpu(t)}: ${Math.round(faults / (t.ms / 60000))} faults and ${Math.round(failovers / (t.ms / 60000))} failovers per wall minute, ${Math.round(faults / (t.cpuMs / 60000))} and ${Math.round(failovers / (t.cpuMs / 60000))} per CPU-minute`)
}
if (wanted("scenarios")) {
  for (const name of ["default", "scale-2-32-2"]) {
    const s = loadScenario(name)
    const t = time(() => runScenario(s, { seed: 1 }))
    const r = t.value
    const serverHours = (r.servers.length * r.simulatedMs) / 3_600_000
    row(`scenario ${name}: ${(r.simulatedMs / 1000).toFixed(1)} s simulated, ${r.packets.total.toLocaleString("en-US")} packets, ${wallCpu(t)} (${(r.packets.total / (t.ms / 1000) / 1e6).toFixed(2)} M packets/s, ${(serverHours / (t.ms / 60000)).toFixed(1)} server-hours/wall-minute counting every server slot)`)
  }
}
console.log(rows.join("\n"))
