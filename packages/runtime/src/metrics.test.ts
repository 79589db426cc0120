import { describe, expect, it } from "vitest"
import { addressWords, BUCKETS, initialState, type FarmState } from "@vipfarm/domain"
import { execute, operatorCause, settle } from "@vipfarm/domain/testkit"
import { reasonNames, type VerdictCounters, type VipCounters } from "@vipfarm/filter-xdp"
import { readFileSync } from "node:fs"
import { actionOfVerdict, buildInfo, FarmMetrics, metricsAddress, tablesOfVips, type MetricsSource } from "./metrics.ts"
import { VERSION } from "./version.ts"

const counters = (): VerdictCounters => {
  const c = {} as VerdictCounters
  reasonNames.forEach((r, i) => (c[r] = { packets: BigInt(i * 10), bytes: BigInt(i * 1000) }))
  return c
}

/** VIP counters: 198.18.0.100 passed 3 packets (300 bytes) and dropped 2 without a rule; another VIP (not in the state) dropped 5 foreign. */
const vipCounters = (): Array<VipCounters> => {
  const zero = (): VerdictCounters => {
    const c = {} as VerdictCounters
    for (const r of reasonNames) c[r] = { packets: 0n, bytes: 0n }
    return c
  }
  const a = zero()
  a.PASS_OWNED = { packets: 3n, bytes: 300n }
  a.DROP_NO_RULE = { packets: 2n, bytes: 120n }
  const b = zero()
  b.DROP_FOREIGN = { packets: 5n, bytes: 700n }
  return [{ words: addressWords("198.18.0.100"), counters: a }, { words: addressWords("2001:db8::7"), counters: b }]
}

const farm = (): FarmState => {
  const cause = operatorCause()
  let s = initialState("web")
  s = execute(s, { _tag: "Configure", vips: [{ address: "198.18.0.100", rules: [{ proto: "tcp", ports: [80], affinity: "client-ip" }] }], cause } as never).state
  for (const n of ["s1", "s2"]) {
    s = execute(s, { _tag: "Join", node: n, address: "10.0.0.1", weight: 100, priority: 100, rulesDigest: "x", cause }).state
    s = execute(s, { _tag: "Ready", node: n, cause }).state
  }
  return settle(s)
}

const source = (over: Partial<MetricsSource> = {}): MetricsSource => {
  const st = farm()
  const per = new Float64Array(16 * BUCKETS)
  per[3] = 7
  per[1000] = 5
  return {
    node: "s1", farm: "web",
    counters, vipCounters, bucketPackets: () => per, state: () => st,
    log: () => ({ folded: 12, head: 15 }), flowsTracked: () => 4, leaseRemainingMs: () => 250,
    app: () => ({ module: "nginx", state: "up", checkers: [{ name: "http", status: "up", latencyMs: 12 }] }),
    ...over
  }
}

const value = (text: string, line: string): number => {
  const l = text.split("\n").find((x) => x.startsWith(line + " "))
  if (l === undefined) throw new Error(`no line ${line} in\n${text}`)
  return Number(l.slice(line.length + 1))
}

