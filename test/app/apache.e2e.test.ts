/**
 * The shipped `apache` module with Debian's apache2 on 127.0.0.1, its own configuration and
 * pid file under a temp dir (never the system service): Ready once it serves; a killed
 * apache2 is restarted; stopping the supervisor stops it; the module's reload (reload.sh:
 * configtest, graceful) loads a new configuration in the same parent and refuses a broken one.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Effect } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { loadModule, shippedModule, Supervisor } from "../../packages/runtime/src/app/index.ts"
import { cleanUp, crash, freePort, isRoot, pidsMentioning, readPid, recordReports, sleep, tempDir } from "./helpers.ts"

/** GET a loopback URL: status and body (null on a connection error). */
const get = async (url: string): Promise<{ status: number; body: string } | null> => {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(2000) })
    return { status: r.status, body: await r.text() }
  } catch {
    return null
  }
}

const APACHE = "/usr/sbin/apache2"
const MODS = "/usr/lib/apache2/modules"
const skip = !existsSync(APACHE) ? "apache2 is not installed (apt-get install apache2)" : null
if (skip) console.log(`skipping apache tests: ${skip}`)

const conf = (dir: string, port: number, docRoot = "www", broken = false) => `
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
DocumentRoot ${dir}/${docRoot}
<Directory ${dir}/${docRoot}>
  Require all granted
</Directory>
${broken ? "ThisDirectiveDoesNotExist on" : ""}
`

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f()
})

/** Write the configuration, load the shipped module with its vars, run a supervisor until Ready. */
const startApache = async (dir: string, port: number) => {
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
  return { vars, m, sup, r }
}

describe.skipIf(skip !== null)("apache module (Debian apache2 on loopback)", () => {
  it("Ready once it serves; a killed apache2 is restarted; closing stops it", async () => {
    const dir = tempDir("apache")
    const port = await freePort()
    mkdirSync(join(dir, "www"), { mode: 0o755 })
    writeFileSync(join(dir, "www", "index.html"), "ok\n")
    const { vars, sup, r } = await startApache(dir, port)
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

  it("reload (the module's reload.sh) loads a new configuration in the same parent; a broken one fails and apache2 keeps serving", async () => {
    const dir = tempDir("apache-reload")
    const port = await freePort()
    for (const [d, text] of [["www", "v1\n"], ["www2", "v2\n"]]) {
      mkdirSync(join(dir, d), { mode: 0o755 })
      writeFileSync(join(dir, d, "index.html"), text)
    }
    const { vars, m, sup, r } = await startApache(dir, port)
    expect(m.reload?.command).toBe("./reload.sh")
    const parent = readPid(vars.APACHE_PID)!
    expect(await get(vars.HTTP_URL)).toEqual({ status: 200, body: "v1\n" })

    writeFileSync(vars.APACHE_CONF, conf(dir, port, "www2"))
    const ok = await sup.reload()
    expect(ok).toMatchObject({ ok: true, exitCode: 0 })
    console.log(`apache: reload (configtest + graceful) ${Math.round(ok!.durationMs)} ms`)
    // a graceful restart: the parent's new children serve the new document root
    let body: string | null = null
    for (let i = 0; i < 50 && body !== "v2\n"; i++) {
      body = (await get(vars.HTTP_URL))?.body ?? null
      if (body !== "v2\n") await sleep(100)
    }
    expect(body).toBe("v2\n")
    expect(readPid(vars.APACHE_PID)).toBe(parent)

    writeFileSync(vars.APACHE_CONF, conf(dir, port, "www2", true))
    const bad = await sup.reload()
    expect(bad).toMatchObject({ ok: false, exitCode: 1 })
    expect(bad!.tail).toMatch(/ThisDirectiveDoesNotExist/)
    expect(readPid(vars.APACHE_PID)).toBe(parent)
    expect(await get(vars.HTTP_URL)).toEqual({ status: 200, body: "v2\n" })
    expect(r.tags()).toEqual(["Ready"]) // the server stayed in throughout
    expect(sup.status()).toMatchObject({ state: "up", restarts: 0 })
  })
})
