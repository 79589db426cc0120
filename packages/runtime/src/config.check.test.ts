import { describe, expect, it, vi } from "vitest"
import { Effect, Result } from "effect"
import fc from "fast-check"
import { execFile } from "node:child_process"
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { fileURLToPath } from "node:url"
import { checkConfig, configErrors, loadConfig, parseConfig } from "./config.ts"
import { firstInvalidUtf8 } from "./yamlSchema.ts"

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

describe("farm config check: the gaps", () => {
  const one = (text: string | Uint8Array) => {
    const errors = checkConfig(text, "/etc/vipfarm/farm.yaml")
    expect(errors).toHaveLength(1)
    return errors[0]
  }

  it("a rule with no port is refused (a log record's ports: [] still means every port)", () => {
    const e = one(good.replace("ports: [80, 443]", "ports: []"))
    expect(e.message).toBe('/etc/vipfarm/farm.yaml:11: vips[0].rules[0].ports: a rule needs at least one port ("*" for every port)')
    expect(checkConfig(good.replace("ports: [80, 443]", 'ports: ["*"]'), "f.yaml")).toEqual([])
  })

  it("only YAML 1.1 and 1.2 directives", () => {
    expect(one(`%YAML 9.9\n---\n${good}`).message).toBe("/etc/vipfarm/farm.yaml:1: %YAML: Unsupported YAML version 9.9 (1.1 or 1.2)")
    expect(checkConfig(`%YAML 1.2\n---\n${good}`, "f.yaml")).toEqual([])
    expect(checkConfig(`%YAML 1.1\n---\n${good}`, "f.yaml")).toEqual([])
  })

  it("a byte that is not UTF-8: file, line, column and key", async () => {
    const bytes = Buffer.from(good.replace("interface: eth0", "interface: et\xffh0"), "latin1")
    expect(one(bytes).message).toBe("/etc/vipfarm/farm.yaml:3: interface: column 14: byte 0xff is not UTF-8 (save the file as UTF-8)")
    // a truncated sequence, an overlong encoding and a surrogate, after a valid multi-byte character
    const at = (tail: Array<number>) => firstInvalidUtf8(Uint8Array.from([0x61, 0xc3, 0xa9, ...tail, 0x62]))
    expect(at([0xe2, 0x82])).toBe(3)
    expect(at([0xc0, 0xaf])).toBe(3)
    expect(at([0xed, 0xa0, 0x80])).toBe(3)
    expect(at([0xf0, 0x9f, 0x98, 0x80])).toBe(8)
    // the daemon refuses the file the same way (it was decoded leniently: U+FFFD, accepted)
    const dir = mkdtempSync(`${tmpdir()}/vipfarm-utf8-`)
    writeFileSync(`${dir}/farm.yaml`, bytes)
    const loaded = await Effect.runPromise(Effect.result(loadConfig(`${dir}/farm.yaml`)))
    expect(Result.isFailure(loaded) && loaded.failure.message).toBe(`${dir}/farm.yaml:3: interface: column 14: byte 0xff is not UTF-8 (save the file as UTF-8)`)
    rmSync(dir, { recursive: true })
  })

  it("an unresolved alias and an alias bomb name file:line and key", () => {
    expect(one(good.replace("node: s1", "node: *nowhere")).message).toBe(
      "/etc/vipfarm/farm.yaml:2: node: Unresolved alias (the anchor must be set before the alias): *nowhere"
    )
    const bomb = ["x-a: &a [x, x, x, x, x, x, x, x, x, x]", "x-b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]", "x-c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]"].join("\n")
    const e = one(`${bomb}\n${good}`)
    expect(e).toMatchObject({ line: 3 })
    expect(e.message).toMatch(/^\/etc\/vipfarm\/farm\.yaml:3: x-c\[\d\]: alias \*b expands past 100 nodes/)
  })

  it("a duplicate key is named with its path and the line it was first set at", () => {
    expect(one(good.replace("interface: eth0", "interface: eth0\nnode: s2")).message).toBe("/etc/vipfarm/farm.yaml:4: node: duplicate key (first set at line 2)")
    expect(one(good.replace("  servers:", "  user: a\n  user: b\n  servers:")).message).toBe("/etc/vipfarm/farm.yaml:6: nats.user: duplicate key (first set at line 5)")
    expect(one(good.replace("{proto: tcp,", "{proto: tcp, proto: udp,")).message).toBe("/etc/vipfarm/farm.yaml:11: vips[0].rules[0].proto: duplicate key (first set at line 11)")
  })

  it("a mapping used as a key is an error, not a stringified key and a warning", () => {
    const warn = vi.spyOn(process, "emitWarning")
    const e = one(good.replace("node: s1", "{a: 1}: s1"))
    expect(e).toMatchObject({ line: 2, key: '"{a: 1}"' })
    expect(warn).not.toHaveBeenCalled()
    warn.mockRestore()
  })

  it("farm config check reads bytes: a non-UTF-8 byte is reported by the command", async () => {
    const dir = mkdtempSync(`${tmpdir()}/vipfarm-check-`)
    writeFileSync(`${dir}/farm.yaml`, Buffer.from(good.replace("interface: eth0", "interface: et\xffh0"), "latin1"))
    const farm = fileURLToPath(new URL("../../cli/bin/farm.mjs", import.meta.url))
    const r = await new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile(process.execPath, [farm, "config", "check", `${dir}/farm.yaml`], { timeout: 100_000 }, (err, _out, stderr) =>
        resolve({ code: err === null ? 0 : Number(err.code), stderr })))
    rmSync(dir, { recursive: true })
    expect(r.code).not.toBe(0)
    expect(r.stderr).toContain(`${dir}/farm.yaml:3: interface: column 14: byte 0xff is not UTF-8`)
  }, 120_000)
})

