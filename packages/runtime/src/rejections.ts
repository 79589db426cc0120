/**
 * Counting and logging what a daemon or witness refuses: log records the fold rejected
 * (`op=log.rejected seq reason by`, `vipfarm_records_rejected_total{reason}`) and network
 * messages the wire decoders refused (`op=wire.rejected`, logged once per sender and kind per
 * interval, `vipfarm_messages_rejected_total{kind,reason}`).
 */
import { rejectionKind, verdictOf } from "@vipfarm/domain"
import type { LogRecord } from "./eventLog.ts"
import { log } from "./log.ts"
import type { FarmMetrics } from "./metrics.ts"
import { preview, RejectionLog, type WireRejected } from "./wire.ts"

/** Who a record says appended it (its `sig.by`, a bounded text), or "" when unsigned. */
const signerOf = (entry: unknown): string => {
  const by = (entry as { sig?: { by?: unknown } } | null)?.sig?.by
  const v = verdictOf(entry)
  return v?._tag === "Signed" ? v.by : typeof by === "string" ? preview(by, 64) : ""
}

/** A record the fold rejected: one log line and one count. */
export const noteRejected = (node: string, r: LogRecord, reason: string, metrics: FarmMetrics | null): void => {
  const kind = rejectionKind(reason)
  log("warn", "log.rejected", { node, seq: r.seq, kind, reason: preview(reason, 300), by: signerOf(r.entry) })
  metrics?.recordsRejected.inc({ reason: kind })
}

/** Network messages refused: counted each, logged once per sender and kind every 10 s. */
export class WireRejections {
  private readonly pending = new Map<string, WireRejected>()
  private readonly limiter: RejectionLog
  constructor(private readonly node: string, intervalMs = 10_000) {
    this.limiter = new RejectionLog(intervalMs, (key, suppressed) => {
      const e = this.pending.get(key)
      this.pending.delete(key)
      log("warn", "wire.rejected", { node: this.node, from: key, kind: e?.kind ?? "", reason: preview(e?.reason ?? "", 200), ...(suppressed > 0 ? { suppressed } : {}) })
    })
  }

  /** One refused message from `key` (its subject or sender). */
  note(key: string, now: number, e: WireRejected, metrics: FarmMetrics | null): void {
    metrics?.messagesRejected.inc({ kind: e.kind, reason: rejectionKind(e.reason) })
    if (this.pending.size < 1024) this.pending.set(key, e)
    this.limiter.note(key, now)
  }
}
