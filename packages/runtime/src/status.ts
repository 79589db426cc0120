/**
 * `farm status`: the farm as one server sees it, as JSON for scripts and as a table a
 * person reads at a glance. The JSON shape is a stable contract (extend, never rename).
 */
import { type FarmState, effectiveOwner, openHandoffs } from "@vipfarm/domain"

/** A member's state as shown to operators. */
export type MemberView = "up" | "joining" | "draining" | "leaving" | "down" | "unhealthy"

/** The status document. */
export interface Status {
  readonly farm: string
  readonly node: string
  readonly members: ReadonlyArray<{
    readonly name: string
    readonly state: MemberView
    readonly weight: number
    readonly buckets: number
    readonly address: string
    readonly incarnation: number
    readonly suspectedBy: string | null
    readonly checker: { readonly name: string; readonly error: string } | null
    /**
     * The member's application as its supervisor last reported it to the log (ApplicationChanged:
     * running, restarting, left, healing, stopped, failed); null before any report (or without a module).
     */
    readonly application: { readonly state: string; readonly reason: string; readonly restarts?: number; readonly checker?: string } | null
  }>
  readonly log: { readonly sequence: number; readonly rejected: number; readonly lastRejection: string | null }
  readonly handoffs: ReadonlyArray<string>
  readonly filter: { readonly fenced: boolean; readonly deadlineMs: number | null; readonly mode: string | null }
  readonly vips: ReadonlyArray<string>
  /** This server's application (null when the daemon supervises none). */
  readonly app?: {
    readonly module: string
    readonly state: string
    readonly checker?: string | null
    readonly error?: string | null
    /** Restarts counted in the policy's window. */
    readonly restarts?: number
    readonly checkers?: ReadonlyArray<{ readonly name: string; readonly type: string; readonly status: string; readonly lastError: string | null }>
  } | null
}

/** Build the status document from the folded state and the local filter's situation. */
export const statusOf = (
  state: FarmState,
  node: string,
  local: { readonly fenced: boolean; readonly deadlineMs: number | null; readonly mode: string | null; readonly leaving?: boolean }
): Status => ({
  farm: state.farm,
  node,
  members: state.members.map((m) => {
    const buckets = state.tables[0].filter((b) => effectiveOwner(b) === m.name).length
    const view: MemberView =
      m.name === node && local.leaving ? "leaving" : m.status === "draining" && m.drained ? "draining" : m.status
    return {
      name: m.name,
      state: view,
      weight: m.weight,
      buckets,
      address: m.address,
      incarnation: m.incarnation,
      suspectedBy: m.suspectedBy,
      checker: m.unhealthy === null ? null : { name: m.unhealthy.checker, error: m.unhealthy.reason },
      application: m.application ?? null
    }
  }),
  log: { sequence: state.seq, rejected: state.rejected, lastRejection: state.lastRejection?.reason ?? null },
  handoffs: openHandoffs(state),
  filter: local,
  vips: state.vips.map((v) => v.address)
})

const pad = (s: string, n: number): string => (s.length >= n ? s : s + " ".repeat(n - s.length))

/** The status as a table for a terminal. */
export const formatStatus = (s: Status): string => {
  const lines: Array<string> = []
  lines.push(`farm ${s.farm}, seen from ${s.node}: log at ${s.log.sequence}${s.log.rejected ? `, ${s.log.rejected} rejected (${s.log.lastRejection})` : ""}`)
  lines.push(`filter: ${s.filter.fenced ? "FENCED (accepting no VIP traffic)" : "serving"}${s.filter.mode ? `, ${s.filter.mode} XDP` : ""}; VIPs ${s.vips.join(", ") || "none"}`)
  if (s.app) lines.push(`application ${s.app.module}: ${s.app.state}${s.app.checker ? ` (${s.app.checker}: ${s.app.error ?? "failing"})` : ""}`)
  lines.push("")
  const rows = [["SERVER", "STATE", "APP", "WEIGHT", "BUCKETS", "SHARE", "NOTE"]]
  const total = s.members.reduce((n, m) => n + m.buckets, 0) || 1
  for (const m of s.members) {
    const note = [
      m.name === s.node ? "(this server)" : "",
      m.checker ? `${m.checker.name}: ${m.checker.error}` : "",
      m.application && m.application.state !== "running" ? `app ${m.application.state}: ${m.application.reason}` : "",
      m.suspectedBy ? `suspected by ${m.suspectedBy}` : ""
    ].filter(Boolean).join("; ")
    const app = m.application ? `${m.application.state}${m.application.restarts ? ` (${m.application.restarts} restart${m.application.restarts === 1 ? "" : "s"})` : ""}` : "-"
    rows.push([m.name, m.state, app, String(m.weight), String(m.buckets), `${((100 * m.buckets) / total).toFixed(1)}%`, note])
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)) + 2)
  for (const r of rows) lines.push(r.map((c, i) => pad(c, widths[i])).join("").trimEnd())
  if (s.handoffs.length > 0) lines.push("", `hand-offs in progress: ${s.handoffs.join(", ")}`)
  return lines.join("\n")
}
