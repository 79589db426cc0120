/**
 * Network namespaces for the lab and the end-to-end tests: a switch namespace holding a
 * bridge, host namespaces each with a veth on the bridge. Everything is named with a
 * prefix so that it can be found and removed again, also after a crash.
 */
import { execFileSync, spawnSync } from "node:child_process"
import { Effect } from "effect"
import { HostNetError, run } from "../hostNet.ts"

/** Run a command inside a namespace. */
export const nsRun = (ns: string, cmd: string, args: ReadonlyArray<string>) => run("ip", ["netns", "exec", ns, cmd, ...args])

/** Namespaces whose name starts with `prefix`. */
export const listNamespaces = (prefix: string): Array<string> => {
  const out = spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout ?? ""
  return out.split("\n").map((l) => l.split(" ")[0]).filter((n) => n.length > 0 && n.startsWith(prefix))
}

/** Kill every process in the namespaces starting with `prefix` and delete them. Synchronous, safe to call twice. */
export const removeNamespaces = (prefix: string): Array<string> => {
  const names = listNamespaces(prefix)
  for (const ns of names) {
    for (const signal of ["TERM", "KILL"]) {
      const pids = (spawnSync("ip", ["netns", "pids", ns], { encoding: "utf8" }).stdout ?? "").split("\n").filter(Boolean)
      if (pids.length === 0) break
      spawnSync("kill", [`-${signal}`, ...pids])
      if (signal === "TERM") {
        for (let i = 0; i < 30; i++) {
          const left = (spawnSync("ip", ["netns", "pids", ns], { encoding: "utf8" }).stdout ?? "").trim()
          if (left === "") break
          spawnSync("sleep", ["0.1"])
        }
      }
    }
    spawnSync("ip", ["netns", "del", ns])
  }
  return names
}

/** True when the process may create namespaces (root). */
export const canUseNamespaces = (): boolean => process.getuid?.() === 0

/** A host attached to the lab switch. */
export interface LabHost {
  readonly ns: string
  readonly iface: string
  readonly address: string
  readonly mac: string
}

/** The switch: a namespace with a bridge. */
export const createSwitch = (ns: string) =>
  Effect.gen(function* () {
    yield* run("ip", ["netns", "add", ns])
    yield* nsRun(ns, "ip", ["link", "add", "br0", "type", "bridge"])
    // forward immediately (no STP delay) and never age out: a farm's clients are few
    yield* nsRun(ns, "ip", ["link", "set", "br0", "type", "bridge", "forward_delay", "0", "stp_state", "0"])
    yield* nsRun(ns, "ip", ["link", "set", "br0", "up"])
    yield* nsRun(ns, "ip", ["link", "set", "lo", "up"])
  })

/**
 * A host namespace `ns` with `eth0` (MAC `mac`, addresses `addresses`, first is primary,
 * all /15) whose peer `port` is on the switch's bridge.
 */
export const createHost = (switchNs: string, ns: string, port: string, mac: string, addresses: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    yield* run("ip", ["netns", "add", ns])
    yield* run("ip", ["link", "add", port, "netns", switchNs, "type", "veth", "peer", "name", "eth0", "netns", ns])
    yield* nsRun(switchNs, "ip", ["link", "set", port, "master", "br0", "up"])
    yield* nsRun(ns, "ip", ["link", "set", "eth0", "address", mac])
    for (const a of addresses) yield* nsRun(ns, "ip", ["addr", "add", `${a}/15`, "dev", "eth0"])
    yield* nsRun(ns, "ip", ["link", "set", "eth0", "up"])
    yield* nsRun(ns, "ip", ["link", "set", "lo", "up"])
  })

/** Cut or heal a host's link (its port on the switch goes down or up). */
export const setLink = (switchNs: string, port: string, up: boolean): Effect.Effect<string, HostNetError> =>
  nsRun(switchNs, "ip", ["link", "set", port, up ? "up" : "down"])

/** Pids of the processes in a namespace. */
export const namespacePids = (ns: string): Array<number> =>
  execFileSync("ip", ["netns", "pids", ns], { encoding: "utf8" }).split("\n").filter(Boolean).map(Number)
