/**
 * Following the farm's log: an ordered consumer from the first record not folded yet, and a
 * watchdog for when it falls behind. The log is known to be ahead when an append was
 * acknowledged or a peer's heartbeat says so; if no record came for a moment, the watchdog
 * reads the missing records directly (any current replica answers a direct get, without the
 * meta leader or a consumer), and after a longer silence recreates the consumer. A consumer
 * whose NATS node died or was cut off stalls (the reader fails only after 3 s without a record
 * or heartbeat, see eventLog.ts), and creating a new one needs the meta leader, which a
 * partition can take seconds to re-elect: meanwhile the node would fold nothing the others
 * folded.
 */
import { Effect, Fiber, Result, Scope, Stream } from "effect"
import type { EventLog, LogRecord } from "./eventLog.ts"
import { log } from "./log.ts"

/** What a follower needs from its node. */
export interface FollowOptions {
  readonly eventLog: EventLog["Service"]
  readonly node: string
  /** The last sequence folded. */
  readonly folded: () => number
  /** The highest sequence known to exist. */
  readonly head: () => number
  /** Called with each record after the folded one, in order. */
  readonly onRecord: (r: LogRecord) => void
  readonly now: () => number
  /** Silence before reading directly and before recreating the consumer (ms). */
  readonly readAfterMs?: number
  readonly restartAfterMs?: number
}

/**
 * Follow the log in the caller's scope. The consumer lives in a scope of its own, closed when
 * the caller's scope closes but after finalizers the caller adds later (a graceful stop must
 * still see its Leave folded).
 */
export const followLog = (o: FollowOptions): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function* () {
    const readAfter = o.readAfterMs ?? 200
    const restartAfter = o.restartAfterMs ?? 1500
    let lastRecordAt = o.now()
    const deliver = (r: LogRecord) => {
      lastRecordAt = o.now()
      if (r.seq <= o.folded()) return // already read directly
      o.onRecord(r)
    }
    const consumeFrom = (from: number) =>
      o.eventLog.records(from).pipe(
        Stream.runForEach((r) => Effect.sync(() => deliver(r))),
        Effect.tapError((e) => Effect.sync(() => log("error", "log.consume", { node: o.node, error: e.message }))),
        Effect.ignore
      )
    const readAhead = Effect.gen(function* () {
      const from = o.folded() + 1
      const to = Math.min(o.head(), from + 63)
      let seq = from
      for (; seq <= to; seq++) {
        const r = yield* Effect.result(o.eventLog.read(seq))
        if (Result.isFailure(r)) {
          log("warn", "log.read", { node: o.node, seq, error: r.failure.message })
          break
        }
        if (r.success === undefined) break
        deliver(r.success)
      }
      if (seq > from) log("info", "log.read-ahead", { node: o.node, from, to: seq - 1, head: o.head() })
    })
    const readers = yield* Scope.make()
    yield* Effect.addFinalizer((exit) => Scope.close(readers, exit))
    let reader = yield* Effect.forkIn(consumeFrom(1), readers)
    yield* Effect.forkScoped(
      Effect.forever(
        Effect.gen(function* () {
          yield* Effect.sleep("100 millis")
          const quiet = o.now() - lastRecordAt
          if (o.head() > o.folded() && quiet > readAfter) yield* readAhead
          const folded = o.folded()
          if (quiet > restartAfter && (o.head() > folded || reader.pollUnsafe() !== undefined)) {
            log("warn", "log.reader-restart", { node: o.node, seq: folded, head: o.head() })
            yield* Effect.forkDetach(Fiber.interrupt(reader))
            reader = yield* Effect.forkIn(consumeFrom(folded + 1), readers)
            lastRecordAt = o.now()
          }
        })
      )
    )
  })
