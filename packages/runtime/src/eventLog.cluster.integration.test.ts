/**
 * The event log on a 3-node NATS cluster of the test's own (loopback, free ports, temp store;
 * never the shared server on :4222), R3 stream as the daemon makes it, when the node that holds
 * a reader's consumer is killed and later restarted. An ordered consumer is R1 and in memory on
 * one node: nats.js recreates it only when its info answers "consumer not found", and the info
 * of a consumer whose node died times out, so nats.js alone waits for that node to return. The
 * log's reader fails with a typed stall instead, and a reader that re-subscribes from what it
 * has (as the daemon's follower does) gets every record exactly once, in order.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Effect, Exit, Stream } from "effect"
import { type ConsumerInfo, jetstreamManager } from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/transport-node"
import { connectNats, ensureStream, type EventLog, type LogRecord, makeNatsEventLog, streamNames } from "./eventLog.ts"
import { expectExactlyOnce, follower, freePort, sleep, testDir, testNatsServer, type TestNatsServer, waitFor } from "./natsTestServer.ts"

const tmp = testDir("vipfarm-cluster-")
let servers: Array<TestNatsServer> = []
const conns: Array<NatsConnection> = []

beforeAll(async () => {
  const ports = [await freePort(), await freePort(), await freePort()]
  const routes = [await freePort(), await freePort(), await freePort()]
  servers = ports.map((port, i) =>
    testNatsServer({ name: `n${i + 1}`, dir: tmp.dir, port, cluster: { port: routes[i], routes: routes.filter((_, j) => j !== i) } })
  )
  await Promise.all(servers.map((s) => s.start()))
})

afterAll(async () => {
  for (const nc of conns) await nc.close().catch(() => undefined)
  await Promise.all(servers.map((s) => s.stop("SIGKILL")))
  tmp.remove()
})


/** Retry an effect failing with LogError until it succeeds (bounded); the errors seen on the way. */
const retrying = async <A>(what: string, eff: Effect.Effect<A, { readonly message: string }>, ms: number) => {
  const started = Date.now()
  const errors: Array<string> = []
  for (;;) {
    const r = await Effect.runPromise(Effect.result(eff))
    if (r._tag === "Success") return { value: r.success, errors, ms: Date.now() - started }
    if (!errors.includes(r.failure.message)) errors.push(r.failure.message)
    if (Date.now() - started > ms) throw new Error(`${what} failed for ${ms} ms: ${errors.join("; ")}`)
    await sleep(100)
  }
}

/** A reader without the follower's watchdog: records() from the last record it has, again when it fails. */
const resubscribingReader = (log: EventLog["Service"]) => {
  const got: Array<LogRecord> = []
  const failures: Array<{ at: number; message: string }> = []
  let stopped = false
  const done = (async () => {
    while (!stopped) {
      const from = got.length === 0 ? 1 : got[got.length - 1].seq + 1
      const exit = await Effect.runPromiseExit(log.records(from).pipe(Stream.runForEach((r) => Effect.sync(() => void got.push(r)))))
      if (stopped) return
      if (Exit.isFailure(exit)) failures.push({ at: Date.now(), message: String(exit.cause) })
      await sleep(200)
    }
  })()
  return { got, failures, stop: () => void (stopped = true), done }
}


describe("the log on a 3-node NATS cluster", () => {
  it("the node holding a reader's consumer dies and returns: a typed stall, then every record once and in order", async () => {
    const farm = "cluster"
    const { stream } = streamNames(farm)
    const nc = await Effect.runPromise(connectNats({ servers: servers.map((s) => s.url), name: "itest" }))
    conns.push(nc)
    // the meta leader is elected a few seconds after the nodes start
    await retrying("ensure-stream", ensureStream(nc, farm, 3), 20_000)
    const log = makeNatsEventLog(nc, farm)
    const entries = new Map<number, unknown>()
    let head = 0
    const append = async (i: number, ms = 20_000) => {
      const entry = { v: 1, i }
      const r = await retrying(`append ${i}`, log.append(entry, { expectLastSeq: i - 1, msgId: `${farm}-${i}` }), ms)
      expect(["Appended", "Duplicate"]).toContain(r.value._tag)
      expect((r.value as { seq: number }).seq).toBe(i)
      entries.set(i, entry)
      head = i
      return r
    }
    for (let i = 1; i <= 3; i++) await append(i)

    const reader = resubscribingReader(log)
    await waitFor(() => reader.got.length === 3, 10_000, "records 1..3")
    // the node holding the reader's ordered consumer (the only consumer so far)
    const jsm = await jetstreamManager(nc)
    const consumers: Array<ConsumerInfo> = []
    for await (const ci of jsm.consumers.list(stream)) consumers.push(ci)
    expect(consumers.length).toBe(1)
    const victim = servers.find((s) => s.name === consumers[0].cluster?.leader)
    expect(victim).toBeDefined()
    if (victim === undefined) return
    // the daemon's follower, with its own consumer (on any node)
    const follow = await follower(log, () => head)
    try {
      await waitFor(() => follow.got.length === 3, 10_000, "the follower's records 1..3")
      const killedAt = Date.now()
      await victim.stop("SIGKILL")

      // appends go on once the stream has a leader among the two left (errors on the way are typed)
      const during = [await append(4), await append(5), await append(6)]
      const appendsBackMs = Date.now() - killedAt
      // a decision on the log as it was before the failover loses
      const stale = await retrying("stale append", log.append({ v: 1, stale: true }, { expectLastSeq: 3, msgId: `${farm}-stale` }), 10_000)
      expect(stale.value).toEqual({ _tag: "Conflict", lastSeq: 6 })

      // the reader's consumer died with its node: the reader fails, typed, and its next consumer delivers
      await waitFor(() => reader.failures.length > 0, 15_000, "the stalled reader to fail")
      const stallMs = reader.failures[0].at - killedAt
      expect(reader.failures[0].message).toContain("LogError")
      await waitFor(() => reader.got.length >= 6 && follow.got.length >= 6, 15_000, "records 4..6")
      const caughtUpMs = Date.now() - killedAt

      // the node returns (same port, same store) and more records come
      await victim.start()
      await append(7)
      await append(8)
      await waitFor(() => reader.got.length >= 8 && follow.got.length >= 8, 15_000, "records 7..8")
      await expectExactlyOnce([reader.got, follow.got], entries, 8)
      console.log(
        `cluster: killed ${victim.name} (the reader's consumer); appends back after ${appendsBackMs} ms ` +
          `(errors: ${during.flatMap((d) => d.errors).join("; ") || "none"}); reader failed after ${stallMs} ms ` +
          `(${reader.failures.map((f) => f.message.split("\n")[0]).join(" | ")}); both readers had 4..6 after ${caughtUpMs} ms`
      )
    } finally {
      reader.stop()
      await follow.close()
      await Promise.race([reader.done, sleep(5000)])
    }
  })
})
