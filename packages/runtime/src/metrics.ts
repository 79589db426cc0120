/**
 * Prometheus metrics of one farm server (prom-client), served at `/metrics` on the
 * optional `metrics: {listen: "127.0.0.1:9469"}` address.
 *
 * Most values are read when Prometheus scrapes (gauges and counters with `collect`), from a
 * {@link MetricsSource} the daemon fills with closures over its filter, controller and
 * application; the rest are fed as they happen: log records folded (hand-offs), heartbeats
 * and the controller's `takeover` (failover duration = time from a peer's last heartbeat to
 * this server applying its failure plan).
 */
import { createServer, type Server } from "node:http"
import { Effect, Schema } from "effect"
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client"
import { addressWords, effectiveOwner, type FarmState, formatAddress, openHandoffs, ruleTables, type Vip } from "@vipfarm/domain"
import type { VerdictCounters, VipCounters } from "@vipfarm/filter-xdp"
import { VERSION } from "./version.ts"

/** Everything the metrics read at scrape time; each may be missing (null) when the part is not running. */
export interface MetricsSource {
  readonly node: string
  readonly farm: string
  /** The filter's per-verdict counters (summed over CPUs). */
  readonly counters: () => VerdictCounters | null
  /** The filter's per-VIP counters (each configured VIP's packets and bytes by verdict reason). */
  readonly vipCounters: () => ReadonlyArray<VipCounters> | null
  /** The filter's per-bucket packet counters, index table*1024+bucket. */
  readonly bucketPackets: () => ArrayLike<number> | null
  /** The farm's state as this server applies it (folded plus failure plans). */
  readonly state: () => FarmState
  /** Last sequence folded, and the stream's last sequence as known. */
  readonly log: () => { readonly folded: number; readonly head: number }
  /** Entries of the filter's udp_flows map. */
  readonly flowsTracked: () => number | null
  /** Lease: milliseconds the filter still serves (<= 0: fenced). */
  readonly leaseRemainingMs: () => number
  /** The application supervisor's status, when one is configured. */
  readonly app: () => AppMetricsView | null
}

/** The part of the application status the metrics show. */
export interface AppMetricsView {
  readonly module: string
  readonly state: string
  readonly checkers: ReadonlyArray<{ readonly name: string; readonly status: string; readonly latencyMs?: number | null }>
}

/** Whether a verdict reason passes, drops or transmits (by its name's prefix). */
export const actionOfVerdict = (reason: string): "pass" | "drop" | "tx" =>
  reason.startsWith("PASS_") ? "pass" : reason.startsWith("TX_") ? "tx" : "drop"

const MEMBER_STATES = ["joining", "up", "draining", "unhealthy", "down"] as const
const APP_STATES = ["starting", "up", "unhealthy", "restarting", "stopped"] as const
const CHECKER_STATES = ["unknown", "up", "down"] as const

/** The farm's metrics in their own registry (nothing global, so tests make as many as they like). */
export class FarmMetrics {
  readonly registry = new Registry()
  /** Log records every folder refused, by kind of reason (chain, signature, author, limits, malformed, invalid). */
  readonly recordsRejected = new Counter({ name: "vipfarm_records_rejected_total", help: "Log records this server refused to fold, by reason", labelNames: ["reason"], registers: [this.registry] })
  /** Network messages (heartbeats, UDP-flow reports) refused before they reached the controller. */
  readonly messagesRejected = new Counter({ name: "vipfarm_messages_rejected_total", help: "Heartbeats and UDP-flow reports refused (too big, not JSON, wrong shape)", labelNames: ["kind", "reason"], registers: [this.registry] })
  private readonly lastHeard = new Map<string, number>()
  private readonly handoffsStarted: Counter<"mode">
  private readonly handoffsCompleted: Counter
  private readonly failovers: Histogram
  private readonly records: Counter

