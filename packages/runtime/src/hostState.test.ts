import { describe, expect, it } from "vitest"
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import {
  chooseInherited, fdbHasSelf, hostStatePath, isAlreadyGone, isAlreadyThere, parseHostState, promiscuousIn, readHostState, removeHostState,
  validHostRecord, vipLabel, vipOnLo, writeHostState, type HostStateFile
} from "./hostState.ts"

const who = { farm: "web", node: "s1", interface: "eth0", vmac: "02:00:5e:aa:bb:cc" }
const record = { sysctls: { "net.ipv4.conf.all.arp_ignore": "0", "net.ipv4.conf.eth0.arp_announce": "1" }, vipsAdded: ["198.18.0.100"], mac: "unicast-filter" as const }
const file = (over: Partial<HostStateFile> = {}): HostStateFile => ({ v: 1, ...who, pid: 42, host: record, ...over })

describe("host state file", () => {
  it("lives next to the control socket, one per daemon", () => {
    expect(hostStatePath("/run/vipfarm/control.sock")).toBe("/run/vipfarm/control.sock.host.json")
    expect(hostStatePath("/run/lab/s1.sock")).not.toBe(hostStatePath("/run/lab/s2.sock"))
  })

  it("parses a valid file for this owner", () => {
    expect(parseHostState(JSON.stringify(file()), who)).toEqual({ record, why: "ok" })
  })

  it("refuses another farm's, node's, interface's or virtual MAC's file", () => {
    for (const other of [{ farm: "db" }, { node: "s2" }, { interface: "eth1" }, { vmac: "02:00:5e:00:00:01" }]) {
      const r = parseHostState(JSON.stringify(file(other)), who)
      expect(r.record, JSON.stringify(other)).toBeNull()
      expect(r.why).toMatch(/^for farm /)
    }
  })

  it("refuses malformed files with a reason", () => {
    expect(parseHostState("{", who)).toMatchObject({ record: null, why: expect.stringMatching(/^unreadable/) })
    expect(parseHostState(JSON.stringify({ ...file(), v: 2 }), who)).toMatchObject({ record: null, why: expect.stringMatching(/^invalid/) })
    expect(parseHostState(JSON.stringify(file({ host: { ...record, sysctls: { k: 1 } } as never })), who).record).toBeNull()
    expect(parseHostState(JSON.stringify(file({ host: { ...record, mac: "bond" } as never })), who).record).toBeNull()
    expect(parseHostState(JSON.stringify(file({ host: { sysctls: {} } as never })), who).record).toBeNull()
    expect(parseHostState("null", who).record).toBeNull()
  })

  it("prefers the file over a keep-serving restart's record", () => {
    const older = { sysctls: {}, vipsAdded: [] }
    expect(chooseInherited(record, older)).toEqual({ record, source: "file" })
    expect(chooseInherited(null, older)).toEqual({ record: older, source: "restart" })
    expect(chooseInherited(null, null)).toEqual({ record: null, source: "none" })
  })

  it("checks a restart state's record (an older daemon's record has no promiscBefore)", () => {
    expect(validHostRecord({ sysctls: {}, vipsAdded: [], mac: "promiscuous" })).toEqual({ sysctls: {}, vipsAdded: [], mac: "promiscuous" })
    expect(validHostRecord({ sysctls: [], vipsAdded: [] })).toBeNull()
    expect(validHostRecord(undefined)).toBeNull()
  })

  it("writes atomically (no temporary left), reads back, is removed", () => {
    const dir = mkdtempSync(join(tmpdir(), "hoststate-"))
    try {
      const path = hostStatePath(join(dir, "s1.sock"))
      expect(readHostState(path, who)).toEqual({ record: null, why: "none" })
      writeHostState(path, file())
      writeHostState(path, file({ host: { ...record, vipsAdded: ["198.18.0.100", "198.18.0.101"] } }))
      expect(readdirSync(dir)).toEqual(["s1.sock.host.json"])
      expect(statSync(path).mode & 0o777).toBe(0o600)
      expect(readHostState(path, who).record?.vipsAdded).toEqual(["198.18.0.100", "198.18.0.101"])
      expect(JSON.parse(readFileSync(path, "utf8")).pid).toBe(42)
      writeFileSync(path, "garbage")
      expect(readHostState(path, who)).toMatchObject({ record: null, why: expect.stringMatching(/^unreadable/) })
      removeHostState(path)
      removeHostState(path)
      expect(readdirSync(dir)).toEqual([])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe("recognising the farm's marks", () => {
  const label = vipLabel("web")

  it("labels fit IFNAMSIZ, start with lo: and differ per farm", () => {
    expect(label).toMatch(/^lo:vf[0-9a-f]{8}$/)
    expect(label.length).toBeLessThanOrEqual(15)
    expect(vipLabel("web")).toBe(label)
    expect(vipLabel("db")).not.toBe(label)
  })

  const lo = [
    "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever",
    `1: lo    inet 198.18.0.100/32 scope global ${label}\\       valid_lft forever preferred_lft forever`,
    "1: lo    inet 198.18.0.101/32 scope global lo\\       valid_lft forever preferred_lft forever",
    "1: lo    inet 198.18.0.102/24 scope global lo:vf00000000\\       valid_lft forever preferred_lft forever",
    "1: lo    inet6 2001:db8::1/128 scope global nodad \\       valid_lft forever preferred_lft forever",
    "1: lo    inet6 2001:db8::2/128 scope global \\       valid_lft forever preferred_lft forever",
    "1: lo    inet6 ::1/128 scope host \\       valid_lft forever preferred_lft forever"
  ].join("\n")

  it("finds VIPs on lo and which carry this farm's mark", () => {
    expect(vipOnLo(lo, "198.18.0.100", label)).toEqual({ present: true, marked: true })
    expect(vipOnLo(lo, "198.18.0.101", label)).toEqual({ present: true, marked: false })
    expect(vipOnLo(lo, "198.18.0.100", vipLabel("db"))).toEqual({ present: true, marked: false })
    expect(vipOnLo(lo, "198.18.0.102", "lo:vf00000000")).toEqual({ present: true, marked: false }) // not a /32
    expect(vipOnLo(lo, "198.18.0.10", label)).toEqual({ present: false, marked: false })
    expect(vipOnLo(lo, "2001:db8::1", label)).toEqual({ present: true, marked: true })
    expect(vipOnLo(lo, "2001:db8::2", label)).toEqual({ present: true, marked: false })
    expect(vipOnLo(lo, "2001:db8::", label)).toEqual({ present: false, marked: false })
  })

  it("finds the virtual MAC's own fdb entry", () => {
    const fdb = "02:00:5e:aa:bb:cc self permanent\n33:33:00:00:00:01 self permanent\n02:00:5e:aa:bb:cd master br0 permanent\n"
    expect(fdbHasSelf(fdb, "02:00:5E:AA:BB:CC")).toBe(true)
    expect(fdbHasSelf(fdb, "02:00:5e:aa:bb:cd")).toBe(false)
    expect(fdbHasSelf("", "02:00:5e:aa:bb:cc")).toBe(false)
  })

  it("tells 'there already' and 'gone already' from real failures", () => {
    expect(isAlreadyThere("RTNETLINK answers: File exists")).toBe(true)
    expect(isAlreadyThere("RTNETLINK answers: Operation not permitted")).toBe(false)
    expect(isAlreadyGone("RTNETLINK answers: No such file or directory")).toBe(true)
    expect(isAlreadyGone("Error: ipv4: Address not found.")).toBe(true)
    expect(isAlreadyGone("RTNETLINK answers: Cannot assign requested address")).toBe(true)
    expect(isAlreadyGone("RTNETLINK answers: Operation not permitted")).toBe(false)
  })

  it("reads IFF_PROMISC from the interface flags", () => {
    expect(promiscuousIn("0x1103\n")).toBe(true)
    expect(promiscuousIn("0x1003")).toBe(false)
  })
})
