/**
 * fast-check generators for the domain's property tests: command sequences run through the
 * deciders (every command, the version 2 ones with their plan or restore taken from the
 * state at that point), and the checks every reachable state must pass. Test support only:
 * not exported from the package.
 */
import fc from "fast-check"
import { expect } from "vitest"
import { quotas } from "./assignment.ts"
import type { Command } from "./decider.ts"
import type { FarmEvent, PlannedTaker, RestoredBucket } from "./events.ts"
import { type BucketTable, effectiveOwner, type FarmState, findMember, heldBy, initialState, isEligible, openHandoffs } from "./state.ts"
import { BUCKETS } from "./hash.ts"
import { execute, operatorCause } from "./testkit.ts"

/** The cause of every generated command. */
export const cause = operatorCause("test")
/** The names generated members take. */
export const NODES = ["s1", "s2", "s3", "s4", "s5", "s6"]

const APP_STATES = ["running", "restarting", "left", "stopped", "healing", "failed"] as const

/**
 * One generated step: a command, or a version 2 command whose payload depends on the state
 * it meets (resolved by {@link run}): a failure with the survivors' pinned takers, a
 * recovery that withdraws the node's last unhealthy report; or a flap (unhealthy, then
 * recovered, the report withdrawn as stale or not).
 */
export type Step =
  | { readonly _tag: "Cmd"; readonly cmd: Command }
  | { readonly _tag: "PinnedFailure"; readonly node: string; readonly takers: ReadonlyArray<string> }
  | { readonly _tag: "StaleRecovery"; readonly node: string }
  | { readonly _tag: "Flap"; readonly node: string; readonly stale: boolean }

const node = fc.constantFrom(...NODES)
const cmd = (a: fc.Arbitrary<Command>): fc.Arbitrary<Step> => a.map((c): Step => ({ _tag: "Cmd", cmd: c }))

/** A join of one of {@link NODES} with an address, weight and priority of its own. */
export const joinOf = (n: string, weight: number): Command =>
  ({ _tag: "Join", node: n, address: `198.18.0.${n.slice(1)}`, weight, priority: Number(n.slice(1)), rulesDigest: "d", cause })

/** Every command the deciders take, with "*" hand-offs resolved by {@link run}. */
export const arbStep: fc.Arbitrary<Step> = fc.oneof(
  cmd(fc.record({ node, weight: fc.constantFrom(0, 1, 50, 100, 100, 100, 300) }).map(({ node, weight }) => joinOf(node, weight))),
  cmd(node.map((node): Command => ({ _tag: "Ready", node, cause }))),
  cmd(node.map((node): Command => ({ _tag: "DeclareFailed", node, by: "s1", cause }))),
  fc.record({ node, takers: fc.array(node, { minLength: 1, maxLength: 3 }) }).map(({ node, takers }): Step => ({ _tag: "PinnedFailure", node, takers })),
  cmd(node.map((node): Command => ({ _tag: "Drain", node, cause }))),
  cmd(node.map((node): Command => ({ _tag: "Resume", node, cause }))),
  cmd(node.map((node): Command => ({ _tag: "Leave", node, cause }))),
  cmd(fc.tuple(node, node).map(([node, by]): Command => ({ _tag: "Suspect", node, by, cause }))),
  cmd(node.map((node): Command => ({ _tag: "ReportUnhealthy", node, checker: "http", reason: "500", cause }))),
  cmd(node.map((node): Command => ({ _tag: "ReportRecovered", node, cause }))),
  node.map((node): Step => ({ _tag: "StaleRecovery", node })),
  fc.tuple(node, fc.boolean()).map(([node, stale]): Step => ({ _tag: "Flap", node, stale })),
  cmd(fc.record({ node, weight: fc.constantFrom(0, 10, 100, 250) }).map(({ node, weight }): Command => ({ _tag: "SetWeight", node, weight, cause }))),
  cmd(fc.constant<Command>({ _tag: "CompleteHandoff", handoff: "*", cause })),
  cmd(fc.record({ node, state: fc.constantFrom(...APP_STATES), restarts: fc.option(fc.nat(5), { nil: undefined }) })
    .map(({ node, state, restarts }): Command => ({ _tag: "ReportApplication", node, state, reason: "supervisor", ...(restarts === undefined ? {} : { restarts }), cause }))),
  cmd(fc.boolean().map((single): Command => ({
    _tag: "Configure",
    vips: [{ address: "198.18.0.100", rules: [{ proto: "tcp", ports: [80], affinity: "client-ip" }, ...(single ? [{ proto: "udp" as const, ports: ["53"], affinity: "client-ip-port" as const, mode: "single-host" as const }] : [])] }],
    cause
  })))
)

/**
 * A farm's history: some members join and become ready (a formed farm), then any steps
 * (up to `maxLength`, lengths spread up to it).
 */
export const arbSteps = (maxLength = 40): fc.Arbitrary<Array<Step>> =>
  fc.tuple(
    fc.subarray(NODES, { minLength: 0 }),
    fc.constantFrom(50, 100, 100, 300),
    fc.array(arbStep, { maxLength, size: "max" })
  ).map(([members, weight, rest]) => [
    ...members.flatMap((n, i): Array<Step> => [
      { _tag: "Cmd", cmd: joinOf(n, i % 2 === 0 ? 100 : weight) },
      { _tag: "Cmd", cmd: { _tag: "Ready", node: n, cause } }
    ]),
    ...rest
  ])

