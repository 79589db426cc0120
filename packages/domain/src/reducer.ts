/**
 * The one deterministic reducer: `(state, event) => state`, or a typed rejection.
 * No clock, no randomness, no iteration over unordered collections. Every server folds
 * the same log with it and so holds the same bucket table.
 */
import { Result, Schema } from "effect"
import { decodeEvent, type FarmEvent, MEMBER_FAILED_PLAN_VERSION, MEMBER_RECOVERED_RESTORE_VERSION } from "./events.ts"
import { failurePlan, pinnedFailurePlan, restoredTables } from "./plan.ts"
import { tableCount } from "./rules.ts"
import { recordHash, recordPrev } from "./chain.ts"
import { authorshipProblem, shapeProblem, verdictOf } from "./verify.ts"
import {
  type BucketState, type BucketTable, emptyTable, type FarmState, findMember, handoffInProgress, heldBy, isEligible, type Member, type MemberApplication
} from "./state.ts"

/** An event that cannot apply to the state it meets; `reason` says why. */
export class EventRejected extends Schema.TaggedError<EventRejected>()("EventRejected", {
  event: Schema.String,
  reason: Schema.String
}) {}

const reject = (event: FarmEvent, reason: string): Result.Result<FarmState, EventRejected> =>
  Result.fail(new EventRejected({ event: event._tag, reason }))

const ok = (state: FarmState): Result.Result<FarmState, EventRejected> => Result.succeed(state)

const withMember = (state: FarmState, name: string, f: (m: Member) => Member): FarmState => ({
  ...state,
  members: state.members.map((m) => (m.name === name ? f(m) : m))
})

const insertMember = (members: ReadonlyArray<Member>, m: Member): Array<Member> => {
  const out = members.filter((x) => x.name !== m.name)
  const i = out.findIndex((x) => x.name > m.name)
  if (i < 0) out.push(m)
  else out.splice(i, 0, m)
  return out
}

/** Apply the failure plan of `node` and mark it down (failure) or remove it (leave). */
const removeOwnership = (state: FarmState, node: string): FarmState => ({ ...state, tables: failurePlan(state, node) })

const applyHandoff = (state: FarmState, event: Extract<FarmEvent, { _tag: "HandoffStarted" }>): Result.Result<FarmState, EventRejected> => {
  if (handoffInProgress(state, event.handoff)) {
    return reject(event, `hand-off ${event.handoff} is already in progress`)
  }
  const tables: Array<Array<BucketState> | BucketTable> = state.tables.slice()
  const seen = new Set<number>()
  for (const mv of event.moves) {
    if (mv.table >= tables.length) return reject(event, `moves[table=${mv.table}]: the farm has ${tables.length} tables`)
    const key = mv.table * 65536 + mv.bucket
    if (seen.has(key)) return reject(event, `moves: bucket ${mv.table}/${mv.bucket} listed twice`)
    seen.add(key)
    const to = findMember(state, mv.to)
    if (to === undefined || !isEligible(to)) return reject(event, `moves[bucket=${mv.bucket}].to: ${mv.to} is not an up member`)
    if (tables[mv.table] === state.tables[mv.table]) tables[mv.table] = state.tables[mv.table].slice()
    const t = tables[mv.table] as Array<BucketState>
    const b = t[mv.bucket]
    if (b.state === "moving") return reject(event, `moves[bucket=${mv.bucket}]: already moving to ${b.to}`)
    if (b.owner !== mv.from) return reject(event, `moves[bucket=${mv.bucket}].from: owner is ${b.owner ?? "nobody"}, not ${mv.from ?? "nobody"}`)
    if (mv.from === mv.to) return reject(event, `moves[bucket=${mv.bucket}]: from and to are both ${mv.to}`)
    if (mv.from === null) t[mv.bucket] = { state: "owned", owner: mv.to }
    else if (event.mode === "takeover") t[mv.bucket] = { state: "taken-over", owner: mv.to, from: mv.from }
    else t[mv.bucket] = { state: "moving", owner: mv.from, to: mv.to, handoff: event.handoff }
  }
  return ok({ ...state, tables })
}

