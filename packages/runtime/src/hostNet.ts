/**
 * What the daemon sets on its host, each step undone when its scope closes (so a node is
 * never left half-configured): the VIPs on `lo`, ARP sysctls so the kernel never answers
 * ARP for a VIP with a real MAC, and reception of the farm's virtual MAC on the interface.
 */
import { execFile, spawnSync } from "node:child_process"
import { constants } from "node:os"
import { readFileSync, writeFileSync } from "node:fs"
import { Effect, Schema, type Scope } from "effect"
import {
  chooseInherited, emptyHostRecord, type HostRecord, isAlreadyGone, isAlreadyThere, promiscuousIn, readHostState, removeHostState, validHostRecord,
  vipLabel, vipOnLo, vipPrefix, writeHostState
} from "./hostState.ts"
import { log } from "./log.ts"

export type { HostRecord } from "./hostState.ts"

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

const isV6 = (address: string) => address.includes(":")

const readSysctl = (key: string) =>
  Effect.try({ try: () => readFileSync(sysctlPath(key), "utf8").trim(), catch: (e) => new HostNetError({ op: `sysctl ${key}`, message: (e as Error).message }) })

const writeSysctl = (key: string, value: string) =>
  Effect.try({ try: () => writeFileSync(sysctlPath(key), value), catch: (e) => new HostNetError({ op: `sysctl ${key}=${value}`, message: (e as Error).message }) })

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

/** Whose host set-up this is, and where its state file lives (see hostState.ts). */
export interface HostSetupOwner {
  readonly farm: string
  readonly node: string
  /** The host state file ({@link hostStatePath} of the control socket). */
  readonly statePath: string
}

/**
 * Everything the host needs for the farm, in one scope: ARP sysctls (all and the farm
 * interface: arp_ignore=1, arp_announce=2), each VIP on lo, virtual MAC reception; undone
 * in reverse order when the scope closes, unless `keep()` says the daemon is exiting for a
 * keep-serving restart. Each change is first written to the host state file, so that a
 * daemon started after a SIGKILL adopts what the killed one set (with the values from before
 * the first daemon): from that file, else from `inherited` (a keep-serving restart's
 * record), else by recognising the farm's own marks (its VIP label on lo, its virtual MAC
 * in the fdb). Undoing is idempotent: what is gone already is fine.
 */
