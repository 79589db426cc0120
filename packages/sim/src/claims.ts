/**
 * The servers' kernel filters in the simulated world and the bucket-level invariants checked
 * on them: filter tables and deadlines (fencing), the claimants of each bucket, two live
 * owners of one bucket, windows where a bucket has no live owner, and the measurement of
 * failovers against their budget. Free functions over a World (see world.ts).
 */
import { BUCKETS, LocalBucket, MAX_TABLES } from "@vipfarm/domain"
import { majority } from "../../runtime/src/controller/index.ts"
import { claimsNew } from "./filterAdapter.ts"
import type { Proc, World } from "./world.ts"

/** Maximum servers with a non-foreign code for one bucket tracked per bucket. */
export const MAXC = 8
/** Bucket slots of the largest farm: every table's buckets. */
export const SLOTS = MAX_TABLES * BUCKETS
/** The empty filter tables (no bucket claimed); compared by identity. */
export const ZERO = new Uint8Array(SLOTS)

/** A failover being measured. */
export interface PendingFailover {
  node: string
  fault: string
  atMs: number
  idxs: Array<number>
  total: number
  budgetApplies: boolean
  doneAt: number | null
  /** A server that does not count as the buckets' new owner (a killed daemon's filter still claims them until its deadline). */
  exclude: number
}

/** Install a server's filter tables and deadline (as the daemon writes its XDP maps). */
export function setFilter(w: World, s: number, tables: Uint8Array, deadline: number): void {
  if (s === w.forgetTables && w.now >= w.options.forgetTables!.atMs) tables = ZERO
  const old = w.tables[s]
  const changed = old !== tables
  if (changed) {
    let mo = 0
    for (let i = 0; i < SLOTS; i++) {
      const a = old[i]
      const b = tables[i]
      if (b === 2) mo++
      if (a === b) continue
      w.slotEpoch[i]++
      if (a === 0) addCand(w, i, s)
      else if (b === 0) removeCand(w, i, s)
    }
    w.tables[s] = tables
    w.movingOut[s] = mo
  }
  w.deadline[s] = s === w.ignoreFencing && deadline > 0 ? Infinity : deadline
  const wasFenced = w.fenced[s] === 1
  const nowFenced = w.now >= w.deadline[s]
  if (nowFenced !== wasFenced) setFenced(w, s, nowFenced)
  else if (!nowFenced) armFenceTimer(w, s)
  if (changed) recheckClaims(w, s)
}

function armFenceTimer(w: World, s: number): void {
  if (w.fenceTimerAt[s] !== Infinity) return
  const at = w.deadline[s]
  if (at === Infinity) return
  w.fenceTimerAt[s] = at
  w.at(at, `deadline ${w.procs[s].name}`, () => {
    w.fenceTimerAt[s] = Infinity
    if (w.fenced[s] === 1) return
    if (w.now >= w.deadline[s]) setFenced(w, s, true)
    else armFenceTimer(w, s)
  })
}

function setFenced(w: World, s: number, fenced: boolean): void {
  if (fenced) {
    w.faultGen[s]++
    const p = w.procs[s]
    if (p.running && p.intent) beginFailover(w, p, p.paused ? "pause" : "fenced", false)
  }
  w.fenced[s] = fenced ? 1 : 0
  if (!fenced) armFenceTimer(w, s)
  recheckClaims(w, s)
}

function addCand(w: World, i: number, s: number): void {
  const n = w.candN[i]
  if (n >= MAXC) return
  w.cand[i * MAXC + n] = s
  w.candN[i] = n + 1
}

function removeCand(w: World, i: number, s: number): void {
  const n = w.candN[i]
  const base = i * MAXC
  for (let k = 0; k < n; k++) {
    if (w.cand[base + k] === s) {
      w.cand[base + k] = w.cand[base + n - 1]
      w.candN[i] = n - 1
      return
    }
  }
}

/**
 * After a change at server s: two live claimants of one bucket, windows without a live owner.
 * A window that starts while a measured failover covers the bucket, while a fault goes on,
 * before the farm first formed or with no server running is excused (new flows in it are
 * retried by their clients). One that starts while a live server holds the bucket moving out
 * is a hand-off's hold (the new claimant waits for the old one's ack, PROTOCOL.md 5): new
 * flows in it are counted, and it must end within the failover budget. Any other window is
 * one nothing explains: new flows in it are violations (traffic.ts) and it must end within
 * the failover budget.
 */