/** Complete hand-off `handoff`: every bucket still moving in it, or only the listed ones (HandoffCompleted version 2). */
const completeHandoff = (state: FarmState, handoff: string, only?: ReadonlyArray<{ readonly table: number; readonly bucket: number }>): FarmState => {
  if (!handoffInProgress(state, handoff)) return state
  const listed = only === undefined ? null : new Set(only.map((b) => b.table * 65536 + b.bucket))
  const moving = (b: BucketState): b is Extract<BucketState, { state: "moving" }> => b.state === "moving" && b.handoff === handoff
  return {
    ...state,
    tables: state.tables.map((t, ti) =>
      t.some(moving) ? t.map((b, bi): BucketState => (moving(b) && (listed === null || listed.has(ti * 65536 + bi)) ? { state: "owned", owner: b.to } : b)) : t
    )
  }
}

const resizeTables = (tables: ReadonlyArray<BucketTable>, n: number): Array<BucketTable> =>
  Array.from({ length: n }, (_, i) => tables[i] ?? emptyTable())

/** Fold one decoded event: the next state, or why the event does not apply. */
export const evolve = (state: FarmState, event: FarmEvent): Result.Result<FarmState, EventRejected> => {
  const member = "node" in event ? findMember(state, event.node) : undefined
  const need = (statuses: ReadonlyArray<Member["status"]>): string | null =>
    member === undefined
      ? `node ${(event as { node: string }).node} is not a member`
      : statuses.includes(member.status)
        ? null
        : `node ${member.name} is ${member.status}, expected ${statuses.join(" or ")}`
  switch (event._tag) {
    case "MemberJoined": {
      if (member !== undefined && member.status !== "down") return reject(event, `node ${event.node} is already a member (${member.status})`)
      if (member !== undefined && event.incarnation <= member.incarnation) {
        return reject(event, `incarnation ${event.incarnation} is not newer than ${member.incarnation}`)
      }
      const m: Member = {
        name: event.node,
        address: event.address,
        weight: event.weight,
        priority: event.priority,
        rulesDigest: event.rulesDigest,
        incarnation: event.incarnation,
        status: "joining",
        suspectedBy: null,
        unhealthy: null,
        drained: false
      }
      return ok({ ...state, members: insertMember(state.members, m) })
    }
    case "MemberReady": {
      const why = need(["joining", "draining", "up"])
      if (why) return reject(event, why)
      return ok(withMember(state, event.node, (m) => ({ ...m, status: "up", suspectedBy: null, drained: false })))
    }
    case "MemberUnhealthy": {
      const why = need(["joining", "up", "draining", "unhealthy"])
      if (why) return reject(event, why)
      // its buckets are taken over at once, by the same plan as a failure: a broken application serves nobody
      const planned = removeOwnership(state, event.node)
      return ok(withMember(planned, event.node, (m) => ({ ...m, status: "unhealthy", unhealthy: { checker: event.checker, reason: event.reason } })))
    }
    case "MemberRecovered": {
      const why = need(["unhealthy"])
      if (why) return reject(event, why)
      // version 2: a stale report the server never acknowledged: its buckets come back
      const restored = event.v === MEMBER_RECOVERED_RESTORE_VERSION ? { ...state, tables: restoredTables(state, event.node, event.restore) } : state
      return ok(withMember(restored, event.node, (m) => ({ ...m, status: "up", unhealthy: null, suspectedBy: null })))
    }
    case "MemberSuspected": {
      const why = need(["joining", "up", "draining", "unhealthy"])
      if (why) return reject(event, why)
      return ok(withMember(state, event.node, (m) => ({ ...m, suspectedBy: event.by })))
    }
    case "MemberFailed": {
      const why = need(["joining", "up", "draining", "unhealthy"])
      if (why) return reject(event, why)
      if (member!.incarnation !== event.incarnation) {
        return reject(event, `incarnation ${event.incarnation} is not the current one (${member!.incarnation})`)
      }
      // version 2: the takers the survivors pinned ahead of the log, where still valid
      const planned = event.v === MEMBER_FAILED_PLAN_VERSION ? { ...state, tables: pinnedFailurePlan(state, event.node, event.plan) } : removeOwnership(state, event.node)
      return ok(withMember(planned, event.node, (m) => ({ ...m, status: "down", suspectedBy: null })))
    }
    case "MemberLeft": {
      if (member === undefined) return reject(event, `node ${event.node} is not a member`)
      const planned = removeOwnership(state, event.node)
      return ok({ ...planned, members: planned.members.filter((m) => m.name !== event.node) })
    }
    case "DrainStarted": {
      const why = need(["up", "joining"])
      if (why) return reject(event, why)
      return ok(withMember(state, event.node, (m) => ({ ...m, status: "draining", drained: false })))
    }
    case "DrainFinished": {
      const why = need(["draining"])
      if (why) return reject(event, why)
      if (state.tables.some((t) => t.some((b) => heldBy(b, event.node)))) {
        return reject(event, `node ${event.node} still holds buckets`)
      }
      return ok(withMember(state, event.node, (m) => ({ ...m, drained: true })))
    }
    case "WeightChanged": {
      if (member === undefined) return reject(event, `node ${event.node} is not a member`)
      return ok(withMember(state, event.node, (m) => ({ ...m, weight: event.weight })))
    }
    case "HandoffStarted":
      return applyHandoff(state, event)
    case "HandoffCompleted":
      // a completion must name a hand-off with buckets still moving (the decider writes it only then)
      if (!handoffInProgress(state, event.handoff)) return reject(event, `hand-off ${event.handoff.slice(0, 64)} is not in progress (never started, or over)`)
      return ok(completeHandoff(state, event.handoff, "buckets" in event ? event.buckets : undefined))
    case "ApplicationChanged": {
      if (member === undefined) return reject(event, `node ${event.node} is not a member`)
      if (member.incarnation !== event.incarnation) {
        return reject(event, `incarnation ${event.incarnation} is not the current one (${member.incarnation})`)
      }
      const application: MemberApplication = {
        state: event.state,
        reason: event.reason,
        ...(event.restarts === undefined ? {} : { restarts: event.restarts }),
        ...(event.checker === undefined ? {} : { checker: event.checker })
      }
      return ok(withMember(state, event.node, (m) => ({ ...m, application })))
    }
    case "ConfigChanged": {
      const n = tableCount(event.vips)
      if (n > 16) return reject(event, `vips: ${n} tables needed, at most 16 (15 single-host rules)`)
      return ok({ ...state, vips: event.vips, tables: resizeTables(state.tables, n) })
    }
  }
}

