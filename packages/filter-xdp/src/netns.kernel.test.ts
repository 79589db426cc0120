/**
 * The filter in native mode on a veth answers ARP for a VIP with XDP_TX, and the answer
 * reaches the other end only when that peer has an XDP program (the PASS_OBJECT). The
 * process that loaded the filter exits right away (as a crashed daemon would): the filter
 * stays attached and still fences itself at its deadline.
 * Two namespaces, a veth between them, 198.18.0.0/15 addresses; the requester is the
 * kernel of the client namespace resolving the VIP (a UDP datagram to it).
 */
import { execFileSync } from "node:child_process"
import { existsSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { isRoot, monoNow, skipReason, VMAC } from "./internal/fixtures.ts"
import { macText } from "./types.ts"

skipReason("netns.kernel.test.ts")

const ROOT = fileURLToPath(new URL("../../../", import.meta.url))
const SCRIPT = fileURLToPath(new URL("./internal/nsAttach.ts", import.meta.url))
const tag = `${process.pid % 100000}`
const NS_SERVER = `vfs${tag}`
const NS_CLIENT = `vfc${tag}`
const ip = (...args: Array<string>): string => execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })
const inNs = (ns: string, ...cmd: Array<string>): string =>
  execFileSync("ip", ["netns", "exec", ns, ...cmd], { encoding: "utf8", cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] })

/** Resolve the VIP from the client namespace; the neighbour entry's MAC, or null. */
const resolveVip = async (): Promise<string | null> => {
  ip("-n", NS_CLIENT, "neigh", "flush", "dev", "c0")
  inNs(NS_CLIENT, process.execPath, "-e", "const s=require('dgram').createSocket('udp4');s.send('x',9,'198.18.0.1',()=>s.close())")
  for (let i = 0; i < 40; i++) {
    const m = /lladdr ([0-9a-f:]{17})/.exec(ip("-n", NS_CLIENT, "neigh", "show", "198.18.0.1", "dev", "c0"))
    if (m) return m[1]
    await new Promise((r) => setTimeout(r, 25))
  }
  return null
}

/** The filter's lease from its load: long enough for two process starts and an ARP exchange. */
const LEASE_MS = 8000

let ready = false
describe.skipIf(!isRoot())("ARP answered by XDP_TX in native mode on a veth", () => {
  beforeAll(() => {
    try {
      ip("netns", "add", NS_SERVER)
      ip("netns", "add", NS_CLIENT)
      ip("link", "add", "s0", "netns", NS_SERVER, "type", "veth", "peer", "name", "c0", "netns", NS_CLIENT)
      ip("-n", NS_SERVER, "link", "set", "s0", "up")
      ip("-n", NS_CLIENT, "addr", "add", "198.18.0.2/24", "dev", "c0")
      ip("-n", NS_CLIENT, "link", "set", "c0", "up")
      ready = true
    } catch (e) {
      console.log(`netns.kernel.test.ts: skipped: cannot build the namespaces (${String(e)})`)
    }
  })
  afterAll(() => {
    for (const ns of [NS_SERVER, NS_CLIENT]) {
      if (existsSync(`/run/netns/${ns}`)) ip("netns", "del", ns)
    }
  })

  it("is dropped without an XDP program on the peer, delivered with the pass program, fenced at the deadline", async (ctx) => {
    // counted as skipped (a failure in CI mode), not as a pass
    if (!ready) return ctx.skip()
    const serverMac = /link\/ether ([0-9a-f:]{17})/.exec(ip("-n", NS_SERVER, "link", "show", "s0"))![1]
    const [mode, deadline] = inNs(NS_SERVER, process.execPath, "--import", "tsx", SCRIPT, "filter", "s0", serverMac, String(LEASE_MS)).trim().split(" ")
    expect(mode).toBe("drv")
    expect(ip("-n", NS_SERVER, "link", "show", "s0")).toMatch(/prog\/xdp/)

    expect(await resolveVip()).toBeNull()

    expect(inNs(NS_CLIENT, process.execPath, "--import", "tsx", SCRIPT, "pass", "c0").trim()).toBe("drv")
    expect(ip("-n", NS_CLIENT, "link", "show", "c0")).toMatch(/prog\/xdp/)
    const resolved = await resolveVip()
    // each `node --import tsx` start above can take 2.5 s on a loaded 2-vCPU machine
    expect(monoNow(), `the ${LEASE_MS} ms lease ran out before the ARP check: too short on this machine`).toBeLessThan(BigInt(deadline))
    expect(resolved).toBe(macText(VMAC))

    // The loader is long gone; the program alone fences: ARP for the VIP is no longer answered.
    await new Promise((r) => setTimeout(r, Math.max(0, Number(BigInt(deadline) - monoNow()) / 1e6 + 10)))
    expect(await resolveVip()).toBeNull()
  }, 30_000)
})
