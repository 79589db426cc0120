/**
 * NATS in the simulated world: core NATS heartbeats (pub/sub with delay, loss and cut links)
 * and the JetStream log (ordered conditional appends with msg-id dedupe, delivery delay to
 * each process's reader, leader-election stalls, periodic catch-up). Free functions over a
 * World (see world.ts), which holds the log's state.
 */
import type { FarmEvent } from "@vipfarm/domain"
import type { Heartbeat, NodeController } from "../../runtime/src/controller/index.ts"
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
  const [lo, hi] = w.setup.nats.appendLatency
  const at = Math.max(w.now, w.stallUntil) + w.rng.uniform(lo, hi)
  if (at - w.now > timeout) {
    w.at(w.now + timeout, `append-timeout ${p.name}`, () => answer({ ok: false, error: "timeout" }))
    return
  }
  w.at(at, `append ${msgId} by ${p.name}`, () => {
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

/** Periodic catch-up of every process (after heals, pauses, reconnects). */
export function startCatchUp(w: World): void {
  const loop = (): void => {
    for (const p of w.procs) if (p.running && p.logDelivered < w.log.length) scheduleLogDelivery(w, p, 0)
    w.at(w.now + 100, "log-catch-up", loop)
  }
  w.at(100, "log-catch-up", loop)
}

/** A JetStream leader election: appends stall for a drawn 4.4–7.8 s. */
export function leaderKill(w: World): void {
  const [lo, hi] = w.setup.nats.stall
  const d = w.rng.uniform(lo, hi)
  w.stallUntil = Math.max(w.stallUntil, w.now + d)
  w.logStats.stalls++
  w.note("nats-leader-kill", "", `appends stall ${Math.round(d)} ms`)
}