export const scopedHostSetupKept = (
  iface: string,
  vmac: string,
  vips: ReadonlyArray<string>,
  inherited: HostRecord | null,
  keep: () => boolean,
  owner: HostSetupOwner
): Effect.Effect<HostRecord, HostNetError, Scope.Scope> =>
  Effect.gen(function* () {
    yield* interfaceInfo(iface)
    const { farm, node, statePath } = owner
    const who = { farm, node, interface: iface, vmac }
    const fromFile = readHostState(statePath, who)
    if (fromFile.record === null && fromFile.why !== "none") log("warn", "host.state-ignored", { node, file: statePath, reason: fromFile.why })
    const fromRestart = inherited === null ? null : validHostRecord(inherited)
    const chosen = chooseInherited(fromFile.record, fromRestart)
    const prior = chosen.record ?? emptyHostRecord()
    if (chosen.source !== "none") {
      log("info", "host.adopt", { node, source: chosen.source, sysctls: Object.keys(prior.sysctls).length, vips: prior.vipsAdded.join(","), mac: prior.mac ?? "" })
    }
    const sysctls: Record<string, string> = { ...prior.sysctls }
    const vipsAdded: Array<string> = [...prior.vipsAdded]
    let mac: HostRecord["mac"] = prior.mac
    let promiscBefore: boolean | undefined = prior.promiscBefore
    const record = (): HostRecord => ({
      sysctls: { ...sysctls }, vipsAdded: [...vipsAdded], ...(mac === undefined ? {} : { mac }), ...(promiscBefore === undefined ? {} : { promiscBefore })
    })
    const save = Effect.suspend(() =>
      Effect.try({
        try: () => writeHostState(statePath, { v: 1, ...who, pid: process.pid, host: record() }),
        catch: (e) => new HostNetError({ op: `write ${statePath}`, message: (e as Error).message })
      })
    )
    // an undo that failed (other than "already gone") keeps the file: the next daemon adopts and retries
    let undoFailed = false
    const undo = (what: string, e: Effect.Effect<unknown, HostNetError>) =>
      Effect.suspend(() => (keep() ? Effect.void : e)).pipe(
        Effect.matchEffect({
          onFailure: (err) => Effect.sync(() => {
            if (isAlreadyGone(err.message)) return
            undoFailed = true
            log("error", "host.undo-failed", { node, what, error: err.message })
          }),
          onSuccess: () => Effect.void
        })
      )
    // closed last: once everything the file names is undone
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        if (keep()) return
        if (undoFailed) log("error", "host.left", { node, file: statePath, detail: "some host set-up could not be undone; the next daemon adopts it from the file" })
        else removeHostState(statePath)
      })
    )
    yield* save

    for (const scope of ["all", iface]) {
      for (const [k, v] of [[`net.ipv4.conf.${scope}.arp_ignore`, "1"], [`net.ipv4.conf.${scope}.arp_announce`, "2"]] as const) {
        if (!(k in sysctls)) {
          sysctls[k] = yield* readSysctl(k)
          yield* save
        }
        const before = sysctls[k]
        yield* writeSysctl(k, v)
        yield* Effect.addFinalizer(() => undo(`sysctl ${k}`, writeSysctl(k, before)))
      }
    }

    const label = vipLabel(farm)
    for (const vip of [...new Set([...vips, ...vipsAdded])]) {
      const prefix = vipPrefix(vip)
      const on = vipOnLo(yield* run("ip", ["-o", "addr", "show", "dev", "lo"]), vip, label)
      const recorded = vipsAdded.includes(vip)
      if (!on.present && !vips.includes(vip)) {
        // a VIP an earlier daemon added that is neither there nor configured any more
        vipsAdded.splice(vipsAdded.indexOf(vip), 1)
        yield* save
        continue
      }
      if (on.present && !recorded && !on.marked) continue // the operator's: left alone, not removed
      if (!recorded) {
        vipsAdded.push(vip)
        yield* save
        if (on.present) log("info", "host.vip-recognised", { node, vip, label: isV6(vip) ? "nodad" : label })
      }
      if (!on.present) {
        // nodad: every server holds the VIP; nobody should defend it with DAD
        yield* run("ip", ["addr", "add", prefix, "dev", "lo", ...(isV6(vip) ? ["nodad"] : ["label", label])]).pipe(
          Effect.catchIf((e) => isAlreadyThere(e.message), () => Effect.succeed(""))
        )
      }
      yield* Effect.addFinalizer(() => undo(`vip ${vip}`, run("ip", ["addr", "del", prefix, "dev", "lo"])))
    }

    if (mac !== "promiscuous") {
      mac = "unicast-filter"
      yield* save
      const added = yield* run("bridge", ["fdb", "add", vmac, "dev", iface, "self", "permanent"]).pipe(
        Effect.as("added" as const),
        Effect.catchIf((e) => isAlreadyThere(e.message), () => Effect.succeed("present" as const)),
        Effect.orElseSucceed(() => "refused" as const)
      )
      // EEXIST: this farm's virtual MAC is in the fdb already (a killed daemon's entry): ours
      if (added === "present") log("info", "host.fdb-recognised", { node, vmac, interface: iface })
      if (added === "refused") {
        promiscBefore = promiscuousIn(yield* Effect.try({
          try: () => readFileSync(`/sys/class/net/${iface}/flags`, "utf8"),
          catch: (e) => new HostNetError({ op: `interface ${iface}`, message: (e as Error).message })
        }))
        mac = "promiscuous"
        yield* save
      }
    }
    if (mac === "promiscuous") {
      yield* run("ip", ["link", "set", iface, "promisc", "on"])
      const wasOn = promiscBefore === true
      yield* Effect.addFinalizer(() => (wasOn ? Effect.void : undo(`promisc ${iface}`, run("ip", ["link", "set", iface, "promisc", "off"]))))
    } else {
      yield* Effect.addFinalizer(() => undo(`fdb ${vmac}`, run("bridge", ["fdb", "del", vmac, "dev", iface, "self"])))
    }
    return record()
  })
