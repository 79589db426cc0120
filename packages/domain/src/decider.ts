/**
 * Deciders: `(command, state) => events`. Decisions are kept apart from folding: a
 * decider reads the state its server folded up to some sequence and proposes events; the
 * log accepts them only if no other event was appended since (conditional append), and
 * every server then folds them with the reducer.
 */
import { Result, Schema } from "effect"
import { type ApplicationState, type Cause, decodeEvent, EVENT_VERSION, type FarmEvent, HANDOFF_PARTIAL_VERSION, MEMBER_FAILED_PLAN_VERSION, MEMBER_RECOVERED_RESTORE_VERSION, type Move, type PlannedTaker, type RestoredBucket } from "./events.ts"
import { evacuationMoves, holdings, rebalanceMoves } from "./plan.ts"
import { foldEvents } from "./reducer.ts"
import type { Vip } from "./rules.ts"
import { type FarmState, findMember, handoffInProgress } from "./state.ts"

/** Everything a server or an operator can ask of the farm. */
export type Command =
  | { readonly _tag: "Join"; readonly node: string; readonly address: string; readonly weight: number; readonly priority: number; readonly rulesDigest: string; readonly cause: Cause }
  | { readonly _tag: "Ready"; readonly node: string; readonly cause: Cause }
  | { readonly _tag: "ReportUnhealthy"; readonly node: string; readonly checker: string; readonly reason: string; readonly cause: Cause }
  | { readonly _tag: "ReportRecovered"; readonly node: string; readonly cause: Cause; readonly restore?: ReadonlyArray<RestoredBucket> }
  | { readonly _tag: "Suspect"; readonly node: string; readonly by: string; readonly cause: Cause }
  | { readonly _tag: "DeclareFailed"; readonly node: string; readonly by: string; readonly cause: Cause; readonly plan?: ReadonlyArray<PlannedTaker> }
  | { readonly _tag: "Drain"; readonly node: string; readonly cause: Cause }
  | { readonly _tag: "Resume"; readonly node: string; readonly cause: Cause }
  | {
    readonly _tag: "CompleteHandoff"
    readonly handoff: string
    readonly cause: Cause
    /** Only these buckets (HandoffCompleted version 2); each must be moving in the hand-off. */
    readonly buckets?: ReadonlyArray<{ readonly table: number; readonly bucket: number }>
  }
  | { readonly _tag: "Leave"; readonly node: string; readonly cause: Cause }
  | { readonly _tag: "SetWeight"; readonly node: string; readonly weight: number; readonly cause: Cause }
  | { readonly _tag: "Configure"; readonly vips: ReadonlyArray<Vip>; readonly cause: Cause }
  | { readonly _tag: "Rebalance"; readonly cause: Cause }
  | {
    readonly _tag: "ReportApplication"
    readonly node: string
    readonly state: ApplicationState
    readonly reason: string
    readonly restarts?: number
    readonly checker?: string
    readonly cause: Cause
  }

/** A command that makes no sense in the current state. */
export class CommandRejected extends Schema.TaggedError<CommandRejected>()("CommandRejected", {
  command: Schema.String,
  reason: Schema.String
}) {}

type Decision = Result.Result<Array<FarmEvent>, CommandRejected>

const no = (cmd: Command, reason: string): Decision => Result.fail(new CommandRejected({ command: cmd._tag, reason }))

/** A deterministic hand-off id: the log position the decision was made at. */
export const handoffId = (state: FarmState, kind: string): string => `${kind}@${state.seq}`

const handoff = (state: FarmState, kind: string, mode: "graceful" | "takeover", moves: Array<Move>, cause: Cause): Array<FarmEvent> =>
  moves.length === 0 ? [] : [{ _tag: "HandoffStarted", v: EVENT_VERSION, cause, handoff: handoffId(state, kind), mode, moves }]

/** Events for the command, each checked by folding; or why it is refused. */
export const decide = (cmd: Command, state: FarmState): Decision => {
  const v = EVENT_VERSION
  const first = firstEvents(cmd, state)
  if (Result.isFailure(first)) return first
  const events = first.success
  // what the command brings in must be what every server will decode (the planned moves are the domain's own)
  for (const e of events) {
    const d = decodeEvent(e)
    if (Result.isFailure(d)) return no(cmd, d.failure.message)
  }
  const mid = foldEvents(state, events)
  if (mid.rejected !== state.rejected) return no(cmd, mid.lastRejection?.reason ?? "rejected by the reducer")
  const cause = cmd.cause
  let more: Array<FarmEvent> = []
  switch (cmd._tag) {
    case "Ready":
    case "ReportRecovered":
    case "Resume":
    case "SetWeight":
    case "Configure":
    case "Rebalance":
    case "Join":
      more = handoff(state, "rebalance", "graceful", rebalanceMoves(mid), cause)
      break
    case "Drain": {
      more = handoff(state, `drain-${cmd.node}`, "graceful", evacuationMoves(mid, cmd.node), cause)
      if (more.length === 0 && holdings(mid, cmd.node) === 0) more = [{ _tag: "DrainFinished", v, cause, node: cmd.node }]
      break
    }
    case "CompleteHandoff":
      more = mid.members
        .filter((m) => m.status === "draining" && !m.drained && holdings(mid, m.name) === 0)
        .map((m): FarmEvent => ({ _tag: "DrainFinished", v, cause, node: m.name }))
      // buckets that were in flight during an earlier decision may now be rebalanced
      more.push(...handoff(state, "rebalance", "graceful", rebalanceMoves(mid), cause))
      break
    default:
      break
  }
  const all = [...events, ...more]
  const end = foldEvents(mid, more)
  if (end.rejected !== state.rejected) return no(cmd, end.lastRejection?.reason ?? "rejected by the reducer")
  return Result.succeed(all)
}

