/**
 * Restarting the daemon without dropping the server's connections (`farm restart`, SIGUSR2).
 *
 * The old process asks its peers to hold its share (heartbeats with `pause`, see
 * NodeController.pauseFor); once a majority granted that, it moves the filter's deadline to
 * the granted lease (a few seconds ahead), writes {@link RestartState} next to its control
 * socket and exits with {@link RESTART_EXIT_CODE} WITHOUT detaching XDP or undoing the host
 * set-up: the kernel keeps running the program, which keeps serving the server's buckets.
 * The next process (systemd restarts it) loads a fresh filter object, writes the inherited
 * deadline, tables, VIPs and UDP flows into it, and attaches it over the running one (an
 * atomic replace: no frame sees no program); its heartbeats keep asking for the rest of the
 * inherited lease until its own controller serves again with the same incarnation. An
 * application module's standing is handed over too: a running, healthy application is
 * adopted (not started, not reported unhealthy), an operator-stopped one stays stopped.
 */
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { Effect } from "effect"
import { BUCKETS, MAX_TABLES, type Vip } from "@vipfarm/domain"
import {
  type AttachedProgram, BpfError, chooseMode, type FilterHandle, type FlowEntry, linkFacts, loadFilter, ownFarmProgram, XdpAttachRefused,
  type XdpMode, XdpModeRefused, type XdpModeSetting
} from "@vipfarm/filter-xdp"
import { log } from "./log.ts"
import type { HostRecord } from "./hostNet.ts"
import type { AppHandover } from "./app/policy.ts"

/** Exit status of a keep-serving restart (EX_TEMPFAIL): the unit restarts on it (RestartForceExitStatus=75). */
export const RESTART_EXIT_CODE = 75

/** What a restarting daemon leaves for the next one. */
export interface RestartState {
  readonly v: 1
  readonly farm: string
  readonly node: string
  readonly interface: string
  readonly mode: XdpMode
  /** CLOCK_MONOTONIC ms: the filter serves until then, and the peers promised to hold until then. */
  readonly deadlineMs: number
  /** The bucket codes installed (MAX_TABLES * BUCKETS), base64. */
  readonly tables: string
  readonly vips: ReadonlyArray<Vip>
  readonly udpFlows: ReadonlyArray<{ readonly tuple: FlowEntry["tuple"]; readonly lastSeenNs: string }>
  readonly host: HostRecord
  readonly incarnation: number
  readonly seq: number
  /**
   * The application's standing (absent: no module, or an older daemon): the next daemon
   * adopts an application the farm has up instead of reporting it unhealthy until its
   * checkers pass (which would move the server's buckets away and back).
   */
  readonly app?: AppHandover | null
}

/** Where a daemon with this control socket keeps its restart state. */
export const restartStatePath = (control: string): string => `${control}.restart.json`

/** Write the state atomically (rename). */
export const writeRestartState = (path: string, s: RestartState): void => {
  writeFileSync(`${path}.tmp`, JSON.stringify(s), { mode: 0o600 })
  renameSync(`${path}.tmp`, path)
}

/**
 * The state a previous process left, if it is for this server and its lease still runs
 * (at least `marginMs` ahead of `now`); the file is removed either way (it is good once).
 */
export const takeRestartState = (
  path: string,
  who: { readonly farm: string; readonly node: string; readonly interface: string },
  now: number,
  marginMs = 100
): { state: RestartState | null; why: string } => {
  if (!existsSync(path)) return { state: null, why: "none" }
  let s: RestartState
  try {
    s = JSON.parse(readFileSync(path, "utf8")) as RestartState
  } catch (e) {
    rmSync(path, { force: true })
    return { state: null, why: `unreadable: ${(e as Error).message}` }
  }
  rmSync(path, { force: true })
  if (s.v !== 1 || s.farm !== who.farm || s.node !== who.node || s.interface !== who.interface) return { state: null, why: "for another farm, node or interface" }
  if (!(s.deadlineMs > now + marginMs)) return { state: null, why: `lease over (${Math.round(now - s.deadlineMs)} ms ago)` }
  const tables = Buffer.from(s.tables, "base64")
  if (tables.length !== MAX_TABLES * BUCKETS) return { state: null, why: "bad tables" }
  return { state: s, why: "ok" }
}

/** The inherited bucket codes. */
export const tablesOf = (s: RestartState): Uint8Array => new Uint8Array(Buffer.from(s.tables, "base64"))

/** Encode installed bucket codes. */
export const encodeTables = (codes: Uint8Array): string => Buffer.from(codes).toString("base64")

/**
 * Load the filter object (not attached yet) for the scope; on release detach and close it,
 * unless `keep()`: then the program stays attached for the next process.
 */
export const acquireFilterKept = (keep: () => boolean) =>
  Effect.acquireRelease(
    Effect.try({
      try: () => loadFilter(),
      catch: (e) => (e instanceof BpfError ? e : new BpfError({ op: "load", errno: 0, message: String(e) }))
    }),
    (h: FilterHandle) => Effect.sync(() => {
      if (!keep()) h.close()
    })
  )

/** How the daemon attached its filter. */
export interface FilterAttached {
  readonly mode: XdpMode
  /** Why this mode (the `xdp.mode` rule for the interface, or the inherited mode). */
  readonly reason: string
  /** The farm's own program it replaced (a restart's or a killed daemon's), or null. */
  readonly replaced: AttachedProgram | null
}

/**
 * Attach the filter in the mode `xdp.mode` gives for the interface's kind (see
 * packages/filter-xdp/src/attachMode.ts), or in the mode a keep-serving restart inherited.
 * Only this farm's own program (same seed and virtual MAC) is replaced, atomically; any
 * other program on the interface is refused ({@link XdpAttachRefused}, logged as
 * `filter.attach-refused`) and left running, with nothing else changed.
 */
export const attachFilter = (
  h: FilterHandle,
  ifname: string,
  want: { readonly setting: XdpModeSetting; readonly inherited: XdpMode | null; readonly seed: number; readonly vmac: Uint8Array }
): Effect.Effect<FilterAttached, BpfError | XdpAttachRefused | XdpModeRefused> =>
  Effect.gen(function* () {
    const facts = yield* Effect.try({
      try: () => linkFacts(ifname),
      catch: (e) => new BpfError({ op: `link ${ifname}`, errno: 19, message: `interface ${ifname}: ${e instanceof Error ? e.message : String(e)}` })
    })
    const choice = want.inherited !== null
      ? { mode: want.inherited, reason: "inherited from the restarted daemon", fallback: false }
      : chooseMode(want.setting, facts)
    if (choice instanceof XdpModeRefused) {
      log("error", "filter.mode-refused", { interface: ifname, key: choice.key, reason: choice.reason })
      return yield* choice
    }
    const outcome = yield* Effect.try({
      try: () => h.attachWith(ifname, choice.fallback ? [choice.mode, "skb"] : [choice.mode], { mayReplace: ownFarmProgram(want.seed, want.vmac) }),
      catch: (e) => (e instanceof BpfError || e instanceof XdpAttachRefused ? e : new BpfError({ op: "attach", errno: 0, message: String(e) }))
    }).pipe(Effect.tapError((e) => Effect.sync(() => {
      if (e instanceof XdpAttachRefused) log("error", "filter.attach-refused", { interface: ifname, id: e.id, name: e.name, mode: e.mode })
    })))
    const reason = outcome.mode === choice.mode ? choice.reason : `${facts.kind ?? facts.driver ?? "device"}: native XDP attach failed (no driver support), generic`
    return { mode: outcome.mode, reason, replaced: outcome.replaced }
  })
