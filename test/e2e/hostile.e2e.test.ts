/**
 * End-to-end (lab `sec1`): hostile input on a signed farm. The lab's three servers sign their
 * records (signing.key/keys through the lab's extra config); a process in s1's namespace appends
 * random and adversarial records to the farm's real stream (test/e2e/hostileAppend.ts: deep
 * nesting, huge strings, wrong types, every event with fields swapped, unchained, wrongly
 * signed, signed by s1 in s2's name) while the test keeps serving every client. Then every
 * control-socket endpoint and every CLI reader is called (`farm status`, `events`, `buckets`,
 * `audit --export`, `audit --verify`): no daemon dies, every client is still served, every
 * hostile record is rejected and counted, and the farm's state is what its servers wrote.
 */
import { spawn, spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type LabState } from "@vipfarm/runtime"
import { generateKeys } from "../../packages/runtime/src/signing.ts"
import { daemonRunning, expectEveryClientServed, rootOrSkip, startLab, status, stopLab } from "./harness.ts"

const NAME = "sec1"
const ROOT = new URL("../../", import.meta.url).pathname
const FARM_BIN = `${ROOT}packages/cli/bin/farm.mjs`
const root = rootOrSkip("hostile.e2e.test.ts")
const HOSTILE = 60

describe.skipIf(!root)("hostile records on a signed farm's stream (lab sec1)", () => {
  let lab: LabState
  const keyDir = mkdtempSync(join(tmpdir(), "vipfarm-sec1-keys-"))
  const keys = Object.fromEntries(["s1", "s2", "s3"].map((n) => [n, generateKeys()]))
  for (const [n, k] of Object.entries(keys)) writeFileSync(join(keyDir, `${n}.key`), k.privatePem, { mode: 0o600 })
  const signing = (node: string) =>
    [`signing:`, `  key: ${join(keyDir, `${node}.key`)}`, `  keys:`, ...Object.entries(keys).map(([n, k]) => `    ${n}: ${k.publicBase64}`), `metrics: {listen: "127.0.0.1:9469"}`, ""].join("\n")
  const cli = (node: string, args: ReadonlyArray<string>) => {
    const s = lab.servers.find((x) => x.node === node)!
    return spawnSync("ip", ["netns", "exec", s.ns, process.execPath, FARM_BIN, ...args], { encoding: "utf8", timeout: 60_000, maxBuffer: 256 << 20 })
  }
  const rejectedCount = (node: string): number => {
    const s = lab.servers.find((x) => x.node === node)!
    const r = spawnSync("ip", ["netns", "exec", s.ns, "curl", "-sf", "-m", "3", "http://127.0.0.1:9469/metrics"], { encoding: "utf8" })
    return r.stdout.split("\n").filter((l) => l.startsWith("vipfarm_records_rejected_total{")).reduce((a, l) => a + Number(l.split(" ").pop()), 0)
  }

  beforeAll(async () => {
    lab = await startLab({ name: NAME, extraConfig: (node) => signing(node) })
  }, 120_000)

  afterAll(() => {
    rmSync(keyDir, { recursive: true, force: true })
    if (root) expect(stopLab(NAME)).toEqual([])
  }, 60_000)

  it("no daemon dies, every client is served throughout, every hostile record is rejected and counted", async () => {
    const s1 = lab.servers[0]
    const before = (await status(lab, "s1")).log
    const appender = spawn("ip", ["netns", "exec", s1.ns, process.execPath, "--import", "tsx", `${ROOT}test/e2e/hostileAppend.ts`, `nats://${s1.address}:4222`, NAME, join(keyDir, "s1.key"), String(HOSTILE)], { cwd: ROOT })
    let out = ""
    let err = ""
    appender.stdout.on("data", (c) => (out += c))
    appender.stderr.on("data", (c) => (err += c))
    const done = new Promise<number | null>((resolve) => appender.on("exit", (code) => resolve(code)))
    let finished = false
    void done.then(() => (finished = true))
    const deadline = Date.now() + 120_000
    let rounds = 0
    while (!finished && Date.now() < deadline) {
      await expectEveryClientServed(lab, "s1")
      for (const s of lab.servers) expect(daemonRunning(lab, s.node), `${s.node} running during the hostile appends`).toBe(true)
      rounds++
    }
    expect(await done, err.slice(-2000)).toBe(0)
    const report = JSON.parse(out.trim().split("\n").pop()!) as { appended: number; kinds: Record<string, number> }
    console.log(`hostile: ${report.appended} records (${JSON.stringify(report.kinds)}), ${rounds} rounds of every client served meanwhile`)
    expect(rounds).toBeGreaterThan(0)

    // every reader, on every server
    for (const s of lab.servers) {
      for (const args of [["status"], ["status", "--json"], ["events"], ["events", "--json"], ["buckets"], ["buckets", "--json"]]) {
        const r = cli(s.node, [...args, "--socket", s.control])
        expect(r.status, `${s.node} farm ${args.join(" ")}: ${r.stderr.slice(-1500)}`).toBe(0)
        expect(r.stderr).not.toMatch(/RangeError|Maximum call stack/)
      }
      const ev = cli(s.node, ["events", "--json", "--socket", s.control])
      const lines = ev.stdout.trim().split("\n").map((l) => JSON.parse(l) as { rejected?: string; preview?: string })
      const rejected = lines.filter((l) => l.rejected !== undefined)
      expect(rejected.length, `${s.node}: rejected records in farm events`).toBeGreaterThanOrEqual(HOSTILE)
      for (const l of rejected) expect((l.preview ?? "").length).toBeLessThan(400)
    }
    const file = join(lab.dir, "hostile-export.json")
    const ex = cli("s1", ["audit", "--nats", `nats://${s1.address}:4222`, "--farm", NAME, "--export", file])
    expect(ex.status, ex.stderr.slice(-2000)).toBe(0)
    const verify = spawnSync(process.execPath, [FARM_BIN, "audit", "--verify", file], { encoding: "utf8", timeout: 60_000 })
    expect(verify.status === 0 || verify.status === 1, `audit --verify: ${verify.stderr.slice(-2000)}`).toBe(true)
    expect(verify.stderr).not.toMatch(/RangeError|Maximum call stack|at .*\.ts:\d+/)
    expect(readFileSync(file, "utf8").length).toBeGreaterThan(0)

    // the farm's state is what its servers wrote: three members up, each with a share; no forged member or drain
    for (const s of lab.servers) {
      expect(daemonRunning(lab, s.node), `${s.node} running after the readers`).toBe(true)
      const st = await status(lab, s.node)
      expect(st.members.map((m) => `${m.name}:${m.state}`).sort()).toEqual(["s1:up", "s2:up", "s3:up"])
      expect(st.log.rejected - before.rejected, `${s.node}: records rejected`).toBeGreaterThanOrEqual(HOSTILE) // every server folds the same log
      expect(rejectedCount(s.node), `${s.node} vipfarm_records_rejected_total`).toBeGreaterThanOrEqual(HOSTILE)
    }
    await expectEveryClientServed(lab, "s1")
  }, 300_000)
})