const firstEvents = (cmd: Command, state: FarmState): Decision => {
  const v = EVENT_VERSION
  const cause = cmd.cause
  switch (cmd._tag) {
    case "Join": {
      const prev = findMember(state, cmd.node)
      return Result.succeed([{
        _tag: "MemberJoined", v, cause, node: cmd.node, address: cmd.address, weight: cmd.weight,
        priority: cmd.priority, rulesDigest: cmd.rulesDigest, incarnation: (prev?.incarnation ?? 0) + 1
      }])
    }
    case "Ready":
    case "Resume":
      return Result.succeed([{ _tag: "MemberReady", v, cause, node: cmd.node }])
    case "ReportUnhealthy":
      return Result.succeed([{ _tag: "MemberUnhealthy", v, cause, node: cmd.node, checker: cmd.checker, reason: cmd.reason }])
    case "ReportRecovered":
      if (cmd.restore !== undefined) {
        // a stale report, never acknowledged by the server: its buckets come back (version 2)
        return Result.succeed([{ _tag: "MemberRecovered", v: MEMBER_RECOVERED_RESTORE_VERSION, cause, node: cmd.node, restore: cmd.restore }])
      }
      return Result.succeed([{ _tag: "MemberRecovered", v, cause, node: cmd.node }])
    case "Suspect":
      return Result.succeed([{ _tag: "MemberSuspected", v, cause, node: cmd.node, by: cmd.by }])
    case "DeclareFailed": {
      const m = findMember(state, cmd.node)
      if (m === undefined) return no(cmd, `node ${cmd.node} is not a member`)
      if (cmd.plan !== undefined) {
        // the takers the survivors applied ahead of the log (version 2)
        return Result.succeed([{ _tag: "MemberFailed", v: MEMBER_FAILED_PLAN_VERSION, cause, node: cmd.node, detectedBy: cmd.by, incarnation: m.incarnation, plan: cmd.plan }])
      }
      return Result.succeed([{ _tag: "MemberFailed", v, cause, node: cmd.node, detectedBy: cmd.by, incarnation: m.incarnation }])
    }
    case "Drain":
      return Result.succeed([{ _tag: "DrainStarted", v, cause, node: cmd.node }])
    case "CompleteHandoff":
      if (!handoffInProgress(state, cmd.handoff)) {
        return no(cmd, `hand-off ${cmd.handoff} has no bucket moving`)
      }
      if (cmd.buckets !== undefined) {
        for (const b of cmd.buckets) {
          const s = state.tables[b.table]?.[b.bucket]
          if (s === undefined || s.state !== "moving" || s.handoff !== cmd.handoff) return no(cmd, `buckets: ${b.table}/${b.bucket} is not moving in hand-off ${cmd.handoff}`)
        }
        return Result.succeed([{ _tag: "HandoffCompleted", v: HANDOFF_PARTIAL_VERSION, cause, handoff: cmd.handoff, buckets: cmd.buckets.map((b) => ({ table: b.table, bucket: b.bucket })) }])
      }
      return Result.succeed([{ _tag: "HandoffCompleted", v, cause, handoff: cmd.handoff }])
    case "Leave":
      return Result.succeed([{ _tag: "MemberLeft", v, cause, node: cmd.node }])
    case "SetWeight":
      return Result.succeed([{ _tag: "WeightChanged", v, cause, node: cmd.node, weight: cmd.weight }])
    case "Configure":
      return Result.succeed([{ _tag: "ConfigChanged", v, cause, vips: cmd.vips }])
    case "Rebalance":
      return Result.succeed([])
    case "ReportApplication": {
      const m = findMember(state, cmd.node)
      if (m === undefined) return no(cmd, `node ${cmd.node} is not a member`)
      return Result.succeed([{
        _tag: "ApplicationChanged", v, cause, node: cmd.node, incarnation: m.incarnation, state: cmd.state, reason: cmd.reason,
        ...(cmd.restarts === undefined ? {} : { restarts: cmd.restarts }),
        ...(cmd.checker === undefined ? {} : { checker: cmd.checker })
      }])
    }
  }
}
