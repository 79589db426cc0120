/**
 * The daemon's attach step (restart.ts attachFilter) on a real veth: the `xdp.mode` rule,
 * the refusal of native on veth naming `xdp.mode`, the refusal of a foreign program, and
 * the replacement of the farm's own (a keep-serving restart's, in the inherited mode).
 */
import { execFileSync } from "node:child_process"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { farmSeed, virtualMac } from "@vipfarm/domain"
import { attachedProgram, type FilterHandle, loadFilter, macBytes, PASS_OBJECT, XdpAttachRefused, XdpModeRefused } from "@vipfarm/filter-xdp"
import { attachFilter } from "./restart.ts"

const root = process.getuid?.() === 0
if (!root) console.log("attachFilter.kernel.test.ts: skipped: attaching XDP programs needs root")

const FARM = "xdp-attach-test"
const seed = farmSeed(FARM)
const vmac = macBytes(virtualMac(FARM))
const dev = `vfaf${process.pid % 100000}`
const ip = (...args: Array<string>) => execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })

const withVeth = async (body: () => Promise<void>) => {
  ip("link", "add", dev, "type", "veth", "peer", "name", `${dev}p`)
  try {
    await body()
  } finally {
    ip("link", "del", dev)
  }
}
const filterOf = (farmSeedValue = seed): FilterHandle => {
  const h = loadFilter()
  h.setConfig({ seed: farmSeedValue, vmac, ifmac: vmac, deadlineNs: 0n, answerNeighbours: true, udpIdleMs: 30_000 })
  return h
}

describe.skipIf(!root)("the daemon's attach step", () => {
  it("auto on veth: generic, with the veth reason", () =>
    withVeth(async () => {
      const h = filterOf()
      try {
        const a = await Effect.runPromise(attachFilter(h, dev, { setting: "auto", inherited: null, seed, vmac }))
        expect(a.mode).toBe("skb")
        expect(a.reason).toMatch(/^veth: native XDP cannot deliver a rewritten frame to the host/)
        expect(a.replaced).toBeNull()
        expect(attachedProgram(dev)).toMatchObject({ mode: "skb", name: "vipfarm_xdp" })
      } finally {
        h.close()
      }
      expect(attachedProgram(dev)).toBeNull()
    }))

  it("native on veth is refused naming xdp.mode; nothing is attached", () =>
    withVeth(async () => {
      const h = filterOf()
      try {
        const e = await Effect.runPromise(Effect.flip(attachFilter(h, dev, { setting: "native", inherited: null, seed, vmac })))
        expect(e).toBeInstanceOf(XdpModeRefused)
        expect(e.message).toMatch(new RegExp(`^xdp\\.mode: native cannot work on ${dev}: veth: `))
        expect(attachedProgram(dev)).toBeNull()
      } finally {
        h.close()
      }
    }))

  it("a foreign program is refused with its id and name and stays; the farm's own is replaced in the inherited mode", () =>
    withVeth(async () => {
      ip("link", "set", "dev", dev, "xdpgeneric", "obj", PASS_OBJECT, "sec", "xdp")
      const foreign = attachedProgram(dev)!
      const h = filterOf()
      try {
        const e = await Effect.runPromise(Effect.flip(attachFilter(h, dev, { setting: "auto", inherited: null, seed, vmac })))
        expect(e).toBeInstanceOf(XdpAttachRefused)
        expect(e).toMatchObject({ id: foreign.id, name: "vipfarm_pass" })
        expect(attachedProgram(dev)?.id).toBe(foreign.id)
      } finally {
        h.close()
      }
      ip("link", "set", "dev", dev, "xdpgeneric", "off")
      // an older daemon of this farm that attached natively, then restarted keeping its filter
      const previous = filterOf()
      const other = filterOf(farmSeed("another-farm"))
      const next = filterOf()
      const third = filterOf()
      try {
        previous.attach(dev, "drv")
        const a = await Effect.runPromise(attachFilter(next, dev, { setting: "auto", inherited: "drv", seed, vmac }))
        expect(a).toMatchObject({ mode: "drv", reason: "inherited from the restarted daemon", replaced: { name: "vipfarm_xdp", mode: "drv" } })
        expect(attachedProgram(dev)?.id).not.toBe(a.replaced!.id)
        // another farm's program on the interface is not this daemon's to take over
        next.close()
        other.attach(dev, "skb")
        const e = await Effect.runPromise(Effect.flip(attachFilter(third, dev, { setting: "auto", inherited: null, seed, vmac })))
        expect(e).toBeInstanceOf(XdpAttachRefused)
      } finally {
        previous.close()
        other.close()
        next.close()
        third.close()
      }
      expect(attachedProgram(dev)).toBeNull()
    }))
})
