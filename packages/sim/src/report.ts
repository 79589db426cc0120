/**
 * The report of one simulated run: plain JSON-serialisable data (identical for the same
 * scenario and seed), and its text form for the terminal.
 */

/** An invariant broken during a run, with what it takes to replay it. */
export interface Violation {
  readonly invariant: string
  /** Simulated time (ms). */
  readonly atMs: number
  /** The simulator event being processed when it broke. */
  readonly event: string
  readonly detail: string
  readonly seed: number
  /** The command that replays the run. */
  readonly replay: string
}

/** How long the buckets of a failed server stayed without a live owner. */
export interface FailoverRecord {
  readonly node: string
  readonly fault: string
  readonly atMs: number
  /** Null when the buckets were never all owned again. */
  readonly durationMs: number | null
  readonly buckets: number
  /** Whether the failover budget applies (a crash while the rest of the farm is whole). */
  readonly budgetApplies: boolean
}

/** An application failure (`app-crash`, `app-broken`), measured from the moment the application died (ms after it; null: never). */
export interface AppFailureRecord {
  readonly node: string
  readonly fault: string
  readonly atMs: number
  /** The policy reported the server unhealthy (the checker flipped, or a start failed). */
  readonly reportedMs: number | null
  /** Every bucket the server took new flows in was taken by other live servers. */
  readonly takenOverMs: number | null
  readonly buckets: number
  /** The policy's restarts were used up: Leave. */
  readonly leftMs: number | null
  /** Ready / ReportRecovered: the server is back in. */
  readonly backMs: number | null
  readonly restarts: number
  readonly startFailures: number
}

/** A member's share at the end of the run. */
export interface BalanceRow {
  readonly name: string
  readonly weight: number
  readonly buckets: number
  readonly lo: number
  readonly hi: number
  /** Fraction of the new flows of the last phase this server accepted. */
  readonly flowShare: number
  readonly weightShare: number
}

/** One timeline line (a fault, an operation, or a notable controller event). */
export interface TimelineLine {
  readonly atMs: number
  readonly kind: string
  readonly node: string
  readonly detail: string
}

/** The report of a run. */
export interface Report {
  readonly scenario: string
  readonly source: string
  readonly seed: number
  readonly simulatedMs: number
  readonly servers: ReadonlyArray<string>
  readonly packets: { readonly total: number; readonly tcp: number; readonly udp: number; readonly flood: number; readonly accepted: number; readonly dropped: number }
  readonly flows: {
    readonly tcp: number
    readonly udp: number
    readonly completed: number
    readonly synRetries: number
    readonly connectFailed: number
    readonly lostToFault: number
    readonly udpMovedInProbation: number
    /** New flows of client-ip rules checked against the client's previous one (membership stable in between). */
    readonly affinityChecks: number
  }
  /** How TCP connections ended (client FIN then final ACK, or RST), long-lived ones, and packets of established connections taken in a bucket moving out. */
  readonly tcp: { readonly closedFin: number; readonly closedRst: number; readonly long: number; readonly movingOutPackets: number }
  readonly resets: { readonly handoff: number; readonly fault: number }
  readonly failovers: ReadonlyArray<FailoverRecord>
  readonly failover: { readonly count: number; readonly medianMs: number | null; readonly worstMs: number | null }
  /** Application failures (empty unless the scenario simulates applications). */
  readonly app: ReadonlyArray<AppFailureRecord>
  /**
   * Bucket windows without a live owner: all of them and the worst; those during faults (not
   * bounded by the budget) with the new flows nobody took in them (their clients retry); those
   * of hand-offs' holds (the new claimant waits for the old one's ack), the longest, and the
   * new flows nobody took in them.
   */
  readonly unclaimed: {
    readonly windows: number
    readonly worstMs: number
    readonly excused: number
    readonly unansweredExcused: number
    readonly handoff: number
    readonly handoffWorstMs: number
    readonly unansweredHandoff: number
  }
  /** Shares at the end, and how many settled points (after each settled membership change) were checked. */
  readonly balance: { readonly rows: ReadonlyArray<BalanceRow>; readonly withinBound: boolean; readonly settledChecks: number }
  readonly shares: { readonly timesMs: ReadonlyArray<number>; readonly buckets: ReadonlyArray<ReadonlyArray<number>>; readonly flows: ReadonlyArray<ReadonlyArray<number>> }
  readonly timeline: ReadonlyArray<TimelineLine>
  /** Timeline lines the run did not keep (it keeps the first 2000). */
  readonly timelineDropped: number
  readonly log: { readonly entries: number; readonly appends: number; readonly conflicts: number; readonly duplicates: number; readonly timeouts: number; readonly stalls: number }
  readonly liveness: { readonly converged: boolean; readonly atMs: number | null; readonly detail: string }
  readonly violations: ReadonlyArray<Violation>
  readonly violationCounts: Readonly<Record<string, number>>
  readonly ok: boolean
}

