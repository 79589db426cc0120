import { describe, expect, it } from "vitest"
import { Effect, Result } from "effect"
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { checkConfig, configErrors, loadConfig, parseConfig } from "./config.ts"

const good = `farm: web
node: s1
interface: eth0
nats:
  servers: [nats://198.18.0.11:4222]
metrics: {listen: "127.0.0.1:9469"}
restart: {holdMs: 8000}
vips:
  - address: 198.18.0.100
    rules:
      - {proto: tcp, ports: [80, 443], affinity: client-ip}
`

describe("farm config check", () => {
  it("accepts a good file, with metrics and restart settings", () => {
    expect(checkConfig(good, "farm.yaml")).toEqual([])
    const r = parseConfig(good, "farm.yaml")
    expect(Result.isSuccess(r) && r.success.metrics).toEqual({ listen: "127.0.0.1:9469" })
    expect(Result.isSuccess(r) && r.success.restart).toEqual({ holdMs: 8000 })
    const bare = parseConfig(good.replace(/^metrics.*\n/m, "").replace(/^restart.*\n/m, ""), "farm.yaml")
    expect(Result.isSuccess(bare) && bare.success.metrics).toBeNull()
    expect(Result.isSuccess(bare) && bare.success.restart.holdMs).toBe(10000)
  })

  it("reports every error with its line, in file order", () => {
    const bad = good
      .replace("interface: eth0", "interface: eth0\nwieght: 100")
      .replace("nats://198.18.0.11:4222", "http://198.18.0.11")
      .replace("127.0.0.1:9469", "localhost")
      .replace("198.18.0.100", "198.18.0.300")
      .replace("affinity: client-ip}", "affinity: sticky}")
    const errors = checkConfig(bad, "/etc/vipfarm/farm.yaml")
    expect(errors.map((e) => [e.line, e.key])).toEqual([
      [4, "wieght"],
      [6, "nats.servers[0]"],
      [7, "metrics.listen"],
      [10, "vips[0].address"],
      [12, "vips[0].rules[0].affinity"]
    ])
    for (const e of errors) expect(e.message).toMatch(/^\/etc\/vipfarm\/farm\.yaml:\d+: [\w.[\]]+: /)
    // the daemon still stops at the first
    const first = parseConfig(bad, "/etc/vipfarm/farm.yaml")
    expect(Result.isFailure(first)).toBe(true)
  })

  it("reports YAML syntax errors with lines, and checks across keys once the file decodes", () => {
    const syntax = configErrors("farm: [web\nnode: s1\n", "f.yaml")
    expect(syntax.length).toBeGreaterThan(0)
    expect(syntax[0].line).toBeGreaterThanOrEqual(1)
    const lease = checkConfig(good + "lease: {fenceAfterMs: 500, expireAfterMs: 450}\n", "f.yaml")
    expect(lease).toHaveLength(1)
    expect(lease[0]).toMatchObject({ key: "lease.expireAfterMs", line: 12 })
  })
})

describe("farm config check: the application module", () => {
  const dir = mkdtempSync(`${tmpdir()}/vipfarm-config-`)
  const withApp = (app: string) => good + app
  const nginxModule = new URL("../modules/nginx/module.yaml", import.meta.url).pathname

  it("accepts a shipped module and a module directory with a valid module.yaml (vars from the config)", () => {
    expect(checkConfig(withApp("app: {module: nginx, vars: {HTTP_URL: 'http://127.0.0.1:8080/'}}\n"), `${dir}/farm.yaml`)).toEqual([])
    mkdirSync(`${dir}/shop`, { recursive: true })
    writeFileSync(`${dir}/shop/module.yaml`, readFileSync(nginxModule, "utf8").replace("name: nginx", "name: shop"))
    expect(checkConfig(withApp("app:\n  module: ./shop\n"), `${dir}/farm.yaml`)).toEqual([])
  })

  it("a module that does not exist names the config's line and app.module", () => {
    const text = withApp("app:\n  vars: {A: b}\n  module: nignx\n")
    const [e, ...rest] = checkConfig(text, `${dir}/farm.yaml`)
    expect(rest).toEqual([])
    expect(e).toMatchObject({ file: `${dir}/farm.yaml`, line: 14, key: "app.module" })
    expect(e.message).toBe(`${dir}/farm.yaml:14: app.module: no shipped module "nignx" (shipped: apache, generic, nginx); a module of your own is a directory: write a path, e.g. ./nignx`)
    const missing = checkConfig(withApp("app: {module: ./nowhere}\n"), `${dir}/farm.yaml`)
    expect(missing.map((x) => x.message)).toEqual([`${dir}/farm.yaml:12: app.module: no module directory ${dir}/nowhere`])
    mkdirSync(`${dir}/empty`, { recursive: true })
    expect(checkConfig(withApp("app: {module: ./empty}\n"), `${dir}/farm.yaml`)[0].message).toMatch(
      new RegExp(`^${dir}/farm\\.yaml:12: app\\.module: ${dir}/empty holds no readable module\\.yaml`)
    )
  })

  it("an invalid module.yaml names its own file, line and key, in config check and when the daemon loads its config", async () => {
    mkdirSync(`${dir}/broken`, { recursive: true })
    const text = readFileSync(nginxModule, "utf8").replace("  - name: http\n    type: http\n    url: ${HTTP_URL}\n", "  - name: http\n    type: tcp\n    address: localhost\n")
    writeFileSync(`${dir}/broken/module.yaml`, text)
    expect(text).toContain("address: localhost")
    const line = text.split("\n").findIndex((l) => l.includes("address: localhost")) + 1
    const expected = `${dir}/broken/module.yaml:${line}: checkers[1].address: expected host:port or [v6]:port, got "localhost"`
    const config = withApp("app: {module: ./broken}\n")
    expect(checkConfig(config, `${dir}/farm.yaml`).map((e) => e.message)).toEqual([expected])
    // a var set in the config is used: an unknown one in the module is reported at its line
    writeFileSync(`${dir}/broken/module.yaml`, readFileSync(nginxModule, "utf8").replace("url: ${HTTP_URL}", "url: ${SITE_URL}"))
    const unknown = checkConfig(config, `${dir}/farm.yaml`)
    expect(unknown).toHaveLength(1)
    expect(unknown[0].message).toMatch(new RegExp(`^${dir}/broken/module\\.yaml:\\d+: checkers\\[1\\]\\.url: unknown variable \\$\\{SITE_URL\\}`))
    expect(checkConfig(withApp("app: {module: ./broken, vars: {SITE_URL: 'http://127.0.0.1/'}}\n"), `${dir}/farm.yaml`)).toEqual([])
    // the daemon's loadConfig refuses the same file before touching anything
    writeFileSync(`${dir}/farm.yaml`, config)
    writeFileSync(`${dir}/broken/module.yaml`, text)
    const loaded = await Effect.runPromise(Effect.result(loadConfig(`${dir}/farm.yaml`)))
    expect(Result.isFailure(loaded) && loaded.failure.message).toBe(expected)
    // a client that needs only the socket path (farm status -c) still reads it
    const client = await Effect.runPromise(Effect.result(loadConfig(`${dir}/farm.yaml`, { checkApp: false })))
    expect(Result.isSuccess(client) && client.success.control).toBe("/run/vipfarm/web.sock")
  })
})
