import { describe, expect, it } from "vitest"
import fc from "fast-check"
import { arbSteps, cause, checkBalanced, checkTables, NODES, run } from "./arbitraries.ts"
import type { Command } from "./decider.ts"
import { EVENT_VERSION, type FarmEvent } from "./events.ts"
import { failurePlan } from "./plan.ts"
import { applyEntry, applyEvent, foldLog } from "./reducer.ts"
import { recordHash } from "./chain.ts"
import { type FarmState, initialState } from "./state.ts"
import { execute, settle } from "./testkit.ts"

const runCommands = (cs: ReadonlyArray<Command>) => run(cs.map((cmd) => ({ _tag: "Cmd" as const, cmd })))

describe("reducer and deciders", () => {
  it("every command sequence keeps the tables consistent; replay and snapshots give the same state", () => {
    fc.assert(fc.property(arbSteps(40), fc.nat(), (cmds, cut) => {
      const { state, log, states } = run(cmds)
      for (const s of states) checkTables(s)
      expect(state.rejected).toBe(0) // decided events always fold
      const replay = foldLog(initialState("web"), log)
      expect(replay).toEqual(state)
      const k = log.length === 0 ? 0 : cut % log.length
      const snapshot = JSON.parse(JSON.stringify(foldLog(initialState("web"), log.slice(0, k))))
      expect(foldLog(snapshot, log.slice(k))).toEqual(state)
    }), { numRuns: 50 })
  })

  it("moves only ever go to up members; draining, unhealthy and failed members receive nothing new", () => {
    fc.assert(fc.property(arbSteps(40), (cmds) => {
      const { log, states } = run(cmds)
      let s = initialState("web")
      for (const e of log) {
        if (e._tag === "HandoffStarted") {
          for (const mv of e.moves) expect(s.members.find((m) => m.name === mv.to)?.status).toBe("up")
        }
        s = applyEvent(s, e)
      }
      expect(s).toEqual(states[states.length - 1])
    }), { numRuns: 150 })
  })

  it("once hand-offs settle, shares follow weights within one bucket", () => {
    fc.assert(fc.property(arbSteps(40), (cmds) => {
      const s = settle(run(cmds).state)
      checkBalanced(s)
      expect(s.tables.every((t) => t.every((b) => b.state !== "moving"))).toBe(true)
    }), { numRuns: 150 })
  })

  it("a failure moves only the failed member's buckets, and the result stays balanced", () => {
    fc.assert(fc.property(arbSteps(30), fc.constantFrom(...NODES), (cmds, victim) => {
      const before = settle(run(cmds).state)
      const m = before.members.find((x) => x.name === victim)
      fc.pre(m !== undefined && m.status !== "down")
      const r = execute(before, { _tag: "DeclareFailed", node: victim, by: "s1", cause })
      expect(r.refused).toBeNull()
      const after = r.state
      before.tables.forEach((t, ti) => t.forEach((b, bi) => {
        if (b.owner !== victim) expect(after.tables[ti][bi]).toEqual(b)
        else expect(after.tables[ti][bi].owner).not.toBe(victim)
      }))
      // the failure plan computed beforehand is exactly what the failure event folds to
      expect(after.tables).toEqual(failurePlan(before, victim))
      checkBalanced(after)
    }), { numRuns: 150 })
  })

  it("a join moves buckets only to the new member", () => {
    fc.assert(fc.property(arbSteps(30), fc.constantFrom(...NODES), fc.constantFrom(1, 100, 200), (cmds, joiner, weight) => {
      const before = settle(run(cmds).state)
      fc.pre(before.members.find((x) => x.name === joiner) === undefined)
      const j = execute(before, { _tag: "Join", node: joiner, address: "198.18.0.9", weight, priority: 9, rulesDigest: "d", cause })
      const r = execute(j.state, { _tag: "Ready", node: joiner, cause })
      for (const e of r.events) if (e._tag === "HandoffStarted") for (const mv of e.moves) if (mv.table === 0 && mv.from !== null) expect(mv.to).toBe(joiner)
      checkBalanced(r.state)
    }), { numRuns: 150 })
  })

  it("single-host rules put everything on the live member of best priority", () => {
    let { state } = runCommands([
      { _tag: "Configure", vips: [{ address: "198.18.0.100", rules: [{ proto: "udp", ports: [53], affinity: "client-ip", mode: "single-host" }] }], cause },
      ...["s2", "s1", "s3"].flatMap((node): Array<Command> => [
        { _tag: "Join", node, address: "198.18.0.1", weight: 100, priority: Number(node.slice(1)), rulesDigest: "d", cause },
        { _tag: "Ready", node, cause }
      ])
    ])
    state = settle(state)
    expect(new Set(state.tables[1].map((b) => b.owner))).toEqual(new Set(["s1"]))
    state = execute(state, { _tag: "DeclareFailed", node: "s1", by: "s2", cause }).state
    expect(new Set(state.tables[1].map((b) => b.owner))).toEqual(new Set(["s2"]))
    expect(state.tables[1][0].state).toBe("taken-over")
  })

  it("drain moves a member's buckets gracefully, then finishes", () => {
    let { state } = runCommands(["s1", "s2", "s3"].flatMap((node): Array<Command> => [
      { _tag: "Join", node, address: "198.18.0.1", weight: 100, priority: 1, rulesDigest: "d", cause },
      { _tag: "Ready", node, cause }
    ]))
    state = settle(state)
    const r = execute(state, { _tag: "Drain", node: "s2", cause })
    expect(r.events.map((e) => e._tag)).toEqual(["DrainStarted", "HandoffStarted"])
    const moving = r.state.tables[0].filter((b) => b.state === "moving")
    expect(moving.length).toBe(state.tables[0].filter((b) => b.owner === "s2").length)
    expect(moving.every((b) => b.owner === "s2")).toBe(true)
    const done = settle(r.state)
    expect(done.members.find((m) => m.name === "s2")).toMatchObject({ status: "draining", drained: true })
    expect(done.tables[0].some((b) => b.owner === "s2")).toBe(false)
  })

  it("rejects and counts malformed entries without folding them", () => {
    const s0 = initialState("web")
    const bad: Array<unknown> = [
      null, 42, "x", {}, { _tag: "MemberJoined" },
      { _tag: "MemberJoined", v: EVENT_VERSION, cause, node: "bad name!", address: "198.18.0.1", weight: 1, priority: 1, rulesDigest: "d", incarnation: 1 },
      { _tag: "MemberJoined", v: 2, cause, node: "s1", address: "198.18.0.1", weight: 1, priority: 1, rulesDigest: "d", incarnation: 1 },
      { _tag: "HandoffStarted", v: EVENT_VERSION, cause, handoff: "h", mode: "graceful", moves: [{ table: 0, bucket: 5000, from: null, to: "s1" }] },
      { _tag: "MemberReady", v: EVENT_VERSION, cause, node: "s1", extra: true }
    ]
    const s = foldLog(s0, bad)
    expect(s.rejected).toBe(bad.length)
    expect(s.seq).toBe(bad.length)
    expect(s.members).toEqual([])
    expect(s.lastRejection?.reason).toMatch(/MemberReady/)
  })
})