describe("farm config check: mutations of a valid file", () => {
  const valid = Buffer.from(`farm: web
node: s1
interface: eth0
weight: 100
priority: 5
nats:
  servers: [nats://198.18.0.11:4222, nats://198.18.0.12:4222]
  user: s1
  passwordFile: ./password
witnesses: [w1]
lease: {heartbeatMs: 50, fenceAfterMs: 250, expireAfterMs: 350}
handoff: {maxMs: 60000}
xdp: {mode: auto}
metrics: {listen: "127.0.0.1:9469"}
restart: {holdMs: 8000}
vips:
  - address: 198.18.0.100
    rules:
      - {proto: tcp, ports: [80, 443], affinity: client-ip}
      - {proto: udp, ports: ["5000-5100"], affinity: client-ip-port, mode: single-host}
  - address: 2001:db8::100
    rules:
      - proto: udp
        ports: [53]
        affinity: per-packet
`)
  // what breaks YAML and config files: indicators, anchors and aliases, directives, tabs, a bad byte, empty values
  const tokens = [":", "-", "[", "]", "{", "}", "&a ", "*a", "!", "!!str ", "%YAML 9.9\n---\n", "---\n", "#", "'", "\"", "\t", "\n", " ", "0", "-1", "1e9",
    "null", "~", "[]", "{}", "<<: *a\n", "? ", "|", ">", ",", "ports: []\n", "é", "\u2028", "\ufeff", "farm: web\n"]
  const mutation = fc.record({ at: fc.nat(), del: fc.nat(8), ins: fc.oneof(fc.constantFrom(...tokens), fc.constant(null)) })

  it("every error of 400 mutated files has the file, a line in the file and a key; nothing throws or warns", () => {
    expect(checkConfig(valid, "/etc/vipfarm/farm.yaml")).toEqual([])
    const warn = vi.spyOn(process, "emitWarning")
    let failing = 0
    fc.assert(fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (ms) => {
      let b: Buffer = valid
      for (const m of ms) {
        const at = m.at % (b.length + 1)
        const ins = m.ins === null ? Buffer.from([0xff]) : Buffer.from(m.ins)
        b = Buffer.concat([b.subarray(0, at), ins, b.subarray(Math.min(b.length, at + m.del))])
      }
      const lines = b.toString("latin1").split("\n").length
      const errors = checkConfig(b, "/etc/vipfarm/farm.yaml")
      if (errors.length > 0) failing++
      for (const e of errors) {
        expect(e.file).toBe("/etc/vipfarm/farm.yaml")
        expect(Number.isInteger(e.line) && e.line >= 1 && e.line <= lines).toBe(true)
        expect(e.key).not.toBe("")
        expect(e.message.startsWith(`/etc/vipfarm/farm.yaml:${e.line}: ${e.key}: `)).toBe(true)
        // one line, no stack trace
        expect(e.message).not.toMatch(/\n|\bat .*:\d+:\d+\)?$/m)
      }
    }), { numRuns: 400, seed: 1616 })
    expect(warn).not.toHaveBeenCalled()
    warn.mockRestore()
    // the mutations do break files (a test that passes on no errors at all asserts nothing)
    expect(failing).toBeGreaterThan(300)
  })
})
