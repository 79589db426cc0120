/**
 * A scenario resolved into plain numbers: defaults filled in, durations in ms, servers
 * named, rules flattened into the (protocol, port, table, affinity) the clients use.
 */
import { type AffinityName, type Vip, ruleTables, portRanges, tableCount } from "@vipfarm/domain"
import type { CheckerTiming } from "../../runtime/src/app/health.ts"
import { DEFAULT_POLICY, type PolicyConfig } from "../../runtime/src/app/policy.ts"
import { defaultTiming } from "../../runtime/src/controller/index.ts"
import { durationMs, type Scenario, type TimelineEntry } from "./scenario.ts"

/** A flow generator's parameters. */
export interface FlowSpec {
  readonly flowsPerSec: number
  readonly clients: number
  readonly medianPackets: number
  readonly maxPackets: number
  readonly sigma: number
  readonly gapMs: number
  readonly idle: number
  readonly maxDurationMs: number
  /** TCP: share of connections ended by a client RST (the others by FIN). */
  readonly rstShare: number
  /** TCP: share of long-lived connections, their duration (0: a little longer than `maxDurationMs`) and packet gap. */
  readonly long: { readonly share: number; readonly durationMs: number; readonly gapMs: number }
}

/** A rule as the simulated clients use it. */
export interface SimRule {
  readonly proto: 6 | 17
  readonly port: number
  readonly table: number
  readonly affinity: AffinityName
}

/** A timeline entry with its time in ms. */
export type TimedEntry = TimelineEntry & { readonly atMs: number }

/** A resolved scenario. */
export interface Setup {
  readonly name: string
  readonly farm: string
  readonly durationMs: number
  /** Every server that may ever run (listed, standby and those `scale` adds), in name order of creation. */
  readonly servers: ReadonlyArray<{ readonly name: string; readonly weight: number; readonly standby: boolean }>
  readonly witnesses: ReadonlyArray<string>
  readonly natsNodes: ReadonlyArray<string>
  readonly vips: ReadonlyArray<Vip>
  readonly tables: number
  readonly rules: ReadonlyArray<SimRule>
  readonly nats: { readonly appendLatency: readonly [number, number]; readonly delivery: readonly [number, number]; readonly stall: readonly [number, number]; readonly appendTimeoutMs: number }
  readonly network: { readonly delay: readonly [number, number]; readonly loss: number }
  readonly tcp: FlowSpec | null
  readonly udp: FlowSpec | null
  readonly timing: {
    readonly heartbeatMs: number
    readonly fenceAfterMs: number
    readonly expireAfterMs: number
    readonly holdMs: number
    /** null: no cap (the default), a hand-off waits for its last flow */
    readonly handoffMaxMs: number | null
    readonly tickMs: number
  }
  readonly udpIdleMs: number
  readonly timeline: ReadonlyArray<TimedEntry>
  readonly liveness: { readonly timeoutMs: number; readonly restartCrashed: boolean }
  readonly checks: { readonly failoverMedianMs: number; readonly failoverWorstMs: number }
  /** The simulated application of every server (null: not simulated, servers healthy unless a fault says otherwise). */
  readonly app: AppSetup | null
}

/** The simulated application, resolved. */
export interface AppSetup {
  readonly startMs: number
  readonly stopMs: number
  readonly checker: CheckerTiming
  readonly policy: PolicyConfig
}

/**
 * The module checker defaults (`CHECKER_DEFAULTS` in runtime/src/app/module.ts, which reads
 * files and is not imported here; app.test.ts checks they agree).
 */
export const SIM_CHECKER_DEFAULTS = { intervalMs: 500, timeoutMs: 1000, failures: 2, successes: 2 } as const

