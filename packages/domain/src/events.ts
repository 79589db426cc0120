/**
 * The farm's events: every change of membership, health and bucket ownership is one of
 * these, appended to the farm's log and folded by the reducer. Each carries its schema
 * version and its cause, so that an auditor can see why something happened.
 */
import { Result, Schema } from "effect"
import { Vip } from "./rules.ts"
import { BUCKETS } from "./hash.ts"
import { MAX_TABLES } from "./localView.ts"

/** Event schema version this code writes and reads. */
export const EVENT_VERSION = 1

/** A server name: letters, digits, dot, dash, underscore; 1 to 63 characters. */
export const NodeName = Schema.String.check(Schema.isPattern(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/))

/** Why an event happened: who or what decided it, and a human-readable detail. */
export const Cause = Schema.Struct({
  kind: Schema.Literals(["operator", "daemon", "checker", "lease", "decider", "config"]),
  by: Schema.String,
  detail: Schema.optionalKey(Schema.String)
})
/** Why an event happened. */
export type Cause = typeof Cause.Type

const Weight = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 10000 }))
const Priority = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1000000 }))
const Incarnation = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))
const Bucket = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: BUCKETS - 1 }))
const Table = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: MAX_TABLES - 1 }))

const base = { v: Schema.Literal(EVENT_VERSION), cause: Cause }

/** A server joined the farm (it owns nothing until it is ready). */
export const MemberJoined = Schema.TaggedStruct("MemberJoined", {
  ...base,
  node: NodeName,
  address: Schema.String,
  weight: Weight,
  priority: Priority,
  rulesDigest: Schema.String,
  incarnation: Incarnation
})
/** The server's application passed its checkers: it may take buckets. */
export const MemberReady = Schema.TaggedStruct("MemberReady", { ...base, node: NodeName })
/** A checker failed on the server: its buckets are taken over at once (its failure plan). */
export const MemberUnhealthy = Schema.TaggedStruct("MemberUnhealthy", {
  ...base,
  node: NodeName,
  checker: Schema.String,
  reason: Schema.String
})
/**
 * One bucket as it was before a stale MemberUnhealthy took it (MemberRecovered version 2):
 * owned by `owner`, or moving from `owner` to `to` in hand-off `handoff`.
 */
export const RestoredBucket = Schema.Struct({
  table: Table,
  bucket: Bucket,
  owner: NodeName,
  to: Schema.optionalKey(NodeName),
  handoff: Schema.optionalKey(Schema.String)
})
/** One bucket as it was before a stale MemberUnhealthy took it. */
export type RestoredBucket = typeof RestoredBucket.Type

/** MemberRecovered version that restores the buckets of a stale unhealthy report. */
export const MEMBER_RECOVERED_RESTORE_VERSION = 2

/**
 * The server's checkers pass again. Version 2 adds `restore`: the report was stale (decided
 * during a log stall, folded after the application recovered) and the server never
 * acknowledged it, so nobody took its buckets: each listed bucket that is still as the
 * unhealthy plan left it gets its state from before the report back (controller PROTOCOL.md §8).
 */
export const MemberRecovered = Schema.TaggedStruct("MemberRecovered", {
  v: Schema.Literals([EVENT_VERSION, MEMBER_RECOVERED_RESTORE_VERSION]),
  cause: Cause,
  node: NodeName,
  restore: Schema.optionalKey(Schema.Array(RestoredBucket))
})
/** A peer missed heartbeats from the server (informational; ownership unchanged). */
export const MemberSuspected = Schema.TaggedStruct("MemberSuspected", { ...base, node: NodeName, by: NodeName })
/** One bucket's taker in a failure plan carried by MemberFailed (version 2). */
export const PlannedTaker = Schema.Struct({ table: Table, bucket: Bucket, to: NodeName })
/** One bucket's taker in a failure plan carried by MemberFailed (version 2). */
export type PlannedTaker = typeof PlannedTaker.Type

/** MemberFailed version that carries the plan the survivors applied ahead of the log. */
export const MEMBER_FAILED_PLAN_VERSION = 2

/**
 * The server's lease expired: its failure plan applies. Version 2 adds `plan`: the takers
 * the survivors pinned when they applied the failure ahead of the log (controller PROTOCOL.md
 * §4); the reducer gives each listed bucket to its taker when it is still valid (the bucket
 * still held by the node, the taker up), the rest by the computed failure plan. Version 1
 * (no plan) is read as before.
 */
