/**
 * The shipped `apache` module with Debian's apache2 on 127.0.0.1, its own configuration and
 * pid file under a temp dir (never the system service): Ready once it serves; a killed
 * apache2 is restarted; stopping the supervisor stops it.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Effect } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { loadModule, shippedModule, Supervisor } from "../../packages/runtime/src/app/index.ts"
import { cleanUp, crash, freePort, isRoot, pidsMentioning, readPid, recordReports, tempDir } from "./helpers.ts"

const APACHE = "/usr/sbin/apache2"
const MODS = "/usr/lib/apache2/modules"
const skip = !existsSync(APACHE) ? "apache2 is not installed (apt-get install apache2)" : null
if (skip) console.log(`skipping apache tests: ${skip}`)

const conf = (dir: string, port: number) => `
ServerRoot ${dir}
ServerName localhost
Listen 127.0.0.1:${port}
PidFile ${dir}/apache2.pid
ErrorLog ${dir}/error.log
DefaultRuntimeDir ${dir}
Mutex file:${dir} default
${isRoot ? "User nobody\nGroup nogroup" : ""}
LoadModule mpm_event_module ${MODS}/mod_mpm_event.so
LoadModule authz_core_module ${MODS}/mod_authz_core.so
StartServers 1
ServerLimit 1
ThreadsPerChild 8
MaxRequestWorkers 8
DocumentRoot ${dir}/www
<Directory ${dir}/www>
  Require all granted
</Directory>
`

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f()
})

describe.skipIf(skip !== null)("apache module (Debian apache2 on loopback)", () => {
  it("Ready once it serves; a killed apache2 is restarted; closing stops it", async () => {
    const dir = tempDir("apache")
    const port = await freePort()
    mkdirSync(join(dir, "www"), { mode: 0o755 })
    writeFileSync(join(dir, "www", "index.html"), "ok\n")
    writeFileSync(join(dir, "apache2.conf"), conf(dir, port))
    const vars = {
      APACHE_CONF: join(dir, "apache2.conf"), APACHE_PID: join(dir, "apache2.pid"), APACHE_ENVVARS: "/nonexistent",
      HTTP_URL: `http://127.0.0.1:${port}/index.html`
    }
    cleanups.push(() => cleanUp(dir, [vars.APACHE_PID]))
    const m = await Effect.runPromise(loadModule(shippedModule("apache"), { vars }))
    const sup = new Supervisor(m)
    cleanups.push(() => sup.close())
    const r = recordReports(sup)
    sup.run()
    await r.waitFor("Ready", 10000)
    const pid = readPid(vars.APACHE_PID)!
    crash(pid)
    const t0 = performance.now()
    const bad = await r.waitFor("ReportUnhealthy", 5000)
    const back = await r.waitFor("ReportRecovered", 10000)
    console.log(`apache: SIGKILL to ReportUnhealthy ${Math.round(bad.at - t0)} ms (${(bad.report as { checker: string }).checker}), to ReportRecovered ${Math.round(back.at - t0)} ms`)
    expect(bad.at - t0).toBeLessThan(3000)
    expect(readPid(vars.APACHE_PID)).not.toBe(pid)
    expect(sup.status()).toMatchObject({ state: "up", restarts: 1 })
    await sup.close()
    expect(sup.status().state).toBe("stopped")
    expect(pidsMentioning(vars.APACHE_CONF).filter((p) => existsSync(`/proc/${p}/cmdline`))).toEqual([])
  })
})