/**
 * A log record carrying several events decided together, folded all or nothing: version 1,
 * at least one event, and the audit chain's `prev` (the hash of the record before, "" for
 * the first; see chain.ts) on records written since the chain exists.
 */
export const EventBatch = Schema.Struct({
  v: Schema.Literal(1),
  events: Schema.Array(Schema.Unknown),
  prev: Schema.optionalKey(Schema.String.check(Schema.isPattern(/^(?:[0-9a-f]{64})?$/))),
  /** The signer and its Ed25519 signature over the record without `sig` (verified by the runtime, see verify.ts). */
  sig: Schema.optionalKey(Schema.Struct({ by: Schema.String, ed25519: Schema.String }))
})
/** A log record carrying several events decided together. */
export type EventBatch = typeof EventBatch.Type

const decodeBatch = Schema.decodeUnknownResult(EventBatch, { onExcessProperty: "error" })

const isObject = (v: unknown): v is object => typeof v === "object" && v !== null && !Array.isArray(v)

/** A record (not an event): an object without `_tag` that has `events`. */
const isRecord = (entry: unknown): entry is object =>
  typeof entry === "object" && entry !== null && !Array.isArray(entry) && !("_tag" in entry) && "events" in entry

/** The message of a rejected event: which event (by tag) and why. */
const rejection = (r: EventRejected): string => `${r.event}: ${r.reason}`

/** The record hash of an entry, or of a stand-in naming why it has none (a value JSON cannot hold). */
const safeHash = (entry: unknown): string => {
  try {
    return recordHash(entry)
  } catch (e) {
    return recordHash({ unhashable: (e as Error).message })
  }
}

/**
 * Whether an entry continues the audit chain (chain.ts): once a record carried `prev`, every
 * later one must, and it must be the hash of the entry before it (whatever that entry was:
 * the chain covers the log, rejected entries included). A log's leading records may be
 * unchained (written before the chain existed, or by the simulator): they are not hashed, and
 * the first chained record after them cannot be checked (as `verifyChain` reports a log that
 * starts after seq 1); a log's first record must have prev "".
 */
