/**
 * The event log across a restart of its NATS server: a nats-server of the test's own (JetStream,
 * store in a temp dir, a free loopback port; never the shared one on :4222), stopped with
 * SIGKILL or SIGTERM while readers follow the log, then restarted on the same port and store.
 * Everything goes through the daemon's code: connectNats, ensureStream, makeNatsEventLog and
 * followLog.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Effect, Fiber, Stream } from "effect"
import type { NatsConnection } from "@nats-io/transport-node"
import { type AppendResult, connectNats, ensureStream, type EventLog, LogError, type LogRecord, makeNatsEventLog } from "./eventLog.ts"
import { expectExactlyOnce, follower, freePort, sleep, testDir, testNatsServer, type TestNatsServer, waitFor } from "./natsTestServer.ts"

const tmp = testDir("vipfarm-reconnect-")
let server: TestNatsServer
const conns: Array<NatsConnection> = []

beforeAll(async () => {
  server = testNatsServer({ name: "n1", dir: tmp.dir, port: await freePort() })
  await server.start()
})

afterAll(async () => {
  for (const nc of conns) await nc.close().catch(() => undefined)
  await server?.stop("SIGKILL")
  tmp.remove()
})


/** A connection with the daemon's options (tight pings, reconnect every 200 ms, forever). */
const connect = async (name: string) => {
  const nc = await Effect.runPromise(connectNats({ servers: [server.url], name }))
  conns.push(nc)
  return nc
}

/** Append, retrying on LogError until an answer (bounded); the errors seen on the way. */
const appendRetrying = async (log: EventLog["Service"], entry: unknown, o: { expectLastSeq: number; msgId: string }, ms: number) => {
  const started = Date.now()
  const errors: Array<string> = []
  for (;;) {
    const r = await Effect.runPromise(Effect.result(log.append(entry, o)))
    if (r._tag === "Success") return { result: r.success, errors, ms: Date.now() - started }
    errors.push(r.failure.message)
    if (Date.now() - started > ms) throw new Error(`append ${o.msgId} failed for ${ms} ms: ${errors.join("; ")}`)
    await sleep(100)
  }
}

/** A raw reader: the log's ordered consumer from seq 1, no watchdog around it. */
const rawReader = (log: EventLog["Service"]) => {
  const got: Array<LogRecord> = []
  const fiber = Effect.runFork(log.records(1).pipe(Stream.runForEach((r) => Effect.sync(() => void got.push(r)))))
  return { got, fiber }
}



