/**
 * End-to-end (lab `x5`), issue 7 with Debian apache2: 2 servers (and the lab's witness), each
 * running apache2 through the shipped `apache` module (its scripts, checkers and policy), with
 * the lab's per-server configuration (document root with the server's name). Every client is
 * served through apache; apache killed on s2 (parent and children, found by the lab's pid file
 * and /proc, checked to be in s2's namespace) is restarted by the policy and s2 stays in.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { LabState } from "@vipfarm/runtime"
import { addressesOf, appPids, crashApp, expectedServer, type HttpResult, owners, probe, rootOrSkip, startLab, status, stopLab, untilFarm } from "./harness.ts"

const NAME = "x5"
const root = rootOrSkip("apache.e2e.test.ts")
const skip = !root ? "needs root" : !existsSync("/usr/sbin/apache2") ? "apache2 is not installed (apt-get install apache2)" : null
if (root && skip) console.log(`apache.e2e.test.ts: skipped: ${skip}`)

const apachePids = (lab: LabState, node: string) => appPids(lab, node, "apache")
const crashApache = (lab: LabState, node: string): number => crashApp(lab, node, "apache")

describe.skipIf(skip !== null)("applications in the farm: real apache2 through the apache module (lab x5)", () => {
  let lab: LabState

  beforeAll(async () => {
    lab = await startLab({ name: NAME, servers: 2, app: "apache", addressesPerClient: 40 })
  }, 60_000)

  afterAll(() => {
    if (root) expect(stopLab(NAME)).toEqual([])
  }, 60_000)

  const s2 = async () => (await status(lab, "s1")).members.find((m) => m.name === "s2")!
  const everyClientServed = async () => {
    const table = await owners(lab, "s1")
    const r = await probe<HttpResult>(lab, "c1", ["http", lab.vip, ...addressesOf(lab)])
    for (const x of r) expect(x.server, `answer to ${x.src}`).toBe(expectedServer(lab, table, x.src))
    return r
  }

  it("apache2 serves every client in every server, through the module", async () => {
    for (const n of ["s1", "s2"]) {
      expect((await status(lab, n)).app).toMatchObject({ module: "apache", state: "up" })
      expect(apachePids(lab, n).children.length).toBeGreaterThan(0)
    }
    const r = await everyClientServed()
    expect(new Set(r.map((x) => x.server))).toEqual(new Set(["s1", "s2"]))
  }, 20_000)

  it("killed apache2 is restarted and s2 stays in, every client served", async () => {
    const before = apachePids(lab, "s2").parent
    const incarnation = (await s2()).incarnation
    const crashedAt = crashApache(lab, "s2")
    await untilFarm(lab, "s2's apache2 restarted, s2 up with its share", async () => {
      const m = await s2()
      const now = apachePids(lab, "s2").parent
      return now !== null && now !== before && m.state === "up" && m.buckets > 300
    }, 20_000)
    console.log(`apache2 killed on s2: restarted and s2 up with its share ${Date.now() - crashedAt} ms after the kill`)
    expect((await s2()).incarnation).toBe(incarnation) // stayed a member: no leave, no rejoin
    expect((await status(lab, "s2")).app).toMatchObject({ state: "up" })
    expect(readFileSync(`${lab.dir}/s2-daemon.log`, "utf8")).not.toMatch(/app\.Leave/)
    const r = await everyClientServed()
    expect(new Set(r.map((x) => x.server))).toEqual(new Set(["s1", "s2"]))
  }, 30_000)
})
