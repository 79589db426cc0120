import { Effect, Result } from "effect"
import { describe, expect, it } from "vitest"
import { CHECKER_DEFAULTS, loadModule, parseModule, shippedModule } from "./module.ts"
import { countProcesses } from "./probes.ts"

const ok = `name: web
vars: {PORT: "8080"}
start: {command: ./start.sh}
stop: {command: ./stop.sh, timeoutMs: 2000, graceMs: 500}
checkers:
  - {name: port, type: tcp, address: "127.0.0.1:\${PORT}"}
  - {name: page, type: http, url: "http://127.0.0.1:\${PORT}/health", status: [200], body: "^ok"}
  - {name: proc, type: process, process: node, atLeast: 1, atMost: 4, failures: 3}
  - {name: script, type: command, command: "test -f $\${HOME}/x", intervalMs: 1000}
policy: {maxRestarts: 2, windowMs: 60000, settleMs: 2000}
`

const err = (text: string, vars?: Record<string, string>) => {
  const r = parseModule(text, "/m/module.yaml", "/m", vars ? { vars } : {})
  if (Result.isSuccess(r)) throw new Error("expected an error")
  return r.failure.message
}

describe("module.yaml", () => {
  it("fills defaults and substitutes vars (overrides win; $${X} stays for the shell)", () => {
    const r = parseModule(ok, "/m/module.yaml", "/m", { vars: { PORT: "9090" } })
    if (Result.isFailure(r)) throw r.failure
    const m = r.success
    expect(m.checkers[0]).toEqual({ name: "port", type: "tcp", host: "127.0.0.1", port: 9090, ...CHECKER_DEFAULTS })
    expect(m.checkers[1]).toMatchObject({ url: "http://127.0.0.1:9090/health", status: [200], body: "^ok" })
    expect(m.checkers[2]).toMatchObject({ process: "node", regex: null, atLeast: 1, atMost: 4, failures: 3 })
    expect(m.checkers[3]).toMatchObject({ command: "test -f ${HOME}/x", intervalMs: 1000 })
    expect(m.stop).toEqual({ command: "./stop.sh", timeoutMs: 2000, graceMs: 500, force: null })
    expect(m.policy).toMatchObject({ onFailure: "restart", maxRestarts: 2, windowMs: 60000, whenExhausted: "leave", settleMs: 2000 })
    expect(m.vars).toMatchObject({ PORT: "9090", MODULE_DIR: "/m" })
    expect(m.policy.restartGraceMs).toBeUndefined()
    const g = parseModule(ok.replace("settleMs: 2000}", "settleMs: 2000, restartGraceMs: 1500}"), "/m/module.yaml", "/m")
    if (Result.isFailure(g)) throw g.failure
    expect(g.success.policy.restartGraceMs).toBe(1500)
    expect(err(ok.replace("settleMs: 2000}", "settleMs: 2000, restartGraceMs: 90000}"))).toMatch(/^\/m\/module\.yaml:10: policy\.restartGraceMs: Expected a value between 0 and 60000/)
  })

  it("names file, line and key in every error", () => {
    expect(err(ok.replace("type: tcp", "type: udp"))).toMatch(/^\/m\/module\.yaml:6: checkers\[0\]/)
    expect(err(ok.replace("timeoutMs: 2000", "timeoutMs: -1"))).toMatch(/^\/m\/module\.yaml:4: stop\.timeoutMs: /)
    expect(err(ok.replace("maxRestarts: 2", "maxRestart: 2"))).toMatch(/^\/m\/module\.yaml:10: policy\.maxRestart: /)
    expect(err(ok.replace("127.0.0.1:${PORT}\"}", "\${HOST}:80\"}"))).toBe("/m/module.yaml:6: checkers[0].address: unknown variable ${HOST} (known: MODULE_DIR, PORT)")
    expect(err(ok.replace("atMost: 4", "atMost: 0"))).toBe("/m/module.yaml:8: checkers[2].atMost: must be at least atLeast (1)")
    expect(err(ok.replace('body: "^ok"', 'body: "(("'))).toMatch(/^\/m\/module\.yaml:7: checkers\[1\]\.body: invalid regular expression/)
    expect(err(ok.replace("name: script", "name: port"))).toBe("/m/module.yaml:9: checkers[3].name: duplicate checker name port")
    expect(err(ok.replace('address: "127.0.0.1:${PORT}"', 'address: "localhost"'))).toMatch(/^\/m\/module\.yaml:6: checkers\[0\]\.address: expected host:port/)
    expect(err(ok.replace("start: {command: ./start.sh}\n", ""))).toMatch(/^\/m\/module\.yaml:1: start: /)
    expect(err("name: [")).toMatch(/^\/m\/module\.yaml:1: /)
  })

  it("loads the shipped modules", async () => {
    for (const name of ["generic", "nginx", "apache"] as const) {
      const m = await Effect.runPromise(loadModule(shippedModule(name)))
      expect(m.name).toBe(name)
      expect(m.checkers.length).toBeGreaterThan(0)
    }
    const n = await Effect.runPromise(loadModule(shippedModule("nginx"), { vars: { NGINX_CONF: "/tmp/t/nginx.conf" } }))
    expect(n.checkers[0]).toMatchObject({ type: "process", regex: "^nginx: master process .*-c /tmp/t/nginx.conf( |$)" })
  })

  it("counts processes by name or command-line regex", () => {
    const procs = [
      { pid: 10, comm: "nginx", cmdline: "nginx: master process /usr/sbin/nginx -c /a/nginx.conf" },
      { pid: 11, comm: "nginx", cmdline: "nginx: worker process" },
      { pid: 12, comm: "kworker/0:1", cmdline: "" },
      { pid: 13, comm: "node", cmdline: "/usr/bin/node app.js" }
    ]
    expect(countProcesses(procs, { process: "nginx", regex: null }, 1)).toBe(2)
    expect(countProcesses(procs, { process: null, regex: "^nginx: master process .*-c /a/nginx.conf( |$)" }, 1)).toBe(1)
    expect(countProcesses(procs, { process: "node", regex: null }, 1)).toBe(1)
    expect(countProcesses(procs, { process: "node", regex: null }, 13)).toBe(0)
  })
})