/** The takers the survivors pinned: every bucket `node` holds, to the listed takers in turn. */
const pinnedPlan = (s: FarmState, node: string, takers: ReadonlyArray<string>): Array<PlannedTaker> => {
  const plan: Array<PlannedTaker> = []
  s.tables.forEach((t, table) => t.forEach((b, bucket) => {
    if (heldBy(b, node)) plan.push({ table, bucket, to: takers[(table + bucket) % takers.length] })
  }))
  return plan
}

/** What a server withdrawing a stale report lists: its buckets as they were before the report. */
const restoreOf = (before: ReadonlyArray<BucketTable>, node: string): Array<RestoredBucket> => {
  const out: Array<RestoredBucket> = []
  before.forEach((t, table) => t.forEach((b, bucket) => {
    if (!heldBy(b, node)) return
    out.push(b.state === "moving" ? { table, bucket, owner: b.owner, to: b.to, handoff: b.handoff } : { table, bucket, owner: node })
  }))
  return out
}

/** Resolve a step against the state it meets; null when it does not apply. */
const resolve = (s: FarmState, step: Step, beforeUnhealthy: ReadonlyMap<string, ReadonlyArray<BucketTable>>): Command | null => {
  switch (step._tag) {
    case "Cmd": {
      if (step.cmd._tag !== "CompleteHandoff" || step.cmd.handoff !== "*") return step.cmd
      const open = openHandoffs(s)
      return open.length === 0 ? null : { ...step.cmd, handoff: open[0] }
    }
    case "PinnedFailure":
      return findMember(s, step.node) === undefined ? null : { _tag: "DeclareFailed", node: step.node, by: "s1", cause, plan: pinnedPlan(s, step.node, step.takers) }
    case "StaleRecovery":
      return { _tag: "ReportRecovered", node: step.node, cause, restore: restoreOf(beforeUnhealthy.get(step.node) ?? [], step.node) }
    case "Flap":
      return null
  }
}

const unflap = (steps: ReadonlyArray<Step>): Array<Step> =>
  steps.flatMap((step): Array<Step> => step._tag !== "Flap" ? [step] : [
    { _tag: "Cmd", cmd: { _tag: "ReportUnhealthy", node: step.node, checker: "http", reason: "500", cause } },
    step.stale ? { _tag: "StaleRecovery", node: step.node } : { _tag: "Cmd", cmd: { _tag: "ReportRecovered", node: step.node, cause } }
  ])

/** Run steps from the initial state: the states after each step and the log of decided events. */
export const run = (steps: ReadonlyArray<Step>, from: FarmState = initialState("web")) => {
  let s = from
  const log: Array<FarmEvent> = []
  const states: Array<FarmState> = [s]
  const beforeUnhealthy = new Map<string, ReadonlyArray<BucketTable>>()
  for (const step of unflap(steps)) {
    const c = resolve(s, step, beforeUnhealthy)
    if (c === null) continue
    const r = execute(s, c)
    if (c._tag === "ReportUnhealthy" && r.refused === null) beforeUnhealthy.set(c.node, s.tables)
    log.push(...r.events)
    s = r.state
    states.push(s)
  }
  return { state: s, log, states }
}

/** One owner per bucket, every owner and receiver a member, failed members hold nothing. */
export const checkTables = (s: FarmState): void => {
  const status = new Map(s.members.map((m) => [m.name, m.status]))
  const problems: Array<string> = []
  s.tables.forEach((t, table) => {
    if (t.length !== BUCKETS) problems.push(`table ${table} has ${t.length} buckets`)
    t.forEach((b, bucket) => {
      if (b.owner !== null && (status.get(b.owner) ?? "down") === "down") problems.push(`${table}/${bucket}: owner ${b.owner} is not a live member`)
      if (b.state === "moving" && (b.to === b.owner || (status.get(b.to) ?? "down") === "down")) problems.push(`${table}/${bucket}: moving to ${b.to} from ${b.owner}`)
    })
  })
  expect(problems.slice(0, 5)).toEqual([])
}

/** Table 0 balanced within one bucket of each up member's weighted share; the others own nothing new. */
export const checkBalanced = (s: FarmState): void => {
  const live = s.members.filter((m) => isEligible(m) && m.weight > 0)
  const q = quotas(live)
  for (const m of live) {
    const n = s.tables[0].filter((b) => effectiveOwner(b) === m.name).length
    expect(n).toBeGreaterThanOrEqual(q.get(m.name)!.lo)
    expect(n).toBeLessThanOrEqual(q.get(m.name)!.hi)
  }
  if (live.length > 0) expect(s.tables[0].every((b) => effectiveOwner(b) !== null)).toBe(true)
  // a draining member, or one set to weight 0, keeps its buckets only while nobody else can take them
  const keeps = (m: FarmState["members"][number]) => live.length === 0 && (m.status === "draining" || (isEligible(m) && m.weight === 0))
  for (const m of s.members.filter((m) => (!isEligible(m) || m.weight === 0) && !keeps(m))) {
    expect(s.tables[0].some((b) => effectiveOwner(b) === m.name)).toBe(false)
  }
}