describe.each(["SIGKILL", "SIGTERM"] as const)("the log across a nats-server restart (%s)", (signal) => {
  it("readers resume exactly once and in order; appends while down fail typed; stale appends still conflict", async () => {
    const farm = `reconnect-${signal.toLowerCase()}`
    const nc = await connect(`itest-${farm}`)
    const other = await connect(`itest-${farm}-other`) // a second decider
    await Effect.runPromise(ensureStream(nc, farm))
    const log = makeNatsEventLog(nc, farm)
    const otherLog = makeNatsEventLog(other, farm)
    const reconnects: Array<number> = []
    void (async () => {
      for await (const s of nc.status()) if (s.type === "reconnect") reconnects.push(Date.now())
    })()

    const entries = new Map<number, unknown>()
    let head = 0
    const logLines: Array<string> = []
    const write = process.stderr.write.bind(process.stderr)
    process.stderr.write = ((chunk: string | Uint8Array, ...rest: Array<never>) => {
      if (typeof chunk === "string" && chunk.includes("op=log.")) logLines.push(chunk)
      return write(chunk, ...rest)
    }) as typeof process.stderr.write
    const raw = rawReader(log)
    const follow = await follower(log, () => head)
    try {
      for (let i = 1; i <= 5; i++) {
        const entry = { v: 1, i }
        expect(await Effect.runPromise(log.append(entry, { expectLastSeq: i - 1, msgId: `${farm}-${i}` }))).toEqual({ _tag: "Appended", seq: i })
        entries.set(i, entry)
        head = i
      }
      await waitFor(() => raw.got.length === 5 && follow.got.length === 5, 5000, "records 1..5")

      // the server goes away
      const stoppingAt = Date.now()
      await server.stop(signal)
      const stoppedAt = Date.now()

      // an append while it is down fails, typed, within its 2 s timeout (the client drops
      // what it buffered when it dials again: the append was not made); so does reading the head
      const six = { v: 1, i: 6 }
      const [down, downHead] = await Promise.all([
        Effect.runPromise(Effect.result(log.append(six, { expectLastSeq: 5, msgId: `${farm}-6` }))).then((r) => ({ r, ms: Date.now() - stoppedAt })),
        Effect.runPromise(Effect.result(log.lastSeq.pipe(Effect.timeout("8 seconds")))).then((r) => ({ r, ms: Date.now() - stoppedAt }))
      ])
      expect(down.r._tag).toBe("Failure")
      if (down.r._tag === "Failure") {
        expect(down.r.failure).toBeInstanceOf(LogError)
        expect(down.r.failure.op).toBe("append")
      }
      expect(down.ms).toBeLessThan(4000)
      expect(downHead.r._tag).toBe("Failure")
      if (downHead.r._tag === "Failure") expect(downHead.r.failure).toMatchObject({ _tag: "LogError", op: "last-seq" })

      // back on the same port and store
      const restartAt = Date.now()
      await server.start()
      const upMs = Date.now() - restartAt
      await waitFor(() => reconnects.length > 0, 5000, "the reconnect")
      const reconnectMs = reconnects[0] - restartAt

      // the decider retries the same decision (same message id, same expected sequence): made once
      const retried = await appendRetrying(log, six, { expectLastSeq: 5, msgId: `${farm}-6` }, 10_000)
      expect(["Appended", "Duplicate"]).toContain(retried.result._tag)
      expect((retried.result as { seq: number }).seq).toBe(6)
      entries.set(6, six)
      head = 6
      // and again: a duplicate of record 6, not a record 7
      expect(await Effect.runPromise(log.append(six, { expectLastSeq: 5, msgId: `${farm}-6` }))).toEqual({ _tag: "Duplicate", seq: 6 })

      // a decider that decided on what it saw before the restart loses: no double win
      const stale = await appendRetrying(otherLog, { v: 1, stale: true }, { expectLastSeq: 5, msgId: `${farm}-stale` }, 10_000)
      expect(stale.result).toEqual({ _tag: "Conflict", lastSeq: 6 })
      // two deciders at the same sequence after the restart: exactly one wins
      const a = { v: 1, i: 7, by: "a" }
      const b = { v: 1, i: 7, by: "b" }
      const [ra, rb] = await Promise.all([
        Effect.runPromise(log.append(a, { expectLastSeq: 6, msgId: `${farm}-7a` })),
        Effect.runPromise(otherLog.append(b, { expectLastSeq: 6, msgId: `${farm}-7b` }))
      ])
      expect([ra._tag, rb._tag].sort()).toEqual(["Appended", "Conflict"])
      const won = ra._tag === "Appended" ? { r: ra, entry: a } : { r: rb, entry: b }
      const lost = (ra._tag === "Conflict" ? ra : rb) as Extract<AppendResult, { _tag: "Conflict" }>
      expect(won.r).toEqual({ _tag: "Appended", seq: 7 })
      expect(lost.lastSeq).toBe(7)
      entries.set(7, won.entry)
      const eight = { v: 1, i: 8 }
      expect(await Effect.runPromise(otherLog.append(eight, { expectLastSeq: 7, msgId: `${farm}-8` }))).toEqual({ _tag: "Appended", seq: 8 })
      entries.set(8, eight)
      head = 8

      // both readers: every record once, in order, the ones after the restart included
      await waitFor(() => raw.got.length >= 8 && follow.got.length >= 8, 10_000, "records 1..8")
      await expectExactlyOnce([raw.got, follow.got], entries, 8)
      // the ordered consumer itself resumed: the raw reader (no watchdog) is still running
      expect(raw.fiber.pollUnsafe()).toBeUndefined()
      expect(await Effect.runPromise(log.lastSeq)).toBe(8)
      console.log(
        `${signal}: server stopped in ${stoppedAt - stoppingAt} ms; while down, append failed after ${down.ms} ms (${down.r._tag === "Failure" ? down.r.failure.message : ""}), ` +
          `lastSeq after ${downHead.ms} ms (${downHead.r._tag === "Failure" ? downHead.r.failure.message : ""}); ` +
          `server ready ${upMs} ms after start, client reconnected ${reconnectMs} ms after start; ` +
          `retried append answered after ${retried.ms} ms (${retried.result._tag}, errors: ${retried.errors.join("; ") || "none"}); ` +
          `follower log: ${logLines.map((l) => /op=(\S+)/.exec(l)?.[1]).join(",") || "none"}`
      )
    } finally {
      await Effect.runPromise(Fiber.interrupt(raw.fiber))
      await follow.close()
      process.stderr.write = write
    }
  })
})
