/**
 * The `xdp.mode` rule on real interfaces, in network namespaces this test creates: the kinds
 * are read as the daemon reads them, and a TCP SYN to a VIP on lo, sent to the farm's virtual
 * MAC, is answered only when the filter's rewritten frame reaches the host stack: on veth
 * not in native mode, but in the mode `auto` picks (generic); on a bridge `auto` falls back
 * to generic (no native XDP) and is answered. Addresses 198.18.0.0/15.
 */
import { execFileSync, spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { chooseMode, linkFacts, XdpModeRefused } from "./attachMode.ts"
import { isRoot, skipReason, VMAC } from "./internal/fixtures.ts"
import { macText } from "./types.ts"

skipReason("attachMode.kernel.test.ts")

const ROOT = fileURLToPath(new URL("../../../", import.meta.url))
const SCRIPT = fileURLToPath(new URL("./internal/nsAttach.ts", import.meta.url))
const tag = `${process.pid % 100000}`
const NS_S = `xdpms${tag}`
const NS_C = `xdpmc${tag}`
const ip = (...args: Array<string>): string => execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })
const inNs = (ns: string, ...cmd: Array<string>): string =>
  execFileSync("ip", ["netns", "exec", ns, ...cmd], { encoding: "utf8", cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] })
const macOf = (ns: string, dev: string): string => /link\/ether ([0-9a-f:]{17})/.exec(ip("-n", ns, "link", "show", dev))![1]

/** A TCP connect from the client namespace to 198.18.0.1:8080 (listening in the server namespace): answered? */
const connects = async (): Promise<boolean> => {
  const server = spawn("ip", ["netns", "exec", NS_S, process.execPath, "-e",
    "const s=require('net').createServer((c)=>c.end('ok')).listen(8080,'198.18.0.1',()=>console.log('up'));setTimeout(()=>s.close(),8000).unref()"], { stdio: ["ignore", "pipe", "inherit"] })
  try {
    await new Promise<void>((r) => server.stdout.once("data", () => r()))
    const out = inNs(NS_C, process.execPath, "-e",
      "const c=require('net').connect(8080,'198.18.0.1');c.setTimeout(2000,()=>{console.log('timeout');process.exit(0)});c.on('data',(d)=>{console.log(String(d));process.exit(0)});c.on('error',(e)=>{console.log(e.code);process.exit(0)})")
    return out.trim() === "ok"
  } finally {
    server.kill()
  }
}

/** Client c0 (198.18.1.2) reaches 198.18.0.1 through the server's 198.18.1.1, whose MAC it believes is the VMAC. */
const clientTo = (addressDev: string): void => {
  ip("-n", NS_S, "addr", "add", "198.18.1.1/24", "dev", addressDev)
  ip("-n", NS_S, "link", "set", addressDev, "up")
  inNs(NS_S, "bridge", "fdb", "add", macText(VMAC), "dev", addressDev, "self", "permanent")
  ip("-n", NS_C, "addr", "add", "198.18.1.2/24", "dev", "c0")
  ip("-n", NS_C, "link", "set", "c0", "up")
  ip("-n", NS_C, "route", "add", "198.18.0.1/32", "via", "198.18.1.1")
  ip("-n", NS_C, "neigh", "replace", "198.18.1.1", "lladdr", macText(VMAC), "dev", "c0", "nud", "permanent")
}

const attach = (what: "filter" | "auto", dev: string, mac: string, arg: string): string =>
  inNs(NS_S, process.execPath, "--import", "tsx", SCRIPT, what, dev, mac, ...(what === "filter" ? ["-", arg] : [arg])).trim()

