import { describe, expect, it } from "vitest"
import { readFileSync } from "node:fs"
import { JsonSchema, Result, Schema, SchemaRepresentation } from "effect"
import { parse } from "yaml"
import { CONFIG_DOC, CONFIG_SCHEMA, configJsonSchema, configJsonSchemaText, configMarkdown, GENERATE_COMMAND } from "../scripts/configDocs.ts"
import { checkConfig } from "./config.ts"

const root = new URL("../../../", import.meta.url)
const read = (file: string): string | null => {
  try {
    return readFileSync(new URL(file, root), "utf8")
  } catch {
    return null
  }
}

/** The committed JSON Schema file, as an editor reads it, turned into a validator. */
const validator = () => {
  const text = read(CONFIG_SCHEMA)
  if (text === null) throw new Error(`${CONFIG_SCHEMA} is missing: run ${GENERATE_COMMAND}`)
  const schema = SchemaRepresentation.fromJsonSchemaDocument(JsonSchema.fromSchemaDraft2020_12(JSON.parse(text)), { patterns: "apply" })
  return (value: unknown) => Schema.decodeUnknownResult(schema as Schema.Codec<unknown>, { onExcessProperty: "error" })(value)
}

/** The README's example configurations (```yaml blocks with vips:), indentation removed. */
const readmeConfigs = (): Array<string> => {
  const readme = read("README.md") ?? ""
  return [...readme.matchAll(/^([ \t]*)```yaml\n([\s\S]*?)^\1```/gm)]
    .map((m) => m[2].split("\n").map((l) => l.slice(m[1].length)).join("\n"))
    .filter((t) => /^farm:/m.test(t) && /^vips:/m.test(t))
}

/** Configurations as `farm lab up` writes them (lab.ts farmConfig): plain, with NATS users and a witness, with an application. */
const labConfigs = (): Array<string> => {
  const base = (extra: Array<string>, app: Array<string>) => [
    "farm: lab1", "node: s1", "interface: eth0", "nats:", "  servers: [nats://198.18.0.1:4222, nats://198.18.0.2:4222]", ...extra,
    "control: /run/vipfarm/lab1-s1.sock", "vips:", "  - address: 198.18.0.100", "    rules:",
    "      - {proto: tcp, ports: [80, 7000], affinity: client-ip}", "      - {proto: udp, ports: [5300], affinity: client-ip-port}", ...app, ""
  ].join("\n")
  return [
    base(["  insecure: true"], []),
    base(["  user: s1", "  passwordFile: /tmp/lab1/s1.pass", "witnesses: [w1]"], []),
    base([], ["app:", "  module: nginx", '  vars: {NGINX_CONF: /tmp/lab1/s1-nginx.conf, NGINX_PID: /tmp/lab1/s1-nginx.pid, HTTP_URL: "http://127.0.0.1/"}']),
    base([], ["app:", "  module: apache", '  vars: {APACHE_CONF: /tmp/lab1/s1-apache.conf, APACHE_PID: /tmp/lab1/s1-apache.pid, APACHE_ENVVARS: /nonexistent, HTTP_URL: "http://127.0.0.1/"}'])
  ]
}

describe("the generated configuration reference", () => {
  it(`${CONFIG_DOC} and ${CONFIG_SCHEMA} are up to date with ConfigFile`, () => {
    const stale = [[CONFIG_DOC, configMarkdown()], [CONFIG_SCHEMA, configJsonSchemaText()]].filter(([file, text]) => read(file) !== text).map(([file]) => file)
    expect(stale, `stale: ${stale.join(", ")}; run ${GENERATE_COMMAND}`).toEqual([])
  })

  it("documents every key: a description, a type and a default or 'required'", () => {
    const md = configMarkdown()
    const keys: Array<string> = []
    const walk = (n: { properties?: Record<string, any>; type?: string; items?: any; description?: string }, prefix: string) => {
      for (const [k, child] of Object.entries(n.properties ?? {})) {
        const path = prefix === "" ? k : `${prefix}.${k}`
        keys.push(path)
        expect(typeof child.description === "string" && child.description.length > 10, `${path} has no description`).toBe(true)
        if (child.properties !== undefined) walk(child, path)
        else if (child.type === "array" && child.items?.properties !== undefined) walk(child.items, `${path}[]`)
      }
    }
    walk(configJsonSchema() as never, "")
    expect(keys).toContain("vips[].rules[].affinity")
    expect(keys).toContain("nats.passwordFile")
    for (const k of keys) {
      const section = md.split(`## \`${k}\`\n`)[1]?.split("\n## ")[0]
      expect(section, `${k} has no section`).toBeDefined()
      expect(section).toMatch(/^- type: \S/m)
      expect(section).toMatch(/^- default: \S/m)
    }
    // the semantics other parts of vipfarm rely on
    expect(md).toMatch(/## `xdp.mode`\n\nauto: native, but generic on interfaces where native XDP cannot deliver a rewritten frame/)
    expect(md).toMatch(/## `handoff.maxMs`\n\n[^\n]*Absent: no cap[^\n]*\n\n- type: integer 0 to 3600000\n- default: none/)
  })

  it("the JSON Schema accepts the README's and the lab's configurations, as the daemon does", () => {
    const valid = validator()
    const configs = [...readmeConfigs(), ...labConfigs()]
    expect(readmeConfigs().length).toBeGreaterThanOrEqual(1)
    for (const text of configs) {
      const r = valid(parse(text))
      expect(Result.isSuccess(r), `${Result.isFailure(r) ? String(r.failure) : ""}\n${text}`).toBe(true)
      // and so does the daemon (an app module is checked on its own: the lab's files are not here)
      expect(checkConfig(text.replace(/^app:[\s\S]*$/m, ""), "/etc/vipfarm/farm.yaml")).toEqual([])
    }
  })

  it("the JSON Schema refuses what the daemon refuses: an unknown key, a bad enum, a pattern, a range, no port", () => {
    const valid = validator()
    const good = parse(labConfigs()[0])
    expect(Result.isSuccess(valid(good))).toBe(true)
    const bad = [
      { ...good, wieght: 100 },
      { ...good, xdp: { mode: "fast" } },
      { ...good, farm: "web farm" },
      { ...good, nats: { servers: ["http://198.18.0.1"] } },
      { ...good, lease: { heartbeatMs: 1 } },
      { ...good, vips: [{ address: "198.18.0.100", rules: [{ proto: "tcp", ports: [], affinity: "client-ip" }] }] }
    ]
    for (const b of bad) expect(Result.isFailure(valid(b)), JSON.stringify(b)).toBe(true)
  })
})
