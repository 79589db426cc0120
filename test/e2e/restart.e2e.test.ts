/**
 * End-to-end: `farm restart` (keep-serving restart) on a real 3-server lab farm (lab m1).
 * Long-lived connections held on the restarted server keep working across the restart: the
 * old daemon exits (status 75) leaving its XDP program attached and the peers holding its
 * share; the new daemon adopts the filter and rejoins with the same incarnation. Also checks
 * the operator surface on the lab: /metrics, `farm events`, `farm buckets`, and that a later
 * SIGTERM still removes everything the first daemon set.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { spawnSync } from "node:child_process"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { callControl, labStartDaemon, type LabState } from "@vipfarm/runtime"
import { addressesOf, daemonRunning, expectHostClean, type HoldResult, probe, rootOrSkip, startLab, status, stopLab, termDaemon, until, untilFarm } from "./harness.ts"

const NAME = "m1"
const root = rootOrSkip("restart.e2e.test.ts")
const FARM = fileURLToPath(new URL("../../packages/cli/bin/farm.mjs", import.meta.url))

const named = <T>(what: string, p: Promise<T>): Promise<T> => p.catch((e) => {
  throw new Error(`${what}: ${(e as Error).message}`)
})

const farmCli = (args: ReadonlyArray<string>) => spawnSync(process.execPath, [FARM, ...args], { encoding: "utf8", timeout: 20_000 })

describe.skipIf(!root)("farm restart keeps the server's connections", () => {
  let lab: LabState

  beforeAll(async () => {
    lab = await startLab({
      name: NAME,
      extraConfig: () => `metrics: {listen: "127.0.0.1:9469"}\nrestart: {holdMs: 8000}\n`
    })
  }, 90_000)

  afterAll(() => {
    if (root) expect(stopLab(NAME)).toEqual([])
  })

  it("serves /metrics, farm events and farm buckets", async () => {
    const s1 = lab.servers[0]
    const metrics = spawnSync("ip", ["netns", "exec", s1.ns, "curl", "-sf", "http://127.0.0.1:9469/metrics"], { encoding: "utf8" })
    expect(metrics.status).toBe(0)
    expect(metrics.stdout).toMatch(/^vipfarm_members\{state="up",farm="[^"]+",node="s1"\} 3$/m)
    expect(metrics.stdout).toMatch(/^vipfarm_filter_packets_total\{verdict="PASS_OWNED",action="pass"/m)
    expect(metrics.stdout).toMatch(/^vipfarm_log_sequence\{[^}]*\} [1-9]/m)
    const owned = Number(/^vipfarm_buckets_owned\{[^}]*\} (\d+)$/m.exec(metrics.stdout)?.[1])
    expect(owned).toBe((await status(lab, "s1")).members.find((m) => m.name === "s1")!.buckets)

    const ev = farmCli(["events", "--socket", s1.control, "--json"])
    expect(ev.status, ev.stderr).toBe(0)
    const tags = ev.stdout.trim().split("\n").map((l) => JSON.parse(l).event._tag as string)
    expect(tags).toContain("MemberJoined")
    expect(tags).toContain("HandoffStarted")
    const text = farmCli(["events", "--socket", s1.control])
    expect(text.stdout).toMatch(/MemberJoined +s1 joined/)

    const b = farmCli(["buckets", "--socket", s1.control])
    expect(b.status, b.stderr).toBe(0)
    expect(b.stdout).toMatch(/^0 +s1 +\d+ +\d+ +\d+/m)
    const bj = JSON.parse(farmCli(["buckets", "--socket", s1.control, "--json"]).stdout)
    expect(bj.packets[0]).toHaveLength(1024)
  }, 60_000)

  it("long-lived connections on the restarted server live; it rejoins with the same incarnation and no failover", async () => {
    const s1 = lab.servers[0]
    const st2 = await named("status of s2", status(lab, "s2"))
    const before = st2.members.find((m) => m.name === "s1")!
    const seqBefore = st2.log.sequence
    const addresses = addressesOf(lab).slice(0, 30)
    const held = probe<HoldResult>(lab, "c1", ["hold", lab.vip, "12", ...addresses])
    await new Promise((r) => setTimeout(r, 1500))

    const t0 = Date.now()
    const r = (await named("POST /restart", Effect.runPromise(callControl(s1.control, "POST", "/restart")))) as { granted: boolean; serveMs: number; exit: number }
    expect(r).toMatchObject({ granted: true, exit: 75 })
    expect(r.serveMs).toBeGreaterThan(5000)
    await until("old s1 daemon exited", async () => !daemonRunning(lab, "s1"), 10_000)
    // the program stays attached and the VIP on lo while no daemon runs
    const link = spawnSync("ip", ["netns", "exec", s1.ns, "ip", "-d", "link", "show", "eth0"], { encoding: "utf8" }).stdout
    expect(link).toMatch(/xdp/)
    // what systemd does on exit status 75
    labStartDaemon(lab, "s1")
    await untilFarm(lab, "s1 adopted its filter", async () => /op=restart\.adopted/.test(readFileSync(`${lab.dir}/s1-daemon.log`, "utf8")), 20_000)
    const adoptedMs = Date.now() - t0
    console.log(`restart: exit to adoption ${adoptedMs} ms (granted hold ${r.serveMs} ms)`)

    const result = await held
    expect(result.length).toBe(30)
    for (const h of result) {
      expect(h, `connection from ${h.src}`).toMatchObject({ reset: false, error: null })
      expect(h.servers.length).toBe(1)
    }
    const onS1 = result.filter((h) => h.servers[0] === "s1")
    expect(onS1.length).toBeGreaterThan(0)
    console.log(`restart: ${onS1.length} connections held on s1, worst gap ${Math.max(...onS1.map((h) => h.maxGapMs))} ms`)

    const after = (await status(lab, "s2")).members.find((m) => m.name === "s1")!
    expect(after).toMatchObject({ state: "up", incarnation: before.incarnation, buckets: before.buckets })
    const own = await status(lab, "s1")
    expect(own.filter.fenced).toBe(false)
    // nobody declared s1 failed or took its share over
    const ev = farmCli(["events", "--socket", lab.servers[1].control, "--json", "--from", String(seqBefore + 1)])
    const later = ev.stdout.trim() === "" ? [] : ev.stdout.trim().split("\n").map((l) => JSON.parse(l).event)
    expect(later.filter((e: { _tag: string; node?: string }) => e._tag === "MemberFailed" && e.node === "s1")).toEqual([])
    for (const s of lab.servers.slice(1)) {
      expect(readFileSync(`${lab.dir}/${s.node}-daemon.log`, "utf8")).not.toMatch(/op=ctl\.takeover .*peer=s1/)
    }
  }, 90_000)

  it("after a restart, SIGTERM still drains, leaves and removes everything the first daemon set", async () => {
    termDaemon(lab, "s1")
    await until("s1 daemon exited", async () => !daemonRunning(lab, "s1"), 40_000)
    expectHostClean(lab, "s1")
  }, 60_000)
})
