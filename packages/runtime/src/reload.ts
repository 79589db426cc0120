/**
 * `systemctl reload vipfarm` (SIGHUP): the daemon re-reads its configuration file and applies
 * what can change while it serves; every other difference is refused with a logged reason
 * naming the key (`op=config.reload`), and the daemon keeps running with what it had.
 *
 * What changes live: `weight` (a SetWeight command appended to the farm's log, as the operator's
 * commands are: the farm rebalances by the reducer). Everything else is refused:
 * - `vips`: the farm's services are the log's (the first server writes them, the log wins);
 *   changing them on one server would only make its file disagree with the farm.
 * - `farm`, `node`, `interface`, `nats`, `control`, `xdp`, `lease`, `witnesses`: identity,
 *   connections and the attached filter, fixed for the process's life.
 * - `app`, `metrics`, `restart`, `priority`, `handoff`: read once at start.
 * Those take `farm restart` (keeps serving) or `systemctl restart vipfarm`.
 */
import { Effect } from "effect"
import type { Config } from "./config.ts"
import { log } from "./log.ts"

/** A change the daemon applies while serving. */
export type LiveChange = { readonly _tag: "SetWeight"; readonly from: number; readonly weight: number }

/** A difference that needs a restart, with why. */
export interface Refusal {
  /** The configuration key, dotted as in the file (e.g. `nats.servers`). */
  readonly key: string
  readonly reason: string
}

/** What a reload does: the live changes, and the differences it refuses. */
export interface ReloadPlan {
  readonly changes: ReadonlyArray<LiveChange>
  readonly refused: ReadonlyArray<Refusal>
}

const RESTART = "needs a restart (farm restart keeps serving)"

/** Why each key of {@link Config} cannot change live (the file's key names). */
const fixed: Record<Exclude<keyof Config, "file" | "weight">, { readonly key: string; readonly reason: string }> = {
  farm: { key: "farm", reason: `the farm's name is the server's identity in the log: ${RESTART}` },
  node: { key: "node", reason: `the node name is the server's identity in the log: ${RESTART}` },
  interface: { key: "interface", reason: `the filter is attached to the interface: ${RESTART}` },
  priority: { key: "priority", reason: `the priority is written when the server joins: ${RESTART}` },
  nats: { key: "nats", reason: `the NATS connection is opened at start: ${RESTART}` },
  control: { key: "control", reason: `the control socket is bound at start: ${RESTART}` },
  witnesses: { key: "witnesses", reason: `the voters are fixed at start: ${RESTART}` },
  lease: { key: "lease", reason: `lease timing is the controller's, fixed at start: ${RESTART}` },
  handoffMaxMs: { key: "handoff.maxMs", reason: `the hand-off bound is the controller's, fixed at start: ${RESTART}` },
  xdpMode: { key: "xdp.mode", reason: `the filter is attached in its mode: ${RESTART}` },
  app: { key: "app", reason: `the application is started by its module at start: ${RESTART}` },
  vips: { key: "vips", reason: "the farm's services are the farm's log (the log wins): a change on one server is not a change of the farm" },
  metrics: { key: "metrics", reason: `the metrics endpoint is bound at start: ${RESTART}` },
  restart: { key: "restart", reason: `read at start: ${RESTART}` },
  signing: { key: "signing", reason: `the signing keys are loaded at start: ${RESTART}` }
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b)

/** Keys whose values differ under `key` (one level into objects, so a refusal names e.g. `nats.servers`). */
const differing = (key: string, a: unknown, b: unknown): Array<string> => {
  if (same(a, b)) return []
  if (a !== null && b !== null && typeof a === "object" && typeof b === "object" && !Array.isArray(a) && !Array.isArray(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()
    const sub = keys.filter((k) => !same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
    if (sub.length > 0) return sub.map((k) => `${key}.${k}`)
  }
  return [key]
}

/** The plan of reloading `next` over the running `current` configuration (pure). */
export const planReload = (current: Config, next: Config): ReloadPlan => {
  const changes: Array<LiveChange> = []
  const refused: Array<Refusal> = []
  if (current.weight !== next.weight) changes.push({ _tag: "SetWeight", from: current.weight, weight: next.weight })
  for (const [k, why] of Object.entries(fixed) as Array<[keyof typeof fixed, { key: string; reason: string }]>) {
    // `xdp.mode`, `handoff.maxMs` are one key of the file each
    const keys = k === "xdpMode" || k === "handoffMaxMs" ? (same(current[k], next[k]) ? [] : [why.key]) : differing(why.key, current[k], next[k])
    for (const key of keys) refused.push({ key, reason: why.reason })
  }
  return { changes, refused }
}

/** What the daemon gives a reload: its configuration now, how to read the file, how to apply a change. */
export interface Reloader {
  readonly node: string
  readonly current: () => Config
  readonly load: (file: string) => Effect.Effect<Config, { readonly message: string }>
  /** Apply one live change; resolves with the result's name (`Appended`, ...) or rejects with why not. */
  readonly apply: (change: LiveChange) => Promise<string>
  /** The configuration now in force (after the applied changes). */
  readonly applied: (config: Config) => void
}

/**
 * One reload: read the file, log each refused key, apply each live change. A file that does
 * not load is refused as a whole (the daemon runs on). Resolves with the plan (null when the
 * file did not load).
 */
export const reloadConfig = async (r: Reloader): Promise<ReloadPlan | null> => {
  const current = r.current()
  const loaded = await Effect.runPromise(Effect.result(r.load(current.file)))
  if (loaded._tag === "Failure") {
    log("error", "config.reload", { node: r.node, file: current.file, result: "invalid", error: loaded.failure.message })
    return null
  }
  const plan = planReload(current, loaded.success)
  for (const f of plan.refused) log("warn", "config.reload", { node: r.node, key: f.key, result: "refused", reason: f.reason })
  let now = current
  for (const c of plan.changes) {
    try {
      const result = await r.apply(c)
      now = { ...now, weight: c.weight }
      log("info", "config.reload", { node: r.node, key: "weight", result: "applied", from: c.from, weight: c.weight, log: result })
    } catch (e) {
      log("warn", "config.reload", { node: r.node, key: "weight", result: "failed", weight: c.weight, error: (e as Error).message })
    }
  }
  if (plan.changes.length === 0 && plan.refused.length === 0) log("info", "config.reload", { node: r.node, file: current.file, result: "unchanged" })
  r.applied(now)
  return plan
}
