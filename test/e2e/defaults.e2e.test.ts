/**
 * End-to-end: a farm whose config has no `xdp:` key at all (the default, `auto`) is served on
 * the lab's veths: the daemons attach in generic mode and say why. A SIGKILLed daemon's
 * program is replaced by the next daemon of the same farm; a program that is not the farm's
 * own makes the daemon refuse to start, leaving that program and the host untouched.
 */
import { spawnSync } from "node:child_process"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { LAB_ROOT, labStartDaemon, labUp, type LabState, waitFarmUp } from "@vipfarm/runtime"
import { PASS_OBJECT } from "@vipfarm/filter-xdp"
import {
  answersPerServer, daemonRunning, expectEveryClientServed, killDaemon, noteHostBefore, rootOrSkip, status, stopLab,
  termDaemon, until
} from "./harness.ts"

const NAME = "xdpdef"
const root = rootOrSkip("defaults.e2e.test.ts")

const nsOf = (lab: LabState, node: string): string => lab.servers.find((s) => s.node === node)!.ns
const inNs = (lab: LabState, node: string, ...cmd: Array<string>): string =>
  spawnSync("ip", ["netns", "exec", nsOf(lab, node), ...cmd], { encoding: "utf8" }).stdout
/** The id of the XDP program on a server's eth0 (null: none) and whether it runs in generic mode. */
const xdpOn = (lab: LabState, node: string): { id: number | null; generic: boolean } => {
  const shown = inNs(lab, node, "ip", "-d", "link", "show", "eth0")
  const m = /prog\/xdp(?:generic)? id (\d+)/.exec(shown)
  return { id: m ? Number(m[1]) : null, generic: /xdpgeneric/.test(shown) }
}
const logOf = (lab: LabState, node: string): string => readFileSync(`${lab.dir}/${node}-daemon.log`, "utf8")
const lines = (log: string, op: string): Array<string> => log.split("\n").filter((l) => l.includes(` op=${op} `) || l.endsWith(` op=${op}`))

describe.skipIf(!root)("a farm on the default xdp mode", () => {
  let lab: LabState

  beforeAll(async () => {
    noteHostBefore(NAME)
    lab = await Effect.runPromise(labUp({ name: NAME, servers: 3, clients: 1, addressesPerClient: 40, app: "builtin", daemons: true }))
    try {
      // the daemons start through tsx: slow while other suites load the machine
      await waitFarmUp(lab, 90_000)
    } catch (e) {
      stopLab(NAME)
      throw e
    }
  }, 150_000)

  afterAll(() => {
    if (!root) return
    // XDP programs are counted host-wide: other labs built meanwhile add theirs
    const others = existsSync(LAB_ROOT) && readdirSync(LAB_ROOT).some((d) => d !== NAME)
    const left = stopLab(NAME)
    expect(left.filter((l) => !(others && l.startsWith("XDP programs:")))).toEqual([])
  })

  it("has no xdp: key, attaches in generic mode on veth saying why, and every server answers its share with affinity", async () => {
    for (const s of lab.servers) {
      expect(readFileSync(s.config, "utf8"), `${s.node}'s config`).not.toMatch(/^xdp:/m)
      const attached = lines(logOf(lab, s.node), "filter.attached")
      expect(attached.length, `${s.node}: filter.attached logged`).toBe(1)
      expect(attached[0]).toContain("mode=skb")
      expect(attached[0]).toContain(`reason="veth: native XDP cannot deliver a rewritten frame to the host`)
      expect(xdpOn(lab, s.node), `${s.node}: eth0`).toMatchObject({ generic: true })
    }
    const first = await expectEveryClientServed(lab, "s1")
    const second = await expectEveryClientServed(lab, "s1")
    expect(second.map((r) => r.server)).toEqual(first.map((r) => r.server))
    expect(Object.keys(answersPerServer(first)).sort()).toEqual(["s1", "s2", "s3"])
  }, 60_000)

  it("a SIGKILLed daemon's program is replaced by the next daemon of the same farm, which serves again", async () => {
    const before = xdpOn(lab, "s3").id
    expect(before).not.toBeNull()
    killDaemon(lab, "s3")
    await until("s3's daemon gone", async () => !daemonRunning(lab, "s3"))
    expect(xdpOn(lab, "s3").id, "the killed daemon's program stays attached").toBe(before)
    const attachedBefore = lines(logOf(lab, "s3"), "filter.attached").length
    labStartDaemon(lab, "s3")
    // the peers may not have noticed the kill yet: wait for the new daemon's own attach first
    await until("s3's new daemon attached", async () => lines(logOf(lab, "s3"), "filter.attached").length > attachedBefore, 40_000)
    await until("s3 up with a share", async () => {
      const m = (await status(lab, "s1")).members.find((x) => x.name === "s3")
      return m?.state === "up" && m.buckets > 300
    }, 40_000)
    const attached = lines(logOf(lab, "s3"), "filter.attached")
    expect(attached.at(-1)).toContain(`replaced=${before}`)
    const after = xdpOn(lab, "s3")
    expect(after.id).not.toBe(before)
    expect(after.generic).toBe(true)
    await expectEveryClientServed(lab, "s1")
  }, 90_000)

  it("a program that is not the farm's own is refused with its id and name; it and the host stay untouched", async () => {
    termDaemon(lab, "s2")
    await until("s2's daemon gone", async () => !daemonRunning(lab, "s2"), 30_000)
    // (harness's expectHostClean greps `xdp`, which this lab's name matches in `link-netns vf-xdpdef-sw`)
    expect(xdpOn(lab, "s2").id, "SIGTERM detached the filter").toBeNull()
    expect(inNs(lab, "s2", "ip", "addr", "show", "lo")).not.toContain(lab.vip)
    spawnSync("ip", ["-n", nsOf(lab, "s2"), "link", "set", "dev", "eth0", "xdpgeneric", "obj", PASS_OBJECT, "sec", "xdp"], { encoding: "utf8" })
    const foreign = xdpOn(lab, "s2").id
    expect(foreign).not.toBeNull()
    labStartDaemon(lab, "s2")
    await until("s2's daemon refused and exited", async () => lines(logOf(lab, "s2"), "filter.attach-refused").length > 0 && !daemonRunning(lab, "s2"), 30_000)
    const refused = lines(logOf(lab, "s2"), "filter.attach-refused")[0]
    expect(refused).toContain(`id=${foreign}`)
    expect(refused).toContain("name=vipfarm_pass")
    expect(xdpOn(lab, "s2").id, "the foreign program is still attached").toBe(foreign)
    expect(inNs(lab, "s2", "ip", "addr", "show", "lo"), "no VIP set up").not.toContain(lab.vip)
    expect(inNs(lab, "s2", "sysctl", "-n", "net.ipv4.conf.all.arp_ignore").trim()).toBe("0")
    // the operator removes it: the daemon starts and serves
    spawnSync("ip", ["-n", nsOf(lab, "s2"), "link", "set", "dev", "eth0", "xdpgeneric", "off"])
    labStartDaemon(lab, "s2")
    await until("s2 up with a share", async () => {
      const m = (await status(lab, "s1")).members.find((x) => x.name === "s2")
      return m?.state === "up" && m.buckets > 300
    }, 40_000)
    await expectEveryClientServed(lab, "s1")
  }, 120_000)
})
