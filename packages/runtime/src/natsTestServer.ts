/**
 * A nats-server of a test's own (JetStream on, store in a temp dir, a free loopback port), for
 * integration tests that stop and restart it: never the machine's shared server on :4222.
 * Every wait is bounded; `kill` waits for the process to exit.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { Effect, Exit, Scope } from "effect"
import { expect } from "vitest"
import type { EventLog, LogRecord } from "./eventLog.ts"
import { followLog } from "./logFollower.ts"
import { mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { createServer, type AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"

export const NATS_SERVER = process.env.NATS_SERVER ?? "/usr/sbin/nats-server"

/** A free TCP port on 127.0.0.1 (free when asked: the server binds it right after). */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = createServer()
    s.unref()
    s.on("error", reject)
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as AddressInfo).port
      s.close(() => resolve(port))
    })
  })

export interface TestNatsServer {
  readonly name: string
  readonly port: number
  readonly url: string
  readonly dir: string
  /** Start (or restart: same port, same store dir); resolves once the server accepts clients. */
  readonly start: () => Promise<void>
  /** Stop with a signal and wait for the process to exit (SIGKILL after `graceMs`). */
  readonly stop: (signal?: NodeJS.Signals, graceMs?: number) => Promise<void>
  readonly running: () => boolean
  /** The server's log so far (all its runs). */
  readonly log: () => string
}

/** A server of a test (not started); `cluster` gives the cluster port of it and of its peers. */
export const testNatsServer = (o: {
  readonly name: string
  readonly dir: string
  readonly port: number
  readonly cluster?: { readonly port: number; readonly routes: ReadonlyArray<number> }
}): TestNatsServer => {
  const url = `nats://127.0.0.1:${o.port}`
  const conf = join(o.dir, `${o.name}.conf`)
  const logFile = join(o.dir, `${o.name}.log`)
  mkdirSync(join(o.dir, `${o.name}-js`), { recursive: true })
  writeFileSync(
    conf,
    [
      `server_name: ${o.name}`,
      `listen: 127.0.0.1:${o.port}`,
      `jetstream { store_dir: "${join(o.dir, `${o.name}-js`)}" }`,
      o.cluster
        ? `cluster { name: itest, listen: 127.0.0.1:${o.cluster.port}, routes: [${o.cluster.routes.map((p) => `nats-route://127.0.0.1:${p}`).join(", ")}] }`
        : "",
      ""
    ].join("\n")
  )
  let proc: ChildProcess | null = null
  let exited: Promise<void> = Promise.resolve()
  const readLog = () => {
    try {
      return readFileSync(logFile, "utf8")
    } catch {
      return ""
    }
  }
  const start = async () => {
    if (proc !== null) throw new Error(`${o.name} already running`)
    const before = readLog().length
    const fd = openSync(logFile, "a")
    const child = spawn(NATS_SERVER, ["-c", conf], { stdio: ["ignore", fd, fd] })
    closeSync(fd)
    proc = child
    exited = new Promise((resolve) => child.once("exit", () => resolve()))
    let gone = false
    void exited.then(() => {
      gone = true
      if (proc === child) proc = null
    })
    const deadline = Date.now() + 15_000
    while (Date.now() < deadline) {
      if (gone) throw new Error(`${o.name} exited at start:\n${readLog().slice(before)}`)
      if (readLog().slice(before).includes("Server is ready")) return
      await new Promise((r) => setTimeout(r, 25))
    }
    throw new Error(`${o.name} not ready within 15 s:\n${readLog().slice(before)}`)
  }
  const stop = async (signal: NodeJS.Signals = "SIGTERM", graceMs = 5000) => {
    const child = proc
    if (child === null) return
    child.kill(signal)
    const timer = new Promise<"late">((r) => setTimeout(() => r("late"), graceMs))
    if ((await Promise.race([exited.then(() => "exited" as const), timer])) === "late") {
      child.kill("SIGKILL")
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))])
    }
    proc = null
  }
  return { name: o.name, port: o.port, url, dir: o.dir, start, stop, running: () => proc !== null, log: readLog }
}

/** A temp dir for a test's servers, and its removal. */
export const testDir = (prefix: string) => {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) }
}

/** Sleep `ms`. */
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Wait (bounded) until `cond` holds. */
export const waitFor = async (cond: () => boolean, ms: number, what: string) => {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(20)
  }
}

/** The daemon's follower (ordered consumer, direct reads, reader restarts) folding into `got`. */
export const follower = async (log: EventLog["Service"], head: () => number) => {
  const got: Array<LogRecord> = []
  const scope = await Effect.runPromise(Scope.make())
  await Effect.runPromise(
    followLog({
      eventLog: log,
      node: "itest",
      folded: () => (got.length === 0 ? 0 : got[got.length - 1].seq),
      head,
      onRecord: (r) => void got.push(r),
      now: () => performance.now()
    }).pipe(Scope.provide(scope))
  )
  return { got, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

/**
 * After a short quiet time (nothing more may come), each reader holds records 1..n exactly
 * once, in order, each with the entry that was appended at its sequence.
 */
export const expectExactlyOnce = async (readers: ReadonlyArray<ReadonlyArray<LogRecord>>, entries: ReadonlyMap<number, unknown>, n: number) => {
  await sleep(300)
  const want = Array.from({ length: n }, (_, i) => i + 1)
  for (const got of readers) {
    expect(got.map((r) => r.seq)).toEqual(want)
    for (const r of got) expect(r.entry).toEqual(entries.get(r.seq))
  }
}