let ready = false
describe.skipIf(!isRoot())("xdp.mode on real interfaces", () => {
  beforeAll(() => {
    try {
      for (const ns of [NS_S, NS_C]) {
        ip("netns", "add", ns)
        ip("-n", ns, "link", "set", "lo", "up")
      }
      ip("-n", NS_S, "addr", "add", "198.18.0.1/32", "dev", "lo")
      ready = true
    } catch (e) {
      console.log(`attachMode.kernel.test.ts: skipped: cannot build the namespaces (${String(e)})`)
    }
  })
  afterAll(() => {
    for (const ns of [NS_S, NS_C]) if (existsSync(`/run/netns/${ns}`)) ip("netns", "del", ns)
  })

  it("reads each kind as the daemon does and picks generic only where native cannot deliver", (ctx) => {
    if (!ready) return ctx.skip()
    ip("-n", NS_S, "link", "add", "k-veth", "type", "veth", "peer", "name", "k-peer")
    ip("-n", NS_S, "link", "add", "k-br", "type", "bridge")
    ip("-n", NS_S, "link", "set", "k-peer", "master", "k-br")
    ip("-n", NS_S, "link", "add", "k-mv", "link", "k-veth", "type", "macvlan", "mode", "bridge")
    ip("-n", NS_S, "link", "add", "k-vx", "type", "vxlan", "id", "7", "dstport", "4789", "local", "198.18.0.1")
    ip("-n", NS_S, "tuntap", "add", "dev", "k-tap", "mode", "tap")
    const want: Record<string, { kind: string; mode: "drv" | "skb" }> = {
      "k-veth": { kind: "veth", mode: "skb" }, "k-br": { kind: "bridge", mode: "drv" }, "k-mv": { kind: "macvlan", mode: "drv" },
      "k-vx": { kind: "vxlan", mode: "drv" }, "k-tap": { kind: "tun", mode: "drv" }
    }
    for (const [dev, w] of Object.entries(want)) {
      const f = linkFacts(dev, NS_S)
      expect(f.kind, dev).toBe(w.kind)
      expect((chooseMode("auto", f) as { mode: string }).mode, dev).toBe(w.mode)
    }
    expect(linkFacts("k-br", NS_S).slaveKinds).toEqual(["veth"])
    const refused = chooseMode("native", linkFacts("k-veth", NS_S))
    expect(refused).toBeInstanceOf(XdpModeRefused)
    expect((refused as XdpModeRefused).message).toMatch(/^xdp\.mode: native cannot work on k-veth: veth: /)
    expect(() => linkFacts("k-none", NS_S)).toThrow()
    for (const dev of ["k-mv", "k-vx", "k-tap", "k-br", "k-veth"]) ip("-n", NS_S, "link", "del", dev)
  })

  it("veth: a native filter's accepted SYN is not delivered; the mode auto picks (generic) is answered; native is refused", async (ctx) => {
    if (!ready) return ctx.skip()
    ip("link", "add", "x0", "netns", NS_S, "type", "veth", "peer", "name", "c0", "netns", NS_C)
    try {
      clientTo("x0")
      const mac = macOf(NS_S, "x0")
      expect(await connects(), "no program: the VMAC frame is not the host's").toBe(false)
      expect(attach("filter", "x0", mac, "drv")).toMatch(/^drv /)
      expect(await connects(), "native on veth").toBe(false)
      ip("-n", NS_S, "link", "set", "dev", "x0", "xdp", "off")
      expect(attach("auto", "x0", mac, "native")).toMatch(/^refused xdp\.mode: native cannot work on x0: veth: native XDP cannot deliver/)
      expect(ip("-n", NS_S, "link", "show", "x0")).not.toMatch(/prog\/xdp/)
      expect(attach("auto", "x0", mac, "auto")).toMatch(/^skb veth: native XDP cannot deliver/)
      expect(ip("-n", NS_S, "-d", "link", "show", "x0")).toMatch(/xdpgeneric/)
      expect(await connects(), "auto (generic) on veth").toBe(true)
    } finally {
      ip("-n", NS_S, "link", "del", "x0")
    }
  }, 120_000)

  it("bridge: auto falls back to generic (no native XDP) and is answered", async (ctx) => {
    if (!ready) return ctx.skip()
    ip("link", "add", "p0", "netns", NS_S, "type", "veth", "peer", "name", "c0", "netns", NS_C)
    try {
      ip("-n", NS_S, "link", "add", "br0", "type", "bridge")
      ip("-n", NS_S, "link", "set", "p0", "master", "br0")
      ip("-n", NS_S, "link", "set", "p0", "up")
      clientTo("br0")
      expect(await connects(), "no program").toBe(false)
      expect(attach("auto", "br0", macOf(NS_S, "br0"), "auto")).toBe("skb native attach failed, generic")
      expect(await connects(), "auto on a bridge").toBe(true)
    } finally {
      ip("-n", NS_S, "link", "del", "p0")
      ip("-n", NS_S, "link", "del", "br0")
    }
  }, 120_000)
})
