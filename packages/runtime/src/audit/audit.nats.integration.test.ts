/**
 * The NATS permissions an audit user needs (README, "Auditing a farm"): with exactly those, on a
 * nats-server of the test's own, `farm audit` reads and exports the farm's log, follows it live,
 * and cannot write to it, change its stream or read another farm's.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Result } from "effect"
import { connect } from "@nats-io/transport-node"
import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { chainedRecord, recordHash } from "@vipfarm/domain"
import { ensureStream, streamNames } from "../eventLog.ts"
import { freePort, NATS_SERVER } from "../natsTestServer.ts"
import { exportSource, readSource } from "./run.ts"
import { followStream } from "./source.ts"
import { existsSync } from "node:fs"

const skip = existsSync(NATS_SERVER) ? null : `${NATS_SERVER} is not installed (apt-get install nats-server)`
if (skip) console.log(`audit NATS permission tests: skipped: ${skip}`)

const FARM = "web"
const { stream, subject } = streamNames(FARM)

/** The audit user's permissions, as the README gives them for farm `web`. */
export const auditPermissions = (s: string) => ({
  publish: { allow: ["$JS.API.INFO", `$JS.API.STREAM.INFO.${s}`, `$JS.API.CONSUMER.CREATE.${s}.>`, `$JS.API.CONSUMER.MSG.NEXT.${s}.>`, `$JS.API.CONSUMER.DELETE.${s}.>`] },
  subscribe: { allow: ["_INBOX.>"] }
})

describe.skipIf(skip !== null)("an audit user with read-only NATS permissions", () => {
  const dir = mkdtempSync(join(tmpdir(), "vipfarm-audit-nats-"))
  let proc: ChildProcess
  let url = ""
  const log = () => readFileSync(join(dir, "nats.log"), "utf8")

  beforeAll(async () => {
    const port = await freePort()
    url = `nats://127.0.0.1:${port}`
    writeFileSync(join(dir, "nats.conf"), [
      `listen: 127.0.0.1:${port}`,
      `jetstream { store_dir: "${join(dir, "js")}" }`,
      `authorization { users: [`,
      `  { user: s1, password: s1pass }`,
      `  { user: audit, password: auditpass, permissions: ${JSON.stringify(auditPermissions(stream))} }`,
      `] }`,
      ""
    ].join("\n"))
    const fd = openSync(join(dir, "nats.log"), "a")
    proc = spawn(NATS_SERVER, ["-c", join(dir, "nats.conf")], { stdio: ["ignore", fd, fd] })
    for (let i = 0; i < 100 && !/Server is ready/.test(log()); i++) await new Promise((r) => setTimeout(r, 50))
    expect(log()).toMatch(/Server is ready/)
    // the farm's log, written by a server user: 5 chained records; another farm's stream too
    const nc = await connect({ servers: url, user: "s1", pass: "s1pass" })
    await Effect.runPromise(ensureStream(nc, FARM))
    await Effect.runPromise(ensureStream(nc, "other"))
    const js = jetstream(nc)
    let prev = ""
    for (let i = 0; i < 5; i++) {
      const entry = chainedRecord([{ _tag: "Noop", n: i }], prev)
      prev = recordHash(entry)
      await js.publish(subject, JSON.stringify(entry))
    }
    await js.publish(streamNames("other").subject, JSON.stringify(chainedRecord([], "")))
    await nc.close()
  })
  afterAll(async () => {
    proc?.kill("SIGTERM")
    await new Promise((r) => setTimeout(r, 200))
    rmSync(dir, { recursive: true, force: true })
  })

  const source = (farm = FARM) => ({ _tag: "Nats" as const, servers: [url], farm, credentials: null, user: "audit", passwordFile: join(dir, "audit.pass") })

  it("reads and exports the farm's log, and follows it live", async () => {
    writeFileSync(join(dir, "audit.pass"), "auditpass\n")
    const r = await Effect.runPromise(readSource(source()))
    expect(r.records.map((x) => x.seq)).toEqual([1, 2, 3, 4, 5])
    expect(await Effect.runPromise(exportSource(source(), join(dir, "export.jsonl")))).toBe(5)
    const nc = await connect({ servers: url, user: "audit", pass: "auditpass" })
    try {
      const seen: Array<number> = []
      const stop = await followStream(nc, FARM, (x) => seen.push(x.seq))
      for (let i = 0; i < 100 && seen.length < 5; i++) await new Promise((res) => setTimeout(res, 50))
      expect(seen).toEqual([1, 2, 3, 4, 5])
      // a record appended by a server shows up in the follower
      const writer = await connect({ servers: url, user: "s1", pass: "s1pass" })
      await jetstream(writer).publish(subject, JSON.stringify(chainedRecord([], "x")))
      await writer.close()
      for (let i = 0; i < 100 && seen.length < 6; i++) await new Promise((res) => setTimeout(res, 50))
      expect(seen).toEqual([1, 2, 3, 4, 5, 6])
      await stop()
    } finally {
      await nc.close()
    }
  })

  it("cannot append to the log, purge or delete its stream, or read another farm's", async () => {
    const nc = await connect({ servers: url, user: "audit", pass: "auditpass" })
    try {
      const js = jetstream(nc, { timeout: 2000 })
      await expect(js.publish(subject, JSON.stringify(chainedRecord([], "")))).rejects.toThrow(/permission|timeout|no responders/i)
      const jsm = await jetstreamManager(nc, { timeout: 2000 })
      await expect(jsm.streams.purge(stream)).rejects.toThrow()
      await expect(jsm.streams.delete(stream)).rejects.toThrow()
      // another farm's stream (it holds a record): refused, so the auditor reads nothing of it
      await expect(jsm.streams.info(streamNames("other").stream)).rejects.toThrow()
      const other = await Effect.runPromise(Effect.result(readSource(source("other"))))
      expect(Result.isSuccess(other) ? other.success.records : []).toEqual([])
    } finally {
      await nc.close()
    }
    // the server logged the refusals
    expect(log()).toMatch(/Publish Violation.*vipfarm\.web\.log/)
    // the log is unchanged: 6 records (5 + the one the server user added)
    const check = await connect({ servers: url, user: "s1", pass: "s1pass" })
    expect((await (await jetstreamManager(check)).streams.info(stream)).state.last_seq).toBe(6)
    await check.close()
  })
})