export const MemberFailed = Schema.TaggedStruct("MemberFailed", {
  v: Schema.Literals([EVENT_VERSION, MEMBER_FAILED_PLAN_VERSION]),
  cause: Cause,
  node: NodeName,
  detectedBy: NodeName,
  incarnation: Incarnation,
  plan: Schema.optionalKey(Schema.Array(PlannedTaker))
})
/** The server left the farm; anything it still owned is taken over. */
export const MemberLeft = Schema.TaggedStruct("MemberLeft", { ...base, node: NodeName })
/** The server drains: its buckets move away, keeping their connections. */
export const DrainStarted = Schema.TaggedStruct("DrainStarted", { ...base, node: NodeName })
/** The server owns nothing any more. */
export const DrainFinished = Schema.TaggedStruct("DrainFinished", { ...base, node: NodeName })
/** The server's weight changed. */
export const WeightChanged = Schema.TaggedStruct("WeightChanged", { ...base, node: NodeName, weight: Weight })

/** One bucket's move in a hand-off. */
export const Move = Schema.Struct({
  table: Table,
  bucket: Bucket,
  from: Schema.NullOr(NodeName),
  to: NodeName
})
/** One bucket's move in a hand-off. */
export type Move = typeof Move.Type

/**
 * Buckets change owner. `graceful`: each bucket enters the moving state (the old owner
 * keeps its flows, the new one takes new flows) until HandoffCompleted. `takeover`: the
 * new owner takes everything at once (the old owner is unhealthy or gone).
 */
export const HandoffStarted = Schema.TaggedStruct("HandoffStarted", {
  ...base,
  handoff: Schema.String,
  mode: Schema.Literals(["graceful", "takeover"]),
  moves: Schema.Array(Move)
})
/** A graceful hand-off is over: every bucket still moving in it now belongs to its new owner. */
export const HandoffCompleted = Schema.TaggedStruct("HandoffCompleted", { ...base, handoff: Schema.String })
/** What a member's application is doing, as its supervisor reports it. */
export const ApplicationState = Schema.Literals(["running", "restarting", "left", "stopped", "healing", "failed"])
/** What a member's application is doing. */
export type ApplicationState = typeof ApplicationState.Type

/**
 * The supervisor of a member's application reports a change (started, restarted, stopped,
 * healing after a checker failed, given up). Informational: ownership is unchanged; the
 * member's `application` records the latest report of its current incarnation.
 */
export const ApplicationChanged = Schema.TaggedStruct("ApplicationChanged", {
  ...base,
  node: NodeName,
  incarnation: Incarnation,
  state: ApplicationState,
  reason: Schema.String,
  restarts: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))),
  checker: Schema.optionalKey(Schema.String)
})

/** The farm's services changed. */
export const ConfigChanged = Schema.TaggedStruct("ConfigChanged", { ...base, vips: Schema.Array(Vip) })

/** Every farm event. */
export const FarmEvent = Schema.Union([
  MemberJoined,
  MemberReady,
  MemberUnhealthy,
  MemberRecovered,
  MemberSuspected,
  MemberFailed,
  MemberLeft,
  DrainStarted,
  DrainFinished,
  WeightChanged,
  HandoffStarted,
  HandoffCompleted,
  ConfigChanged,
  ApplicationChanged
])
/** Every farm event. */
export type FarmEvent = typeof FarmEvent.Type
/** The tag of a farm event. */
export type FarmEventTag = FarmEvent["_tag"]

/** A value that is not a valid farm event; `message` names the offending field. */
export class MalformedEvent extends Schema.TaggedError<MalformedEvent>()("MalformedEvent", {
  message: Schema.String
}) {}

const decode = Schema.decodeUnknownResult(FarmEvent, { onExcessProperty: "error" })

/** Decode an untrusted value into a farm event, or a MalformedEvent naming the field. */
export const decodeEvent = (input: unknown): Result.Result<FarmEvent, MalformedEvent> => {
  const r = decode(input)
  if (Result.isSuccess(r)) return Result.succeed(r.success)
  const tag = typeof input === "object" && input !== null ? (input as { _tag?: unknown })._tag : undefined
  const known = typeof tag === "string" ? tag : "unknown"
  return Result.fail(new MalformedEvent({ message: `malformed ${known} event: ${String(r.failure.message ?? r.failure)}` }))
}

/** Decode a JSON text into a farm event. */
export const decodeEventJson = (text: string): Result.Result<FarmEvent, MalformedEvent> => {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (e) {
    return Result.fail(new MalformedEvent({ message: `event is not JSON: ${(e as Error).message}` }))
  }
  return decodeEvent(value)
}
