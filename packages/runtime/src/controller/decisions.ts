/**
 * Decisions (PROTOCOL.md §4, §6-8): what this server asks the log for, in order of precedence:
 * 1. the failures a majority proved (DeclareFailed with the applied plan, in name order);
 * 2. its own membership (Join, Ready, ReportUnhealthy, ReportRecovered, Drain, Resume, Leave,
 *    then Exit once the log removed it);
 * 3. hand-offs whose old owners are all done (CompleteHandoff);
 * 4. convergence: the lowest-named up member rebalances when nothing moves and every live
 *    member acked the folded seq.
 * {@link decisions} yields the candidates lazily; the {@link NodeController} appends the first
 * one the domain accepts (with its deterministic message id) and stops there.
 */
import {
  type Cause,
  type Command,
  type FarmState,
  findMember,
  heldBy,
  holdings,
  type PlannedTaker,
  rebalanceMoves,
  type RestoredBucket
} from "@vipfarm/domain"
import type { HandoffView } from "./handoffs.ts"
import type { Pin } from "./pins.ts"
import type { ControllerConfig } from "./types.ts"

/** A command to append with its message id, or the end of the process (the log removed it while stopping). */
export type Decision = { readonly _tag: "Append"; readonly cmd: Command; readonly msgId: string } | { readonly _tag: "Exit" }

/** What {@link decisions} reads (snapshots: nothing it reads changes while candidates are tried). */
export interface DecisionInput {
  readonly config: ControllerConfig
  readonly folded: FarmState
  readonly overlay: ReadonlyArray<string>
  readonly pins: ReadonlyMap<string, Pin>
  /** The filter deadline (lease end). */
  readonly deadline: number
  readonly healthy: boolean
  readonly wantDrain: boolean
  readonly failing: { readonly checker: string; readonly reason: string }
  readonly staleReport: { readonly seq: number } | null
  readonly stopping: { readonly since: number } | null
  readonly planOf: (node: string) => Array<PlannedTaker> | null
  readonly appliedPlan: (node: string) => Array<PlannedTaker>
  readonly restoreOf: (seq: number) => Array<RestoredBucket> | null
  readonly handoffs: () => HandoffView
  readonly allOldOwnersDone: (h: string) => boolean
  /** The buckets of hand-off `h` no old owner holds flows in while others still do (null: none, or not known yet). */
  readonly partialCompletion: (h: string) => Array<{ readonly table: number; readonly bucket: number }> | null
  /** Every live member heard acked the folded seq (a rebalance waits for it). */
  readonly peersAcked: () => boolean
  /** Whether a rebalance is wanted, checked once per folded seq (updated here). */
  readonly rebalance: { checkedAt: number; wanted: boolean }
}

/** The cause of a daemon decision. */
export const daemonCause = (by: string, detail?: string): Cause => detail === undefined ? { kind: "daemon", by } : { kind: "daemon", by, detail }

