import { spawn } from "node:child_process"
import { describe, expect, it } from "vitest"
import { describeLeftovers, isClean, LAB_ENV, labProcesses, OWNER_ENV } from "./leftovers.ts"

describe("lab leftovers", () => {
  it("finds a lab's processes by the VIPFARM_LAB in their environment, and only that lab's", async () => {
    const child = spawn("sleep", ["30"], { env: { ...process.env, [LAB_ENV]: "zzunit" }, stdio: "ignore" })
    try {
      await new Promise((r) => child.once("spawn", r))
      const found = labProcesses("zzunit")
      expect(found.map((p) => p.pid)).toEqual([child.pid])
      expect(found[0].cmd).toBe("sleep 30")
      expect(found[0].lab).toBe("zzunit")
      expect(found[0].owner).toBe(Number(process.env[OWNER_ENV]) || null)
      expect(labProcesses("zzother")).toEqual([])
    } finally {
      child.kill("SIGKILL")
    }
    await new Promise((r) => child.once("exit", r))
    expect(labProcesses("zzunit")).toEqual([])
  })

  it("describes each kind of leftover on one line, nothing when clean", () => {
    const clean = { namespaces: [], processes: [], veths: [], xdp: [] }
    expect(isClean(clean)).toBe(true)
    expect(describeLeftovers(clean)).toEqual([])
    const dirty = {
      namespaces: ["vf-a-s1", "vf-a-sw"],
      processes: [{ pid: 7, lab: "a", owner: null, cmd: "nats-server -c x" }],
      veths: ["s1p"],
      xdp: [{ id: 12, type: 6, name: "vipfarm_xdp" }]
    }
    expect(isClean(dirty)).toBe(false)
    expect(describeLeftovers(dirty)).toEqual([
      "namespaces: vf-a-s1, vf-a-sw",
      "processes: 7 (lab a: nats-server -c x)",
      "host veths: s1p",
      "XDP programs: vipfarm_xdp#12"
    ])
  })
})
