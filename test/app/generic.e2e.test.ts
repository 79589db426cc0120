/**
 * The application side end to end with real processes: a tiny node HTTP app run by the
 * shipped `generic` module on 127.0.0.1, and commands that hang.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Effect, Stream } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { AppSupervisor, loadModule, parseModule, runCommand, shippedModule, Supervisor } from "../../packages/runtime/src/app/index.ts"
import { cleanUp, freePort, pidsMentioning, readPid, recordReports, sleep, tempDir, until } from "./helpers.ts"

const APP = `
import { createServer } from "node:http"
import { existsSync } from "node:fs"
const [port, failFile] = process.argv.slice(2)
createServer((req, res) => {
  if (existsSync(failFile)) { res.writeHead(500); res.end("broken\\n"); return }
  res.writeHead(200); res.end("ok\\n")
}).listen(Number(port), "127.0.0.1")
process.on("SIGTERM", () => process.exit(0))
`

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f()
})

/** The generic module running the node app in a fresh temp dir. */
const genericApp = async (policy: Record<string, string> = {}) => {
  const dir = tempDir("generic")
  const port = await freePort()
  writeFileSync(join(dir, "app.mjs"), APP)
  const vars = {
    APP_COMMAND: `${process.execPath} ${dir}/app.mjs ${port} ${dir}/fail`,
    APP_DIR: dir,
    APP_PIDFILE: join(dir, "app.pid"),
    APP_LOG: join(dir, "app.log"),
    APP_TCP: `127.0.0.1:${port}`,
    APP_URL: `http://127.0.0.1:${port}/health`,
    ...policy
  }
  cleanups.push(() => cleanUp(dir, [vars.APP_PIDFILE]))
  return { dir, port, vars, failFile: join(dir, "fail") }
}