function recheckClaims(w: World, s: number): void {
  w.version++
  if (s >= 0) {
    const on = w.fenced[s] === 0 && w.tables[s] !== ZERO ? 1 : 0
    if (on !== w.on[s]) w.onEpoch++
    w.on[s] = on
  }
  const slots = w.setup.tables * BUCKETS
  let excuse = -1
  let unowned = 0
  for (let i = 0; i < slots; i++) {
    const n = w.candN[i]
    let live = 0
    let first = -1
    let second = -1
    const base = i * MAXC
    for (let k = 0; k < n; k++) {
      const c = w.cand[base + k]
      if (w.on[c] === 0 || !claimsNew(w.tables[c][i])) continue
      live++
      if (first < 0) first = c
      else second = c
    }
    if (live > 1) {
      w.violation("two-live-owners", `bucket ${i >> 10}/${i & 1023} taken by ${w.procs[first].name} and ${w.procs[second].name}`)
    }
    if (live === 0) {
      unowned++
      if (w.unclaimedSince[i] < 0) {
        w.unclaimedSince[i] = w.now
        if (excuse < 0) excuse = !w.formed || faultActive(w) || !anyServerOn(w) ? 2 : 0
        const why = excuse === 2 ? 2 : coveredByFailover(w, i) ? 1 : heldMovingOut(w, i) ? 3 : 0
        w.unclaimedExcuse[i] = why
        if (why === 2) w.unclaimedExcused++
        else if (why === 3) w.unclaimedHandoff++
      }
    } else if (w.unclaimedSince[i] >= 0) closeWindow(w, i)
  }
  if (unowned === 0) w.formed = true
  checkFailovers(w)
}

function closeWindow(w: World, i: number): void {
  const d = w.now - w.unclaimedSince[i]
  w.unclaimedSince[i] = -1
  if (d > 0) {
    w.unclaimedWindows++
    if (d > w.unclaimedWorst) w.unclaimedWorst = d
  }
  const why = w.unclaimedExcuse[i]
  if (why === 3 && d > w.unclaimedHandoffWorst) w.unclaimedHandoffWorst = d
  if ((why === 0 || why === 3) && d > w.setup.checks.failoverWorstMs) unexplained(w, i, d, "")
}

/** A live server holds the bucket moving out: a hand-off (or a claim waiting for its previous claimant's ack) is under way. */
function heldMovingOut(w: World, i: number): boolean {
  const n = w.candN[i]
  for (let k = 0; k < n; k++) {
    const c = w.cand[i * MAXC + k]
    if (w.on[c] === 1 && w.tables[c][i] === LocalBucket.MOVING_OUT) return true
  }
  return false
}

function unexplained(w: World, i: number, d: number, still: string): void {
  const why = w.unclaimedExcuse[i] === 3 ? "during a hand-off" : "with no failure or fault to explain it"
  w.violation("unowned-window", `bucket ${i >> 10}/${i & 1023} had no live owner for ${Math.round(d)} ms${still} ${why} (budget ${w.setup.checks.failoverWorstMs} ms)`)
  w.unclaimedExcuse[i] = 2 // reported once
}

function coveredByFailover(w: World, i: number): boolean {
  for (const f of w.failovers) if (f.doneAt === null && f.idxs.includes(i)) return true
  return false
}

function anyServerOn(w: World): boolean {
  for (let s = 0; s < w.serverCount; s++) if (w.on[s] === 1) return true
  return false
}

/** Whether some fault is going on: a cut link, a NATS node down, a paused, slow, stalled, unhealthy or fenced server. */
export function faultActive(w: World): boolean {
  if (!networkWhole(w)) return true
  for (const p of w.procs) {
    if (!p.running) continue
    if (p.paused || p.slowMs > 0 || p.readerStallUntil > w.now || !p.healthy || p.appDown) return true
    if (p.idx < w.serverCount && p.intent && w.fenced[p.idx] === 1 && w.tables[p.idx] !== ZERO) return true
  }
  return false
}

/**
 * Why a new flow in bucket slot i may go unanswered now: 0 it may not (the bucket has an
 * owner, or no failure, fault or hand-off explains its window), 1 a failover being measured,
 * 2 a fault (or the farm forming, or no server running), 3 a hand-off's hold.
 */
export function unansweredExcuse(w: World, i: number): number {
  return w.unclaimedSince[i] >= 0 ? w.unclaimedExcuse[i] : 0
}