describe("ApplicationChanged", () => {
  const join = (node: string) => execute(execute(initialState("web"), { _tag: "Join", node, address: "198.18.0.1", weight: 100, priority: 1, rulesDigest: "d", cause }).state, { _tag: "Ready", node, cause }).state

  it("records the application's state on the member, changes no bucket", () => {
    const s = settle(join("s1"))
    const r = execute(s, { _tag: "ReportApplication", node: "s1", state: "healing", reason: "checker http failed", restarts: 2, checker: "http", cause })
    expect(r.refused).toBeNull()
    expect(r.events).toEqual([{ _tag: "ApplicationChanged", v: EVENT_VERSION, cause, node: "s1", incarnation: 1, state: "healing", reason: "checker http failed", restarts: 2, checker: "http" }])
    expect(r.state.members[0].application).toEqual({ state: "healing", reason: "checker http failed", restarts: 2, checker: "http" })
    expect(r.state.tables).toBe(s.tables)
    const again = execute(r.state, { _tag: "ReportApplication", node: "s1", state: "running", reason: "restarted", cause })
    expect(again.state.members[0].application).toEqual({ state: "running", reason: "restarted" })
  })

  it("is refused for a non-member and rejected for a stale or unknown incarnation", () => {
    const s = join("s1")
    expect(execute(s, { _tag: "ReportApplication", node: "s9", state: "running", reason: "r", cause }).refused).toMatch(/s9 is not a member/)
    const ev = (node: string, incarnation: number): FarmEvent => ({ _tag: "ApplicationChanged", v: EVENT_VERSION, cause, node, incarnation, state: "failed", reason: "gave up" })
    expect(applyEvent(s, ev("s9", 1)).lastRejection?.reason).toMatch(/ApplicationChanged: node s9 is not a member/)
    const rejoined = execute(execute(s, { _tag: "DeclareFailed", node: "s1", by: "s2", cause }).state,
      { _tag: "Join", node: "s1", address: "198.18.0.1", weight: 100, priority: 1, rulesDigest: "d", cause }).state
    expect(rejoined.members[0].incarnation).toBe(2)
    const stale = applyEvent(rejoined, ev("s1", 1))
    expect(stale.rejected).toBe(rejoined.rejected + 1)
    expect(stale.lastRejection?.reason).toMatch(/incarnation 1 is not the current one \(2\)/)
    expect(stale.members).toEqual(rejoined.members)
    expect(applyEvent(rejoined, ev("s1", 3)).rejected).toBe(rejoined.rejected + 1)
  })

  it("rejects an unknown application state or a negative restart count", () => {
    const s = join("s1")
    const base = { _tag: "ApplicationChanged", v: EVENT_VERSION, cause, node: "s1", incarnation: 1, reason: "r" }
    expect(applyEntry(s, { ...base, state: "dancing" }).lastRejection?.reason).toMatch(/state/)
    expect(applyEntry(s, { ...base, state: "running", restarts: -1 }).lastRejection?.reason).toMatch(/restarts/)
    expect(applyEntry(s, { ...base, state: "running", restarts: 1 }).members[0].application).toEqual({ state: "running", reason: "r", restarts: 1 })
  })
})

