/**
 * The daemon's application commands under the systemd unit's sandbox, in a network namespace
 * of the test's own: the nginx module starts Debian's nginx (configured like Debian's: user
 * www-data, pid file in /run, logs in /var/log/nginx, temp files in /var/lib/nginx, port 80)
 * through the daemon's own code path (test/service/runApp.ts: loadConfig, loadModule,
 * makeSupervisor) inside a mount namespace with the unit's file system and through setpriv with
 * exactly the capability bounding set systemd parsed from packaging/vipfarm.service and its
 * drop-in. Root only (namespaces, mounts); run under the heavy-test lock.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { analyzeUnit, sandboxArgs, type UnitView } from "./unit.ts"

const root = process.getuid?.() === 0
const reason = !root ? "needs root (network and mount namespaces)"
  : !existsSync("/usr/sbin/nginx") ? "nginx is not installed (apt-get install nginx-light)"
  : spawnSync("systemd-analyze", ["--version"]).status !== 0 ? "systemd-analyze is not installed"
  : spawnSync("id", ["www-data"]).status !== 0 ? "no www-data user"
  : null
if (reason !== null) console.log(`service sandbox tests: skipped: ${reason}`)

const tag = `vfsvc${process.pid}`
const ns = tag
const dir = `/run/vipfarm-svctest-${process.pid}` // not /tmp: PrivateTmp hides it from the sandbox
const pidFile = `/run/${tag}-nginx.pid` // like Debian's /run/nginx.pid
const errorLog = `/var/log/nginx/${tag}-error.log`
const accessLog = `/var/log/nginx/${tag}-access.log`
const runtimeExisted = existsSync("/run/vipfarm")
const apacheRunExisted = existsSync("/run/apache2")
const apacheLockExisted = existsSync("/run/lock/apache2")
const APACHE_PID = "/run/apache2/apache2.pid"
const haveApache = existsSync("/usr/sbin/apache2") && existsSync("/etc/apache2/apache2.conf")
if (!haveApache) console.log("service sandbox: the apache2 case is skipped: Debian's apache2 is not installed (apt-get install apache2)")
const apachePid = (): number | null => {
  try {
    const p = Number(readFileSync(APACHE_PID, "utf8").trim())
    return Number.isSafeInteger(p) && p > 0 && existsSync(`/proc/${p}`) ? p : null
  } catch {
    return null
  }
}
const stopApache = () => {
  const p = apachePid()
  if (p !== null) spawnSync("sh", ["-c", `pkill -KILL -P ${p}; kill -KILL ${p}`])
}

const nginxConf = `user www-data;
worker_processes 1;
pid ${pidFile};
error_log ${errorLog};
events { worker_connections 64; }
http {
  access_log ${accessLog};
  server {
    listen 80;
    location / { return 200 "served under the unit\\n"; }
  }
}
`
const farmYaml = `farm: svctest
node: s1
interface: lo
nats: {servers: [nats://127.0.0.1:4222]}
app:
  module: nginx
  vars: {NGINX_CONF: ${dir}/nginx.conf, NGINX_PID: ${pidFile}, HTTP_URL: "http://127.0.0.1/"}
vips:
  - address: 198.18.0.100
    rules: [{proto: tcp, ports: [80], affinity: client-ip}]
`

const inNs = (...cmd: Array<string>) => spawnSync("ip", ["netns", "exec", ns, ...cmd], { encoding: "utf8", timeout: 10_000 })
const masterPid = (): number | null => {
  try {
    const p = Number(readFileSync(pidFile, "utf8").trim())
    return Number.isSafeInteger(p) && p > 0 && existsSync(`/proc/${p}`) ? p : null
  } catch {
    return null
  }
}
const killNginx = () => {
  const p = masterPid()
  if (p !== null) spawnSync("sh", ["-c", `pkill -KILL -P ${p}; kill -KILL ${p}`])
}

/** Run the daemon's application path under a unit; resolves once it printed a ready, timeout or error line. */
const runUnder = (u: UnitView, readyMs: number, config = `${dir}/farm.yaml`) => {
  const argv = sandboxArgs(u, [process.execPath, "--import", "tsx", new URL("./runApp.ts", import.meta.url).pathname, config, String(readyMs)])
  const child: ChildProcess = spawn("ip", ["netns", "exec", ns, ...argv], { cwd: process.cwd(), stdio: ["pipe", "pipe", "pipe"] })
  let out = ""
  let err = ""
  const lines: Array<{ event: string; [k: string]: unknown }> = []
  child.stdout!.on("data", (c) => {
    out += c
    const parts = out.split("\n")
    out = parts.pop() ?? ""
    for (const p of parts) if (p.startsWith("{")) lines.push(JSON.parse(p))
  })
  child.stderr!.on("data", (c) => (err += c))
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
  const waitFor = async (events: Array<string>, ms: number) => {
    const t0 = Date.now()
    while (Date.now() - t0 < ms) {
      const hit = lines.find((l) => events.includes(l.event))
      if (hit) return hit
      if (child.exitCode !== null) break
      await new Promise((r) => setTimeout(r, 50))
    }
    throw new Error(`no ${events.join("/")} within ${ms} ms (exit ${child.exitCode}); lines ${JSON.stringify(lines)}; stderr:\n${err.slice(-3000)}`)
  }
  const stop = async () => {
    child.stdin!.write("stop\n")
    const t = setTimeout(() => child.kill("SIGKILL"), 20_000)
    const code = await exited
    clearTimeout(t)
    return code
  }
  /** stop, expecting a clean exit (the scope closed, the module's stop ran) */
  const stopClean = async () => {
    const code = await stop()
    expect(code, `exit ${code}; lines ${JSON.stringify(lines.slice(-3))}; stderr:\n${err.slice(-2000)}`).toBe(0)
    expect(lines.at(-1)?.event).toBe("stopped")
  }
  return { lines, stderr: () => err, waitFor, stopClean }
}

