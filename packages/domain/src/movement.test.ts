import { describe, expect, it } from "vitest"
import fc from "fast-check"
import { arbSteps, cause, checkBalanced, joinOf, NODES, run } from "./arbitraries.ts"
import { quotas } from "./assignment.ts"
import type { Command } from "./decider.ts"
import { type FarmState, findMember, isEligible, type Member } from "./state.ts"
import { execute, settle } from "./testkit.ts"

/** A settled farm after any history (no bucket moving). */
const settled = (steps: Parameters<typeof run>[0]): FarmState => settle(run(steps).state)

/** Run commands (each must be accepted) and settle. */
const apply = (s: FarmState, ...cmds: Array<Command>): FarmState => {
  let t = s
  for (const c of cmds) {
    const r = execute(t, c)
    expect(r.refused).toBeNull()
    t = r.state
  }
  return settle(t)
}

interface Movement {
  /** Buckets of table 0 that had an owner and changed owner. */
  readonly moved: Array<{ readonly bucket: number; readonly from: string; readonly to: string | null }>
  readonly losers: Set<string>
  readonly gainers: Set<string>
}

const movement = (before: FarmState, after: FarmState): Movement => {
  const moved: Array<{ bucket: number; from: string; to: string | null }> = []
  const losers = new Set<string>()
  const gainers = new Set<string>()
  before.tables[0].forEach((b, bucket) => {
    const to = after.tables[0][bucket].owner
    if (b.owner === to) return
    if (to !== null) gainers.add(to)
    if (b.owner === null) return
    losers.add(b.owner)
    moved.push({ bucket, from: b.owner, to })
  })
  return { moved, losers, gainers }
}

/**
 * What any membership change must respect: nobody both gives and receives buckets, and no
 * more buckets move than the change forces: the larger of what members hold above their
 * new ceiling (everything, for a member that may not own any more) and what they miss below
 * their new floor.
 */
const checkMinimal = (before: FarmState, after: FarmState): Movement => {
  expect(after.tables.every((t) => t.every((b) => b.state !== "moving"))).toBe(true)
  checkBalanced(after)
  const m = movement(before, after)
  for (const l of m.losers) expect(m.gainers.has(l), `${l} both gives and receives`).toBe(false)
  const live = after.members.filter((x) => isEligible(x) && x.weight > 0)
  const q = quotas(live)
  const held = (name: string) => before.tables[0].filter((b) => b.owner === name).length
  let excess = 0
  let deficit = 0
  for (const x of before.members) {
    const quota = q.get(x.name)
    const now = findMember(after, x.name)
    // gone, failed or unhealthy: loses everything; draining or weight 0: keeps it while nobody can take it
    const losesAll = now === undefined || now.status === "down" || now.status === "unhealthy" || live.length > 0
    if (quota !== undefined) excess += Math.max(0, held(x.name) - quota.hi)
    else if (losesAll) excess += held(x.name)
  }
  for (const x of live) deficit += Math.max(0, q.get(x.name)!.lo - held(x.name))
  expect(m.moved.length).toBeLessThanOrEqual(Math.max(excess, deficit))
  return m
}

/** A member of the state in the given statuses, picked by `k`, or undefined. */
const pick = (s: FarmState, k: number, ok: (m: Member) => boolean): Member | undefined => {
  const c = s.members.filter(ok)
  return c.length === 0 ? undefined : c[k % c.length]
}

const ceiling = (s: FarmState, name: string): number =>
  quotas(s.members.filter((x) => isEligible(x) && x.weight > 0)).get(name)?.hi ?? 0

const RUNS = { numRuns: 80 }