const appSetup = (s: Scenario, timeline: ReadonlyArray<TimedEntry>): AppSetup | null => {
  if (s.app === undefined && !timeline.some((e) => e.do === "app-crash" || e.do === "app-broken")) return null
  const a = s.app ?? {}
  const ms = (d: number | string | undefined, def: number): number => (d === undefined ? def : durationMs(d))
  const c = a.checker ?? {}
  const p = a.policy ?? {}
  return {
    startMs: ms(a.startTime, 500),
    stopMs: ms(a.stopTime, 100),
    checker: {
      name: "tcp",
      intervalMs: ms(c.interval, SIM_CHECKER_DEFAULTS.intervalMs),
      timeoutMs: ms(c.timeout, SIM_CHECKER_DEFAULTS.timeoutMs),
      failures: c.failures ?? SIM_CHECKER_DEFAULTS.failures,
      successes: c.successes ?? SIM_CHECKER_DEFAULTS.successes
    },
    policy: {
      onFailure: p.onFailure ?? DEFAULT_POLICY.onFailure,
      maxRestarts: p.maxRestarts ?? DEFAULT_POLICY.maxRestarts,
      windowMs: ms(p.window, DEFAULT_POLICY.windowMs),
      whenExhausted: p.whenExhausted ?? DEFAULT_POLICY.whenExhausted,
      readyTimeoutMs: ms(p.readyTimeout, DEFAULT_POLICY.readyTimeoutMs),
      settleMs: ms(p.settle, DEFAULT_POLICY.settleMs),
      healIntervalMs: ms(p.healInterval, DEFAULT_POLICY.healIntervalMs)
    }
  }
}

/** The VIP served when a scenario names none. */
export const defaultVips: ReadonlyArray<Vip> = [
  {
    address: "198.18.0.100",
    rules: [
      { proto: "tcp", ports: [80, 443], affinity: "client-ip" },
      { proto: "udp", ports: ["5000-5100"], affinity: "client-ip-port" }
    ]
  }
]

const flowSpec = (f: NonNullable<NonNullable<Scenario["load"]>["tcp"]> | undefined, d: FlowSpec): FlowSpec | null => {
  if (f === undefined) return d
  if (f.flowsPerSec === 0) return null
  return {
    flowsPerSec: f.flowsPerSec,
    clients: f.clients ?? d.clients,
    medianPackets: f.packets?.median ?? d.medianPackets,
    maxPackets: f.packets?.max ?? d.maxPackets,
    sigma: f.packets?.sigma ?? d.sigma,
    gapMs: f.gap === undefined ? d.gapMs : durationMs(f.gap),
    idle: f.idle ?? d.idle,
    maxDurationMs: f.maxDuration === undefined ? d.maxDurationMs : durationMs(f.maxDuration),
    rstShare: f.rst ?? d.rstShare,
    long: {
      share: f.long?.share ?? d.long.share,
      durationMs: f.long?.duration === undefined ? d.long.durationMs : durationMs(f.long.duration),
      gapMs: f.long?.gap === undefined ? d.long.gapMs : durationMs(f.long.gap)
    }
  }
}

const DEFAULT_TCP: FlowSpec = {
  flowsPerSec: 2000, clients: 20000, medianPackets: 8, maxPackets: 2000, sigma: 1.2, gapMs: 20, idle: 0.01, maxDurationMs: 20_000,
  rstShare: 0.05, long: { share: 0.002, durationMs: 0, gapMs: 500 }
}
const DEFAULT_UDP: FlowSpec = {
  flowsPerSec: 300, clients: 5000, medianPackets: 20, maxPackets: 500, sigma: 1, gapMs: 50, idle: 0, maxDurationMs: 20_000,
  rstShare: 0, long: { share: 0, durationMs: 0, gapMs: 0 }
}