describe.skipIf(reason !== null)("the daemon's application under the systemd unit's sandbox", () => {
  beforeAll(() => {
    mkdirSync(dir, { recursive: true })
    writeFileSync(`${dir}/nginx.conf`, nginxConf)
    writeFileSync(`${dir}/farm.yaml`, farmYaml)
    // Debian's apache2 with its own configuration (/etc/apache2, envvars, port 80, /run/apache2)
    writeFileSync(`${dir}/farm-apache.yaml`, farmYaml.replace(/app:\n(.*\n){2}/, "app: {module: apache}\n"))
    spawnSync("ip", ["netns", "del", ns])
    expect(spawnSync("ip", ["netns", "add", ns]).status).toBe(0)
    expect(spawnSync("ip", ["-n", ns, "link", "set", "lo", "up"]).status).toBe(0)
  })
  afterAll(() => {
    killNginx()
    spawnSync("ip", ["netns", "del", ns])
    rmSync(dir, { recursive: true, force: true })
    rmSync(pidFile, { force: true })
    rmSync(errorLog, { force: true })
    rmSync(accessLog, { force: true })
    if (!runtimeExisted) rmSync("/run/vipfarm", { recursive: true, force: true })
    stopApache()
    if (!apacheRunExisted) rmSync("/run/apache2", { recursive: true, force: true })
    if (!apacheLockExisted) rmSync("/run/lock/apache2", { recursive: true, force: true })
  })

  it("vipfarm.service + app-nginx.conf: nginx starts through the nginx module, binds :80 with www-data workers, answers, stops", async () => {
    const u = analyzeUnit(["app-nginx.conf"])
    const run = runUnder(u, 20_000)
    try {
      const ready = await run.waitFor(["ready", "timeout", "error"], 40_000)
      expect(ready.event, run.stderr().slice(-3000)).toBe("ready")
      expect(ready.status).toMatchObject({ module: "nginx", state: "up" })
      const master = masterPid()
      expect(master).not.toBeNull()
      // the master runs with exactly the unit's bounding set, no_new_privs, as root; its workers as www-data
      const status = readFileSync(`/proc/${master}/status`, "utf8")
      const capBnd = BigInt(`0x${/^CapBnd:\s*([0-9a-f]+)/m.exec(status)![1]}`)
      const capNumbers: Record<string, number> = { chown: 0, kill: 5, setgid: 6, setuid: 7, net_bind_service: 10, net_raw: 13, net_admin: 12, sys_admin: 21, bpf: 39 }
      expect(u.caps.every((c) => c in capNumbers)).toBe(true)
      expect(capBnd).toBe(u.caps.reduce((m, c) => m | (1n << BigInt(capNumbers[c])), 0n))
      expect(status).toMatch(/^NoNewPrivs:\s*1$/m)
      const workers = spawnSync("pgrep", ["-P", String(master)], { encoding: "utf8" }).stdout.trim().split("\n").filter((p) => p !== "")
      expect(workers.length).toBeGreaterThan(0)
      for (const w of workers) expect(readFileSync(`/proc/${w}/status`, "utf8")).toMatch(/^Uid:\s+33\s/m)
      // it answers on port 80 in the namespace
      const curl = inNs("curl", "-s", "-m", "3", "http://127.0.0.1:80/")
      expect(curl.stdout).toBe("served under the unit\n")
      expect(readFileSync(accessLog, "utf8")).toMatch(/"GET \/ HTTP\/1\.1" 200/)
      expect(existsSync("/var/lib/nginx/body")).toBe(true)
    } finally {
      await run.stopClean()
    }
    expect(masterPid()).toBeNull()
  }, 90_000)

  it.skipIf(!haveApache)("vipfarm.service + app-apache.conf: Debian's apache2 (its own configuration) starts through the apache module, binds :80 with www-data children, answers, stops", async () => {
    expect(apachePid(), "an apache2 of Debian's configuration is already running").toBeNull()
    const u = analyzeUnit(["app-apache.conf"])
    const run = runUnder(u, 20_000, `${dir}/farm-apache.yaml`)
    try {
      const ready = await run.waitFor(["ready", "timeout", "error"], 40_000)
      expect(ready.event, run.stderr().slice(-3000)).toBe("ready")
      expect(ready.status).toMatchObject({ module: "apache", state: "up" })
      const parent = apachePid()
      expect(parent).not.toBeNull()
      expect(readFileSync(`/proc/${parent}/status`, "utf8")).toMatch(/^NoNewPrivs:\s*1$/m)
      const children = spawnSync("pgrep", ["-P", String(parent)], { encoding: "utf8" }).stdout.trim().split("\n").filter((p) => p !== "")
      expect(children.length).toBeGreaterThan(0)
      for (const c of children) expect(readFileSync(`/proc/${c}/status`, "utf8")).toMatch(/^Uid:\s+33\s/m)
      const curl = inNs("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "3", "http://127.0.0.1:80/")
      expect(curl.stdout).toBe("200")
    } finally {
      await run.stopClean()
    }
    expect(apachePid()).toBeNull()
  }, 90_000)

  it("vipfarm.service alone: nginx cannot write its pid file in /run (ProtectSystem=strict), never becomes ready", async () => {
    const run = runUnder(analyzeUnit(), 6_000)
    try {
      const r = await run.waitFor(["ready", "timeout", "error"], 30_000)
      expect(r.event).toBe("timeout")
      expect(run.stderr()).toMatch(new RegExp(`open\\(\\) \\\\"${pidFile.replace(/[./]/g, "\\$&")}\\\\" failed \\(30: Read-only file system\\)`))
    } finally {
      await run.stopClean()
    }
    expect(masterPid()).toBeNull()
  }, 60_000)

  it("the drop-in's paths without its capabilities: nginx cannot bind port 80", async () => {
    const u = analyzeUnit([{ name: "paths-only.conf", text: "[Service]\nReadWritePaths=/run /var/log/nginx /var/lib/nginx\n" }])
    expect(u.caps).toEqual(["bpf", "net_admin", "net_raw", "sys_admin"])
    const run = runUnder(u, 6_000)
    try {
      const r = await run.waitFor(["ready", "timeout", "error"], 30_000)
      expect(r.event).toBe("timeout")
      expect(readFileSync(errorLog, "utf8")).toMatch(/bind\(\) to 0\.0\.0\.0:80 failed \(13: Permission denied\)/)
    } finally {
      await run.stopClean()
    }
    expect(masterPid()).toBeNull()
  }, 60_000)
})
