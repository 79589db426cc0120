/**
 * End-to-end: a real 3-server farm in network namespaces (NATS cluster, daemons, XDP
 * filters, the built-in app) and a client namespace with 40 addresses. Each server serves
 * /metrics in its namespace: the per-VIP filter counters follow the client traffic.
 */
import { spawnSync } from "node:child_process"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Effect } from "effect"
import { callControl, labLink, labStartDaemon, type LabState } from "@vipfarm/runtime"
import {
  addressesOf, daemonRunning, expectedServer, expectHostClean, type HoldResult, killDaemon, owners, type PollResult, probe, recoveryTimes,
  rootOrSkip, startLab, status, stopLab, termDaemon, until
} from "./harness.ts"

const NAME = "e2e"
const root = rootOrSkip("farm.e2e.test.ts")

describe.skipIf(!root)("a real farm", () => {
  let lab: LabState

  beforeAll(async () => {
    lab = await startLab({ name: NAME, extraConfig: () => `metrics: {listen: "127.0.0.1:9469"}\n` })
  }, 60_000)

  afterAll(() => {
    if (root) expect(stopLab(NAME)).toEqual([])
  })

  it("answers every connection from exactly the server owning the client's bucket, with affinity", async () => {
    const table = await owners(lab, "s1")
    const addresses = addressesOf(lab)
    const first = await probe<Array<{ src: string; server: string | null }>>(lab, "c1", ["http", lab.vip, ...addresses])
    const second = await probe<Array<{ src: string; server: string | null }>>(lab, "c1", ["http", lab.vip, ...addresses])
    for (const r of first) expect(r.server).toBe(expectedServer(lab, table, r.src))
    expect(second.map((r) => r.server)).toEqual(first.map((r) => r.server))
    // every server holds the same table
    expect(await owners(lab, "s2")).toEqual(table)
    expect(await owners(lab, "s3")).toEqual(table)
    const per = new Map<string, number>()
    for (const r of first) per.set(r.server!, (per.get(r.server!) ?? 0) + 1)
    expect([...per.keys()].sort()).toEqual(["s1", "s2", "s3"])
  }, 60_000)

  it("counts the VIP's packets and bytes as passed on the serving server and dropped on the others (/metrics)", async () => {
    // vipfarm_vip_{packets,bytes}_total of the VIP summed by action, per server
    const scrape = () => lab.servers.map((s) => {
      const r = spawnSync("ip", ["netns", "exec", s.ns, "curl", "-sf", "http://127.0.0.1:9469/metrics"], { encoding: "utf8" })
      expect(r.status, `metrics of ${s.node}`).toBe(0)
      const sum = { packets: { pass: 0, drop: 0 }, bytes: { pass: 0, drop: 0 } }
      const re = /^vipfarm_vip_(packets|bytes)_total\{vip="([^"]+)",verdict="[A-Z_]+",action="(pass|drop)"[^}]*\} (\S+)$/gm
      for (const m of r.stdout.matchAll(re)) if (m[2] === lab.vip) sum[m[1] as "packets" | "bytes"][m[3] as "pass" | "drop"] += Number(m[4])
      return { node: s.node, ...sum }
    })
    const table = await owners(lab, "s1")
    const src = addressesOf(lab)[0]
    const serving = expectedServer(lab, table, src)
    const before = scrape()
    const answered = await probe<Array<{ src: string; server: string | null }>>(lab, "c1", ["http", lab.vip, src, src, src])
    expect(answered.map((r) => r.server)).toEqual([serving, serving, serving])
    const after = scrape()
    const delta = after.map((a, i) => ({
      node: a.node,
      passPackets: a.packets.pass - before[i].packets.pass, passBytes: a.bytes.pass - before[i].bytes.pass,
      dropPackets: a.packets.drop - before[i].packets.drop, dropBytes: a.bytes.drop - before[i].bytes.drop
    }))
    console.log(`per-VIP counters after 3 connections from ${src} (served by ${serving}): ${JSON.stringify(delta)}`)
    for (const d of delta) {
      if (d.node === serving) {
        expect(d.passPackets, `${d.node} passed`).toBeGreaterThanOrEqual(3 * 3) // at least SYN, ACK, request per connection
        expect(d.passBytes, `${d.node} passed bytes`).toBeGreaterThanOrEqual(d.passPackets * 54)
      } else {
        expect(d.dropPackets, `${d.node} dropped`).toBeGreaterThanOrEqual(3 * 3) // every server sees every frame
        expect(d.dropBytes, `${d.node} dropped bytes`).toBeGreaterThanOrEqual(d.dropPackets * 54)
      }
    }
  }, 60_000)

  it("drain and resume move a server's share without resetting any long-lived connection", async () => {
    const addresses = addressesOf(lab).slice(0, 30)
    const held = probe<HoldResult>(lab, "c1", ["hold", lab.vip, "8", ...addresses])
    await new Promise((r) => setTimeout(r, 1000))
    await Effect.runPromise(callControl(lab.servers[0].control, "POST", "/drain"))
    await until("s1 drained", async () => (await status(lab, "s2")).members.find((m) => m.name === "s1")?.buckets === 0)
    // new connections from s1's former clients now go elsewhere
    const after = await probe<Array<{ src: string; server: string | null }>>(lab, "c1", ["http", lab.vip, ...addresses])
    expect(after.every((r) => r.server !== null && r.server !== "s1")).toBe(true)
    await Effect.runPromise(callControl(lab.servers[0].control, "POST", "/resume"))
    await until("s1 has a share again", async () => ((await status(lab, "s2")).members.find((m) => m.name === "s1")?.buckets ?? 0) > 300)
    const result = await held
    expect(result.length).toBe(30)
    for (const h of result) {
      expect(h, `connection from ${h.src}`).toMatchObject({ reset: false, error: null })
      expect(h.servers.length).toBe(1) // the connection stayed on its server throughout
      expect(h.answers).toBeGreaterThan(100)
    }
    expect(result.some((h) => h.servers[0] === "s1")).toBe(true)
  }, 60_000)

  it("a SIGKILLed daemon's share is served again within the failover budget; the others' connections live", async () => {
    const addresses = addressesOf(lab)
    const polled = probe<PollResult>(lab, "c1", ["poll", lab.vip, "5", ...addresses])
    const held = probe<HoldResult>(lab, "c1", ["hold", lab.vip, "5", ...addresses.slice(0, 30)])
    await new Promise((r) => setTimeout(r, 1500))
    const killedAt = killDaemon(lab, "s3")
    const times = recoveryTimes(await polled, killedAt, "s3")
    console.log(`failover after SIGKILL (ms, per client of s3): ${times.map((t) => Math.round(t)).join(" ")}`)
    expect(times.length).toBeGreaterThan(0)
    expect(Math.max(...times)).toBeLessThan(1000)
    for (const h of await held) {
      if (h.servers[0] !== "s3") expect(h, `connection from ${h.src}`).toMatchObject({ reset: false, error: null })
    }
    const st = await status(lab, "s1")
    expect(st.members.find((m) => m.name === "s3")?.state).toBe("down")
  }, 60_000)

  it("a server with a cut link fences itself and its share moves; healed, it rejoins and takes a share back", async () => {
    // bring s3 back first (its daemon was killed above)
    labStartDaemon(lab, "s3")
    await until("s3 rejoined", async () => (await status(lab, "s1")).members.find((m) => m.name === "s3")?.state === "up" &&
      ((await status(lab, "s1")).members.find((m) => m.name === "s3")?.buckets ?? 0) > 300)
    const addresses = addressesOf(lab)
    const polled = probe<PollResult>(lab, "c1", ["poll", lab.vip, "5", ...addresses])
    await new Promise((r) => setTimeout(r, 1500))
    const cutAt = Date.now()
    await Effect.runPromise(labLink(lab, "s2", false))
    const times = recoveryTimes(await polled, cutAt, "s2")
    console.log(`failover after cutting s2's link (ms): ${times.map((t) => Math.round(t)).join(" ")}`)
    expect(times.length).toBeGreaterThan(0)
    expect(Math.max(...times)).toBeLessThan(1000)
    expect((await status(lab, "s2")).filter.fenced).toBe(true)
    await Effect.runPromise(labLink(lab, "s2", true))
    await until("s2 back with a share", async () => {
      const st = await status(lab, "s1")
      const m = st.members.find((x) => x.name === "s2")
      return m?.state === "up" && m.buckets > 300 && m.incarnation >= 2
    }, 30_000)
  }, 90_000)

  it("SIGTERM drains, leaves and removes everything the daemon set", async () => {
    termDaemon(lab, "s1")
    await until("s1 daemon exited", async () => !daemonRunning(lab, "s1"), 30_000)
    const st = await status(lab, "s2")
    expect(st.members.find((m) => m.name === "s1")).toBeUndefined()
    expectHostClean(lab, "s1")
  }, 60_000)
})
