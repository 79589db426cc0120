/**
 * The application's reports in the farm's log: each `ReportApplication` of the policy
 * becomes the domain command of the same name, decided against the folded state and appended
 * (an ApplicationChanged event: what the application does and why, for the audit and for
 * every server's `farm status`; no bucket moves by it). One append at a time, in order,
 * conditional on the last folded sequence like every other append; a conflict (another
 * append won the race) or an unavailable log is retried.
 */
import { type Command, decide, type FarmState, findMember } from "@vipfarm/domain"
import { Result } from "effect"
import { log } from "../log.ts"
import type { ApplicationReport } from "./policy.ts"

/** How an append ended. */
export type AppendOutcome = "ok" | "conflict" | "failed"

/** What {@link ApplicationLog} needs from the daemon. */
export interface ApplicationLogDeps {
  readonly node: string
  /** Distinguishes this process's message ids from an earlier process's (JetStream deduplicates by id). */
  readonly boot: string
  /** The folded state. */
  readonly folded: () => FarmState
  /** Whether the folded state is the log's head (appends are conditional on it). */
  readonly caughtUp: () => boolean
  /** Append the command's events after `expectLastSeq` with this message id. */
  readonly append: (cmd: Command, events: ReadonlyArray<unknown>, expectLastSeq: number, msgId: string) => Promise<AppendOutcome>
  readonly now: () => number
}

/** Reports kept while the log cannot take them (the oldest are dropped, logged). */
const MAX_PENDING = 64
const RETRY_MS = 500

/** Appends the application's reports to the log, in order (see the module comment). */
export class ApplicationLog {
  private readonly pending: Array<{ readonly report: ApplicationReport; readonly id: string }> = []
  private inflight = false
  private retryAt = 0
  /** After a conflict: the record that won must be folded first. */
  private waitSeq = 0
  private n = 0

  constructor(private readonly d: ApplicationLogDeps) {}

  /** Queue a report (then call {@link pump}). */
  add(report: ApplicationReport): void {
    this.n++
    this.pending.push({ report, id: `app-${this.d.node}-${this.d.boot}-${this.n}` })
    if (this.pending.length > MAX_PENDING) {
      const dropped = this.pending.shift()!
      log("warn", "app.log-dropped", { node: this.d.node, state: dropped.report.state, reason: dropped.report.reason, detail: "too many reports waiting for the log" })
    }
  }

  /** Reports not in the log yet. */
  get waiting(): number {
    return this.pending.length
  }

  /** Append the oldest waiting report if the log can take it now (call on every record folded and on the clock). */
  pump(): void {
    if (this.inflight || this.pending.length === 0 || this.d.now() < this.retryAt || !this.d.caughtUp()) return
    const st = this.d.folded()
    if (st.seq < this.waitSeq) return
    const me = findMember(st, this.d.node)
    // not a member (yet, or any more): the report waits for the Join
    if (me === undefined || me.status === "down") return
    const { report: r, id } = this.pending[0]
    const cmd: Command = {
      _tag: "ReportApplication", node: this.d.node, state: r.state, reason: r.reason,
      ...(r.restarts === undefined ? {} : { restarts: r.restarts }),
      ...(r.checker === undefined ? {} : { checker: r.checker }),
      cause: r.checker === undefined ? { kind: "daemon", by: this.d.node } : { kind: "checker", by: this.d.node, detail: r.checker }
    }
    const decided = decide(cmd, st)
    if (Result.isFailure(decided)) {
      this.pending.shift()
      log("warn", "app.log-refused", { node: this.d.node, state: r.state, reason: decided.failure.reason })
      return
    }
    this.inflight = true
    const seq = st.seq
    // one id for every attempt: an append that went through but whose answer was lost comes back a duplicate
    this.d.append(cmd, decided.success, seq, id).then((outcome) => {
      this.inflight = false
      if (outcome === "ok") this.pending.shift()
      else if (outcome === "failed") this.retryAt = this.d.now() + RETRY_MS
      // a conflict: retried once the record that won is folded
      else this.waitSeq = seq + 1
      this.pump()
    })
  }
}