describe("minimal movement for any membership change", () => {
  it("a join moves buckets only to the newcomer, at most its ceiling", () => {
    fc.assert(fc.property(arbSteps(30), fc.constantFrom(...NODES), fc.constantFrom(1, 100, 300), (steps, joiner, weight) => {
      const before = settled(steps)
      const prev = findMember(before, joiner)
      if (prev !== undefined && prev.status !== "down") return
      const after = apply(before, joinOf(joiner, weight), { _tag: "Ready", node: joiner, cause })
      const m = checkMinimal(before, after)
      for (const mv of m.moved) expect(mv.to).toBe(joiner)
      expect(m.moved.length).toBeLessThanOrEqual(ceiling(after, joiner))
    }), RUNS)
  })

  it("a leave moves only the leaver's buckets", () => {
    fc.assert(fc.property(arbSteps(30), fc.nat(), (steps, k) => {
      const before = settled(steps)
      const x = pick(before, k, (m) => m.status !== "down")
      if (x === undefined) return
      const after = apply(before, { _tag: "Leave", node: x.name, cause })
      const m = checkMinimal(before, after)
      for (const mv of m.moved) expect(mv.from).toBe(x.name)
      expect(after.tables[0].some((b) => b.owner === x.name)).toBe(false)
    }), RUNS)
  })

  it("a graceful leave (drain, then leave) moves only the leaver's buckets, and the leave itself moves none", () => {
    fc.assert(fc.property(arbSteps(30), fc.nat(), (steps, k) => {
      const before = settled(steps)
      const x = pick(before, k, (m) => m.status === "up")
      if (x === undefined) return
      const drained = apply(before, { _tag: "Drain", node: x.name, cause })
      const m = checkMinimal(before, drained)
      for (const mv of m.moved) expect(mv.from).toBe(x.name)
      const others = drained.members.some((o) => o.name !== x.name && isEligible(o) && o.weight > 0)
      if (others) expect(drained.members.find((o) => o.name === x.name)).toMatchObject({ status: "draining", drained: true })
      const left = apply(drained, { _tag: "Leave", node: x.name, cause })
      if (others) expect(left.tables).toEqual(drained.tables)
      for (const mv of movement(before, left).moved) expect(mv.from).toBe(x.name)
    }), RUNS)
  })

  it("a drain moves only the drained member's buckets", () => {
    fc.assert(fc.property(arbSteps(30), fc.nat(), (steps, k) => {
      const before = settled(steps)
      const x = pick(before, k, (m) => m.status === "up" || m.status === "joining")
      if (x === undefined) return
      const m = checkMinimal(before, apply(before, { _tag: "Drain", node: x.name, cause }))
      for (const mv of m.moved) expect(mv.from).toBe(x.name)
    }), RUNS)
  })

  it("a resume moves buckets only to the resumed member, at most its ceiling", () => {
    fc.assert(fc.property(arbSteps(30), fc.nat(), (steps, k) => {
      let before = settled(steps)
      const x = pick(before, k, (m) => m.status === "up")
      if (x === undefined) return
      before = apply(before, { _tag: "Drain", node: x.name, cause })
      const after = apply(before, { _tag: "Resume", node: x.name, cause })
      const m = checkMinimal(before, after)
      for (const mv of m.moved) expect(mv.to).toBe(x.name)
      expect(m.moved.length).toBeLessThanOrEqual(ceiling(after, x.name))
    }), RUNS)
  })

  it("a weight change moves no more than it forces; a raised weight only brings buckets to its member", () => {
    fc.assert(fc.property(arbSteps(30), fc.nat(), fc.constantFrom(0, 1, 10, 100, 250, 1000), (steps, k, weight) => {
      const before = settled(steps)
      const x = pick(before, k, (m) => m.status !== "down")
      if (x === undefined) return
      const after = apply(before, { _tag: "SetWeight", node: x.name, weight, cause })
      const m = checkMinimal(before, after)
      if (weight < x.weight || !isEligible(x)) for (const mv of m.moved) expect(mv.to === x.name).toBe(false)
      if (weight > x.weight && isEligible(x)) expect(m.losers.has(x.name)).toBe(false)
    }), RUNS)
  })
})

describe("single-host tables", () => {
  it("once settled, each is entirely on the up member with the lowest priority number (ties by name)", () => {
    fc.assert(fc.property(arbSteps(40), (steps) => {
      const s = settled(steps)
      const best = s.members.filter(isEligible).sort((a, b) => a.priority - b.priority || (a.name < b.name ? -1 : 1))[0]
      for (const t of s.tables.slice(1)) {
        for (const b of t) expect(b.owner).toBe(best?.name ?? b.owner)
        if (best !== undefined) expect(t.every((b) => b.owner === best.name)).toBe(true)
      }
    }), RUNS)
  })
})