describe("malformed entries are rejected naming the field", () => {
  const s0 = initialState("web")
  const joined = { _tag: "MemberJoined", v: EVENT_VERSION, cause, node: "s1", address: "198.18.0.1", weight: 1, priority: 1, rulesDigest: "d", incarnation: 1 }
  const move = { table: 0, bucket: 1, from: null, to: "s1" }
  const cases: Array<[string, unknown, RegExp]> = [
    ["an unknown _tag", { _tag: "MemberTeleported", v: EVENT_VERSION, cause, node: "s1" }, /_tag: "MemberTeleported" is not a farm event/],
    ["a missing _tag", { v: EVENT_VERSION, cause, node: "s1" }, /_tag: missing/],
    ["a version the event does not have", { ...joined, v: 2 }, /v: 2 is not a version of MemberJoined \(1\)/],
    ["an address that is not an IP", { ...joined, address: "not-an-ip" }, /MemberJoined.*address/s],
    ["an IPv4 address out of range", { ...joined, address: "198.18.0.256" }, /MemberJoined.*address/s],
    ["an empty hand-off id", { _tag: "HandoffStarted", v: EVENT_VERSION, cause, handoff: "", mode: "graceful", moves: [move] }, /HandoffStarted.*handoff/s],
    ["a hand-off without moves", { _tag: "HandoffStarted", v: EVENT_VERSION, cause, handoff: "h", mode: "graceful", moves: [] }, /HandoffStarted.*moves/s],
    ["an empty completed hand-off id", { _tag: "HandoffCompleted", v: EVENT_VERSION, cause, handoff: "" }, /HandoffCompleted.*handoff/s],
    ["a record of an unknown version", { v: 99, events: [joined] }, /record.*\bv\b/s],
    ["a record with an unknown field", { v: 1, events: [joined], junk: true }, /record.*junk/s],
    ["a record whose events is not an array", { v: 1, events: "MemberJoined" }, /record.*events/s],
    ["a record with no event", { v: 1, events: [] }, /record: events is empty/],
    ["a record whose prev is not a hash", { v: 1, events: [joined], prev: "ab" }, /chain: prev ab… does not continue/],
    ["an event of a record", { v: 1, events: [joined, { _tag: "Nope", v: 1 }] }, /events\[1\]: .*_tag: "Nope"/]
  ]
  for (const [what, entry, reason] of cases) {
    it(`rejects ${what}`, () => {
      const s = applyEntry(s0, entry)
      expect(s.rejected).toBe(1)
      expect(s.seq).toBe(1)
      expect(s.members).toEqual([])
      expect(s.lastRejection?.reason).toMatch(reason)
    })
  }

  it("deciders refuse a command whose event would not decode, naming the field", () => {
    const bad = execute(s0, { _tag: "Join", node: "s1", address: "s1", weight: 100, priority: 1, rulesDigest: "d", cause })
    expect(bad.refused).toMatch(/MemberJoined.*address/s)
    expect(bad.events).toEqual([])
    const heavy = execute(s0, { _tag: "Join", node: "s1", address: "198.18.0.1", weight: 10001, priority: 1, rulesDigest: "d", cause })
    expect(heavy.refused).toMatch(/MemberJoined.*weight/s)
    const s1 = execute(s0, { _tag: "Join", node: "s1", address: "198.18.0.1", weight: 100, priority: 1, rulesDigest: "d", cause }).state
    const noId = execute(s1, { _tag: "ReportRecovered", node: "s1", cause, restore: [{ table: 0, bucket: 0, owner: "s1", to: "s2", handoff: "" }] })
    expect(noId.refused).toMatch(/MemberRecovered.*handoff/s)
  })

  it("still folds what the runtime writes: a chained record and a legacy single event", () => {
    const chained = applyEntry(s0, { v: 1, events: [joined], prev: "" })
    expect(chained.rejected).toBe(0)
    const next = applyEntry(chained, { v: 1, events: [{ _tag: "MemberReady", v: EVENT_VERSION, cause, node: "s1" }], prev: recordHash({ v: 1, events: [joined], prev: "" }) })
    expect(next.members.map((m) => m.status)).toEqual(["up"])
    expect(applyEntry(s0, joined).members.map((m) => m.address)).toEqual(["198.18.0.1"])
    expect(applyEntry(s0, { ...joined, address: "2001:db8::7" }).rejected).toBe(0)
  })
})

