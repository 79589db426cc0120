import { describe, expect, it } from "vitest"
import fc from "fast-check"
import { Effect, Result } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { applyEntry, initialState } from "@vipfarm/domain"
import { decodeFlowReport, decodeHeartbeat, decodeRecord, MAX_RECORD_BYTES, RejectionLog } from "./wire.ts"
import { EventStore, formatRecord, recordJsonLines } from "./events.ts"
import { callControl, serveControl } from "./control.ts"

const enc = new TextEncoder()
const bytes = (v: unknown) => enc.encode(typeof v === "string" ? v : JSON.stringify(v))
const deepText = (n: number) => "[".repeat(n) + "]".repeat(n)
const hb = { node: "s2", incarnation: 1, seq: 4, sentAt: 1000, echo: [["s1", 990]], suspects: [], done: ["join@3"] }

/** Values a hostile publisher may send: any JSON, deep nesting, huge strings, wrong types. */
const hostile = fc.oneof(
  fc.jsonValue({ maxDepth: 8 }).map((v) => JSON.stringify(v) ?? "null"),
  fc.integer({ min: 1, max: 200_000 }).map(deepText),
  fc.integer({ min: 1, max: 2_000_000 }).map((n) => JSON.stringify({ ...hb, node: "x".repeat(n) })),
  fc.string(),
  fc.uint8Array({ maxLength: 512 }).map((b) => new TextDecoder().decode(b)),
  fc.record({ node: fc.anything(), seq: fc.anything(), echo: fc.anything(), suspects: fc.anything(), done: fc.anything() }).map((v) => JSON.stringify(v) ?? "null")
)

describe("wire decoders", () => {
  it("decode a heartbeat and a flow report as sent, unknown fields kept", () => {
    const d = decodeHeartbeat(bytes({ ...hb, future: 1 }))
    expect(Result.isSuccess(d) && (d.success as unknown as { future: number }).future).toBe(1)
    const f = decodeFlowReport(bytes({ handoff: "h@1", to: "s1", flows: [{ family: 4, src: [198, 18, 0, 1], dst: [198, 18, 0, 100], sport: 1, dport: 5300 }] }))
    expect(Result.isSuccess(f)).toBe(true)
  })

  it("refuse, never throw: deep, huge, wrong types, not JSON", () => {
    fc.assert(fc.property(hostile, (text) => {
      const b = bytes(text)
      const h = decodeHeartbeat(b)
      const f = decodeFlowReport(b)
      if (Result.isFailure(h)) expect(h.failure.reason).toMatch(/^(limits|malformed):/)
      if (Result.isFailure(f)) expect(f.failure.reason).toMatch(/^(limits|malformed):/)
    }), { numRuns: 300 })
    expect(Result.isFailure(decodeHeartbeat(bytes({ ...hb, seq: "4" })))).toBe(true)
    expect(Result.isFailure(decodeHeartbeat(bytes({ ...hb, echo: [["s1", "x"]] })))).toBe(true)
    expect(Result.isFailure(decodeHeartbeat(bytes(deepText(100_000))))).toBe(true)
  })

  it("a record over the limits becomes a bounded stand-in every folder rejects the same way", () => {
    for (const text of [deepText(200_000), JSON.stringify({ v: 1, events: ["x".repeat(MAX_RECORD_BYTES)] }), "{not json", JSON.stringify({ v: 1, events: [{ a: "x".repeat(20_000) }] })]) {
      const e = decodeRecord(bytes(text)) as { malformed: string; bytes: number; sha256: string; preview: string }
      expect(e.malformed).toMatch(/^(limits|malformed):/)
      expect(e.sha256).toMatch(/^[0-9a-f]{64}$/)
      expect(e.preview.length).toBeLessThan(200)
      expect(decodeRecord(bytes(text))).toEqual(e)
      const s = applyEntry(initialState("web"), e)
      expect(s.rejected).toBe(1)
      expect(s.lastRejection?.reason).toBe(e.malformed)
      JSON.stringify(e) // serialisable
    }
  })

  it("logs a sender's rejections once per interval", () => {
    const emitted: Array<[string, number]> = []
    const r = new RejectionLog(1000, (k, n) => emitted.push([k, n]))
    for (let t = 0; t < 2500; t += 10) r.note("hb", t)
    r.note("other", 5)
    expect(emitted).toEqual([["hb", 0], ["hb", 99], ["hb", 99], ["other", 0]])
  })
})

describe("serving any record the log may hold", () => {
  it("events keep a rejected record as reason and bounded preview; text and JSON lines never throw", () => {
    const store = new EventStore()
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    store.add(1, { v: 1, events: [{ _tag: "MemberReady", v: 1, node: "s1", cause: { kind: "daemon", by: "s1" } }] })
    store.add(2, { v: 1, events: ["x".repeat(100_000)] }, 0, "limits: a string")
    store.add(3, cyclic, 0, "malformed")
    store.add(4, { v: 1, events: [{ _tag: "Weird", a: cyclic }] })
    const page = store.from(1)
    expect(page.records.map((r) => r.seq)).toEqual([1, 2, 3, 4])
    expect(String(page.records[1].entry).length).toBeLessThan(400)
    for (const r of page.records) {
      expect(formatRecord(r).length).toBeGreaterThan(0)
      expect(recordJsonLines(r).length).toBeGreaterThan(0)
    }
    expect(formatRecord(page.records[1])[0]).toMatch(/REJECTED\s+limits: a string/)
  })

  it("a page is bounded in bytes", () => {
    const store = new EventStore()
    for (let i = 1; i <= 40; i++) store.add(i, { v: 1, events: [{ _tag: "X", s: "y".repeat(1 << 20) }] })
    const page = store.from(1)
    expect(page.records.length).toBeGreaterThan(0)
    expect(page.records.length).toBeLessThan(40)
  })

  it("the control socket answers 500 for a body it cannot serialise, and keeps serving", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vipfarm-sec-ctl-"))
    const path = join(dir, "ctl.sock")
    let nested: unknown = 1
    for (let i = 0; i < 200_000; i++) nested = [nested]
    try {
      await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
        yield* serveControl(path, {
          status: () => ({ ok: true }),
          buckets: () => { throw new Error("boom") },
          drain: async () => ({}),
          resume: async () => ({}),
          events: () => ({ records: [{ seq: 1, entry: nested }] })
        })
        const events = yield* Effect.result(callControl(path, "GET", "/events?from=1"))
        expect(Result.isFailure(events) && events.failure.message).toMatch(/could not be serialised/)
        const buckets = yield* Effect.result(callControl(path, "GET", "/buckets"))
        expect(Result.isFailure(buckets) && buckets.failure.message).toMatch(/boom/)
        expect(yield* callControl(path, "GET", "/status")).toEqual({ ok: true })
      })))
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
