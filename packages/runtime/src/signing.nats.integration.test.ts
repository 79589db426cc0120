/**
 * Secure by default, on a nats-server of the test's own with per-server users (docs/security.md):
 * an unauthenticated client is refused; the daemon's refusal of an open server; a server's user
 * can do what a daemon does and not purge the log; a record signed by s1 that speaks for s2,
 * an unchained record and an unsigned one are rejected by a folder verifying against the
 * farm's keys, each counted in vipfarm_records_rejected_total and logged as op=log.rejected;
 * the records after them fold (the farm keeps going).
 */
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Exit, Stream } from "effect"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { jetstreamManager } from "@nats-io/jetstream"
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest"
import { applyEntry, EVENT_VERSION, initialState, recordHash, type FarmState, verdictOf } from "@vipfarm/domain"
import { ensureStream, makeNatsEventLog, requireAuthentication, streamNames } from "./eventLog.ts"
import { FarmMetrics } from "./metrics.ts"
import { freePort, NATS_SERVER } from "./natsTestServer.ts"
import { noteRejected } from "./rejections.ts"
import { generateKeys, loadSigner, signedEventLog, type Signer } from "./signing.ts"

const skip = existsSync(NATS_SERVER) ? null : `${NATS_SERVER} is not installed (apt-get install nats-server)`
if (skip) console.log(`signing NATS tests: skipped: ${skip}`)

const FARM = "sec1sign"
const { stream, subject } = streamNames(FARM)

/** What one server's NATS user may do (docs/security.md gives the same for farm FARM). */
export const serverPermissions = (farm: string) => {
  const { stream: s, subject: log } = streamNames(farm)
  return {
    publish: {
      allow: [
        log, `vipfarm.${farm}.hb`, `vipfarm.${farm}.udpflows`,
        "$JS.API.INFO", `$JS.API.STREAM.INFO.${s}`, `$JS.API.STREAM.CREATE.${s}`, `$JS.API.DIRECT.GET.${s}`,
        `$JS.API.CONSUMER.CREATE.${s}.>`, `$JS.API.CONSUMER.INFO.${s}.>`, `$JS.API.CONSUMER.MSG.NEXT.${s}.>`, `$JS.API.CONSUMER.DELETE.${s}.>`
      ]
    },
    subscribe: { allow: [`vipfarm.${farm}.hb`, `vipfarm.${farm}.udpflows`, "_INBOX.>"] }
  }
}

const cause = (by: string) => ({ kind: "daemon" as const, by })
const joined = (node: string, i: number) => ({ _tag: "MemberJoined", v: EVENT_VERSION, cause: cause(node), node, address: `198.18.0.${i}`, weight: 100, priority: 1, rulesDigest: "d", incarnation: 1 })

