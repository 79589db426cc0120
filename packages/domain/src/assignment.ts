/**
 * Bucket assignment: who should own each bucket, from the live members and their weights.
 * Deterministic, balanced to within one bucket of each member's weighted share, and
 * minimal: members keep what they hold up to their share, so a leaving member's buckets
 * are the only ones to move and a joining member only receives its own share.
 */
import { BUCKETS } from "./hash.ts"

/** A member that may own buckets, with its weight. */
export interface Candidate {
  readonly name: string
  readonly weight: number
}

/** Order by name (code units), the tie-break of every choice below. */
const byName = (a: { readonly name: string }, b: { readonly name: string }): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)

/** The weighted share of each candidate: exact quota, and the floor/ceil it must stay within. */
export const quotas = (candidates: ReadonlyArray<Candidate>, buckets = BUCKETS): Map<string, { q: number; lo: number; hi: number }> => {
  const total = candidates.reduce((s, c) => s + c.weight, 0)
  const out = new Map<string, { q: number; lo: number; hi: number }>()
  for (const c of candidates) {
    const q = total === 0 ? 0 : (buckets * c.weight) / total
    const lo = Math.floor(q + 1e-9)
    const hi = Math.abs(q - Math.round(q)) < 1e-9 ? Math.round(q) : Math.ceil(q)
    out.set(c.name, { q, lo: Math.min(lo, hi), hi })
  }
  return out
}

/**
 * The target owner of every bucket, given each bucket's current (effective) owner.
 * Candidates with weight 0 own nothing. With no candidate of positive weight, nobody owns anything.
 */
export const assign = (current: ReadonlyArray<string | null>, candidates: ReadonlyArray<Candidate>): Array<string | null> => {
  const n = current.length
  const live = candidates.filter((c) => c.weight > 0).sort(byName)
  if (live.length === 0) return Array<string | null>(n).fill(null)
  const quota = quotas(live, n)
  const count = new Map<string, number>(live.map((c) => [c.name, 0]))
  const target: Array<string | null> = Array<string | null>(n).fill(null)
  const pool: Array<number> = []
  // 1. keep what each member holds, up to the ceiling of its share
  for (let b = 0; b < n; b++) {
    const owner = current[b]
    const k = owner === null ? undefined : count.get(owner)
    if (owner !== null && k !== undefined && k < quota.get(owner)!.hi) {
      target[b] = owner
      count.set(owner, k + 1)
    } else {
      pool.push(b)
    }
  }
  let next = 0
  // 2. raise everyone to the floor of its share
  for (const c of live) {
    const lo = quota.get(c.name)!.lo
    while (count.get(c.name)! < lo && next < pool.length) {
      target[pool[next++]] = c.name
      count.set(c.name, count.get(c.name)! + 1)
    }
  }
  // 3. hand out what is left to those below their ceiling, largest missing fraction first
  while (next < pool.length) {
    const open = live
      .filter((c) => count.get(c.name)! < quota.get(c.name)!.hi)
      .sort((a, b) => {
        const da = quota.get(a.name)!.q - count.get(a.name)!
        const db = quota.get(b.name)!.q - count.get(b.name)!
        return db - da || byName(a, b)
      })
    if (open.length === 0) break
    for (const c of open) {
      if (next >= pool.length) break
      target[pool[next++]] = c.name
      count.set(c.name, count.get(c.name)! + 1)
    }
  }
  // 4. rare rounding case: someone is still below its floor; take from the largest surplus
  for (const c of live) {
    const lo = quota.get(c.name)!.lo
    while (count.get(c.name)! < lo) {
      const donor = live
        .filter((d) => count.get(d.name)! > quota.get(d.name)!.lo)
        .sort((a, b) => count.get(b.name)! - quota.get(b.name)!.q - (count.get(a.name)! - quota.get(a.name)!.q) || byName(a, b))[0]
      if (donor === undefined) break
      let b = n - 1
      while (target[b] !== donor.name) b--
      target[b] = c.name
      count.set(donor.name, count.get(donor.name)! - 1)
      count.set(c.name, count.get(c.name)! + 1)
    }
  }
  return target
}

/** Single-host assignment: every bucket to the candidate of best (lowest) priority, ties by name. */
export const assignSingleHost = (
  n: number,
  candidates: ReadonlyArray<{ readonly name: string; readonly priority: number }>
): Array<string | null> => {
  const best = candidates
    .slice()
    .sort((a, b) => a.priority - b.priority || byName(a, b))[0]
  return Array<string | null>(n).fill(best === undefined ? null : best.name)
}
