/**
 * End-to-end (lab `x2`): the lab's NATS cluster runs with user/password authorization (one
 * user per server, its password in DIR/NODE.pass, named by `nats.user` / `nats.passwordFile`).
 * s1..s3 run the NATS cluster and hold valid credentials; s4 runs no NATS node and its
 * password file holds a password NATS does not know. s4 never becomes a member and serves
 * nothing; the others keep serving every client.
 */
import { spawnSync } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Effect } from "effect"
import { labDown, labStartDaemon, type LabState, labUp } from "@vipfarm/runtime"
import { addressesOf, daemonRunning, expectedServer, type HttpResult, owners, probe, rootOrSkip, sleep, status, stopLab, untilFarm } from "./harness.ts"

const NAME = "x2"
const root = rootOrSkip("auth.e2e.test.ts")
const GOOD = ["s1", "s2", "s3"]

describe.skipIf(!root)("a server without valid NATS credentials is kept out (lab x2)", () => {
  let lab: LabState

  beforeAll(async () => {
    lab = await Effect.runPromise(labUp({
      name: NAME, servers: 4, clients: 1, addressesPerClient: 40, app: "builtin", daemons: false,
      natsNodes: 3, natsAuth: { wrongPassword: ["s4"] }
    }))
    try {
      for (const n of GOOD) labStartDaemon(lab, n)
      await untilFarm(lab, "s1..s3 up with buckets", async () => {
        for (const n of GOOD) {
          const st = await status(lab, n)
          if (st.filter.fenced || st.members.length !== 3 || st.members.some((m) => m.state !== "up" || m.buckets === 0)) return false
        }
        return true
      }, 45_000)
    } catch (e) {
      labDown(NAME)
      throw e
    }
  }, 90_000)

  afterAll(() => {
    if (root) expect(stopLab(NAME)).toEqual([])
  }, 60_000)

  it("NATS refuses the wrong password; s4 never joins, never serves; s1..s3 keep serving", async () => {
    // the lab wrote real authorization: every NATS node knows 4 users, and the good servers authenticated
    const natsConf = readFileSync(`${lab.dir}/s1-nats.conf`, "utf8")
    expect(natsConf).toMatch(/authorization \{ users = \[/)
    expect(natsConf).toContain(`user: "s4"`)
    expect(readFileSync(lab.servers[0].config, "utf8")).toMatch(/user: s1\n\s+passwordFile: /)
    const started = Date.now()
    labStartDaemon(lab, "s4")
    const log = `${lab.dir}/s4-daemon.log`
    await untilFarm(lab, "s4 refused by NATS", async () => existsSync(log) && /authorization violation/i.test(readFileSync(log, "utf8")), 20_000)
    console.log(`auth: s4 refused by NATS ${Date.now() - started} ms after its daemon started`)
    // give a daemon that kept trying time to do harm
    await sleep(3000)
    for (const n of GOOD) {
      const st = await status(lab, n)
      expect(st.members.map((m) => m.name).sort(), `members as ${n} sees them`).toEqual(GOOD)
      expect(st.members.every((m) => m.state === "up")).toBe(true)
      expect(st.members.reduce((k, m) => k + m.buckets, 0)).toBe(1024)
    }
    // s4 holds no filter, no VIP: it cannot take VIP traffic
    const s4 = lab.servers[3]
    const link = spawnSync("ip", ["netns", "exec", s4.ns, "ip", "-d", "link", "show", "eth0"], { encoding: "utf8" }).stdout
    expect(link).not.toMatch(/xdp/)
    const lo = spawnSync("ip", ["netns", "exec", s4.ns, "ip", "addr", "show", "lo"], { encoding: "utf8" }).stdout
    expect(lo).not.toContain(lab.vip)
    console.log(`auth: s4's daemon ${daemonRunning(lab, "s4") ? "keeps retrying" : "exited"}; its log: ${readFileSync(log, "utf8").trim().split("\n").slice(-1)[0]}`)
    // every client is served by the owner of its bucket, never by s4
    const table = await owners(lab, "s1")
    const r = await probe<HttpResult>(lab, "c1", ["http", lab.vip, ...addressesOf(lab)])
    expect(r.length).toBe(40)
    for (const x of r) {
      expect(x.server, `answer to ${x.src}`).toBe(expectedServer(lab, table, x.src))
      expect(x.server).not.toBe("s4")
    }
  }, 60_000)
})
