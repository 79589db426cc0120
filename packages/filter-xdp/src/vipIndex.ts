/**
 * Rules indices of the configured VIPs: the program counts a VIP's verdicts in
 * `vip_counters` at its index, so a VIP keeps its index for as long as it stays configured,
 * and an index freed by a removed VIP goes back at the end of its family's queue (reused
 * last, so that a packet still deciding on the previous VIP set hardly ever counts for the
 * VIP that took the index over).
 */
import { MAX_VIPS, vipKey } from "./encode.ts"

/** The indices {@link VipIndex.plan} proposes; `commit()` makes them the current ones. */
export interface VipIndexPlan {
  /** Index of every VIP of the new list by {@link vipKey}. */
  readonly indexOf: ReadonlyMap<string, number>
  /** Indices given to VIPs that did not have one. */
  readonly added: ReadonlyArray<number>
  readonly commit: () => void
}

/** The index of each configured VIP: IPv4 0..MAX_VIPS-1, IPv6 MAX_VIPS..2*MAX_VIPS-1. */
export class VipIndex {
  private current = new Map<string, number>()
  private readonly free: [Array<number>, Array<number>] = [
    Array.from({ length: MAX_VIPS }, (_, i) => i),
    Array.from({ length: MAX_VIPS }, (_, i) => MAX_VIPS + i)
  ]

  /**
   * The indices for a new list of VIP address words (each address once): kept for a VIP
   * already configured, the front of the free queue for a new one, removed VIPs' indices
   * queued at the back; nothing changes until `commit()`. Throws when a family has more
   * than MAX_VIPS.
   */
  plan(addresses: ReadonlyArray<ReadonlyArray<number>>): VipIndexPlan {
    const keys = addresses.map((w) => ({ key: vipKey(w), family: w.length === 1 ? 0 : 1 }))
    const wanted = new Set(keys.map((k) => k.key))
    const free: [Array<number>, Array<number>] = [[...this.free[0]], [...this.free[1]]]
    for (const [key, i] of this.current) if (!wanted.has(key)) free[i < MAX_VIPS ? 0 : 1].push(i)
    const next = new Map<string, number>()
    const added: Array<number> = []
    for (const { key, family } of keys) {
      if (next.has(key)) continue
      let i = this.current.get(key)
      if (i === undefined) {
        i = free[family].shift()
        if (i === undefined) throw new Error(`at most ${MAX_VIPS} ${family === 0 ? "IPv4" : "IPv6"} VIPs`)
        added.push(i)
      }
      next.set(key, i)
    }
    return {
      indexOf: next,
      added,
      commit: () => {
        this.current = next
        this.free[0] = free[0]
        this.free[1] = free[1]
      }
    }
  }

  /** Index of every configured VIP by {@link vipKey}. */
  get indexOf(): ReadonlyMap<string, number> {
    return this.current
  }
}
