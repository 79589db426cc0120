/**
 * NATS in the simulated world: core NATS heartbeats (pub/sub with delay, loss and cut links)
 * and the JetStream log (ordered conditional appends with msg-id dedupe, delivery delay to
 * each process's reader, the stream leader and its re-election stalls, periodic catch-up).
 * Free functions over a World (see world.ts), which holds the log's state.
 *
 * The stream leader: the log's stream is an R3 (RN) raft group whose leader lives on one
 * NATS node, n1 at the start. It is lost when its node goes down (`nats-node-down`), when it
 * is cut off from a majority of the NATS nodes (a partition or cut between NATS nodes: raft
 * needs direct links to a quorum), when the cluster loses its quorum, or by
 * `nats-leader-kill` (its process restarts at once). Losing a follower (or any other
 * endpoint's links) changes nothing while the leader keeps a quorum. A lost leader starts an
 * election: appends stall (time out, as a publish with no stream leader does) for a draw of
 * `nats.stall` (default uniform 4.4–7.8 s: nats-server 2.9's raft election timeout is drawn
 * in 4–9 s, and the time from SIGKILL of the leader's node to appends back was measured at
 * up to 7.8 s on the project's 2-vCPU VM, see BENCHMARKS.md); then a node that has a quorum
 * becomes leader (the next after the old one, in name order). With no quorum the cluster
 * waits leaderless, and an election of the same drawn length starts when a quorum forms
 * again. The cluster notices a change of NATS nodes or links within {@link WATCH_MS} (it
 * watches on a simulated timer, and before each append commits).
 */
import type { FarmEvent } from "@vipfarm/domain"
import { type Heartbeat, type NodeController, majority } from "../../runtime/src/controller/index.ts"
import type { Proc, World } from "./world.ts"

/** One network delay, drawn from the network PRNG. */
function delay(w: World): number {
  const [lo, hi] = w.setup.network.delay
  return w.netRng.uniform(lo, hi)
}

/** Publish a heartbeat on core NATS: to every other running process it reaches (delay, loss). */
export function publish(w: World, from: Proc, hb: Heartbeat): void {
  const loss = w.setup.network.loss
  for (const to of w.procs) {
    if (to === from || !to.running) continue
    if (!w.link(from.idx, to.idx)) continue
    if (loss > 0 && w.netRng.chance(loss)) continue
    const boot = to.boot
    w.at(w.now + delay(w), `heartbeat ${from.name}→${to.name}`, () => {
      if (to.boot !== boot || !to.running || to.paused) return
      w.input(to, () => to.ctl!.onHeartbeat(hb, w.now))
    })
  }
}

/** A process's conditional append to the log (expected last seq, msg-id dedupe); answers it later. */
export function append(w: World, p: Proc, events: ReadonlyArray<FarmEvent>, expect: number, msgId: string): void {
  w.logStats.appends++
  const boot = p.boot
  const sentAt = w.now
  const timeout = w.setup.nats.appendTimeoutMs
  const answer = (result: Parameters<NodeController["onAppendResult"]>[1]): void => {
    if (!result.ok && result.error === "timeout") w.logStats.timeouts++
    const deliver = (): void => {
      if (p.boot !== boot || !p.running) return
      w.input(p, () => p.ctl!.onAppendResult(msgId, result, w.now))
    }
    if (result.ok || result.error !== "timeout") {
      if (w.logReachable(p.idx)) w.at(w.now + delay(w), `append-result ${p.name}`, deliver)
      else w.at(sentAt + timeout, `append-timeout ${p.name}`, () => {
        w.logStats.timeouts++
        if (p.boot === boot && p.running) w.input(p, () => p.ctl!.onAppendResult(msgId, { ok: false, error: "timeout" }, w.now))
      })
    } else deliver()
  }
  if (!w.logReachable(p.idx)) {
    w.at(w.now + timeout, `append-timeout ${p.name}`, () => answer({ ok: false, error: "timeout" }))
    return
  }
  watchLeader(w)
  const [lo, hi] = w.setup.nats.appendLatency
  const at = Math.max(w.now, w.stallUntil) + w.rng.uniform(lo, hi)
  if (at - w.now > timeout) {
    w.at(w.now + timeout, `append-timeout ${p.name}`, () => answer({ ok: false, error: "timeout" }))
    return
  }
  w.at(at, `append ${msgId} by ${p.name}`, () => {
    watchLeader(w)
    if (w.now < w.stallUntil) {
      answer({ ok: false, error: "timeout" })
      return
    }
    const dup = w.msgIds.get(msgId)
    if (dup !== undefined) {
      w.logStats.duplicates++
      answer({ ok: true, seq: dup, duplicate: true })
      return
    }
    if (expect !== w.log.length) {
      w.logStats.conflicts++
      answer({ ok: false, error: "wrong-last-seq", lastSeq: w.log.length })
      return
    }
    for (const e of events) {
      w.log.push(e)
      noteEvent(w, e)
    }
    w.msgIds.set(msgId, w.log.length)
    answer({ ok: true, seq: w.log.length, duplicate: false })
    for (const to of w.procs) if (to.running) scheduleLogDelivery(w, to, w.rng.uniform(...w.setup.nats.delivery))
  })
}