  constructor(private readonly source: MetricsSource) {
    const registers = [this.registry]
    const src = source
    this.registry.setDefaultLabels({ farm: source.farm, node: source.node })
    // the process itself: event-loop lag, heap, RSS, GC, CPU, handles (prom-client's nodejs_* and process_*)
    collectDefaultMetrics({ register: this.registry })
    new Gauge({ name: "vipfarm_build_info", help: "Always 1: the vipfarm version and Node.js version this server runs", labelNames: ["version", "nodejs"], registers })
      .set(buildInfo(), 1)

    new Counter({
      name: "vipfarm_filter_packets_total", help: "Packets the XDP filter handled, by verdict reason and action", labelNames: ["verdict", "action"], registers,
      collect() {
        const c = src.counters()
        this.reset()
        if (c === null) return
        for (const [verdict, v] of Object.entries(c)) this.inc({ verdict, action: actionOfVerdict(verdict) }, Number(v.packets))
      }
    })
    new Counter({
      name: "vipfarm_filter_bytes_total", help: "Bytes the XDP filter handled, by verdict reason and action", labelNames: ["verdict", "action"], registers,
      collect() {
        const c = src.counters()
        this.reset()
        if (c === null) return
        for (const [verdict, v] of Object.entries(c)) this.inc({ verdict, action: actionOfVerdict(verdict) }, Number(v.bytes))
      }
    })
    // Per VIP: PASS_OWNED and DROP_FOREIGN of every configured VIP, other verdicts once non-zero.
    const perVip = (counter: Counter<"vip" | "verdict" | "action">, field: "packets" | "bytes") => {
      const list = src.vipCounters()
      counter.reset()
      if (list === null) return
      const names = vipNames(src.state().vips)
      for (const v of list) {
        const vip = names.get(v.words.map((w) => w >>> 0).join(",")) ?? formatAddress(v.words)
        for (const [verdict, c] of Object.entries(v.counters)) {
          if (c[field] > 0n || verdict === "PASS_OWNED" || verdict === "DROP_FOREIGN") {
            counter.inc({ vip, verdict, action: actionOfVerdict(verdict) }, Number(c[field]))
          }
        }
      }
    }
    new Counter({
      name: "vipfarm_vip_packets_total",
      help: "Packets addressed to a VIP, by VIP, verdict reason and action (pass or drop), since the VIP was configured on this server's filter (PASS_OWNED and DROP_FOREIGN always, other verdicts once counted)",
      labelNames: ["vip", "verdict", "action"], registers,
      collect() {
        perVip(this, "packets")
      }
    })
    new Counter({
      name: "vipfarm_vip_bytes_total",
      help: "Bytes (whole frames) addressed to a VIP, by VIP, verdict reason and action (pass or drop), since the VIP was configured on this server's filter (PASS_OWNED and DROP_FOREIGN always, other verdicts once counted)",
      labelNames: ["vip", "verdict", "action"], registers,
      collect() {
        perVip(this, "bytes")
      }
    })
    new Counter({
      name: "vipfarm_table_packets_total",
      help: "Packets that reached a bucket table (owned, foreign or moving), by table and the VIPs whose rules use it (table 0 is shared; single-host rules have their own)",
      labelNames: ["table", "vips"], registers,
      collect() {
        const per = src.bucketPackets()
        this.reset()
        if (per === null) return
        for (const [table, vips] of tablesOfVips(src.state().vips)) this.inc({ table: String(table), vips: vips.join(",") }, sumTable(per, table))
      }
    })
    new Gauge({
      name: "vipfarm_buckets_owned", help: "Buckets of the first table this server owns (a moving bucket counts for its new owner)", registers,
      collect() {
        const st = src.state()
        this.set(st.tables[0]?.filter((b) => effectiveOwner(b) === src.node).length ?? 0)
      }
    })
    new Gauge({
      name: "vipfarm_member_buckets", help: "Buckets of the first table per member", labelNames: ["member"], registers,
      collect() {
        const st = src.state()
        this.reset()
        for (const m of st.members) this.set({ member: m.name }, st.tables[0]?.filter((b) => effectiveOwner(b) === m.name).length ?? 0)
      }
    })
    new Gauge({
      name: "vipfarm_members", help: "Members of the farm by state", labelNames: ["state"], registers,
      collect() {
        const st = src.state()
        for (const s of MEMBER_STATES) this.set({ state: s }, st.members.filter((m) => m.status === s).length)
      }
    })
    new Gauge({
      name: "vipfarm_handoffs_open", help: "Hand-offs in progress", registers,
      collect() {
        this.set(openHandoffs(src.state()).length)
      }
    })
    this.handoffsStarted = new Counter({ name: "vipfarm_handoffs_started_total", help: "Hand-offs started (log records folded since the daemon started)", labelNames: ["mode"], registers })
    this.handoffsCompleted = new Counter({ name: "vipfarm_handoffs_completed_total", help: "Graceful hand-offs completed (folded since the daemon started)", registers })
    this.records = new Counter({ name: "vipfarm_log_records_folded_total", help: "Log records folded since the daemon started", registers })
    this.failovers = new Histogram({
      name: "vipfarm_failover_duration_seconds",
      help: "Time from a failed peer's last heartbeat heard here to this server applying the peer's failure plan",
      buckets: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.75, 1, 1.5, 2, 5, 10], registers
    })
    new Gauge({
      name: "vipfarm_log_sequence", help: "Last log sequence this server folded", registers,
      collect() {
        this.set(src.log().folded)
      }
    })
    new Gauge({
      name: "vipfarm_log_head_sequence", help: "The stream's last sequence as this server knows it", registers,
      collect() {
        this.set(src.log().head)
      }
    })
    new Gauge({
      name: "vipfarm_log_fold_lag", help: "Records in the log not folded yet (head - folded)", registers,
      collect() {
        const l = src.log()
        this.set(Math.max(0, l.head - l.folded))
      }
    })
    new Gauge({
      name: "vipfarm_udp_flows_tracked", help: "UDP flows in the filter's udp_flows map", registers,
      collect() {
        this.set(src.flowsTracked() ?? 0)
      }
    })
    new Gauge({
      name: "vipfarm_lease_remaining_seconds", help: "Time the filter still serves VIP traffic without a renewed lease (<= 0: fenced)", registers,
      collect() {
        this.set(src.leaseRemainingMs() / 1000)
      }
    })
    new Gauge({
      name: "vipfarm_app_state", help: "The application's state (1 for the current one)", labelNames: ["module", "state"], registers,
      collect() {
        const a = src.app()
        this.reset()
        if (a === null) return
        for (const s of APP_STATES) this.set({ module: a.module, state: s }, a.state === s ? 1 : 0)
      }
    })
    new Gauge({
      name: "vipfarm_app_checker_state", help: "Each checker's state (1 for the current one)", labelNames: ["checker", "state"], registers,
      collect() {
        const a = src.app()
        this.reset()
        if (a === null) return
        for (const c of a.checkers) for (const s of CHECKER_STATES) this.set({ checker: c.name, state: s }, c.status === s ? 1 : 0)
      }
    })
    new Gauge({
      name: "vipfarm_app_checker_latency_seconds", help: "Duration of each checker's last probe", labelNames: ["checker"], registers,
      collect() {
        const a = src.app()
        this.reset()
        if (a === null) return
        for (const c of a.checkers) if (typeof c.latencyMs === "number") this.set({ checker: c.name }, c.latencyMs / 1000)
      }
    })
  }

  /** A log record was folded: count the hand-offs it starts and completes. */
  onRecord(entry: unknown): void {
    this.records.inc()
    for (const e of eventsOf(entry)) {
      if (e._tag === "HandoffStarted") this.handoffsStarted.inc({ mode: typeof e.mode === "string" ? e.mode : "unknown" })
      else if (e._tag === "HandoffCompleted") this.handoffsCompleted.inc()
    }
  }

  /** A heartbeat from `peer` arrived at `now` (ms, monotonic). */
  onHeartbeat(peer: string, now: number): void {
    this.lastHeard.set(peer, now)
  }

  /** A controller log action: `takeover` of a peer ends a failover. */
  onControllerLog(op: string, fields: Readonly<Record<string, unknown>>, now: number): void {
    if (op !== "takeover" || typeof fields.peer !== "string") return
    const heard = this.lastHeard.get(fields.peer)
    if (heard !== undefined && now >= heard) this.failovers.observe((now - heard) / 1000)
  }

  /** Observe a failover directly (seconds). */
  observeFailover(seconds: number): void {
    this.failovers.observe(seconds)
  }

  /** The exposition text. */
  render(): Promise<string> {
    return this.registry.metrics()
  }

  /** The content type of {@link render}. */
  get contentType(): string {
    return this.registry.contentType
  }
}