describe("metrics", () => {
  it("renders the filter's counters by verdict and action, and table packets by VIP", async () => {
    const text = await new FarmMetrics(source()).render()
    expect(text).toContain("# TYPE vipfarm_filter_packets_total counter")
    expect(value(text, 'vipfarm_filter_packets_total{verdict="PASS_OWNED",action="pass",farm="web",node="s1"}')).toBe(90)
    expect(value(text, 'vipfarm_filter_bytes_total{verdict="DROP_FOREIGN",action="drop",farm="web",node="s1"}')).toBe(8000)
    expect(value(text, 'vipfarm_filter_packets_total{verdict="TX_ARP_REPLY",action="tx",farm="web",node="s1"}')).toBe(20)
    expect(value(text, 'vipfarm_table_packets_total{table="0",vips="198.18.0.100",farm="web",node="s1"}')).toBe(12)
  })

  it("renders each VIP's packets and bytes by verdict and action", async () => {
    const text = await new FarmMetrics(source()).render()
    expect(text).toContain("# TYPE vipfarm_vip_packets_total counter")
    expect(text).toContain("# TYPE vipfarm_vip_bytes_total counter")
    const l = (name: string, vip: string, verdict: string, action: string) => `${name}{vip="${vip}",verdict="${verdict}",action="${action}",farm="web",node="s1"}`
    expect(value(text, l("vipfarm_vip_packets_total", "198.18.0.100", "PASS_OWNED", "pass"))).toBe(3)
    expect(value(text, l("vipfarm_vip_bytes_total", "198.18.0.100", "PASS_OWNED", "pass"))).toBe(300)
    expect(value(text, l("vipfarm_vip_packets_total", "198.18.0.100", "DROP_NO_RULE", "drop"))).toBe(2)
    expect(value(text, l("vipfarm_vip_bytes_total", "198.18.0.100", "DROP_NO_RULE", "drop"))).toBe(120)
    // the two main verdicts always, zero included; other verdicts only once counted
    expect(value(text, l("vipfarm_vip_packets_total", "198.18.0.100", "DROP_FOREIGN", "drop"))).toBe(0)
    expect(text).not.toContain('vipfarm_vip_packets_total{vip="198.18.0.100",verdict="DROP_FENCED"')
    // a VIP the state does not name is labelled with its formatted address
    expect(value(text, l("vipfarm_vip_packets_total", "2001:db8::7", "DROP_FOREIGN", "drop"))).toBe(5)
    expect(value(text, l("vipfarm_vip_bytes_total", "2001:db8::7", "DROP_FOREIGN", "drop"))).toBe(700)
    expect(value(text, l("vipfarm_vip_packets_total", "2001:db8::7", "PASS_OWNED", "pass"))).toBe(0)
    // no filter: no series
    const none = await new FarmMetrics(source({ vipCounters: () => null })).render()
    expect(none).not.toMatch(/^vipfarm_vip_packets_total\{/m)
  })

  it("renders membership, buckets, log, flows, lease and the application", async () => {
    const text = await new FarmMetrics(source()).render()
    expect(value(text, 'vipfarm_members{state="up",farm="web",node="s1"}')).toBe(2)
    expect(value(text, 'vipfarm_members{state="down",farm="web",node="s1"}')).toBe(0)
    const owned = value(text, 'vipfarm_buckets_owned{farm="web",node="s1"}')
    expect(owned).toBeGreaterThan(300)
    expect(owned + value(text, 'vipfarm_member_buckets{member="s2",farm="web",node="s1"}')).toBe(BUCKETS)
    expect(value(text, 'vipfarm_log_sequence{farm="web",node="s1"}')).toBe(12)
    expect(value(text, 'vipfarm_log_fold_lag{farm="web",node="s1"}')).toBe(3)
    expect(value(text, 'vipfarm_udp_flows_tracked{farm="web",node="s1"}')).toBe(4)
    expect(value(text, 'vipfarm_lease_remaining_seconds{farm="web",node="s1"}')).toBe(0.25)
    expect(value(text, 'vipfarm_app_state{module="nginx",state="up",farm="web",node="s1"}')).toBe(1)
    expect(value(text, 'vipfarm_app_checker_state{checker="http",state="down",farm="web",node="s1"}')).toBe(0)
    expect(value(text, 'vipfarm_app_checker_latency_seconds{checker="http",farm="web",node="s1"}')).toBe(0.012)
  })

  it("counts hand-offs from folded records and observes failovers from the last heartbeat to the takeover", async () => {
    const m = new FarmMetrics(source({ app: () => null, counters: () => null, vipCounters: () => null, bucketPackets: () => null }))
    m.onRecord({ v: 1, events: [{ _tag: "HandoffStarted", mode: "graceful", handoff: "h1", moves: [] }, { _tag: "MemberReady", node: "s2" }] })
    m.onRecord({ _tag: "HandoffStarted", mode: "takeover", handoff: "h2", moves: [] })
    m.onRecord({ v: 1, events: [{ _tag: "HandoffCompleted", handoff: "h1" }] })
    m.onHeartbeat("s2", 1000)
    m.onControllerLog("suspect", { peer: "s2" }, 1450)
    m.onControllerLog("takeover", { peer: "s2" }, 1620)
    m.onControllerLog("takeover", { peer: "never-heard" }, 1620)
    const text = await m.render()
    expect(value(text, 'vipfarm_handoffs_started_total{mode="graceful",farm="web",node="s1"}')).toBe(1)
    expect(value(text, 'vipfarm_handoffs_started_total{mode="takeover",farm="web",node="s1"}')).toBe(1)
    expect(value(text, 'vipfarm_handoffs_completed_total{farm="web",node="s1"}')).toBe(1)
    expect(value(text, 'vipfarm_log_records_folded_total{farm="web",node="s1"}')).toBe(3)
    expect(value(text, 'vipfarm_failover_duration_seconds_count{farm="web",node="s1"}')).toBe(1)
    expect(value(text, 'vipfarm_failover_duration_seconds_sum{farm="web",node="s1"}')).toBeCloseTo(0.62)
    expect(value(text, 'vipfarm_failover_duration_seconds_bucket{le="0.6",farm="web",node="s1"}')).toBe(0)
    expect(value(text, 'vipfarm_failover_duration_seconds_bucket{le="0.75",farm="web",node="s1"}')).toBe(1)
    // nothing from the filter or an application when there is none
    expect(text).not.toMatch(/^vipfarm_filter_packets_total\{/m)
    expect(text).not.toMatch(/^vipfarm_app_state\{/m)
  })

  it("maps verdicts to actions, tables to VIPs, and parses listen addresses", () => {
    expect(actionOfVerdict("PASS_MOVING_IN_SYN")).toBe("pass")
    expect(actionOfVerdict("DROP_FENCED")).toBe("drop")
    expect(actionOfVerdict("TX_ND_ADVERT")).toBe("tx")
    expect(tablesOfVips([
      { address: "198.18.0.100", rules: [{ proto: "tcp", ports: [80], affinity: "client-ip" }] },
      { address: "198.18.0.101", rules: [{ proto: "tcp", ports: [80], affinity: "client-ip" }, { proto: "udp", ports: [53], affinity: "client-ip", mode: "single-host" }] }
    ] as never)).toEqual([[0, ["198.18.0.100", "198.18.0.101"]], [1, ["198.18.0.101"]]])
    expect(metricsAddress("127.0.0.1:9469")).toEqual({ host: "127.0.0.1", port: 9469 })
    expect(metricsAddress("[::1]:9469")).toEqual({ host: "::1", port: 9469 })
    expect(metricsAddress("127.0.0.1")).toBeNull()
    expect(metricsAddress("x:70000")).toBeNull()
  })

  it("exports the process's own metrics (event-loop lag, heap, RSS, GC) with the farm's labels, beside the farm's", async () => {
    const text = await new FarmMetrics(source()).render()
    for (const name of ["nodejs_eventloop_lag_seconds", "nodejs_heap_size_used_bytes", "process_resident_memory_bytes", "nodejs_gc_duration_seconds", "process_cpu_seconds_total"]) {
      expect(text).toMatch(new RegExp(`^# TYPE ${name} `, "m"))
    }
    expect(value(text, 'process_resident_memory_bytes{farm="web",node="s1"}')).toBeGreaterThan(10 * 2 ** 20)
    expect(value(text, 'nodejs_heap_size_used_bytes{farm="web",node="s1"}')).toBeGreaterThan(0)
    expect(value(text, 'nodejs_eventloop_lag_seconds{farm="web",node="s1"}')).toBeGreaterThanOrEqual(0)
    expect(text).toContain("# TYPE vipfarm_members gauge")
    // two farms' metrics side by side (the tests, a lab in one process) keep their own registries
    const other = await new FarmMetrics(source({ node: "s2" })).render()
    expect(other).toMatch(/^process_resident_memory_bytes\{farm="web",node="s2"\} /m)
  })

  it("exports vipfarm_build_info = 1 with the version and Node.js version", async () => {
    const text = await new FarmMetrics(source()).render()
    expect(text).toContain("# TYPE vipfarm_build_info gauge")
    expect(value(text, `vipfarm_build_info{version="${VERSION}",nodejs="${process.versions.node}",farm="web",node="s1"}`)).toBe(1)
    expect(buildInfo()).toEqual({ version: VERSION, nodejs: process.versions.node })
    // the constant is the packages' version (a bundle cannot read package.json)
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }
    expect(VERSION).toBe(pkg.version)
  })
})