/** A timeline line for an event just appended to the log. */
function noteEvent(w: World, e: FarmEvent): void {
  const node = "node" in e ? e.node : ""
  let detail = ""
  if (e._tag === "HandoffStarted") detail = `${e.handoff} ${e.mode} ${e.moves.length} moves`
  else if (e._tag === "HandoffCompleted") detail = e.handoff
  else if (e._tag === "MemberFailed") detail = `detected by ${e.detectedBy}`
  else if (e._tag === "MemberJoined") detail = `incarnation ${e.incarnation}`
  w.note(`log:${e._tag}`, node, `seq ${w.log.length}${detail === "" ? "" : ` ${detail}`}`)
}

/** Append an operator event directly (configuration at time 0). */
export function appendOperator(w: World, e: FarmEvent): void {
  w.log.push(e)
  noteEvent(w, e)
}

/** Deliver the log to a process after `delay` (everything appended by then, in order). */
export function scheduleLogDelivery(w: World, p: Proc, delay: number): void {
  const boot = p.boot
  w.at(w.now + delay, `log-delivery ${p.name}`, () => {
    if (p.boot !== boot || !p.running || p.ctl === null || p.paused) return
    if (p.logDelivered >= w.log.length || !w.logReachable(p.idx) || w.now < p.readerStallUntil) return
    w.input(p, () => {
      const ctl = p.ctl!
      ctl.onLogHead(w.log.length)
      while (p.logDelivered < w.log.length) {
        p.logDelivered++
        ctl.onLogEntry(p.logDelivered, w.log[p.logDelivered - 1], w.now)
      }
      ctl.tick(w.now)
    })
  })
}

/** Periodic catch-up of every process (after heals, pauses, reconnects), and the watch of the stream leader. */
export function startCatchUp(w: World): void {
  startLeaderWatch(w)
  const loop = (): void => {
    for (const p of w.procs) if (p.running && p.logDelivered < w.log.length) scheduleLogDelivery(w, p, 0)
    w.at(w.now + 100, "log-catch-up", loop)
  }
  w.at(100, "log-catch-up", loop)
}

/** How often (simulated ms) the NATS cluster looks at its nodes and links for a lost stream leader. */
export const WATCH_MS = 10

/** The stream leader's state of one world (kept here: the world holds only `stallUntil`). */
interface Leadership {
  /** Index in setup.natsNodes of the stream leader; -1 while an election runs or no quorum. */
  leader: number
  /** When the running election ends (-1: none; Infinity: no quorum, waiting for one). */
  electionEnds: number
  /** Elections so far (also those waiting for a quorum). */
  elections: number
}

const leadership = new WeakMap<World, Leadership>()

const stateOf = (w: World): Leadership => {
  let s = leadership.get(w)
  if (s === undefined) {
    s = { leader: 0, electionEnds: -1, elections: 0 }
    leadership.set(w, s)
  }
  return s
}