describe.skipIf(skip !== null)("a farm on an authenticated NATS with signed records", () => {
  const dir = mkdtempSync(join(tmpdir(), "vipfarm-sec-nats-"))
  let proc: ChildProcess
  let url = ""
  const natsLog = () => readFileSync(join(dir, "nats.log"), "utf8")
  const keys = { s1: generateKeys(), s2: generateKeys() }
  const publicKeys = { s1: keys.s1.publicPem, s2: keys.s2.publicBase64 }
  const signer = async (node: "s1" | "s2" | "folder"): Promise<Signer> => {
    const key = node === "folder" ? null : join(dir, `${node}.key`)
    if (key !== null) writeFileSync(key, keys[node as "s1" | "s2"].privatePem, { mode: 0o600 })
    return Effect.runPromise(loadSigner(node, { key, keys: publicKeys }, { needKey: node !== "folder" }))
  }
  const conns: Array<NatsConnection> = []
  const as = async (user: string) => {
    const nc = await connect({ servers: url, user, pass: `${user}pass`, timeout: 2000 })
    conns.push(nc)
    return nc
  }

  beforeAll(async () => {
    const port = await freePort()
    url = `nats://127.0.0.1:${port}`
    writeFileSync(join(dir, "nats.conf"), [
      `listen: 127.0.0.1:${port}`,
      `jetstream { store_dir: "${join(dir, "js")}" }`,
      `authorization { users: [`,
      `  { user: s1, password: s1pass, permissions: ${JSON.stringify(serverPermissions(FARM))} }`,
      `  { user: s2, password: s2pass, permissions: ${JSON.stringify(serverPermissions(FARM))} }`,
      `] }`,
      ""
    ].join("\n"))
    const fd = openSync(join(dir, "nats.log"), "a")
    proc = spawn(NATS_SERVER, ["-c", join(dir, "nats.conf")], { stdio: ["ignore", fd, fd] })
    for (let i = 0; i < 100 && !/Server is ready/.test(natsLog()); i++) await new Promise((r) => setTimeout(r, 50))
    expect(natsLog()).toMatch(/Server is ready/)
  })
  afterAll(async () => {
    for (const nc of conns) await nc.close().catch(() => undefined)
    proc?.kill("SIGTERM")
    await new Promise((r) => setTimeout(r, 200))
    rmSync(dir, { recursive: true, force: true })
  })

  it("refuses an unauthenticated client, and a wrong password", async () => {
    await expect(connect({ servers: url, timeout: 2000, maxReconnectAttempts: 0 })).rejects.toThrow(/authorization|auth/i)
    await expect(connect({ servers: url, user: "s1", pass: "nope", timeout: 2000, maxReconnectAttempts: 0 })).rejects.toThrow(/authorization|auth/i)
  })

  it("the daemon's check passes on this server and refuses an open one unless nats.insecure", async () => {
    const nc = await as("s1")
    expect(Exit.isSuccess(await Effect.runPromiseExit(requireAuthentication(nc, { servers: [url] })))).toBe(true)
    // the machine's shared NATS (127.0.0.1:4222) requires no authentication
    const open = await connect({ servers: "nats://127.0.0.1:4222", timeout: 2000 }).catch(() => null)
    if (open === null) return console.log("open NATS refusal: not checked: no NATS on 127.0.0.1:4222")
    conns.push(open)
    const refused = await Effect.runPromiseExit(requireAuthentication(open, { servers: ["nats://127.0.0.1:4222"] }))
    expect(Exit.isFailure(refused)).toBe(true)
    expect(JSON.stringify(refused)).toMatch(/does not require authentication.*nats\.insecure/)
    expect(Exit.isSuccess(await Effect.runPromiseExit(requireAuthentication(open, { servers: ["nats://127.0.0.1:4222"], insecure: true })))).toBe(true)
  })

  it("a server's user does what a daemon does and cannot purge or delete the log", async () => {
    const nc = await as("s1")
    await Effect.runPromise(ensureStream(nc, FARM))
    const jsm = await jetstreamManager(nc, { timeout: 2000 })
    await expect(jsm.streams.purge(stream)).rejects.toThrow()
    await expect(jsm.streams.delete(stream)).rejects.toThrow()
    expect((await jsm.streams.info(stream)).config.subjects).toEqual([subject])
  })

  it("rejects a record in another server's name, an unchained and an unsigned one; counts and logs each; folds what follows", async () => {
    const s1 = signedEventLog(makeNatsEventLog(await as("s1"), FARM), await signer("s1"))
    const s2 = signedEventLog(makeNatsEventLog(await as("s2"), FARM), await signer("s2"))
    const raw = makeNatsEventLog(await as("s2"), FARM) // s2's credentials, no signature
    const folder = signedEventLog(makeNatsEventLog(await as("s1"), FARM), await signer("folder"))
    const appended: Array<unknown> = [] // what each record's successor chains to, as a daemon's ChainTail
    let last = await Effect.runPromise(s1.lastSeq)
    expect(last).toBe(0)
    const append = async (log: typeof s1, events: ReadonlyArray<unknown>, prev: string | undefined) => {
      const entry = prev === undefined ? { v: 1, events } : { v: 1, events, prev }
      const r = await Effect.runPromise(log.append(entry, { expectLastSeq: last, msgId: `m${last}` }))
      expect(r._tag).toBe("Appended")
      last = (r as { seq: number }).seq
      appended.push((await Effect.runPromise(folder.read(last)))!.entry)
    }
    const head = () => recordHash(appended[appended.length - 1])
    await append(s1, [joined("s1", 1)], "")
    await append(s2, [joined("s2", 2)], head())
    // s1 writes s2's drain: s2's own fact, signed by s1
    await append(s1, [{ _tag: "DrainStarted", v: EVENT_VERSION, cause: cause("s1"), node: "s2" }], head())
    // an unchained record (no prev) once the chain started
    await append(s1, [{ _tag: "MemberReady", v: EVENT_VERSION, cause: cause("s1"), node: "s1" }], undefined)
    // an unsigned record with a server's credentials
    await append(raw, [{ _tag: "MemberReady", v: EVENT_VERSION, cause: cause("s2"), node: "s2" }], head())
    // the farm goes on: s1 and s2 get ready
    await append(s1, [{ _tag: "MemberReady", v: EVENT_VERSION, cause: cause("s1"), node: "s1" }], head())
    await append(s2, [{ _tag: "MemberReady", v: EVENT_VERSION, cause: cause("s2"), node: "s2" }], head())

    const metrics = new FarmMetrics({ node: "folder", farm: FARM } as never)
    const lines: Array<string> = []
    const spy = vi.spyOn(process.stderr, "write").mockImplementation((chunk) => (lines.push(String(chunk)), true))
    let st: FarmState = initialState(FARM)
    try {
      for (let seq = 1; seq <= last; seq++) {
        const r = (await Effect.runPromise(folder.read(seq)))!
        const before = st.rejected
        st = applyEntry(st, r.entry) // what ctl.onLogEntry does
        if (st.rejected !== before) noteRejected("folder", r, st.lastRejection!.reason, metrics)
      }
    } finally {
      spy.mockRestore()
    }
    expect(st.rejected).toBe(3)
    expect(st.members.map((m) => `${m.name}:${m.status}`)).toEqual(["s1:up", "s2:up"])
    const rejected = lines.filter((l) => l.includes("op=log.rejected"))
    expect(rejected).toHaveLength(3)
    expect(rejected[0]).toMatch(/seq=3 by=s1 kind=author reason="events\[0\]: author: DrainStarted of s2 signed by s1/)
    expect(rejected[1]).toMatch(/seq=4 by=s1 kind=chain reason=.*no prev/)
    expect(rejected[2]).toMatch(/seq=5 by="" kind=signature reason="signature: unsigned record/)
    // a daemon's ordered consumer works with these permissions, and carries the same verdicts
    const consumed = await Effect.runPromise(folder.records(1).pipe(Stream.take(last), Stream.runCollect, Effect.timeout("10 seconds")))
    expect(Array.from(consumed).map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6, 7])
    expect(verdictOf(Array.from(consumed)[2].entry)).toEqual({ _tag: "Signed", by: "s1" })
    const text = await metrics.registry.getSingleMetricAsString("vipfarm_records_rejected_total")
    expect(text).toMatch(/vipfarm_records_rejected_total\{reason="author"[^}]*\} 1/)
    expect(text).toMatch(/vipfarm_records_rejected_total\{reason="chain"[^}]*\} 1/)
    expect(text).toMatch(/vipfarm_records_rejected_total\{reason="signature"[^}]*\} 1/)
  })

  it("a wrongly signed record (signature of another record) is rejected", async () => {
    const me = await signer("s1")
    const folderSigner = await signer("folder")
    const { signRecord, verifyRecord } = await import("./signing.ts")
    const a = signRecord(me, { v: 1, events: [joined("s1", 1)], prev: "" }) as { sig: unknown }
    const b = { v: 1, events: [joined("s2", 2)], prev: "", sig: a.sig }
    expect(verdictOf(verifyRecord(folderSigner, a))).toEqual({ _tag: "Signed", by: "s1" })
    expect(verdictOf(verifyRecord(folderSigner, b))).toMatchObject({ _tag: "Refused", reason: expect.stringMatching(/does not verify with s1's key/) })
    expect(verdictOf(verifyRecord(folderSigner, { ...b, sig: { by: "s9", ed25519: "AA==" } }))).toMatchObject({ reason: expect.stringMatching(/s9 has no key/) })
  })
})
