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
import { BpfError, type FilterHandle, type FlowEntry, loadFilter, type XdpMode } from "@vipfarm/filter-xdp"
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

/** Attach (replacing whatever program runs on the interface in that mode, atomically); the mode used. */
export const attachFilter = (h: FilterHandle, ifname: string, mode: XdpMode | undefined): Effect.Effect<XdpMode, BpfError> =>
  Effect.try({
    try: () => h.attach(ifname, mode),
    catch: (e) => (e instanceof BpfError ? e : new BpfError({ op: "attach", errno: 0, message: String(e) }))
  })