/** The candidate decisions at `now`, best first; the caller stops at the first appended. */
export function* decisions(x: DecisionInput, now: number): Generator<Decision, void, undefined> {
  const me = x.config.node
  const seq = x.folded.seq
  // 1. failures proven by a majority: make the log say so (first, in name order); a node
  // without a lease (itself taken over, e.g. restarted during a stall) records no plan: its
  // own buckets would be in it
  for (const n of x.overlay) {
    const m = findMember(x.folded, n)
    if (m === undefined || m.status === "down") continue
    if (x.config.role === "server" && now >= x.deadline) return
    // the log records the takers this node applied (the same pin as every live peer once agreed)
    const pin = x.pins.get(n)
    // once agreed (or, with a peer that never publishes a pin, after expireAfterMs)
    if (pin === undefined || x.planOf(n) === null || (!pin.agreed && now - pin.at < x.config.expireAfterMs)) return
    const plan = x.appliedPlan(n)
    yield { _tag: "Append", cmd: { _tag: "DeclareFailed", node: n, by: me, cause: { kind: "lease", by: me }, plan }, msgId: `failed-${n}-${m.incarnation}` }
  }
  // wait only while a proven failure is not in the log yet (a dead peer stays suspected for ever)
  if (x.overlay.some((n) => { const y = findMember(x.folded, n); return y !== undefined && y.status !== "down" })) return
  const m = findMember(x.folded, me)
  const c = daemonCause(me)
  // a node without a lease asks for no buckets (it could not serve them)
  const leased = now < x.deadline
  // 2. own membership
  if (x.stopping !== null) {
    if (m === undefined || m.status === "down") {
      yield { _tag: "Exit" }
      return
    }
    const overdue = now - x.stopping.since >= x.config.stopMaxMs
    if (m.status === "joining" || m.status === "unhealthy" || (m.status === "draining" && (m.drained || holdings(x.folded, me) === 0 || overdue))) {
      yield { _tag: "Append", cmd: { _tag: "Leave", node: me, cause: c }, msgId: `leave-${me}-${m.incarnation}@${seq}` }
    } else if (m.status === "up") {
      yield { _tag: "Append", cmd: { _tag: "Drain", node: me, cause: c }, msgId: `drain-${me}-${m.incarnation}@${seq}` }
    }
  } else if (m === undefined || m.status === "down") {
    if (!leased) return
    const cmd: Command = {
      _tag: "Join", node: me, address: x.config.address, weight: x.config.weight, priority: x.config.priority,
      rulesDigest: x.config.rulesDigest, cause: c
    }
    yield { _tag: "Append", cmd, msgId: `join-${me}-${(m?.incarnation ?? 0) + 1}@${seq}` }
  } else if (m.status === "joining") {
    if (x.healthy && leased && !x.wantDrain) yield { _tag: "Append", cmd: { _tag: "Ready", node: me, cause: c }, msgId: `ready-${me}-${m.incarnation}@${seq}` }
  } else if (m.status === "up") {
    if (!x.healthy) {
      const cmd: Command = { _tag: "ReportUnhealthy", node: me, checker: x.failing.checker, reason: x.failing.reason, cause: { kind: "checker", by: me, detail: `${x.failing.checker}: ${x.failing.reason}` } }
      yield { _tag: "Append", cmd, msgId: `unhealthy-${me}-${m.incarnation}@${seq}` }
    } else if (x.wantDrain) {
      yield { _tag: "Append", cmd: { _tag: "Drain", node: me, cause: c }, msgId: `drain-${me}-${m.incarnation}@${seq}` }
    }
  } else if (m.status === "unhealthy") {
    const restore = x.staleReport !== null ? x.restoreOf(x.staleReport.seq) : null
    const cmd: Command = restore !== null && restore.length > 0
      ? { _tag: "ReportRecovered", node: me, cause: { kind: "checker", by: me, detail: "stale unhealthy report withdrawn" }, restore }
      : { _tag: "ReportRecovered", node: me, cause: { kind: "checker", by: me } }
    if (x.healthy && leased) yield { _tag: "Append", cmd, msgId: `recovered-${me}-${m.incarnation}@${seq}` }
  } else if (m.status === "draining") {
    if (!x.wantDrain && x.healthy && leased) yield { _tag: "Append", cmd: { _tag: "Resume", node: me, cause: c }, msgId: `resume-${me}-${m.incarnation}@${seq}` }
  }
  // 3. hand-offs whose old owners are all done
  const open = x.handoffs().open
  // (its batch carries a rebalance: once every live member acked the folded seq, as in 4)
  for (const h of open) {
    if (x.allOldOwnersDone(h) && x.peersAcked()) yield { _tag: "Append", cmd: { _tag: "CompleteHandoff", handoff: h, cause: c }, msgId: `complete-${h}` }
    else if (x.peersAcked()) {
      // the buckets without flows complete; those where an old owner still holds a connection keep moving
      const buckets = x.partialCompletion(h)
      if (buckets !== null) yield { _tag: "Append", cmd: { _tag: "CompleteHandoff", handoff: h, cause: c, buckets }, msgId: `complete-${h}-part@${seq}` }
    }
  }
  // 4. convergence: the lowest-named up member rebalances when nothing moves
  if (open.length === 0 && m !== undefined && m.status === "up" && leased) {
    if (x.rebalance.checkedAt !== seq) {
      x.rebalance.checkedAt = seq
      const firstUp = x.folded.members.find((y) => y.status === "up")
      x.rebalance.wanted = firstUp?.name === me && rebalanceMoves(x.folded).length > 0
    }
    // once every live member acked the state it is decided on: a server withholding its ack of
    // its own stale unhealthy report (§8) gets its buckets restored before they move elsewhere
    if (x.rebalance.wanted && x.peersAcked()) yield { _tag: "Append", cmd: { _tag: "Rebalance", cause: c }, msgId: `rebalance@${seq}` }
  }
}

/**
 * The buckets `me`'s stale MemberUnhealthy (at `seq`) took, as they were before it, where the
 * folded state still has them as the report's plan left them (null: the states are not kept).
 */
export const restoreOf = (history: ReadonlyMap<number, FarmState>, folded: FarmState, me: string, seq: number): Array<RestoredBucket> | null => {
  const pre = history.get(seq - 1)
  const post = history.get(seq)
  if (pre === undefined || post === undefined) return null
  const out: Array<RestoredBucket> = []
  for (let t = 0; t < pre.tables.length; t++) {
    const a = pre.tables[t]
    const b = post.tables[t]
    const c = folded.tables[t]
    if (a === b || b === undefined || c === undefined) continue
    for (let i = 0; i < a.length; i++) {
      const x = a[i]
      if (!heldBy(x, me) || sameBucket(b[i], x) || !sameBucket(c[i], b[i])) continue
      out.push(x.state === "moving" ? { table: t, bucket: i, owner: x.owner!, to: x.to, handoff: x.handoff } : { table: t, bucket: i, owner: me })
    }
  }
  return out
}

const sameBucket = (a: { state: string; owner: string | null }, b: { state: string; owner: string | null }): boolean =>
  a === b || JSON.stringify(a) === JSON.stringify(b)