const chainProblem = (state: FarmState, entry: unknown): string | null => {
  const prev = recordPrev(entry)
  const hasKey = typeof entry === "object" && entry !== null && !Array.isArray(entry) && "prev" in entry
  if (prev === undefined) {
    if (hasKey) return "chain: prev is not a string"
    return state.chain !== undefined ? "chain: no prev, but the chain started before" : null
  }
  const expected = state.chain?.head ?? (state.seq === 0 ? "" : null)
  if (expected === null || prev === expected) return null
  return `chain: prev ${prev.slice(0, 12)}… does not continue the chain (the hash of seq ${state.seq} is ${expected === "" ? '""' : `${expected.slice(0, 12)}…`})`
}

/**
 * Consume one log entry (an untrusted value): check its shape limits, its place in the
 * chain and its signer's verdict (verify.ts), then decode and fold it, or reject and count
 * it. The position always advances, so every server skips the same entries.
 */
export const applyEntry = (state: FarmState, entry: unknown): FarmState => {
  const seq = state.seq + 1
  const over = shapeProblem(entry)
  // an entry over the limits is never hashed or decoded (the runtime replaces such records by a bounded stand-in before they get here)
  const chained = state.chain !== undefined || (over === null && recordPrev(entry) !== undefined)
  const chain = chained ? { head: safeHash(over === null ? entry : { overLimits: over }) } : undefined
  // a reason may quote the record (schema messages do): bounded, a hostile record must not grow the state
  const refuse = (reason: string): FarmState => ({ ...state, seq, ...(chain ? { chain } : {}), rejected: state.rejected + 1, lastRejection: { seq, reason: reason.length > 1000 ? `${reason.slice(0, 1000)}…` : reason } })
  if (over !== null) return refuse(over)
  // the runtime's stand-in for a record it could not read (too big, too deep, not JSON): its reason
  const unread = (entry as { malformed?: unknown } | null)?.malformed
  if (typeof unread === "string" && isObject(entry) && !("events" in entry) && !("_tag" in entry)) {
    return refuse(/^(limits|malformed):/.test(unread) ? unread : `malformed: ${unread.slice(0, 200)}`)
  }
  const broken = chainProblem(state, entry)
  if (broken !== null) return refuse(broken)
  const verdict = verdictOf(entry)
  if (verdict?._tag === "Refused") return refuse(verdict.reason)
  const signer = verdict?._tag === "Signed" ? verdict.by : null
  const inRecord = isRecord(entry)
  let batch: ReadonlyArray<unknown> = [entry]
  if (inRecord) {
    const record = decodeBatch(entry)
    if (Result.isFailure(record)) return refuse(`malformed record: ${String(record.failure.message ?? record.failure)}`)
    batch = record.success.events
    if (batch.length === 0) return refuse("record: events is empty")
  }
  let s = state
  for (let i = 0; i < batch.length; i++) {
    const where = inRecord ? `events[${i}]: ` : ""
    const decoded = decodeEvent(batch[i])
    if (Result.isFailure(decoded)) return refuse(where + decoded.failure.message)
    if (signer !== null) {
      const why = authorshipProblem(decoded.success, signer)
      if (why !== null) return refuse(where + why)
    }
    const r = evolve(s, decoded.success)
    if (Result.isFailure(r)) return refuse(where + rejection(r.failure))
    s = r.success
  }
  return { ...s, seq, ...(chain ? { chain } : {}) }
}

/** Fold already-decoded events; rejected ones are counted, as by applyEntry. */
export const applyEvent = (state: FarmState, event: FarmEvent): FarmState => {
  const seq = state.seq + 1
  const r = evolve(state, event)
  if (Result.isFailure(r)) {
    return { ...state, seq, rejected: state.rejected + 1, lastRejection: { seq, reason: rejection(r.failure) } }
  }
  return { ...r.success, seq }
}

/** Fold already-decoded events one after the other (each one log position), as {@link applyEvent}. */
export const foldEvents = (state: FarmState, events: Iterable<FarmEvent>): FarmState => {
  let s = state
  for (const e of events) s = applyEvent(s, e)
  return s
}

/** Fold a whole log of untrusted entries from a state. */
export const foldLog = (state: FarmState, entries: Iterable<unknown>): FarmState => {
  let s = state
  for (const e of entries) s = applyEntry(s, e)
  return s
}
