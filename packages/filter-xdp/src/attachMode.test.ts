/** The `xdp.mode` rule: generic where native XDP cannot deliver the filter's frames. */
import { describe, expect, it } from "vitest"
import { chooseMode, type LinkFacts, nativeBlocker, XdpModeRefused } from "./attachMode.ts"

const link = (over: Partial<LinkFacts>): LinkFacts => ({ ifname: "eth0", kind: null, driver: null, slaveKinds: [], ...over })

describe("xdp.mode by interface kind", () => {
  it("auto is generic on veth (by kind or by driver), with the reason", () => {
    for (const f of [link({ kind: "veth" }), link({ driver: "veth" })]) {
      const c = chooseMode("auto", f)
      expect(c).toMatchObject({ mode: "skb", fallback: false })
      expect((c as { reason: string }).reason).toMatch(/^veth: native XDP cannot deliver a rewritten frame/)
    }
  })

  it("auto is generic on a bond or team of veths, native on a bond of NICs", () => {
    expect(chooseMode("auto", link({ kind: "bond", slaveKinds: ["ixgbe", "veth"] }))).toMatchObject({ mode: "skb" })
    expect(chooseMode("auto", link({ kind: "team", slaveKinds: ["veth"] }))).toMatchObject({ mode: "skb" })
    expect(chooseMode("auto", link({ kind: "bond", slaveKinds: ["ixgbe", "ixgbe"] }))).toMatchObject({ mode: "drv", fallback: true })
  })

  it("auto is native (generic if the driver has none) on NICs, tun/tap, bridges, vxlan, macvlan", () => {
    for (const f of [link({ driver: "ixgbe" }), link({ driver: "virtio_net" }), link({ kind: "tun" }), link({ kind: "bridge" }), link({ kind: "vxlan" }), link({ kind: "macvlan" }), link({})]) {
      expect(nativeBlocker(f)).toBeNull()
      expect(chooseMode("auto", f)).toMatchObject({ mode: "drv", fallback: true })
    }
  })

  it("native on veth is refused naming xdp.mode and the interface; native elsewhere is native, without fallback", () => {
    const r = chooseMode("native", link({ ifname: "eth3", kind: "veth" }))
    expect(r).toBeInstanceOf(XdpModeRefused)
    const e = r as XdpModeRefused
    expect(e.key).toBe("xdp.mode")
    expect(e.message).toMatch(/^xdp\.mode: native cannot work on eth3: veth: native XDP cannot deliver/)
    expect(chooseMode("native", link({ driver: "ixgbe" }))).toMatchObject({ mode: "drv", fallback: false })
  })

  it("generic is generic everywhere", () => {
    expect(chooseMode("generic", link({ kind: "veth" }))).toMatchObject({ mode: "skb", fallback: false })
    expect(chooseMode("generic", link({ driver: "ixgbe" }))).toMatchObject({ mode: "skb", fallback: false })
  })
})
