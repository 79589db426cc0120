/**
 * End-to-end (lab `x7`), issue 7: operating a farm's applications. Every server runs Debian
 * nginx through a module built from the shipped nginx module (same scripts, checkers and
 * reload command) plus a `command` checker `flag` that fails while `NGINX_CONF.fail` exists.
 * - `farm restart` on s1 hands its application over: the new daemon adopts the running nginx
 *   (not restarted) and the log shows no MemberUnhealthy for s1 and no bucket leaving it;
 * - with `restartGraceMs`, nginx killed on s3 is restarted and s3 keeps its buckets: the log
 *   shows the restart (ApplicationChanged) but no MemberUnhealthy and no bucket moving;
 * - `farm app reload` runs the module's reload command (nginx -t, nginx -s reload): same
 *   master, new configuration; a broken configuration fails the reload and nginx keeps serving;
 * - the `command` checker failing takes s2 out of the farm (restart used up: left); passing
 *   again, s2 rejoins; `farm events` shows the health change with the checker and its reason;
 * - `farm app stop` takes s2 out and stops nginx (the others serve every client), and it stays
 *   stopped; `farm app start` brings it back and s2 rejoins with a share.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { spawnSync } from "node:child_process"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { parse, stringify } from "yaml"
import { Effect } from "effect"
import { callControl, type EventsPage, formatRecord, formatStatus, labStartDaemon, type LabState, recordJsonLines, type Status } from "@vipfarm/runtime"
import {
  expectEveryClientServed, crashNginx, daemonRunning, nginxPids, rootOrSkip, sleep, startLab, status, stopLab, until, untilFarm
} from "./harness.ts"

const NAME = "x7"
const root = rootOrSkip("appops.e2e.test.ts")
const SHIPPED = fileURLToPath(new URL("../../packages/runtime/modules/nginx", import.meta.url))
const FARM = fileURLToPath(new URL("../../packages/cli/bin/farm.mjs", import.meta.url))
// restartGraceMs: a quick restart keeps the server's buckets (generous here: a loaded test machine restarts slowly)
const POLICY = { onFailure: "restart", maxRestarts: 1, windowMs: 86_400_000, whenExhausted: "leave", readyTimeoutMs: 3000, settleMs: 1500, healIntervalMs: 1000, restartGraceMs: 3000 }

/** The shipped nginx module (scripts by absolute path, its reload command) with a `command` checker and the test's policy. */
const writeModule = (dir: string) => {
  const m = parse(readFileSync(join(SHIPPED, "module.yaml"), "utf8")) as Record<string, any>
  const abs = (c: string) => c.replace(/^\.\//, `${SHIPPED}/`)
  m.name = "nginx-ops"
  m.start.command = abs(m.start.command)
  m.stop.command = abs(m.stop.command)
  m.stop.force = abs(m.stop.force)
  m.checkers.push({ name: "flag", type: "command", command: `test ! -e "\${NGINX_CONF}.fail" || { echo "flag file \${NGINX_CONF}.fail present"; exit 4; }` })
  m.policy = POLICY
  writeFileSync(join(dir, "module.yaml"), stringify(m))
}

/** The CLI itself (a node process: 1-2 s, more on a loaded machine: the tests call the control socket directly for most steps). */
const farmCli = (args: ReadonlyArray<string>) => spawnSync(process.execPath, [FARM, ...args], { encoding: "utf8", timeout: 90_000 })

type Ev = { _tag: string; node?: string; state?: string; checker?: string; reason?: string; restarts?: number; moves?: Array<{ from: string | null; to: string }> }
/** The records `node` folded from `from` on (`GET /events`, what `farm events` prints). */
const pageOf = async (lab: LabState, node: string, from: number): Promise<EventsPage> =>
  (await Effect.runPromise(callControl(lab.servers.find((s) => s.node === node)!.control, "GET", `/events?from=${from}`))) as EventsPage
/** The events as `farm events --json` prints them. */
const eventsOf = async (lab: LabState, node: string, from = 1): Promise<Array<{ seq: number; event: Ev }>> =>
  (await pageOf(lab, node, from)).records.flatMap(recordJsonLines).map((l) => JSON.parse(l))
/** The events as `farm events` prints them. */
const eventsText = async (lab: LabState, node: string, from = 1): Promise<string> => (await pageOf(lab, node, from)).records.flatMap(formatRecord).join("\n")
/** `POST /app/...` on a server's control socket: the reply, or the error's message. */
const appCall = async (lab: LabState, node: string, op: "start" | "stop" | "reload"): Promise<{ ok: true; reply: any } | { ok: false; error: string }> => {
  const r = await Effect.runPromise(Effect.result(callControl(lab.servers.find((s) => s.node === node)!.control, "POST", `/app/${op}`, 60_000)))
  return r._tag === "Success" ? { ok: true, reply: r.success } : { ok: false, error: r.failure.message }
}

const skip = !root ? "needs root" : !existsSync("/usr/sbin/nginx") ? "nginx is not installed" : null
if (root && skip) console.log(`appops.e2e.test.ts: skipped: ${skip}`)

describe.skipIf(skip !== null)("operating applications in the farm: restart hand-over, reload, command checker, stop/start (lab x7)", () => {
  let lab: LabState
  let moduleDir = ""

  beforeAll(async () => {
    moduleDir = mkdtempSync(join(tmpdir(), "vipfarm-x7-module-"))
    writeModule(moduleDir)
    // a long restart hold: a loaded machine may take 10 s and more to start a daemon
    lab = await startLab({ name: NAME, app: "nginx", appModule: moduleDir, addressesPerClient: 40, extraConfig: () => "restart: {holdMs: 40000}\n" })
  }, 90_000)

  afterAll(() => {
    rmSync(moduleDir, { recursive: true, force: true })
    if (root) expect(stopLab(NAME)).toEqual([])
  }, 60_000)

  const socket = (node: string) => lab.servers.find((s) => s.node === node)!.control
  const member = async (name: string, from = "s3") => (await status(lab, from)).members.find((m) => m.name === name)!
  const everyClientServed = (not?: string) => expectEveryClientServed(lab, "s3", not)

  it("farm restart adopts the running application: nginx not restarted, no unhealthy report, no bucket moves", async () => {
    const master = nginxPids(lab, "s1").master
    expect(master).not.toBeNull()
    // a quiet farm first (a loaded machine may have had a server stall and rejoin while the lab started)
    await untilFarm(lab, "every server up, no hand-off open", async () => {
      const st = await status(lab, "s3")
      return st.handoffs.length === 0 && st.members.every((m) => m.state === "up")
    }, 30_000)
    const logFile = `${lab.dir}/s1-daemon.log`
    const offset = statSync(logFile).size
    const fresh = () => readFileSync(logFile, "utf8").slice(offset)
    const r = farmCli(["restart", "--socket", socket("s1")])
    expect(r.status, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({ granted: true, exit: 75 })
    await until("old s1 daemon exited", async () => !daemonRunning(lab, "s1"), 10_000)
    // the log as the old daemon left it: what follows is the restart's doing
    const seqBefore = Number(/op=daemon\.restart node=s1 seq=(\d+)/.exec(fresh())?.[1])
    expect(seqBefore).toBeGreaterThan(0)
    const before = await member("s1")
    expect(before).toMatchObject({ state: "up" })
    labStartDaemon(lab, "s1") // what systemd does on exit status 75
    await untilFarm(lab, "s1 adopted its filter and its application", async () => /op=restart\.adopted/.test(fresh()), 40_000)
    // the checkers of the new daemon run (2 passes flip each up) and the lease hold ends
    await untilFarm(lab, "s1's checkers pass under the new daemon", async () => (await status(lab, "s1")).app?.checkers?.every((c: { status: string }) => c.status === "up") === true, 10_000)
    await sleep(1500)
    expect(fresh()).toMatch(/op=app\.handover .*standing=up/)
    expect(fresh()).not.toMatch(/op=app\.start /) // no start command: nginx was adopted
    expect(nginxPids(lab, "s1").master).toBe(master)
    const after = await member("s1")
    expect(after).toMatchObject({ state: "up", incarnation: before.incarnation, buckets: before.buckets })
    const later = (await eventsOf(lab, "s3", seqBefore + 1)).map((e) => e.event)
    expect(later.filter((e) => e.node === "s1" && /MemberUnhealthy|MemberFailed|MemberLeft|ApplicationChanged/.test(e._tag))).toEqual([])
    expect(later.filter((e) => e._tag === "HandoffStarted" && e.moves!.some((m) => m.from === "s1" || m.to === "s1"))).toEqual([])
    expect((await status(lab, "s1")).app).toMatchObject({ module: "nginx-ops", state: "up" })
    await everyClientServed()
  }, 90_000)

  it("restartGraceMs: killed nginx is restarted and s3 keeps its buckets (no unhealthy report, no hand-off)", async () => {
    const before = nginxPids(lab, "s3").master
    const seqBefore = (await status(lab, "s1")).log.sequence
    const buckets = (await member("s3", "s1")).buckets
    const crashedAt = crashNginx(lab, "s3")
    await untilFarm(lab, "s3's nginx restarted and its checkers passing", async () => {
      const now = nginxPids(lab, "s3").master
      return now !== null && now !== before && (await status(lab, "s3")).app?.state === "up"
    }, 20_000)
    console.log(`nginx killed on s3 (restartGraceMs 3000): restarted, s3 up again ${Date.now() - crashedAt} ms after the crash, its buckets kept`)
    await sleep(500)
    const later = (await eventsOf(lab, "s1", seqBefore + 1)).map((e) => e.event)
    expect(later.filter((e) => e.node === "s3" && /MemberUnhealthy|MemberFailed|MemberLeft/.test(e._tag))).toEqual([])
    expect(later.filter((e) => e._tag === "HandoffStarted")).toEqual([])
    expect(later.filter((e) => e._tag === "ApplicationChanged").map((e) => [e.node, e.state])).toEqual([["s3", "restarting"], ["s3", "running"]])
    expect(later.find((e) => e._tag === "ApplicationChanged")).toMatchObject({ checker: expect.stringMatching(/nginx-master|http/), restarts: 1, reason: expect.stringMatching(/keeps its buckets for up to 3 s$/) })
    expect(await member("s3", "s1")).toMatchObject({ state: "up", buckets, application: { state: "running", restarts: 1 } })
    await everyClientServed()
  }, 60_000)

  it("farm app reload runs the module's reload command: same master, new configuration; a broken one is refused", async () => {
    const conf = `${lab.dir}/s2-nginx.conf`
    const good = readFileSync(conf, "utf8")
    const master = nginxPids(lab, "s2").master
    const header = () =>
      spawnSync("ip", ["netns", "exec", lab.servers[1].ns, "curl", "-s", "-D", "-", "-o", "/dev/null", "http://127.0.0.1/"], { encoding: "utf8" }).stdout
    expect(header()).not.toMatch(/X-Reloaded/i)
    writeFileSync(conf, good.replace("add_header X-Server s2;", "add_header X-Server s2; add_header X-Reloaded yes;"))
    expect(readFileSync(conf, "utf8")).toContain("X-Reloaded")
    const r = farmCli(["app", "reload", "--socket", socket("s2"), "--json"]) // the CLI once
    expect(r.status, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, node: "s2", op: "app.reload", app: { state: "up" } })
    await until("nginx serves the reloaded configuration", async () => /X-Reloaded: yes/i.test(header()), 5000)
    expect(nginxPids(lab, "s2").master).toBe(master)
    // a broken configuration: nginx -t refuses it, the reload fails with nginx's message, nginx keeps serving
    writeFileSync(conf, good.replace("http {", "http {\n  this_directive_does_not_exist on;"))
    const bad = await appCall(lab, "s2", "reload")
    expect(bad.ok).toBe(false)
    const why = bad.ok ? "" : bad.error
    expect(why).toMatch(/reload of nginx-ops failed: exit 1/)
    expect(why).toMatch(/unknown directive "this_directive_does_not_exist"/)
    writeFileSync(conf, good)
    expect(await appCall(lab, "s2", "reload")).toMatchObject({ ok: true, reply: { op: "app.reload" } })
    expect(nginxPids(lab, "s2").master).toBe(master)
    expect(await member("s2")).toMatchObject({ state: "up" })
  }, 120_000)

  it("a command checker failing takes s2 out (restart used up: left); passing again, s2 rejoins; farm events shows why", async () => {
    const flag = `${lab.dir}/s2-nginx.conf.fail`
    const seqBefore = (await status(lab, "s3")).log.sequence
    writeFileSync(flag, "")
    const at = Date.now()
    await untilFarm(lab, "s2 unhealthy without buckets", async () => {
      const m = await member("s2")
      return m.state === "unhealthy" && m.buckets === 0
    }, 15_000)
    console.log(`command checker failing on s2: out of the farm ${Date.now() - at} ms after the flag file appeared`)
    expect((await member("s2")).checker).toMatchObject({ name: "flag", error: expect.stringMatching(/exit 4: flag file .* present/) })
    await everyClientServed("s2")
    // the restart does not fix it: the policy's one restart is used up and s2 leaves (and keeps healing)
    await untilFarm(lab, "s2 left (restart used up)", async () => /op=app\.Leave node=s2/.test(readFileSync(`${lab.dir}/s2-daemon.log`, "utf8")), 15_000)
    expect((await status(lab, "s2")).app).toMatchObject({ state: "unhealthy", checker: "flag" })
    rmSync(flag)
    const fixedAt = Date.now()
    await untilFarm(lab, "s2 rejoined with a share", async () => {
      const m = await member("s2")
      return m.state === "up" && m.buckets > 300
    }, 20_000)
    console.log(`command checker passing again on s2: back in with its share ${Date.now() - fixedAt} ms later (heal every 1 s, settle 1.5 s)`)
    const later = await eventsOf(lab, "s3", seqBefore + 1)
    const unhealthy = later.find((e) => e.event._tag === "MemberUnhealthy" && e.event.node === "s2")
    expect(unhealthy?.event).toMatchObject({ checker: "flag", reason: expect.stringMatching(/exit 4: flag file .* present/) })
    expect(later.some((e) => e.event._tag === "MemberRecovered" && e.event.node === "s2" && e.seq > unhealthy!.seq)).toBe(true)
    // what the application did, in order: restarted (the one restart), left, healing attempts (unless the
    // checker passed before the first one was due), running again
    const app = later.filter((e) => e.event._tag === "ApplicationChanged" && e.event.node === "s2").map((e) => e.event)
    expect(app.map((e) => e.state).join(",")).toMatch(/^restarting,left,(healing,)*running$/)
    expect(app[0]).toMatchObject({ state: "restarting", checker: "flag", restarts: 1, reason: expect.stringMatching(/exit 4: flag file .* present; restart 1 of 1/) })
    expect(app[1]).toMatchObject({ state: "left", checker: "flag", reason: expect.stringMatching(/^1 restart in 86400 s used up: flag: .*left the farm/) })
    if (app[2].state === "healing") expect(app[2]).toMatchObject({ reason: expect.stringMatching(/^heal attempt 1: restart/) })
    expect(app[app.length - 1]).toMatchObject({ state: "running", reason: expect.stringMatching(/^healed: every checker passed for 1.5 s/) })
    const text = await eventsText(lab, "s3", seqBefore + 1)
    expect(text).toMatch(/MemberUnhealthy +s2 unhealthy: flag \(.*exit 4: flag file .* present/)
    expect(text).toMatch(/ApplicationChanged +s2 application left \(flag\): 1 restart in 86400 s used up/)
    // every server's farm status shows s2's application
    expect(formatStatus((await status(lab, "s1")) as Status)).toMatch(/^s2 +up +running \(1 restart\) /m)
    await everyClientServed()
  }, 120_000)

  it("farm app stop takes s2 out and stops nginx until farm app start; then s2 rejoins", async () => {
    const running = await appCall(lab, "s2", "start")
    expect(running).toMatchObject({ ok: false, error: expect.stringMatching(/start applies to a stopped application/) })
    const stop = await appCall(lab, "s2", "stop")
    expect(stop).toMatchObject({ ok: true, reply: { ok: true, op: "app.stop", app: { state: "stopped" } } })
    expect(nginxPids(lab, "s2").master).toBeNull()
    await untilFarm(lab, "s2 out of the farm", async () => {
      const m = await member("s2")
      return m.state !== "up" && m.buckets === 0
    }, 15_000)
    await everyClientServed("s2")
    // it stays stopped: no heal, no restart
    await sleep(2500)
    expect(nginxPids(lab, "s2").master).toBeNull()
    expect((await status(lab, "s2")).app).toMatchObject({ state: "stopped" })
    expect((await member("s2")).application).toMatchObject({ state: "stopped", reason: "application stopped by the operator" })
    const text = formatStatus((await status(lab, "s2")) as Status)
    expect(text).toMatch(/application nginx-ops: stopped/)
    expect(text).toMatch(/^s2 +unhealthy +stopped .*app stopped: application stopped by the operator/m)
    const start = farmCli(["app", "start", "--socket", socket("s2")]) // the CLI once
    expect(start.status, start.stderr).toBe(0)
    expect(start.stdout).toMatch(/^s2: start: application nginx-ops up/)
    expect(nginxPids(lab, "s2").master).not.toBeNull()
    await untilFarm(lab, "s2 rejoined with a share", async () => {
      const m = await member("s2")
      return m.state === "up" && m.buckets > 300
    }, 20_000)
    await everyClientServed()
  }, 150_000)
})
