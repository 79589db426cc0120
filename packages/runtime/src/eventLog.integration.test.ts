import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Effect, Stream } from "effect"
import { jetstreamManager } from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/transport-node"
import { applyEntry, type Command, decide, initialState } from "@vipfarm/domain"
import { operatorCause } from "@vipfarm/domain/testkit"
import { Result } from "effect"
import { connectNats, ensureStream, makeNatsEventLog, streamNames } from "./eventLog.ts"

// A real nats-server with JetStream on 127.0.0.1:4222 (the machine's, or the one scripts/test.sh starts).
const farm = `itest-${process.pid}-${Math.floor(Math.random() * 1e6)}`
let nc: NatsConnection

beforeAll(async () => {
  nc = await Effect.runPromise(connectNats({ servers: ["nats://127.0.0.1:4222"], name: "vipfarm-itest" }))
  await Effect.runPromise(ensureStream(nc, farm))
})

afterAll(async () => {
  const jsm = await jetstreamManager(nc)
  await jsm.streams.delete(streamNames(farm).stream).catch(() => undefined)
  await nc.drain()
})

const cause = operatorCause("itest")

describe("event log on JetStream", () => {
  it("appends conditionally: of two deciders at the same sequence only one wins; retries dedupe", async () => {
    const log = makeNatsEventLog(nc, farm)
    const last = await Effect.runPromise(log.lastSeq)
    expect(last).toBe(0)
    const a = { v: 1, events: [{ _tag: "MemberJoined", v: 1, cause, node: "s1", address: "198.18.0.1", weight: 100, priority: 1, rulesDigest: "d", incarnation: 1 }] }
    const b = { v: 1, events: [{ _tag: "MemberJoined", v: 1, cause, node: "s2", address: "198.18.0.2", weight: 100, priority: 2, rulesDigest: "d", incarnation: 1 }] }
    const [ra, rb] = await Promise.all([
      Effect.runPromise(log.append(a, { expectLastSeq: 0, msgId: `${farm}-a` })),
      Effect.runPromise(log.append(b, { expectLastSeq: 0, msgId: `${farm}-b` }))
    ])
    const tags = [ra._tag, rb._tag].sort()
    expect(tags).toEqual(["Appended", "Conflict"])
    const conflict = [ra, rb].find((r) => r._tag === "Conflict")!
    expect(conflict).toEqual({ _tag: "Conflict", lastSeq: 1 })
    // the same decision retried with its message id is recognised as a duplicate
    const winner = ra._tag === "Appended" ? { entry: a, id: `${farm}-a` } : { entry: b, id: `${farm}-b` }
    const again = await Effect.runPromise(log.append(winner.entry, { expectLastSeq: 0, msgId: winner.id }))
    expect(again).toEqual({ _tag: "Duplicate", seq: 1 })
    expect(await Effect.runPromise(log.lastSeq)).toBe(1)
  })

  it("replays every record in order and folds to the state the deciders built", async () => {
    const log = makeNatsEventLog(nc, farm)
    let state = initialState(farm)
    // fold what is there, then decide and append more, as servers do
    const existing = await Effect.runPromise(log.records(1).pipe(Stream.take(1), Stream.runCollect))
    for (const r of existing) state = applyEntry(state, r.entry)
    const cmds: Array<Command> = [
      { _tag: "Join", node: "s3", address: "198.18.0.3", weight: 100, priority: 3, rulesDigest: "d", cause },
      { _tag: "Ready", node: "s3", cause }
    ]
    let seq = 1
    for (const c of cmds) {
      const d = decide(c, state)
      expect(Result.isSuccess(d)).toBe(true)
      if (Result.isFailure(d)) return
      const record = { v: 1, events: d.success }
      const r = await Effect.runPromise(log.append(record, { expectLastSeq: seq, msgId: `${farm}-${seq}` }))
      expect(r._tag).toBe("Appended")
      seq++
      state = applyEntry(state, JSON.parse(JSON.stringify(record)))
    }
    // a malformed record in the stream is delivered, rejected and counted, never folded
    const bad = await Effect.runPromise(log.append({ v: 1, events: [{ _tag: "MemberReady", v: 1 }] }, { expectLastSeq: seq, msgId: `${farm}-bad` }))
    expect(bad._tag).toBe("Appended")
    const all = await Effect.runPromise(log.records(1).pipe(Stream.take(4), Stream.runCollect, Effect.timeout("5 seconds")))
    const records = Array.from(all)
    expect(records.map((r) => r.seq)).toEqual([1, 2, 3, 4])
    let replay = initialState(farm)
    for (const r of records) replay = applyEntry(replay, r.entry)
    expect(replay.rejected).toBe(1)
    expect({ ...replay, rejected: 0, lastRejection: null, seq: 3 }).toEqual(state)
    expect(replay.tables[0].every((b) => b.owner !== null)).toBe(true)
  })
})

describe("direct reads (a reader that lost its consumer catches up without one)", () => {
  it("reads a record by sequence from any replica; past the head there is none", async () => {
    const log = makeNatsEventLog(nc, farm)
    const last = await Effect.runPromise(log.lastSeq)
    expect(last).toBeGreaterThan(0)
    const streamed = await Effect.runPromise(log.records(1).pipe(Stream.take(last), Stream.runCollect, Effect.timeout("5 seconds")))
    for (const r of streamed) expect(await Effect.runPromise(log.read(r.seq))).toEqual(r)
    expect(await Effect.runPromise(log.read(last + 1))).toBeUndefined()
  })

  it("a stream made without direct reads gets them from ensureStream", async () => {
    const old = `${farm}-old`
    const { stream, subject } = streamNames(old)
    const jsm = await jetstreamManager(nc)
    await jsm.streams.add({ name: stream, subjects: [subject], num_replicas: 1 })
    try {
      expect((await jsm.streams.info(stream)).config.allow_direct).not.toBe(true)
      await Effect.runPromise(ensureStream(nc, old))
      expect((await jsm.streams.info(stream)).config.allow_direct).toBe(true)
      const log = makeNatsEventLog(nc, old)
      const r = await Effect.runPromise(log.append({ v: 1, events: [] }, { expectLastSeq: 0, msgId: `${old}-1` }))
      expect(r).toEqual({ _tag: "Appended", seq: 1 })
      expect(await Effect.runPromise(log.read(1))).toEqual({ seq: 1, entry: { v: 1, events: [] } })
    } finally {
      await jsm.streams.delete(stream).catch(() => undefined)
    }
  })
})