/** The labels of `vipfarm_build_info` (the farm and node labels are the registry's own). */
export const buildInfo = (): { readonly version: string; readonly nodejs: string } => ({ version: VERSION, nodejs: process.versions.node })

type LooseEvent = { readonly _tag?: unknown; readonly mode?: unknown }

/** The events of a record: a batch `{v, events}` or one event. */
export const eventsOf = (entry: unknown): Array<LooseEvent & { readonly _tag: string }> => {
  const batch = (entry as { events?: unknown } | null)?.events
  const list = (Array.isArray(batch) ? batch : [entry]) as Array<unknown>
  return list.filter((e): e is LooseEvent & { _tag: string } => typeof e === "object" && e !== null && typeof (e as LooseEvent)._tag === "string")
}

/** Every rule table in use and the VIPs whose rules use it (as the domain assigns tables), by table. */
export const tablesOfVips = (vips: ReadonlyArray<Vip>): Array<readonly [number, Array<string>]> => {
  const tables = ruleTables(vips)
  const out = new Map<number, Array<string>>()
  vips.forEach((v, i) => tables[i].forEach((t) => {
    const list = out.get(t) ?? []
    if (!list.includes(v.address)) list.push(v.address)
    out.set(t, list)
  }))
  return [...out.entries()].sort((a, b) => a[0] - b[0])
}

