/**
 * What the daemon sets on its host, each step undone when its scope closes (so a node is
 * never left half-configured): the VIPs on `lo`, ARP sysctls so the kernel never answers
 * ARP for a VIP with a real MAC, and reception of the farm's virtual MAC on the interface.
 */
import { execFile, spawnSync } from "node:child_process"
import { constants } from "node:os"
import { readFileSync, writeFileSync } from "node:fs"
import { Effect, Schema } from "effect"

/** A host command failed. */
export class HostNetError extends Schema.TaggedError<HostNetError>()("HostNetError", {
  op: Schema.String,
  message: Schema.String
}) {}

/** Run a command (no shell) with a 10 s limit; its output is buffered: stdout on success. For the daemon's own short commands. */
export const run = (cmd: string, args: ReadonlyArray<string>): Effect.Effect<string, HostNetError> =>
  Effect.callback<string, HostNetError>((resume) => {
    execFile(cmd, [...args], { timeout: 10_000 }, (err, stdout, stderr) => {
      if (err) resume(Effect.fail(new HostNetError({ op: `${cmd} ${args.join(" ")}`, message: (stderr || err.message).trim() })))
      else resume(Effect.succeed(stdout))
    })
  })

/**
 * Run a command (no shell) attached to this process's terminal: stdin, stdout and stderr
 * inherited, no time limit. Succeeds with its exit status (128 + the signal's number when a
 * signal ended it); fails only when it could not be started. This process waits for it (a
 * Ctrl-C on the terminal goes to the command, which decides).
 */
export const runAttached = (cmd: string, args: ReadonlyArray<string>): Effect.Effect<number, HostNetError> =>
  Effect.suspend(() => {
    const r = spawnSync(cmd, [...args], { stdio: "inherit" })
    if (r.error) return Effect.fail(new HostNetError({ op: `${cmd} ${args.join(" ")}`, message: r.error.message }))
    if (r.signal !== null) return Effect.succeed(128 + (constants.signals[r.signal] ?? 0))
    return Effect.succeed(r.status ?? 1)
  })

const sysctlPath = (key: string) => `/proc/sys/${key.replace(/\./g, "/")}`

/** Set a sysctl for the scope's lifetime; the previous value is restored after. */
export const scopedSysctl = (key: string, value: string) =>
  Effect.acquireRelease(
    Effect.try({
      try: () => {
        const before = readFileSync(sysctlPath(key), "utf8").trim()
        writeFileSync(sysctlPath(key), value)
        return before
      },
      catch: (e) => new HostNetError({ op: `sysctl ${key}=${value}`, message: (e as Error).message })
    }),
    (before) => Effect.sync(() => writeFileSync(sysctlPath(key), before)).pipe(Effect.ignore)
  )

const isV6 = (address: string) => address.includes(":")

/** Put a VIP on `lo` for the scope's lifetime (left alone, and not removed, if it was there already). */
export const scopedVipOnLoopback = (address: string) => {
  const prefix = `${address}/${isV6(address) ? 128 : 32}`
  return Effect.acquireRelease(
    Effect.gen(function* () {
      const present = (yield* run("ip", ["-o", "addr", "show", "dev", "lo"])).includes(` ${prefix} `) ||
        (yield* run("ip", ["-o", "addr", "show", "dev", "lo"])).includes(` ${address}/`)
      if (present) return false
      // nodad: every server holds the VIP; nobody should defend it with DAD
      yield* run("ip", ["addr", "add", prefix, "dev", "lo", ...(isV6(address) ? ["nodad"] : [])])
      return true
    }),
    (added) => (added ? run("ip", ["addr", "del", prefix, "dev", "lo"]).pipe(Effect.ignore) : Effect.void)
  )
}

/**
 * Receive frames for the virtual MAC: add it to the NIC's unicast filter where the driver
 * can (`bridge fdb add ... self`), promiscuous mode as fallback. Returns the method used.
 */
export const scopedVirtualMac = (iface: string, vmac: string) =>
  Effect.acquireRelease(
    run("bridge", ["fdb", "add", vmac, "dev", iface, "self", "permanent"]).pipe(
      Effect.as("unicast-filter" as const),
      Effect.orElseSucceed(() => "promiscuous" as const),
      Effect.flatMap((how) => (how === "promiscuous" ? run("ip", ["link", "set", iface, "promisc", "on"]).pipe(Effect.as(how)) : Effect.succeed(how)))
    ),
    (how) =>
      (how === "unicast-filter"
        ? run("bridge", ["fdb", "del", vmac, "dev", iface, "self"])
        : run("ip", ["link", "set", iface, "promisc", "off"])
      ).pipe(Effect.ignore)
  )

