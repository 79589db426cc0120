import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Effect, Result } from "effect"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { request } from "node:http"
import { tmpdir } from "node:os"
import { spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import {
  addressWords, bucketOf, type Command, chainedRecord, decide, farmSeed, foldLog, initialState, openHandoffs, recordHash, applyEntry, type FarmState
} from "@vipfarm/domain"
import { AuditModel, type AuditRecord, stateView } from "./model.ts"
import { exportLine, parseExport } from "./source.ts"
import { type AuditServer, parseListen, startAuditServer } from "./server.ts"
import { exportSource, verifyFile } from "./run.ts"

const FARM = "audit-test"
const T0 = Date.UTC(2025, 0, 1, 14, 0, 0)
const cause = (by: string) => ({ kind: "daemon" as const, by })
const vips = [{ address: "198.18.0.100", rules: [{ proto: "tcp" as const, ports: [80], affinity: "client-ip" as const }] }]

/** A chained log written the way the daemons write it: decide on the folded state, append a batch with prev. */
const buildLog = () => {
  const records: Array<AuditRecord> = []
  let st: FarmState = initialState(FARM)
  let prev = ""
  const append = (cmd: Command) => {
    const d = decide(cmd, st)
    if (Result.isFailure(d) || d.success.length === 0) return false
    const entry = chainedRecord(d.success, prev)
    records.push({ seq: records.length + 1, time: T0 + records.length * 1000, entry })
    prev = recordHash(entry)
    st = applyEntry(st, entry)
    return true
  }
  const settle = () => {
    for (let i = 0; i < 20; i++) {
      const open = openHandoffs(st)
      if (open.length === 0 && !append({ _tag: "Rebalance", cause: cause("s1") })) return
      for (const h of open) append({ _tag: "CompleteHandoff", handoff: h, cause: cause("s1") })
    }
  }
  append({ _tag: "Configure", vips, cause: { kind: "config", by: "s1", detail: "/etc/vipfarm/farm.yaml" } })
  for (const n of ["s1", "s2", "s3"]) {
    append({ _tag: "Join", node: n, address: `198.18.0.1${n.slice(1)}`, weight: 100, priority: 100, rulesDigest: "x", cause: cause(n) })
    append({ _tag: "Ready", node: n, cause: cause(n) })
    settle()
  }
  // a long stretch of weight changes, so that time travel crosses the model's checkpoints
  for (let i = 0; i < 150; i++) append({ _tag: "SetWeight", node: "s3", weight: 100 + (i % 2), cause: { kind: "operator", by: "ops" } })
  settle()
  const beforeFailure = records.length
  append({ _tag: "DeclareFailed", node: "s2", by: "s1", cause: cause("s1") })
  settle()
  return { records, beforeFailure }
}

const { records, beforeFailure } = buildLog()
const model = new AuditModel(FARM)
for (const r of records) model.add(r)

/** A client address whose bucket s2 owned before it failed. */
const clientOfS2 = (() => {
  const st = model.stateAt(beforeFailure)
  for (let i = 1; i < 255; i++) {
    const a = `198.18.1.${i}`
    const b = bucketOf("client-ip", { src: addressWords(a), dst: addressWords("198.18.0.100"), sport: 0, dport: 80, packetId: 0, fragment: false }, farmSeed(FARM))
    if (st.tables[0][b].owner === "s2") return { address: a, bucket: b }
  }
  throw new Error("no client of s2")
})()

describe("the audit model", () => {
  it("builds a realistic log: a verified chain, every record folded", () => {
    expect(records.length).toBeGreaterThan(160)
    expect(model.chain()).toMatchObject({ ok: true, count: records.length, lastSeq: records.length })
    expect(model.head.rejected).toBe(0)
    expect(model.head.members.find((m) => m.name === "s2")?.status).toBe("down")
  })

  it("the state at seq N is foldLog of the first N records, for every N", () => {
    let st = initialState(FARM)
    expect(model.stateAt(0)).toEqual(st)
    for (let n = 1; n <= records.length; n++) {
      st = applyEntry(st, records[n - 1].entry)
      expect(model.stateAt(n)).toEqual(st)
    }
    for (const n of [1, 7, 128, 129, beforeFailure, records.length]) expect(model.stateAt(n)).toEqual(foldLog(initialState(FARM), records.slice(0, n).map((r) => r.entry)))
  })

  it("the timeline gives every event with its cause, filtered by server, bucket and time", () => {
    const all = model.timeline({ limit: 100000 })
    expect(all.total).toBe(records.reduce((n, r) => n + (r.entry as { events: Array<unknown> }).events.length, 0))
    const failed = all.events.find((e) => e.tag === "MemberFailed")!
    expect(failed).toMatchObject({ seq: beforeFailure + 1, cause: { kind: "daemon", by: "s1" } })
    expect(failed.summary).toMatch(/s2 failed .*detected by s1/)
    const s2 = model.timeline({ node: "s2", limit: 100000 }).events
    expect(s2.every((e) => e.nodes.includes("s2"))).toBe(true)
    expect(s2.some((e) => e.tag === "MemberJoined")).toBe(true)
    const bucket = model.timeline({ bucket: clientOfS2.bucket }).events
    expect(bucket.some((e) => e.tag === "MemberFailed")).toBe(true)
    expect(bucket.every((e) => e.tag !== "WeightChanged")).toBe(true)
    const window = model.timeline({ from: T0 + 5000, to: T0 + 9000 }).events
    expect(new Set(window.map((e) => e.seq))).toEqual(new Set([6, 7, 8, 9, 10]))
  })

  it("explains a client: its bucket by the domain hash, and every change of that bucket's owner with its cause", () => {
    const c = model.client(clientOfS2.address)
    expect(c.rules).toHaveLength(1)
    const rule = c.rules[0]
    expect(rule.bucket).toBe(clientOfS2.bucket)
    expect(rule.owner?.owner).not.toBe("s2")
    const failure = rule.history.find((h) => h.seq === beforeFailure + 1)!
    expect(failure.before.owner).toBe("s2")
    expect(failure.events[0]).toMatchObject({ tag: "MemberFailed", cause: { by: "s1" } })
    // every change listed really changed the bucket, and none is missing
    let last = initialState(FARM).tables[0][clientOfS2.bucket]
    const changed: Array<number> = []
    for (let n = 1; n <= records.length; n++) {
      const b = model.stateAt(n).tables[0]?.[clientOfS2.bucket]
      if (b !== undefined && JSON.stringify(b) !== JSON.stringify(last)) changed.push(n)
      if (b !== undefined) last = b
    }
    expect(rule.history.map((h) => h.seq)).toEqual(changed)
    // each change names only the events that made it
    for (const h of rule.history) {
      expect(h.events.length).toBeGreaterThan(0)
      for (const e of h.events) if (e.tag === "HandoffStarted") expect(e.summary).toMatch(/hand-off/)
      expect(h.events.every((e) => e.tag !== "WeightChanged")).toBe(true)
    }
    expect(() => model.client("not-an-address")).toThrow(/not an IP address/)
  })
})

describe("bucket history in a batch", () => {
  it("names only the events of a record that changed the bucket", () => {
    const m = new AuditModel(FARM)
    const c = cause("s1")
    const join = (n: string) => ({ _tag: "MemberJoined", v: 1, cause: c, node: n, address: "10.0.0.1", weight: 100, priority: 100, rulesDigest: "x", incarnation: 1 })
    const ready = (n: string) => ({ _tag: "MemberReady", v: 1, cause: c, node: n })
    const entries = [
      { v: 1, events: [join("s1"), join("s2"), ready("s1"), ready("s2")] },
      { v: 1, events: [{ _tag: "HandoffStarted", v: 1, cause: c, handoff: "h1", mode: "takeover", moves: [{ table: 0, bucket: 5, from: null, to: "s1" }, { table: 0, bucket: 6, from: null, to: "s2" }] }] },
      { v: 1, events: [
        { _tag: "HandoffStarted", v: 1, cause: c, handoff: "h2", mode: "graceful", moves: [{ table: 0, bucket: 6, from: "s2", to: "s1" }] },
        { _tag: "WeightChanged", v: 1, cause: { kind: "operator", by: "ops" }, node: "s2", weight: 50 }
      ] }
    ]
    entries.forEach((entry, i) => m.add({ seq: i + 1, time: null, entry }))
    expect(m.head.rejected).toBe(0)
    const h6 = m.bucketHistory(0, 6)
    expect(h6.map((h) => [h.seq, h.events.map((e) => e.tag)])).toEqual([[2, ["HandoffStarted"]], [3, ["HandoffStarted"]]])
    expect(h6[1].after).toEqual({ owner: "s2", state: "moving", to: "s1", handoff: "h2" })
    expect(m.bucketHistory(0, 5).map((h) => h.seq)).toEqual([2])
  })
})

describe("export and verify", () => {
  const dir = mkdtempSync(`${tmpdir()}/vipfarm-audit-`)

  it("round-trips records through the export format and verifies them; a tampered line names its seq", async () => {
    const file = `${dir}/log.jsonl`
    writeFileSync(file, records.map((r) => exportLine(FARM, r) + "\n").join(""))
    const parsed = parseExport(readFileSync(file, "utf8"))
    expect(parsed.farm).toBe(FARM)
    expect(parsed.records).toEqual(records)
    expect(await Effect.runPromise(verifyFile(file))).toMatchObject({ ok: true, count: records.length })
    // re-export from the file source gives the same bytes
    await Effect.runPromise(exportSource({ _tag: "File", file, farm: null }, `${dir}/again.jsonl`))
    expect(readFileSync(`${dir}/again.jsonl`, "utf8")).toBe(readFileSync(file, "utf8"))

    const lines = readFileSync(file, "utf8").trimEnd().split("\n")
    const tampered = JSON.parse(lines[9])
    tampered.record.events[0].cause.by = "mallory"
    lines[9] = JSON.stringify(tampered)
    writeFileSync(`${dir}/bad.jsonl`, lines.join("\n") + "\n")
    const r = await Effect.runPromise(verifyFile(`${dir}/bad.jsonl`))
    expect(r).toMatchObject({ ok: false, firstBad: 11 })
    expect(r.reason).toMatch(/seq 11: prev does not match the hash of seq 10/)
  })

  // the chain alone verifies a log cut short or rewritten with recomputed hashes: the recorded head catches both
  const recordedHead = { seq: records.length, head: recordHash(records.at(-1)!.entry) }
  const writeExport = (name: string, rs: ReadonlyArray<AuditRecord>) => {
    writeFileSync(`${dir}/${name}`, rs.map((r) => exportLine(FARM, r) + "\n").join(""))
    return `${dir}/${name}`
  }
  /** The whole log rewritten: one event changed, every prev after it recomputed. */
  const rewritten = (() => {
    let prev = ""
    return records.map((r, i) => {
      const old = r.entry as { events: Array<{ cause?: { by?: string } }> }
      const events = i === 20 ? old.events.map((e, j) => (j === 0 ? { ...e, cause: { ...e.cause, by: "mallory" } } : e)) : old.events
      const entry = chainedRecord(events, prev)
      prev = recordHash(entry)
      return { ...r, entry }
    })
  })()

  it("a truncated tail verifies alone but not against the recorded seq", async () => {
    const file = writeExport("short.jsonl", records.slice(0, records.length - 5))
    expect(await Effect.runPromise(verifyFile(file))).toMatchObject({ ok: true, anchor: null })
    const bySeq = await Effect.runPromise(verifyFile(file, { seq: recordedHead.seq, head: null }))
    expect(bySeq.ok).toBe(false)
    expect(bySeq.firstBad).toBeUndefined()
    expect(bySeq.anchor?.reason).toBe(`the log ends at seq ${records.length - 5} but the recorded head is seq ${records.length}: records ${records.length - 4}..${records.length} were cut off`)
    const byHead = await Effect.runPromise(verifyFile(file, { seq: null, head: recordedHead.head }))
    expect(byHead).toMatchObject({ ok: false, anchor: { ok: false, seq: null } })
    expect(byHead.anchor?.reason).toMatch(/^no record hashes to the recorded head/)
  })

  it("a rewritten stream with recomputed hashes verifies alone but not against the recorded head", async () => {
    const file = writeExport("rewritten.jsonl", rewritten)
    const alone = await Effect.runPromise(verifyFile(file))
    expect(alone.ok).toBe(true)
    expect(alone.head).not.toBe(recordedHead.head)
    const r = await Effect.runPromise(verifyFile(file, recordedHead))
    expect(r).toMatchObject({ ok: false, anchor: { ok: false } })
    expect(r.anchor?.reason).toMatch(new RegExp(`^seq ${recordedHead.seq} hashes to [0-9a-f]{16}…, not the recorded head ${recordedHead.head.slice(0, 16)}…: the log up to seq ${recordedHead.seq} was rewritten$`))
  })

  it("the untouched log, grown since the head was recorded, verifies against it", async () => {
    const file = writeExport("grown.jsonl", records)
    const older = { seq: 30, head: recordHash(records[29].entry) }
    expect(await Effect.runPromise(verifyFile(file, older))).toMatchObject({ ok: true, anchor: { ok: true, seq: 30 } })
    expect(await Effect.runPromise(verifyFile(file, { seq: null, head: older.head }))).toMatchObject({ ok: true, anchor: { ok: true, seq: 30 } })
    expect(await Effect.runPromise(verifyFile(file, recordedHead))).toMatchObject({ ok: true, anchor: { ok: true, seq: recordedHead.seq } })
    // a malformed anchor names its flag
    const bad = await Effect.runPromise(Effect.result(verifyFile(file, { seq: null, head: "abc" })))
    expect(Result.isFailure(bad) && bad.failure.message).toMatch(/^--expect-head: expected 64 lower-case hex digits/)
  })

  it("farm audit --verify --expect-head --json: exit 1 and the anchor's reason for a rewritten log, exit 0 for the real one", () => {
    const bin = fileURLToPath(new URL("../../../cli/bin/farm.mjs", import.meta.url))
    const run = (file: string) => spawnSync(process.execPath, [bin, "audit", "--verify", file, "--expect-seq", String(recordedHead.seq), "--expect-head", recordedHead.head, "--json"], { encoding: "utf8", timeout: 60_000 })
    const good = run(writeExport("cli-good.jsonl", records))
    expect(good.status, good.stderr).toBe(0)
    expect(JSON.parse(good.stdout)).toMatchObject({ ok: true, head: recordedHead.head, lastSeq: recordedHead.seq, anchor: { ok: true, seq: recordedHead.seq } })
    const bad = run(writeExport("cli-bad.jsonl", rewritten))
    expect(bad.status).toBe(1)
    expect(JSON.parse(bad.stdout)).toMatchObject({ ok: false, anchor: { ok: false } })
    expect(bad.stderr).toMatch(/chain verifies .* but not against the recorded head: seq \d+ hashes to/)
  }, 90_000)
})

describe("the audit HTTP API", () => {
  let server: AuditServer
  const get = (path: string, headers: Record<string, string> = {}) =>
    new Promise<{ status: number; body: string; headers: Record<string, unknown> }>((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port: server.port, path, headers }, (res) => {
        let body = ""
        res.on("data", (c) => (body += c))
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }))
      })
      req.on("error", reject)
      req.end()
    })
  const getJson = async (path: string) => JSON.parse((await get(path)).body)

  beforeAll(async () => {
    server = await startAuditServer(model, { host: "127.0.0.1", port: 0, token: null, source: "test" })
  })
  afterAll(() => server.close())

  it("serves the page and its assets, self-contained, with a strict CSP", async () => {
    const page = await get("/")
    expect(page.status).toBe(200)
    expect(page.headers["content-security-policy"]).toMatch(/default-src 'none'/)
    expect(page.body).not.toMatch(/https?:\/\//)
    const js = await get("/app.js")
    expect(js.body).toMatch(/EventSource/)
    expect(js.body).not.toMatch(/innerHTML/)
  })

  it("/api/state?seq=N is the view of foldLog of the first N records", async () => {
    for (const n of [0, 3, beforeFailure, records.length]) {
      const st = foldLog(initialState(FARM), records.slice(0, n).map((r) => r.entry))
      expect(await getJson(`/api/state?seq=${n}`)).toEqual(JSON.parse(JSON.stringify(stateView(st, n, n === 0 ? null : records[n - 1].time))))
    }
    const before = await getJson(`/api/state?seq=${beforeFailure}`)
    expect(before.members.map((m: { status: string }) => m.status)).toEqual(["up", "up", "up"])
    const byTime = await getJson(`/api/state?time=${new Date(records[beforeFailure - 1].time!).toISOString()}`)
    expect(byTime.seq).toBe(beforeFailure)
  })

  it("/api/client and /api/bucket explain a move; /api/info shows the chain", async () => {
    const c = await getJson(`/api/client?address=${clientOfS2.address}`)
    expect(c.rules[0].bucket).toBe(clientOfS2.bucket)
    expect(c.rules[0].history.some((h: { events: Array<{ tag: string }> }) => h.events.some((e) => e.tag === "MemberFailed"))).toBe(true)
    expect((await get("/api/client?address=nope")).status).toBe(400)
    const b = await getJson(`/api/bucket?bucket=${clientOfS2.bucket}`)
    expect(b.history).toEqual(JSON.parse(JSON.stringify(model.bucketHistory(0, clientOfS2.bucket))))
    expect(await getJson("/api/info")).toMatchObject({ farm: FARM, headSeq: records.length, chain: { ok: true } })
    const tl = await getJson("/api/timeline?node=s2&limit=5")
    expect(tl.events).toHaveLength(5)
  })

  it("on loopback refuses a Host that is not loopback (DNS rebinding)", async () => {
    expect((await get("/api/info", { host: "evil.example:80" })).status).toBe(403)
    expect((await get("/api/info", { host: `localhost:${server.port}` })).status).toBe(200)
  })

  it("with a token, every request needs it (query, bearer or the cookie the page sets)", async () => {
    const s = await startAuditServer(model, { host: "127.0.0.1", port: 0, token: "s3cret", source: "test" })
    const call = (path: string, headers: Record<string, string> = {}) =>
      new Promise<{ status: number; cookie: string | undefined }>((resolve, reject) => {
        const req = request({ host: "127.0.0.1", port: s.port, path, headers }, (res) => {
          res.resume()
          res.on("end", () => resolve({ status: res.statusCode ?? 0, cookie: res.headers["set-cookie"]?.[0] }))
        })
        req.on("error", reject)
        req.end()
      })
    try {
      expect(s.url).toMatch(/\?token=s3cret$/)
      for (const p of ["/", "/app.js", "/api/info", "/api/state?seq=1", "/api/live", "/api/export"]) expect((await call(p)).status).toBe(401)
      expect((await call("/api/info?token=wrong")).status).toBe(401)
      const page = await call("/?token=s3cret")
      expect(page.status).toBe(200)
      expect(page.cookie).toMatch(/^vipfarm_audit=s3cret; HttpOnly; SameSite=Strict/)
      expect((await call("/api/info", { cookie: "vipfarm_audit=s3cret" })).status).toBe(200)
      expect((await call("/api/info", { authorization: "Bearer s3cret" })).status).toBe(200)
    } finally {
      await s.close()
    }
    await expect(startAuditServer(model, { host: "0.0.0.0", port: 0, token: null, source: "test" })).rejects.toThrow(/token is required/)
    expect(parseListen("0.0.0.0:8700")).toEqual({ host: "0.0.0.0", port: 8700 })
    expect(parseListen("[::1]:9")).toEqual({ host: "::1", port: 9 })
    expect(() => parseListen("nope")).toThrow(/ADDR:PORT/)
  })

  it("streams a head event when records arrive", async () => {
    const live = new AuditModel(FARM)
    const s = await startAuditServer(live, { host: "127.0.0.1", port: 0, token: null, source: "test" })
    try {
      const heads: Array<number> = []
      await new Promise<void>((resolve, reject) => {
        const req = request({ host: "127.0.0.1", port: s.port, path: "/api/live" }, (res) => {
          res.setEncoding("utf8")
          res.on("data", (chunk: string) => {
            for (const m of chunk.matchAll(/event: head\ndata: (.*)\n/g)) heads.push(JSON.parse(m[1]).seq)
            if (heads.length === 1) for (const r of records.slice(0, 3)) live.add(r)
            if (heads.includes(3)) { req.destroy(); resolve() }
          })
        })
        req.on("error", (e) => (heads.includes(3) ? resolve() : reject(e)))
        req.end()
      })
      expect(heads[0]).toBe(0)
      expect(heads.at(-1)).toBe(3)
    } finally {
      await s.close()
    }
  })
})
