/**
 * Simulator benchmarks: simulated packets per wall second (the packet path: one bucket per
 * flow, each server's verdict from its table, the invariants) and simulated server-hours per
 * wall minute (the control plane: heartbeats, leases, the log, hand-offs).
 * Run: node --import tsx packages/sim/bench/sim.bench.ts
 */
import { loadScenario, runScenario, type Scenario } from "../src/index.ts"

const time = <T>(f: () => T): { value: T; ms: number } => {
  const t0 = performance.now()
  const value = f()
  return { value, ms: performance.now() - t0 }
}

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

// warm up the JIT
runScenario({ ...packets, duration: "3s" }, { seed: 1, safetyOnly: true })

const rows: Array<string> = []
{
  const { value: r, ms } = time(() => runScenario(packets, { seed: 1, safetyOnly: true }))
  const pps = r.packets.total / (ms / 1000)
  rows.push(`packet path   3 servers, 20 s simulated, ${r.packets.total.toLocaleString("en-US")} packets in ${(ms / 1000).toFixed(2)} s wall: ${(pps / 1e6).toFixed(2)} M simulated packets/s (${r.ok ? "clean" : "VIOLATIONS"})`)
}
{
  const { value: r, ms } = time(() => runScenario(control, { seed: 1, safetyOnly: true }))
  const serverHours = (32 * r.simulatedMs) / 3_600_000
  rows.push(`control plane 32 servers + 1 witness, 10 min simulated, no traffic, in ${(ms / 1000).toFixed(2)} s wall: ${(serverHours / (ms / 60000)).toFixed(1)} simulated server-hours per wall minute`)
}
for (const name of ["default", "scale-2-32-2"]) {
  const s = loadScenario(name)
  const { value: r, ms } = time(() => runScenario(s, { seed: 1 }))
  const serverHours = (r.servers.length * r.simulatedMs) / 3_600_000
  rows.push(`scenario ${name}: ${(r.simulatedMs / 1000).toFixed(1)} s simulated, ${r.packets.total.toLocaleString("en-US")} packets, ${(ms / 1000).toFixed(2)} s wall (${(r.packets.total / (ms / 1000) / 1e6).toFixed(2)} M packets/s, ${(serverHours / (ms / 60000)).toFixed(1)} server-hours/wall-minute counting every server slot)`)
}
console.log(rows.join("\n"))