/** Open windows without a live owner that nothing explains and that outlasted the budget (called at the end). */
export function closeWindows(w: World): void {
  const slots = w.setup.tables * BUCKETS
  for (let i = 0; i < slots; i++) {
    const why = w.unclaimedExcuse[i]
    if (w.unclaimedSince[i] < 0 || why === 1 || why === 2) continue
    const d = w.now - w.unclaimedSince[i]
    if (d > w.setup.checks.failoverWorstMs) unexplained(w, i, d, " (still open)")
  }
}

/** Start measuring the failover of a server's buckets. */
export function beginFailover(w: World, p: Proc, fault: string, budgetApplies: boolean): void {
  const s = p.idx
  const idxs: Array<number> = []
  const slots = w.setup.tables * BUCKETS
  const t = w.tables[s]
  if (w.on[s] === 0 && fault !== "crash") return
  for (let i = 0; i < slots; i++) if (claimsNew(t[i])) idxs.push(i)
  if (idxs.length === 0) return
  if (w.failovers.some((f) => f.node === p.name && f.doneAt === null)) return
  // a killed daemon's filter, and a server whose application failed, still claim their buckets: only others count
  const others = fault === "kill" || fault.startsWith("app-")
  w.failovers.push({ node: p.name, fault, atMs: w.now, idxs, total: idxs.length, budgetApplies, doneAt: null, exclude: others ? s : -1 })
  if (others) checkFailovers(w)
}

/** Another fault began: open failovers no longer measure one failure on a whole farm. */
export function faultBegins(w: World): void {
  for (const f of w.failovers) if (f.doneAt === null) f.budgetApplies = false
  // windows already open are part of the fault now
  for (let i = 0; i < w.unclaimedSince.length; i++) if (w.unclaimedSince[i] >= 0 && w.unclaimedExcuse[i] === 0) w.unclaimedExcuse[i] = 2
}

function checkFailovers(w: World): void {
  for (const f of w.failovers) {
    if (f.doneAt !== null) continue
    f.idxs = f.idxs.filter((i) => {
      const n = w.candN[i]
      for (let k = 0; k < n; k++) {
        const c = w.cand[i * MAXC + k]
        if (c !== f.exclude && w.on[c] === 1 && claimsNew(w.tables[c][i])) return false
      }
      return true
    })
    if (f.idxs.length === 0) {
      f.doneAt = w.now
      const d = w.now - f.atMs
      w.note("failover", f.node, `${f.total} buckets owned again after ${Math.round(d)} ms`)
      if (f.budgetApplies && d > w.setup.checks.failoverWorstMs) {
        w.violation("failover-budget", `${f.node} ${f.fault}: buckets owned again after ${Math.round(d)} ms (budget ${w.setup.checks.failoverWorstMs} ms)`)
      }
    }
  }
}

/** True when no link is cut and every NATS node is up. */
export function networkWhole(w: World): boolean {
  for (let i = 0; i < w.cut.length; i++) if (w.cut[i] !== 0) return false
  return w.natsUp.every((u) => u)
}

/** Whether the live voters other than `victim` are a strict majority of the voters the log knows. */
export function survivorsHaveMajority(w: World, victim: Proc): boolean {
  const ref = w.procs.find((p) => p !== victim && p.running && p.ctl !== null && p.role === "server")?.ctl?.foldedState
  if (ref === undefined) return false
  const voters = [...ref.members.filter((m) => m.status !== "down").map((m) => m.name), ...w.setup.witnesses]
  let live = 0
  for (const v of voters) {
    const p = w.procs.find((x) => x.name === v)
    if (p !== undefined && p !== victim && p.running && (p.role === "witness" || w.fenced[p.idx] === 0)) live++
  }
  return live >= majority(voters.length) && w.procs.some((p) => p !== victim && p.role === "server" && p.running && p.healthy && w.fenced[p.idx] === 0)
}

/** Whether any running process is paused or slowed (a failover then measures more than one failure). */
export function anyPausedOrSlow(w: World): boolean {
  return w.procs.some((p) => p.running && (p.paused || p.slowMs > 0))
}

/** Failovers still open whose budget ran out, and unexplained windows without an owner: report them (called at the end). */
export function closeFailovers(w: World): void {
  for (const f of w.failovers) {
    if (f.doneAt === null && f.budgetApplies && w.now - f.atMs > w.setup.checks.failoverWorstMs) {
      w.violation("failover-budget", `${f.node} ${f.fault}: ${f.idxs.length} of ${f.total} buckets still without a live owner at the end`)
      f.budgetApplies = false
    }
  }
  closeWindows(w)
}