describe("generic module with a node app", () => {
  it("Ready once the checkers pass; an http checker failing on a 500 takes it out; it recovers", async () => {
    const app = await genericApp()
    const m = await Effect.runPromise(loadModule(shippedModule("generic"), { vars: app.vars }))
    // a restart does not fix a 500: one restart allowed, then leave; settle quickly in the test
    const sup = new Supervisor({ ...m, policy: { ...m.policy, maxRestarts: 1, readyTimeoutMs: 2000, settleMs: 1000, healIntervalMs: 500 } })
    cleanups.push(() => sup.close())
    const r = recordReports(sup)
    const t0 = performance.now()
    sup.run()
    const ready = await r.waitFor("Ready", 8000)
    console.log(`generic: start to Ready ${Math.round(ready.at - t0)} ms`)
    expect(sup.status()).toMatchObject({ state: "up", checker: null })
    expect(sup.status().checkers.map((c) => `${c.name}:${c.type}:${c.status}`)).toEqual(["alive:command:up", "port:tcp:up", "http:http:up"])

    writeFileSync(app.failFile, "")
    const tFail = performance.now()
    const bad = await r.waitFor("ReportUnhealthy", 5000)
    expect(bad.report).toEqual({ _tag: "ReportUnhealthy", checker: "http", reason: `GET http://127.0.0.1:${app.port}/health: status 500` })
    const left = await r.waitFor("Leave", 8000)
    console.log(`generic: 500 to ReportUnhealthy ${Math.round(bad.at - tFail)} ms, to Leave ${Math.round(left.at - tFail)} ms (one restart, ready timeout 2 s)`)
    expect(bad.at - tFail).toBeLessThan(3000)
    expect(sup.status()).toMatchObject({ state: "unhealthy", checker: "http", farm: "left" })

    rmSync(app.failFile)
    const tFix = performance.now()
    const back = await r.waitFor("Ready", 8000, 1)
    console.log(`generic: fixed to rejoin ${Math.round(back.at - tFix)} ms (settle 1000 ms)`)
    expect(back.at - tFix).toBeGreaterThanOrEqual(1000)
    expect(r.tags()).toEqual(["Ready", "ReportUnhealthy", "Leave", "Ready"])

    await sup.close()
    expect(existsSync(app.vars.APP_PIDFILE)).toBe(false)
    expect(pidsMentioning(`${app.dir}/app.mjs`)).toEqual([])
  })

  it("a killed application is restarted and reported recovered; the AppSupervisor layer streams reports", async () => {
    const app = await genericApp()
    const m = await Effect.runPromise(loadModule(shippedModule("generic"), { vars: app.vars }))
    const out = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function*() {
          const sup = yield* AppSupervisor
          const first = yield* Stream.runHead(sup.reports)
          const pid = readPid(app.vars.APP_PIDFILE)!
          process.kill(pid, "SIGKILL")
          const t0 = performance.now()
          const next = yield* Stream.runCollect(Stream.take(sup.reports, 2))
          const dt = performance.now() - t0
          const newPid = readPid(app.vars.APP_PIDFILE)
          return { first, next: [...next], dt, pid, newPid, status: sup.status() }
        }).pipe(Effect.provide(AppSupervisor.layer(m)))
      )
    )
    expect(out.first._tag).toBe("Some")
    expect(out.next.map((x) => x._tag)).toEqual(["ReportUnhealthy", "ReportRecovered"])
    expect(out.newPid).not.toBe(out.pid)
    expect(out.status).toMatchObject({ state: "up", restarts: 1 })
    console.log(`generic: SIGKILL to recovered ${Math.round(out.dt)} ms`)
    // the layer's release stopped the application
    expect(pidsMentioning(`${app.dir}/app.mjs`)).toEqual([])
  })

  it("a command checker decides health", async () => {
    const dir = tempDir("cmd")
    cleanups.push(() => cleanUp(dir))
    const text = `name: cmd
start: {command: "true"}
stop: {command: "true"}
checkers:
  - {name: flag, type: command, command: "test -f ${dir}/ok || { echo 'flag file missing'; exit 3; }", intervalMs: 100}
policy: {onFailure: stop}
`
    const parsed = parseModule(text, `${dir}/module.yaml`, dir)
    if (parsed._tag === "Failure") throw parsed.failure
    const sup = new Supervisor(parsed.success)
    cleanups.push(() => sup.close())
    const r = recordReports(sup)
    sup.run()
    await sleep(600)
    expect(r.tags()).toEqual([])
    expect(sup.status()).toMatchObject({ state: "starting", checker: "flag" })
    writeFileSync(join(dir, "ok"), "")
    await r.waitFor("Ready", 2000)
    rmSync(join(dir, "ok"))
    const bad = await r.waitFor("ReportUnhealthy", 2000)
    expect(bad.report).toMatchObject({ checker: "flag" })
    expect((bad.report as { reason: string }).reason).toMatch(/exit 3: flag file missing$/)
    await r.waitFor("Leave", 2000)
    await until("stopped", () => sup.status().state === "stopped", 2000)
    expect(sup.status()).toMatchObject({ state: "stopped", checker: "flag" })
  })

  it("a hanging stop is escalated: SIGTERM, then SIGKILL of its process group", async () => {
    const dir = tempDir("hang")
    cleanups.push(() => cleanUp(dir))
    // ignores SIGTERM; its child too
    const t0 = performance.now()
    const r = await runCommand(`trap '' TERM; sleep 60 & echo started; wait; echo ${dir}`, {
      op: "app.stop", module: "hang", cwd: dir, env: {}, timeoutMs: 300, graceMs: 300
    })
    const dt = performance.now() - t0
    expect(r).toMatchObject({ ok: false, timedOut: true, escalated: "kill" })
    expect(r.tail).toBe("started")
    expect(dt).toBeGreaterThanOrEqual(600)
    expect(dt).toBeLessThan(2000)
    expect(pidsMentioning("sleep 60").filter((p) => pidsMentioning(dir).includes(p))).toEqual([])
    // one that obeys SIGTERM stops there
    const soft = await runCommand("sleep 30", { op: "app.stop", module: "hang", cwd: dir, env: {}, timeoutMs: 200, graceMs: 5000 })
    expect(soft).toMatchObject({ ok: false, timedOut: true, escalated: "term" })
    expect(soft.durationMs).toBeLessThan(1000)
  })

  it("a supervisor whose stop hangs still stops: escalation, then the force command", async () => {
    const dir = tempDir("hangsup")
    cleanups.push(() => cleanUp(dir))
    const text = `name: hang
start: {command: "setsid sleep 300 > /dev/null 2>&1 & echo $! > ${dir}/app.pid"}
stop: {command: "trap '' TERM; sleep 60", timeoutMs: 300, graceMs: 300, force: "kill -KILL $(cat ${dir}/app.pid)"}
checkers:
  - {name: alive, type: command, command: "kill -0 $(cat ${dir}/app.pid)", intervalMs: 100}
`
    const parsed = parseModule(text, `${dir}/module.yaml`, dir)
    if (parsed._tag === "Failure") throw parsed.failure
    const sup = new Supervisor(parsed.success)
    const r = recordReports(sup)
    sup.run()
    await r.waitFor("Ready", 3000)
    const pid = readPid(join(dir, "app.pid"))!
    const t0 = performance.now()
    await sup.close()
    const dt = performance.now() - t0
    expect(dt).toBeGreaterThanOrEqual(600)
    expect(dt).toBeLessThan(3000)
    expect(r.tags()).toEqual(["Ready", "Leave"])
    await until("app killed", () => !existsSync(`/proc/${pid}`) || readFileSyncSafe(`/proc/${pid}/stat`).includes(") Z"), 2000)
  })
})

const readFileSyncSafe = (f: string): string => {
  try {
    return readFileSync(f, "utf8")
  } catch {
    return ""
  }
}