const fmtMs = (ms: number | null): string => (ms === null ? "never" : ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`)
const pct = (x: number): string => `${(100 * x).toFixed(1)}%`
const pad = (s: string, n: number): string => (s.length >= n ? s : s + " ".repeat(n - s.length))

/** The report as text for a terminal. */
export const formatReport = (r: Report): string => {
  const out: Array<string> = []
  out.push(`scenario ${r.scenario} (seed ${r.seed}): ${r.ok ? "OK" : "FAILED"} — ${(r.simulatedMs / 1000).toFixed(1)} s simulated`)
  out.push(`packets   ${r.packets.total.toLocaleString("en-US")} (tcp ${r.packets.tcp.toLocaleString("en-US")}, udp ${r.packets.udp.toLocaleString("en-US")}, syn-flood ${r.packets.flood.toLocaleString("en-US")}); accepted ${r.packets.accepted.toLocaleString("en-US")}, dropped ${r.packets.dropped.toLocaleString("en-US")}`)
  out.push(`flows     tcp ${r.flows.tcp}, udp ${r.flows.udp}, completed ${r.flows.completed}; SYN retries ${r.flows.synRetries}, connect failures ${r.flows.connectFailed}; ${r.flows.affinityChecks} client-ip affinity checks`)
  out.push(`tcp       closed by FIN ${r.tcp.closedFin}, by RST ${r.tcp.closedRst}; ${r.tcp.long} long-lived; ${r.tcp.movingOutPackets.toLocaleString("en-US")} packets of established connections served in buckets moving out`)
  out.push(`resets    by hand-offs ${r.resets.handoff} (must be 0); flows lost to faults ${r.flows.lostToFault}; UDP flows moved while in probation ${r.flows.udpMovedInProbation}`)
  const f = r.failover
  out.push(`failover  ${f.count} measured: median ${fmtMs(f.medianMs)}, worst ${fmtMs(f.worstMs)} (budget: median < 500 ms, worst < 1 s)`)
  for (const x of r.failovers) {
    out.push(`  ${pad(fmtMs(x.atMs), 9)} ${pad(x.fault, 10)} ${pad(x.node, 6)} ${x.buckets} buckets owned again after ${fmtMs(x.durationMs)}${x.budgetApplies ? "" : x.fault.startsWith("app-") ? " (from the application's death; see app)" : " (no budget: farm not whole)"}`)
  }
  if (r.app.length > 0) {
    out.push(`app       ${r.app.length} application failure${r.app.length === 1 ? "" : "s"} (time after the application died)`)
    for (const a of r.app) {
      out.push(`  ${pad(fmtMs(a.atMs), 9)} ${pad(a.fault, 10)} ${pad(a.node, 6)} reported ${fmtMs(a.reportedMs)}, ${a.buckets} buckets owned by others after ${fmtMs(a.takenOverMs)}` +
        `, ${a.restarts} restart${a.restarts === 1 ? "" : "s"} (${a.startFailures} failed)${a.leftMs === null ? "" : `, left after ${fmtMs(a.leftMs)}`}, back in after ${fmtMs(a.backMs)}`)
    }
  }
  const u = r.unclaimed
  out.push(`unowned   ${u.windows} bucket windows without a live owner, worst ${fmtMs(u.worstMs)}; ${u.excused} during faults; ${u.unansweredExcused} new flows unanswered in failovers and faults (retried); ` +
    `${u.handoff} in hand-offs' holds, worst ${fmtMs(u.handoffWorstMs)} (${u.unansweredHandoff} new flows unanswered, retried)`)
  out.push(`log       ${r.log.entries} entries; appends ${r.log.appends}, conflicts ${r.log.conflicts}, duplicates ${r.log.duplicates}, timeouts ${r.log.timeouts}, leader stalls ${r.log.stalls}`)
  out.push(`balance   ${r.balance.withinBound ? "within the domain's bound" : "OUTSIDE the domain's bound"} at the end; ${r.balance.settledChecks} settled points checked`)
  for (const b of r.balance.rows) {
    out.push(`  ${pad(b.name, 6)} weight ${pad(String(b.weight), 5)} buckets ${pad(String(b.buckets), 5)} [${b.lo}..${b.hi}]  new flows ${pad(pct(b.flowShare), 6)} (weight share ${pct(b.weightShare)})`)
  }
  out.push(`liveness  ${r.liveness.converged ? `converged at ${fmtMs(r.liveness.atMs)}` : `NOT converged: ${r.liveness.detail}`}`)
  if (r.timelineDropped > 0) out.push(`timeline  ${r.timeline.length} lines kept, ${r.timelineDropped} later ones dropped`)
  const names = Object.keys(r.violationCounts)
  if (names.length === 0) out.push("violations none")
  else {
    out.push(`violations ${names.map((n) => `${n} ×${r.violationCounts[n]}`).join(", ")}`)
    for (const v of r.violations.slice(0, 10)) out.push(`  at ${fmtMs(v.atMs)} ${v.invariant}: ${v.detail}\n    during ${v.event}`)
    out.push(`replay: ${r.violations[0].replay}`)
  }
  return out.join("\n")
}
