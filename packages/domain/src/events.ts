/**
 * The farm's events: every change of membership, health and bucket ownership is one of
 * these, appended to the farm's log and folded by the reducer. Each carries its schema
 * version and its cause, so that an auditor can see why something happened.
 */
import { Result, Schema } from "effect"
import { Address, Vip } from "./rules.ts"
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
/** A hand-off id: any non-empty text (the deciders write `kind@seq`). */
const HandoffId = Schema.String.check(Schema.isNonEmpty())

const base = { v: Schema.Literal(EVENT_VERSION), cause: Cause }

/** A server joined the farm (it owns nothing until it is ready). */
export const MemberJoined = Schema.TaggedStruct("MemberJoined", {
  ...base,
  node: NodeName,
  address: Address,
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
  handoff: Schema.optionalKey(HandoffId)
})
/** One bucket as it was before a stale MemberUnhealthy took it. */
export type RestoredBucket = typeof RestoredBucket.Type

/** MemberRecovered version that restores the buckets of a stale unhealthy report. */
export const MEMBER_RECOVERED_RESTORE_VERSION = 2

/** The server's checkers pass again (version 1: nothing else changes). */
export const MemberRecoveredV1 = Schema.TaggedStruct("MemberRecovered", { ...base, node: NodeName })
/**
 * The server's checkers pass again, and `restore` lists its buckets as they were before a
 * stale unhealthy report: the report was decided during a log stall and folded after the
 * application recovered, and the server never acknowledged it, so nobody took its buckets:
 * each listed bucket that is still as the unhealthy plan left it gets its state from before
 * the report back (controller PROTOCOL.md §8).
 */
export const MemberRecoveredV2 = Schema.TaggedStruct("MemberRecovered", {
  v: Schema.Literal(MEMBER_RECOVERED_RESTORE_VERSION),
  cause: Cause,
  node: NodeName,
  restore: Schema.Array(RestoredBucket)
})
/** The server's checkers pass again: version 1, or version 2 with `restore`. */
export const MemberRecovered = Schema.Union([MemberRecoveredV1, MemberRecoveredV2])
/** A peer missed heartbeats from the server (informational; ownership unchanged). */
export const MemberSuspected = Schema.TaggedStruct("MemberSuspected", { ...base, node: NodeName, by: NodeName })
/** One bucket's taker in a failure plan carried by MemberFailed (version 2). */
export const PlannedTaker = Schema.Struct({ table: Table, bucket: Bucket, to: NodeName })
/** One bucket's taker in a failure plan carried by MemberFailed (version 2). */
export type PlannedTaker = typeof PlannedTaker.Type

/** MemberFailed version that carries the plan the survivors applied ahead of the log. */
export const MEMBER_FAILED_PLAN_VERSION = 2

const failed = { cause: Cause, node: NodeName, detectedBy: NodeName, incarnation: Incarnation }
/** The server's lease expired: its computed failure plan applies (version 1). */
export const MemberFailedV1 = Schema.TaggedStruct("MemberFailed", { v: Schema.Literal(EVENT_VERSION), ...failed })
/**
 * The server's lease expired, and `plan` lists the takers the survivors pinned when they
 * applied the failure ahead of the log (controller PROTOCOL.md §4): the reducer gives each
 * listed bucket to its taker when it is still valid (the bucket still held by the node, the
 * taker up), the rest by the computed failure plan.
 */
export const MemberFailedV2 = Schema.TaggedStruct("MemberFailed", {
  v: Schema.Literal(MEMBER_FAILED_PLAN_VERSION),
  ...failed,
  plan: Schema.Array(PlannedTaker)
})
/** The server's lease expired: version 1, or version 2 with the pinned `plan`. */
export const MemberFailed = Schema.Union([MemberFailedV1, MemberFailedV2])
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
  handoff: HandoffId,
  mode: Schema.Literals(["graceful", "takeover"]),
  moves: Schema.Array(Move).check(Schema.isMinLength(1))
})
/** A graceful hand-off is over: every bucket still moving in it now belongs to its new owner (version 1). */
export const HandoffCompletedV1 = Schema.TaggedStruct("HandoffCompleted", { ...base, handoff: HandoffId })
/** One bucket of one table. */
export const BucketRef = Schema.Struct({ table: Table, bucket: Bucket })
/** The version of HandoffCompleted that completes only some of the hand-off's buckets. */
export const HANDOFF_PARTIAL_VERSION = 2
/**
 * Part of a graceful hand-off is over (version 2): the listed buckets still moving in it belong
 * to their new owner; the others keep moving, their old owners still hold connections there
 * (issue 16: a hand-off has no time cap, and one long-lived connection held every bucket).
 */
