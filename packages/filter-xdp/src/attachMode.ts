/**
 * Which XDP mode the filter attaches in (`xdp.mode`), decided by the kind of interface.
 *
 * The filter accepts a frame by rewriting its destination MAC (the farm's virtual MAC) to the
 * interface's own and returning XDP_PASS. Most drivers build the packet's skb after a native
 * program ran, so the host sees the rewritten frame as its own. veth does not: it runs its
 * native program on an skb whose packet type was already set (PACKET_OTHERHOST, from the
 * virtual MAC), and the rewrite does not reset it, so the IP layer drops the frame. Generic
 * (skb) mode re-derives the packet type after the program and delivers it. Measured on
 * Linux 6.18 in network namespaces (packages/filter-xdp/BENCHMARKS.md, "XDP attach modes"):
 *
 *   veth                 native attaches, does NOT deliver; generic delivers
 *   tun/tap              native attaches and delivers; generic delivers
 *   veth as bridge port  native delivers (the bridge forwards by MAC, not by packet type)
 *   bridge, vxlan, macvlan  no native XDP (attach fails); generic
 *   bond, team           native XDP runs in the slaves' drivers: veth slaves cannot deliver
 */
import { execFileSync } from "node:child_process"
import { readlinkSync } from "node:fs"
import { Data } from "effect"

/** The `xdp.mode` setting of the configuration. */
export type XdpModeSetting = "auto" | "native" | "generic"

/** What the kernel says about an interface (`ip -d -j link show`). */
export interface LinkFacts {
  readonly ifname: string
  /** IFLA_INFO_KIND (veth, bridge, bond, vxlan, tun, ...); null for a plain NIC. */
  readonly kind: string | null
  /** The device driver (/sys/class/net/IF/device/driver), null for virtual interfaces. */
  readonly driver: string | null
  /** Kinds (or drivers) of the interfaces enslaved to it (a bond's or team's slaves). */
  readonly slaveKinds: ReadonlyArray<string>
}

/** The mode to attach in and why. */
export interface ModeChoice {
  readonly mode: "drv" | "skb"
  readonly reason: string
  /** Attach generic if the native attach fails (auto on an interface without native XDP). */
  readonly fallback: boolean
}

/** `xdp.mode: native` on an interface where native XDP cannot deliver the filter's frames. */
export class XdpModeRefused extends Data.TaggedError("XdpModeRefused")<{
  readonly key: "xdp.mode"
  readonly ifname: string
  readonly reason: string
  readonly message: string
}> {}

const VETH_REASON = "native XDP cannot deliver a rewritten frame to the host (the packet type set before the program stays PACKET_OTHERHOST)"

/** Why native XDP cannot deliver the filter's accepted frames on this interface, or null. */
export const nativeBlocker = (f: LinkFacts): string | null => {
  if (f.kind === "veth" || f.driver === "veth") return `veth: ${VETH_REASON}`
  if ((f.kind === "bond" || f.kind === "team") && f.slaveKinds.includes("veth")) {
    return `${f.kind} of veth slaves: native XDP runs in the veth driver, and ${VETH_REASON}`
  }
  return null
}

/**
 * The mode for a setting on an interface: `auto` picks generic where native cannot deliver
 * (and native elsewhere, falling back to generic where the driver has no native XDP),
 * `native` is refused there, `generic` is always generic.
 */
export const chooseMode = (setting: XdpModeSetting, f: LinkFacts): ModeChoice | XdpModeRefused => {
  const blocker = nativeBlocker(f)
  const what = f.kind ?? f.driver ?? "device"
  switch (setting) {
    case "generic":
      return { mode: "skb", reason: "xdp.mode: generic", fallback: false }
    case "native":
      if (blocker !== null) {
        return new XdpModeRefused({
          key: "xdp.mode", ifname: f.ifname, reason: blocker,
          message: `xdp.mode: native cannot work on ${f.ifname}: ${blocker}; use xdp.mode auto or generic`
        })
      }
      return { mode: "drv", reason: "xdp.mode: native", fallback: false }
    case "auto":
      if (blocker !== null) return { mode: "skb", reason: blocker, fallback: false }
      return { mode: "drv", reason: `${what}: native XDP delivers rewritten frames`, fallback: true }
  }
}

interface IpLink {
  readonly ifname?: string
  readonly master?: string
  readonly linkinfo?: { readonly info_kind?: string }
}

/** Every link of the namespace, with details (one `ip` run: the daemon's start pays it once). */
const ipLinks = (netns?: string): Array<IpLink> => {
  const out = execFileSync("ip", [...(netns ? ["-n", netns] : []), "-d", "-j", "link", "show"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })
  const parsed: unknown = JSON.parse(out.trim() === "" ? "[]" : out)
  return Array.isArray(parsed) ? (parsed as Array<IpLink>) : []
}

const driverOf = (ifname: string, read: (p: string) => string | null): string | null => {
  const target = read(`/sys/class/net/${ifname}/device/driver`)
  return target === null ? null : target.split("/").pop() ?? null
}

/**
 * The interface's kind, driver and slaves' kinds, from `ip -d -j link show` and sysfs, in the
 * caller's network namespace (or, for tests and tools, the named one: then sysfs, which shows
 * the caller's, is not read). Throws when the interface does not exist.
 */
export const linkFacts = (ifname: string, netns?: string): LinkFacts => {
  const links = ipLinks(netns)
  const link = links.find((l) => l.ifname === ifname)
  if (link === undefined) throw new Error(`interface ${ifname} not found`)
  const slaves = links.filter((l) => l.master === ifname)
  const readLink = netns ? () => null : defaultReadLink
  return {
    ifname,
    kind: link.linkinfo?.info_kind ?? null,
    driver: driverOf(ifname, readLink),
    slaveKinds: slaves.map((s) => s.linkinfo?.info_kind ?? (s.ifname ? driverOf(s.ifname, readLink) : null) ?? "device")
  }
}

const defaultReadLink = (p: string): string | null => {
  try {
    return readlinkSync(p)
  } catch {
    return null
  }
}
