/**
 * The shipped `nginx` module with Debian's nginx, on 127.0.0.1 with its own configuration and
 * pid file under a temp dir (never the system service): a killed nginx is restarted; one
 * that cannot start makes the server leave; fixed, it rejoins after settling.
 */
import { existsSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Effect } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { loadModule, shippedModule, Supervisor } from "../../packages/runtime/src/app/index.ts"
import { cleanUp, crash, freePort, isRoot, readPid, recordReports, tempDir, until } from "./helpers.ts"

const NGINX = "/usr/sbin/nginx"
const skip = !existsSync(NGINX) ? "nginx is not installed (apt-get install nginx-light)" : null
if (skip) console.log(`skipping nginx tests: ${skip}`)

const conf = (dir: string, port: number, broken = false) => `
${isRoot ? "user nobody nogroup;" : ""}
worker_processes 1;
daemon on;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port};
    location / { return 200 "ok\\n"; }
  }
  ${broken ? "this_directive_does_not_exist on;" : ""}
}
`

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f()
})

const setUp = async () => {
  const dir = tempDir("nginx")
  const port = await freePort()
  writeFileSync(join(dir, "nginx.conf"), conf(dir, port))
  const vars = { NGINX_CONF: join(dir, "nginx.conf"), NGINX_PID: join(dir, "nginx.pid"), HTTP_URL: `http://127.0.0.1:${port}/` }
  cleanups.push(() => cleanUp(dir, [vars.NGINX_PID]))
  const m = await Effect.runPromise(loadModule(shippedModule("nginx"), { vars }))
  return { dir, port, vars, m }
}

describe.skipIf(skip !== null)("nginx module (Debian nginx on loopback)", () => {
  it("killed nginx is restarted while the server stays in", async () => {
    const { vars, m } = await setUp()
    const sup = new Supervisor(m)
    cleanups.push(() => sup.close())
    const r = recordReports(sup)
    sup.run()
    await r.waitFor("Ready", 8000)
    const pid = readPid(vars.NGINX_PID)!
    crash(pid) // SIGKILL the master and its worker
    const t0 = performance.now()
    const bad = await r.waitFor("ReportUnhealthy", 5000)
    const back = await r.waitFor("ReportRecovered", 8000)
    console.log(`nginx: SIGKILL to ReportUnhealthy ${Math.round(bad.at - t0)} ms (${(bad.report as { checker: string }).checker}), to ReportRecovered ${Math.round(back.at - t0)} ms`)
    expect(bad.at - t0).toBeLessThan(3000)
    expect(r.tags()).toEqual(["Ready", "ReportUnhealthy", "ReportRecovered"])
    expect(readPid(vars.NGINX_PID)).not.toBe(pid)
    expect(sup.status()).toMatchObject({ state: "up", restarts: 1, farm: "up" })
    await sup.close()
    await until("nginx stopped", () => !existsSync(`/proc/${readPid(vars.NGINX_PID) ?? 0}/cmdline`) || readPid(vars.NGINX_PID) === null, 3000)
  })

  it("nginx that fails to start makes the server leave; fixed, it rejoins after settling", async () => {
    const { dir, port, vars, m } = await setUp()
    const sup = new Supervisor({ ...m, policy: { ...m.policy, maxRestarts: 2, readyTimeoutMs: 3000, settleMs: 1000, healIntervalMs: 500 } })
    cleanups.push(() => sup.close())
    const r = recordReports(sup)
    sup.run()
    await r.waitFor("Ready", 8000)
    // break the configuration, then crash it: every restart fails on `nginx -t`
    writeFileSync(vars.NGINX_CONF, conf(dir, port, true))
    crash(readPid(vars.NGINX_PID)!)
    const t0 = performance.now()
    const bad = await r.waitFor("ReportUnhealthy", 5000)
    const left = await r.waitFor("Leave", 8000)
    console.log(`nginx: crash with a broken config to ReportUnhealthy ${Math.round(bad.at - t0)} ms, to Leave ${Math.round(left.at - t0)} ms (2 failed restarts)`)
    expect((left.report as { reason: string }).reason).toMatch(/^2 restarts in 86400 s used up: restart: exit 1: .*unknown directive "this_directive_does_not_exist"/)
    expect(sup.status()).toMatchObject({ state: "unhealthy", checker: "restart", farm: "left" })
    // it keeps trying; fix it and it rejoins once every checker passed for the settle time
    writeFileSync(vars.NGINX_CONF, conf(dir, port))
    const tFix = performance.now()
    const back = await r.waitFor("Ready", 10000, 1)
    console.log(`nginx: config fixed to rejoin (Ready) ${Math.round(back.at - tFix)} ms (heal every 500 ms, settle 1000 ms)`)
    expect(r.tags()).toEqual(["Ready", "ReportUnhealthy", "Leave", "Ready"])
    expect(sup.status()).toMatchObject({ state: "up", farm: "up" })
  })

  it("application failure to Leave with the default checkers (maxRestarts 0), measured 5 times", async () => {
    const { vars, m } = await setUp()
    const sup = new Supervisor({ ...m, policy: { ...m.policy, maxRestarts: 0, settleMs: 200, healIntervalMs: 200 } })
    cleanups.push(() => sup.close())
    const r = recordReports(sup)
    sup.run()
    await r.waitFor("Ready", 8000)
    const unhealthy: Array<number> = []
    const leave: Array<number> = []
    for (let i = 0; i < 5; i++) {
      const from = r.seen.length
      // crash at a random phase of the probe interval
      await new Promise((res) => setTimeout(res, 100 + Math.random() * 500))
      crash(readPid(vars.NGINX_PID)!)
      const t0 = performance.now()
      const bad = await r.waitFor("ReportUnhealthy", 5000, from)
      const left = await r.waitFor("Leave", 5000, from)
      unhealthy.push(bad.at - t0)
      leave.push(left.at - t0)
      await r.waitFor("Ready", 8000, from)
    }
    const fmt = (xs: Array<number>) => {
      const s = [...xs].sort((a, b) => a - b)
      return `median ${Math.round(s[Math.floor(s.length / 2)])} ms, worst ${Math.round(s[s.length - 1])} ms (${s.map(Math.round).join(", ")})`
    }
    console.log(`nginx: SIGKILL to ReportUnhealthy ${fmt(unhealthy)}; to Leave ${fmt(leave)}`)
    for (const t of leave) expect(t).toBeLessThan(3000)
  })
})