describe("log records", () => {
  it("folds a batch of events all or nothing, as one log entry", () => {
    const join = (node: string) => ({ _tag: "MemberJoined", v: EVENT_VERSION, cause, node, address: "198.18.0.1", weight: 1, priority: 1, rulesDigest: "d", incarnation: 1 })
    const s1 = applyEntry(initialState("web"), { v: 1, events: [join("s1"), { _tag: "MemberReady", v: EVENT_VERSION, cause, node: "s1" }] })
    expect(s1.seq).toBe(1)
    expect(s1.members.map((m) => m.status)).toEqual(["up"])
    const s2 = applyEntry(s1, { v: 1, events: [join("s2"), { _tag: "MemberReady", v: EVENT_VERSION, cause, node: "nobody" }] })
    expect(s2.seq).toBe(2)
    expect(s2.rejected).toBe(1)
    expect(s2.members.length).toBe(1)
    expect(s2.lastRejection?.reason).toMatch(/events\[1\]/)
    expect(applyEntry(s2, { v: 1, events: [] }).rejected).toBe(2)
  })
})

describe("HandoffCompleted version 2 (issue 16): the listed buckets complete, the others keep moving", () => {
  it("completes only the listed buckets, and the decider refuses a bucket not moving in the hand-off", async () => {
    const { execute, operatorCause, settle } = await import("./testkit.ts")
    const { initialState } = await import("./state.ts")
    let s = initialState("web")
    for (const n of ["s1", "s2"]) {
      s = execute(s, { _tag: "Join", node: n, address: "198.18.0.1", weight: 100, priority: 1, rulesDigest: "d", cause: operatorCause() }).state
      s = settle(execute(s, { _tag: "Ready", node: n, cause: operatorCause() }).state)
    }
    s = execute(s, { _tag: "Join", node: "s3", address: "198.18.0.3", weight: 100, priority: 1, rulesDigest: "d", cause: operatorCause() }).state
    s = execute(s, { _tag: "Ready", node: "s3", cause: operatorCause() }).state
    const moving = s.tables[0].flatMap((b, i) => (b.state === "moving" ? [{ i, handoff: b.handoff }] : []))
    expect(moving.length).toBeGreaterThan(100)
    const h = moving[0].handoff
    const part = moving.slice(1).map((m) => ({ table: 0, bucket: m.i }))
    const r = execute(s, { _tag: "CompleteHandoff", handoff: h, buckets: part, cause: operatorCause() })
    expect(r.refused).toBeNull()
    expect(r.events[0]).toMatchObject({ _tag: "HandoffCompleted", v: 2, handoff: h })
    expect(r.state.tables[0][moving[0].i]).toMatchObject({ state: "moving", to: "s3" })
    for (const m of moving.slice(1)) expect(r.state.tables[0][m.i]).toMatchObject({ state: "owned", owner: "s3" })
    const again = execute(r.state, { _tag: "CompleteHandoff", handoff: h, buckets: [{ table: 0, bucket: moving[1].i }], cause: operatorCause() })
    expect(again.refused).toMatch(/buckets: 0\/\d+ is not moving in hand-off/)
    const rest = execute(r.state, { _tag: "CompleteHandoff", handoff: h, cause: operatorCause() })
    expect(rest.state.tables[0][moving[0].i]).toMatchObject({ state: "owned", owner: "s3" })
  })
})