/** The MAC address, index and first address of an interface. */
export const interfaceInfo = (iface: string): Effect.Effect<{ mac: string; index: number; address: string }, HostNetError> =>
  Effect.gen(function* () {
    const base = yield* Effect.try({
      try: () => ({
        mac: readFileSync(`/sys/class/net/${iface}/address`, "utf8").trim(),
        index: Number(readFileSync(`/sys/class/net/${iface}/ifindex`, "utf8").trim())
      }),
      catch: () => new HostNetError({ op: `interface ${iface}`, message: `no such interface: ${iface}` })
    })
    const text = yield* run("ip", ["-o", "addr", "show", "dev", iface])
    const m = /\binet6? ([0-9a-fA-F.:]+)\//.exec(text)
    return { ...base, address: m ? m[1] : "" }
  })

/**
 * Everything the host needs for the farm, in one scope: ARP sysctls (all and the farm
 * interface: arp_ignore=1, arp_announce=2), each VIP on lo, virtual MAC reception.
 */
export const scopedHostSetup = (iface: string, vmac: string, vips: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    yield* interfaceInfo(iface)
    for (const scope of ["all", iface]) {
      yield* scopedSysctl(`net.ipv4.conf.${scope}.arp_ignore`, "1")
      yield* scopedSysctl(`net.ipv4.conf.${scope}.arp_announce`, "2")
    }
    for (const vip of vips) yield* scopedVipOnLoopback(vip)
    return yield* scopedVirtualMac(iface, vmac)
  })

/**
 * What {@link scopedHostSetupKept} set on the host, so that a daemon restarted with
 * `farm restart` (which leaves everything in place) undoes exactly what the first one changed.
 */
export interface HostRecord {
  /** sysctl key -> value before the daemon set it. */
  readonly sysctls: Readonly<Record<string, string>>
  /** VIPs the daemon added to lo (others were there before and stay). */
  readonly vipsAdded: ReadonlyArray<string>
  readonly mac: "unicast-filter" | "promiscuous"
}

/**
 * {@link scopedHostSetup} that records what it set, and takes over a record from a previous
 * process instead of setting again (its undo restores the values from before that process).
 * Undo runs when the scope closes unless `keep()` says the daemon is exiting for a restart.
 */
export const scopedHostSetupKept = (
  iface: string,
  vmac: string,
  vips: ReadonlyArray<string>,
  inherited: HostRecord | null,
  keep: () => boolean
): Effect.Effect<HostRecord, HostNetError, import("effect").Scope.Scope> =>
  Effect.gen(function* () {
    yield* interfaceInfo(iface)
    const sysctls: Record<string, string> = {}
    for (const scope of ["all", iface]) {
      for (const [k, v] of [[`net.ipv4.conf.${scope}.arp_ignore`, "1"], [`net.ipv4.conf.${scope}.arp_announce`, "2"]] as const) {
        const before = inherited?.sysctls[k] ?? (yield* Effect.try({
          try: () => readFileSync(sysctlPath(k), "utf8").trim(),
          catch: (e) => new HostNetError({ op: `sysctl ${k}`, message: (e as Error).message })
        }))
        yield* Effect.try({ try: () => writeFileSync(sysctlPath(k), v), catch: (e) => new HostNetError({ op: `sysctl ${k}=${v}`, message: (e as Error).message }) })
        sysctls[k] = before
        yield* Effect.addFinalizer(() => (keep() ? Effect.void : Effect.sync(() => writeFileSync(sysctlPath(k), before)).pipe(Effect.ignore)))
      }
    }
    const vipsAdded: Array<string> = []
    for (const vip of vips) {
      const prefix = `${vip}/${isV6(vip) ? 128 : 32}`
      const text = yield* run("ip", ["-o", "addr", "show", "dev", "lo"])
      const present = text.includes(` ${prefix} `) || text.includes(` ${vip}/`)
      if (!present) yield* run("ip", ["addr", "add", prefix, "dev", "lo", ...(isV6(vip) ? ["nodad"] : [])])
      if (!present || inherited?.vipsAdded.includes(vip)) {
        vipsAdded.push(vip)
        yield* Effect.addFinalizer(() => (keep() ? Effect.void : run("ip", ["addr", "del", prefix, "dev", "lo"]).pipe(Effect.ignore)))
      }
    }
    const mac = inherited?.mac ?? (yield* run("bridge", ["fdb", "add", vmac, "dev", iface, "self", "permanent"]).pipe(
      Effect.as("unicast-filter" as const),
      Effect.orElseSucceed(() => "promiscuous" as const),
      Effect.flatMap((how) => (how === "promiscuous" ? run("ip", ["link", "set", iface, "promisc", "on"]).pipe(Effect.as(how)) : Effect.succeed(how)))
    ))
    yield* Effect.addFinalizer(() =>
      keep()
        ? Effect.void
        : (mac === "unicast-filter" ? run("bridge", ["fdb", "del", vmac, "dev", iface, "self"]) : run("ip", ["link", "set", iface, "promisc", "off"])).pipe(Effect.ignore)
    )
    return { sysctls, vipsAdded, mac }
  })