/** The configured spelling of each VIP address by its words joined with commas. */
const vipNames = (vips: ReadonlyArray<Vip>): Map<string, string> => {
  const out = new Map<string, string>()
  for (const v of vips) {
    try {
      out.set(addressWords(v.address).map((w) => w >>> 0).join(","), v.address)
    } catch {
      // not an address: the filter never has it
    }
  }
  return out
}

const sumTable = (per: ArrayLike<number>, table: number): number => {
  let s = 0
  for (let i = table * 1024; i < (table + 1) * 1024 && i < per.length; i++) s += per[i]
  return s
}

/** The metrics endpoint could not be opened. */
export class MetricsError extends Schema.TaggedError<MetricsError>()("MetricsError", { listen: Schema.String, message: Schema.String }) {}

/** Split `host:port` (IPv6 as `[::1]:9469`). */
export const metricsAddress = (listen: string): { host: string; port: number } | null => {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(listen)
  if (m === null) return null
  const port = Number(m[3])
  if (port < 1 || port > 65535) return null
  return { host: m[1] ?? m[2], port }
}

/** Serve `GET /metrics` on `listen` for the lifetime of the scope. */
export const serveMetrics = (listen: string, metrics: FarmMetrics) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: () =>
        new Promise<Server>((resolve, reject) => {
          const addr = metricsAddress(listen)
          if (addr === null) return reject(new Error(`not host:port: ${listen}`))
          const server = createServer((req, res) => {
            if (req.method === "GET" && (req.url === "/metrics" || req.url?.startsWith("/metrics?"))) {
              metrics.render().then(
                (text) => {
                  res.writeHead(200, { "content-type": metrics.contentType })
                  res.end(text)
                },
                (e) => {
                  res.writeHead(500, { "content-type": "text/plain" })
                  res.end(String(e))
                }
              )
              return
            }
            res.writeHead(404, { "content-type": "text/plain" })
            res.end("vipfarm: metrics are at /metrics\n")
          })
          server.once("error", reject)
          server.listen(addr.port, addr.host, () => resolve(server))
        }),
      catch: (e) => new MetricsError({ listen, message: (e as Error).message })
    }),
    (server) => Effect.promise(() => new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections?.()
    }))
  )