export const HandoffCompletedV2 = Schema.TaggedStruct("HandoffCompleted", {
  v: Schema.Literal(HANDOFF_PARTIAL_VERSION),
  cause: Cause,
  handoff: HandoffId,
  buckets: Schema.Array(BucketRef).check(Schema.isMinLength(1))
})
/** A graceful hand-off completes: whole (version 1) or the listed buckets (version 2). */
export const HandoffCompleted = Schema.Union([HandoffCompletedV1, HandoffCompletedV2])
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

/**
 * The schema of each event tag at each version it is written in. A version fixes the shape:
 * an event decodes only with exactly the fields of its declared version.
 */
export const EventVersions = {
  MemberJoined: { 1: MemberJoined },
  MemberReady: { 1: MemberReady },
  MemberUnhealthy: { 1: MemberUnhealthy },
  MemberRecovered: { 1: MemberRecoveredV1, 2: MemberRecoveredV2 },
  MemberSuspected: { 1: MemberSuspected },
  MemberFailed: { 1: MemberFailedV1, 2: MemberFailedV2 },
  MemberLeft: { 1: MemberLeft },
  DrainStarted: { 1: DrainStarted },
  DrainFinished: { 1: DrainFinished },
  WeightChanged: { 1: WeightChanged },
  HandoffStarted: { 1: HandoffStarted },
  HandoffCompleted: { 1: HandoffCompletedV1, 2: HandoffCompletedV2 },
  ConfigChanged: { 1: ConfigChanged },
  ApplicationChanged: { 1: ApplicationChanged }
} as const

/** Every farm event. */
export const FarmEvent = Schema.Union([
  MemberJoined,
  MemberReady,
  MemberUnhealthy,
  MemberRecoveredV1,
  MemberRecoveredV2,
  MemberSuspected,
  MemberFailedV1,
  MemberFailedV2,
  MemberLeft,
  DrainStarted,
  DrainFinished,
  WeightChanged,
  HandoffStarted,
  HandoffCompletedV1,
  HandoffCompletedV2,
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

type AnyEventSchema = Schema.Codec<FarmEvent, unknown>
const decoders = new Map<string, Map<unknown, (input: unknown) => Result.Result<FarmEvent, Schema.SchemaError>>>(
  Object.entries(EventVersions).map(([tag, versions]) => [
    tag,
    new Map(Object.entries(versions).map(([v, schema]) => [Number(v), Schema.decodeUnknownResult(schema as unknown as AnyEventSchema, { onExcessProperty: "error" })]))
  ])
)

const malformed = (message: string) => Result.fail(new MalformedEvent({ message }))

/**
 * Decode an untrusted value into a farm event, or a MalformedEvent naming the field: the
 * `_tag` must be a known event, `v` one of its versions, and the fields exactly those of
 * that version.
 */
export const decodeEvent = (input: unknown): Result.Result<FarmEvent, MalformedEvent> => {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    return malformed(`event is not an object: ${input === null ? "null" : Array.isArray(input) ? "an array" : `a ${typeof input}`}`)
  }
  const { _tag: tag, v } = input as { _tag?: unknown; v?: unknown }
  if (typeof tag !== "string") return malformed(`malformed unknown event: _tag: ${tag === undefined ? "missing" : "not a string"}`)
  const versions = decoders.get(tag)
  if (versions === undefined) return malformed(`malformed unknown event: _tag: "${tag.slice(0, 64)}" is not a farm event`)
  const decode = versions.get(v)
  if (decode === undefined) {
    return malformed(`malformed ${tag} event: v: ${v === undefined ? "missing" : JSON.stringify(v) ?? String(v)} is not a version of ${tag} (${[...versions.keys()].join(", ")})`)
  }
  const r = decode(input)
  if (Result.isSuccess(r)) return Result.succeed(r.success)
  return malformed(`malformed ${tag} event: ${String(r.failure.message ?? r.failure)}`)
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