/** Name of the current stream leader, or null while there is none (election or no quorum). */
export function streamLeader(w: World): string | null {
  const s = stateOf(w)
  return s.leader < 0 ? null : w.setup.natsNodes[s.leader]
}

/** Whether NATS node i is up and has direct links both ways to a quorum of the cluster (itself included). */
function hasQuorum(w: World, i: number): boolean {
  if (!w.natsUp[i]) return false
  const n = w.setup.natsNodes.length
  const a = w.natsBase + i
  let peers = 1
  for (let j = 0; j < n; j++) {
    if (j === i || !w.natsUp[j]) continue
    const b = w.natsBase + j
    if (w.link(a, b) && w.link(b, a)) peers++
  }
  return peers >= majority(n)
}

/** The node an election makes leader: the next one after `after` that has a quorum (`avoid` only if no other can), or -1. */
function candidate(w: World, after: number, avoid: number): number {
  const n = w.setup.natsNodes.length
  let fallback = -1
  for (let k = 1; k <= n; k++) {
    const i = (after + k + n) % n
    if (!hasQuorum(w, i)) continue
    if (i !== avoid) return i
    fallback = i
  }
  return fallback
}

/** Start an election: appends stall for a drawn time (or until a quorum forms, with none now). */
function elect(w: World, s: Leadership, from: number, avoid: number, why: string): void {
  s.leader = -1
  s.elections++
  w.logStats.stalls++
  if (candidate(w, from, avoid) < 0) {
    s.electionEnds = Infinity
    w.stallUntil = Infinity
    w.note("nats-no-leader", "", `${why}; no quorum: appends stall until one forms`)
    return
  }
  const [lo, hi] = w.setup.nats.stall
  const d = w.rng.uniform(lo, hi)
  const ends = Math.max(w.stallUntil === Infinity ? 0 : w.stallUntil, w.now + d)
  s.electionEnds = ends
  w.stallUntil = ends
  w.note("nats-election", "", `${why}; appends stall ${Math.round(ends - w.now)} ms`)
  w.at(ends, "nats-election-ends", () => {
    if (s.leader >= 0 || s.electionEnds !== ends) return
    const next = candidate(w, from, avoid)
    if (next < 0) {
      s.electionEnds = Infinity
      w.stallUntil = Infinity
      w.note("nats-no-leader", "", "election ended without a quorum: appends stall until one forms")
      return
    }
    s.leader = next
    s.electionEnds = -1
    w.note("nats-leader", w.setup.natsNodes[next], "stream leader elected; appends resume")
  })
}

/** Look at the NATS nodes and links: a leader without its quorum is lost; a quorum regained starts an election. */
export function watchLeader(w: World): void {
  const s = stateOf(w)
  if (s.leader >= 0) {
    if (!hasQuorum(w, s.leader)) {
      const name = w.setup.natsNodes[s.leader]
      elect(w, s, s.leader, s.leader, `stream leader ${name} ${w.natsUp[s.leader] ? "cut off from the NATS majority" : "down"}`)
    }
  } else if (s.electionEnds === Infinity && candidate(w, 0, -1) >= 0) {
    elect(w, s, -1, -1, "a NATS quorum formed again")
  }
}

/** Watch the NATS cluster for a lost stream leader every {@link WATCH_MS}. */
export function startLeaderWatch(w: World): void {
  const loop = (): void => {
    watchLeader(w)
    w.at(w.now + WATCH_MS, "nats-watch", loop)
  }
  w.at(0, "nats-watch", loop)
}

/**
 * `nats-leader-kill`: the stream leader's process dies and restarts at once (its node stays
 * up); another node with a quorum is elected after the drawn stall. With no leader (an
 * election running, or no quorum) there is nothing to kill.
 */
export function leaderKill(w: World): void {
  const s = stateOf(w)
  watchLeader(w)
  if (s.leader < 0) {
    w.note("nats-leader-kill", "", "no stream leader to kill")
    return
  }
  const name = w.setup.natsNodes[s.leader]
  elect(w, s, s.leader, s.leader, `stream leader ${name} killed`)
}
