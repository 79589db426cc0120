/**
 * The heartbeat this node publishes (PROTOCOL.md §1-2): its folded seq (its ack), the send times
 * it echoes (the lease grants), its suspicions with their pins, the hand-offs it is done with,
 * and a pause while it restarts keeping its share. Pure.
 */
import type { OwnSuspicion, PeerView } from "./liveness.ts"
import type { Pin } from "./pins.ts"
import type { Heartbeat, Suspicion } from "./types.ts"

/** What a heartbeat is built from. */
export interface HeartbeatInput {
  readonly node: string
  readonly incarnation: number
  /** The folded seq acknowledged (lower while a stale unhealthy report is withdrawn). */
  readonly seq: number
  readonly peers: ReadonlyMap<string, PeerView>
  readonly suspicions: ReadonlyMap<string, OwnSuspicion>
  readonly pins: ReadonlyMap<string, Pin>
  readonly expireAfterMs: number
  readonly done: Array<string>
  /** Per open hand-off not done: the buckets where this node still holds flows (null: count not fresh). */
  readonly busy: ReadonlyArray<readonly [string, ReadonlyArray<number>]> | null
  /** Keep-serving restart in progress (ms asked), or null. */
  readonly pausingMs: number | null
  /** The inherited lease of a restarted process (0: none). */
  readonly holdingUntil: number
}

/** Build the heartbeat sent at `now`. */
export const buildHeartbeat = (x: HeartbeatInput, now: number): Heartbeat => {
  const echo: Array<readonly [string, number]> = []
  for (const [name, p] of x.peers) {
    if (p.acceptedSentAt < 0 || x.suspicions.has(name)) continue
    if (now - p.acceptedAt >= x.expireAfterMs) continue
    echo.push([name, p.acceptedSentAt])
  }
  const suspects: Array<Suspicion> = []
  for (const s of x.suspicions.values()) {
    const pin = s.taken ? x.pins.get(s.node) : undefined
    suspects.push(
      s.taken
        ? pin !== undefined && pin.incarnation === s.incarnation
          ? { node: s.node, incarnation: s.incarnation, heard: s.heard, until: s.until, taken: true, planSeq: pin.seq }
          : { node: s.node, incarnation: s.incarnation, heard: s.heard, until: s.until, taken: true }
        : { node: s.node, incarnation: s.incarnation, heard: s.heard, until: s.until }
    )
  }
  return {
    node: x.node,
    incarnation: x.incarnation,
    seq: x.seq,
    sentAt: now,
    echo,
    suspects,
    done: x.done,
    ...(x.busy !== null && x.busy.length > 0 ? { busy: x.busy } : {}),
    ...(x.pausingMs !== null ? { pause: x.pausingMs } : x.holdingUntil > now ? { pause: Math.ceil(x.holdingUntil - now) } : {})
  }
}