/** Resolve a scenario: defaults, durations, server names, rules. */
export const resolveSetup = (s: Scenario): Setup => {
  const listed: Array<{ name: string; weight: number; standby: boolean }> = Array.isArray(s.servers)
    ? (s.servers as ReadonlyArray<{ name: string; weight?: number; standby?: boolean }>).map((x) => ({ name: x.name, weight: x.weight ?? 100, standby: x.standby ?? false }))
    : (() => {
      const c = s.servers as { count: number; weight?: number; standby?: number }
      const total = c.count + (c.standby ?? 0)
      return Array.from({ length: total }, (_, i) => ({ name: `s${i + 1}`, weight: c.weight ?? 100, standby: i >= c.count }))
    })()
  const timeline: Array<TimedEntry> = (s.timeline ?? []).map((e) => ({ ...e, atMs: durationMs(e.at) }))
  timeline.sort((a, b) => a.atMs - b.atMs)
  // servers a `scale` or `start` may bring in
  let maxServers = listed.length
  for (const e of timeline) if (e.do === "scale") maxServers = Math.max(maxServers, e.to)
  const servers = listed.slice()
  for (let i = listed.length; i < maxServers; i++) {
    let n = i + 1
    while (servers.some((x) => x.name === `s${n}`)) n++
    servers.push({ name: `s${n}`, weight: listed[0]?.weight ?? 100, standby: true })
  }
  for (const e of timeline) {
    if (e.do === "start" && !servers.some((x) => x.name === e.node)) servers.push({ name: e.node, weight: e.weight ?? 100, standby: true })
  }
  const vips = s.vips ?? defaultVips
  const tablesOf = ruleTables(vips)
  const rules: Array<SimRule> = []
  vips.forEach((vip, vi) => vip.rules.forEach((r, ri) => {
    const port = portRanges(r)[0]?.lo ?? 80
    rules.push({ proto: r.proto === "tcp" ? 6 : 17, port, table: tablesOf[vi][ri], affinity: r.affinity })
  }))
  const witnesses = Array.from({ length: s.witnesses ?? 0 }, (_, i) => `w${i + 1}`)
  const natsNodes = Array.from({ length: s.nats?.nodes ?? 3 }, (_, i) => `n${i + 1}`)
  const c = s.controller ?? {}
  const ms = (d: number | string | undefined, def: number): number => (d === undefined ? def : durationMs(d))
  return {
    name: s.name,
    farm: s.farm ?? "web",
    durationMs: durationMs(s.duration),
    servers,
    witnesses,
    natsNodes,
    vips,
    tables: tableCount(vips),
    rules,
    nats: {
      appendLatency: s.nats?.appendLatency ?? [0.5, 4],
      delivery: s.nats?.delivery ?? [1, 2],
      // a stream leader re-election (natsLog.ts): uniform in 4.4-7.8 s, the measured span on this
      // project's VM (up to 7.8 s from SIGKILL of the leader's node to appends back; nats-server
      // 2.9's raft election timeout is drawn in 4-9 s); see BENCHMARKS.md
      stall: s.nats?.stall ?? [4400, 7800],
      appendTimeoutMs: ms(s.nats?.appendTimeout, 1000)
    },
    network: { delay: s.network?.delay ?? [0.1, 0.5], loss: s.network?.loss ?? 0 },
    tcp: rules.some((r) => r.proto === 6) ? flowSpec(s.load?.tcp, DEFAULT_TCP) : null,
    udp: rules.some((r) => r.proto === 17) ? flowSpec(s.load?.udp, DEFAULT_UDP) : null,
    timing: {
      heartbeatMs: ms(c.heartbeat, defaultTiming.heartbeatMs),
      fenceAfterMs: ms(c.fenceAfter, defaultTiming.fenceAfterMs),
      expireAfterMs: ms(c.expireAfter, defaultTiming.expireAfterMs),
      holdMs: ms(c.hold, defaultTiming.holdMs),
      handoffMaxMs: c.handoffMax === undefined ? defaultTiming.handoffMaxMs : durationMs(c.handoffMax),
      tickMs: ms(c.tick, 10)
    },
    udpIdleMs: 30_000,
    timeline,
    liveness: { timeoutMs: ms(s.liveness?.timeout, 30_000), restartCrashed: s.liveness?.restartCrashed ?? true },
    checks: { failoverMedianMs: ms(s.checks?.failoverMedian, 500), failoverWorstMs: ms(s.checks?.failoverWorst, 1000) },
    app: appSetup(s, timeline)
  }
}
