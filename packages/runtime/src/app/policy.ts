/**
 * The application policy, pure and deterministic (`step(state, input, now)`): what to do
 * when the application starts, fails its checkers, or its commands finish. The daemon's
 * `AppSupervisor` and the simulator run the same code.
 *
 * - A server takes no buckets before its application passes every checker: `Ready` is
 *   emitted only then.
 * - On a failure (a checker flips down, a start/restart command fails, or the checkers do
 *   not pass within `readyTimeoutMs` of a start) the server reports itself unhealthy (its
 *   buckets are taken over at once) and, with `onFailure: restart`, restarts the application
 *   up to `maxRestarts` times within `windowMs`; it reports `ReportRecovered` once every
 *   checker passes again.
 * - When the restarts are used up, `whenExhausted: leave` leaves the farm and keeps trying
 *   to heal (a restart every `healIntervalMs` while a checker is down; every `readyTimeoutMs`
 *   at most while none passes or fails for sure); once every checker has
 *   passed for `settleMs` it rejoins (`Ready`). `stop` (either as `onFailure` or as
 *   `whenExhausted`) stops the application and leaves until an operator starts it again.
 * - Every change of what the application is doing is reported for the log's audit
 *   (`ReportApplication`: running, restarting, left, healing, stopped, failed) with its
 *   reason, the failing checker and the restarts counted; heal attempts are reported on the
 *   1st, 2nd, 4th, 8th, ... attempt of a stay out of the farm (a long outage writes a few
 *   records, not one per attempt).
 */

/** The policy's settings (module.yaml `policy:`). */
export interface PolicyConfig {
  readonly onFailure: "restart" | "stop"
  /** Restarts allowed within `windowMs` before `whenExhausted` applies (0: at once). */
  readonly maxRestarts: number
  readonly windowMs: number
  readonly whenExhausted: "leave" | "stop"
  /** After a (re)start the checkers must all pass within this time, or it counts as a failure. */
  readonly readyTimeoutMs: number
  /** After leaving: every checker must pass this long before the server rejoins. */
  readonly settleMs: number
  /** After leaving: time between attempts to heal (restarts) while a checker fails. */
  readonly healIntervalMs: number
  /**
   * A failure of a server in the farm, with a restart available: keep its buckets while the
   * restart runs and report it unhealthy only if the checkers do not all pass again within this
   * long (or the restart fails). 0 (the default, absent): report at once, the buckets move to the
   * others while the application restarts and come back after.
   */
  readonly restartGraceMs?: number
}

/** SafeKit-like defaults: restart 3 times in 24 h, then leave the farm and keep healing. */
export const DEFAULT_POLICY: PolicyConfig = {
  onFailure: "restart",
  maxRestarts: 3,
  windowMs: 86_400_000,
  whenExhausted: "leave",
  readyTimeoutMs: 15_000,
  settleMs: 5_000,
  healIntervalMs: 10_000
}

/** Internal phase. */
export type Phase =
  | "stopped" // not running (initial, after a stop policy, after an operator stop)
  | "starting" // start command running
  | "waiting" // started, waiting for every checker to pass
  | "up" // passing, in the farm
  | "restarting" // restart (stop + start) running
  | "recovering" // restarted, waiting for every checker to pass
  | "left" // left the farm after the restarts ran out; waiting to settle or to heal
  | "healing" // left, a healing restart running
  | "stopping" // stop command running

/** What the farm has been told about this server. */
export type FarmStanding = "joining" | "up" | "unhealthy" | "left"

/** The operator-visible state (`farm status`). `starting`: before the application first passes. */
export type AppView = "starting" | "up" | "unhealthy" | "restarting" | "stopped"

/** A failure: the checker (or `start`, `restart`, `ready`) and its last error. */
export interface Failure {
  readonly checker: string
  readonly error: string
}

/** The policy's state. */
export interface PolicyState {
  readonly config: PolicyConfig
  readonly phase: Phase
  readonly farm: FarmStanding
  /** The latest health summary. */
  readonly allUp: boolean
  readonly failing: Failure | null
  /** Since when every checker passes (null while one does not). */
  readonly passingSince: number | null
  /** Times of the restarts counted against `maxRestarts`. */
  readonly restarts: ReadonlyArray<number>
  /** Ready deadline in `waiting` / `recovering`. */
  readonly deadline: number | null
  readonly lastHealAt: number | null
  /** Heal attempts since the server left (reported on powers of two). */
  readonly heals: number
  /** A restart keeps the buckets until then (`restartGraceMs`); null: no grace running. */
  readonly graceUntil: number | null
  /** The failure that took the application out (null once it is up again). */
  readonly failure: Failure | null
  /** When the phase last changed. */
  readonly since: number
}

/** Inputs of the policy. */
export type PolicyInput =
  /** Start the application (daemon start-up, or an operator start after a stop). */
  | { readonly _tag: "Start" }
  /** Stop the application and leave (operator, or daemon shut-down: `reason` says which; default the operator). */
  | { readonly _tag: "Stop"; readonly reason?: string }
  /**
   * Take over an application that a previous daemon ran and the farm has as up (`farm
   * restart`): no command runs and nothing is reported; the checkers (reset) decide from here.
   * `restartsAgoMs`: the restarts the previous daemon counted, as ages.
   */
  | { readonly _tag: "Adopt"; readonly restartsAgoMs: ReadonlyArray<number> }
  /** The health summary changed (or was re-read). */
  | { readonly _tag: "Health"; readonly allUp: boolean; readonly failing: Failure | null }
  /** The start, restart or stop command finished. */
  | { readonly _tag: "StartDone"; readonly ok: boolean; readonly error: string | null }
  | { readonly _tag: "RestartDone"; readonly ok: boolean; readonly error: string | null }
  | { readonly _tag: "StopDone"; readonly ok: boolean; readonly error: string | null }
  /** Time passed (see {@link nextWakeAt}). */
  | { readonly _tag: "Tick" }

/** Farm-facing reports (the daemon turns them into domain commands of the same name). */
export type FarmReport =
  | { readonly _tag: "Ready" }
  | { readonly _tag: "ReportUnhealthy"; readonly checker: string; readonly reason: string }
  | { readonly _tag: "ReportRecovered" }
  | { readonly _tag: "Leave"; readonly reason: string }

/** What the application is doing (the domain's ApplicationChanged states). */
export type ApplicationState = "running" | "restarting" | "left" | "stopped" | "healing" | "failed"

/**
 * What the application is doing now and why, for the log (the daemon appends it as the
 * domain command of the same name: an ApplicationChanged event; no bucket moves by it).
 */
export interface ApplicationReport {
  readonly _tag: "ReportApplication"
  readonly state: ApplicationState
  readonly reason: string
  /** Restarts counted in the policy's window. */
  readonly restarts?: number
  /** The failing checker (or `start`, `restart`, `ready`). */
  readonly checker?: string
}

/**
 * Actions of the policy. Run commands one at a time in order. For `RunRestart`, run the stop
 * command, reset the checkers (`resetHealth`), run the start command; for `RunStart`, reset
 * then start. After feeding a `StartDone`/`RestartDone`, feed a `Health` with the current summary.
 */
export type PolicyAction = { readonly _tag: "RunStart" } | { readonly _tag: "RunStop" } | { readonly _tag: "RunRestart" } | FarmReport | ApplicationReport

const appReport = (state: ApplicationState, reason: string, extra: { restarts?: number; checker?: string } = {}): ApplicationReport => ({
  _tag: "ReportApplication", state, reason, ...extra
})

const countIn = (s: PolicyState, now: number): number => s.restarts.filter((t) => t > now - s.config.windowMs).length

/** Result of one step. */
export interface Step {
  readonly state: PolicyState
  readonly actions: ReadonlyArray<PolicyAction>
}

/** A stopped application, never announced to the farm. */
export const initPolicy = (config: PolicyConfig, now: number): PolicyState => ({
  config, phase: "stopped", farm: "joining", allUp: false, failing: null, passingSince: null,
  restarts: [], deadline: null, lastHealAt: null, heals: 0, graceUntil: null, failure: null, since: now
})

const phase = (s: PolicyState, p: Phase, now: number, extra: Partial<PolicyState> = {}): PolicyState => ({
  ...s, ...extra, phase: p, since: p === s.phase ? s.since : now
})

/** Entering a (re)start: the checkers are reset by the caller, so health is unknown. */
const unknownHealth = { allUp: false, failing: null, passingSince: null } as const

const healthy = (s: PolicyState, now: number): Step => {
  const report: Array<PolicyAction> = s.farm === "unhealthy" ? [{ _tag: "ReportRecovered" }] : s.farm === "up" ? [] : [{ _tag: "Ready" }]
  const restarts = countIn(s, now)
  const why = s.phase === "recovering" ? "restarted: every checker passes"
    : s.phase === "left" ? `healed: every checker passed for ${s.config.settleMs / 1000} s; rejoins the farm`
    : "started: every checker passes"
  report.push(appReport("running", why, restarts > 0 ? { restarts } : {}))
  return { state: phase(s, "up", now, { farm: "up", deadline: null, failure: null, heals: 0, graceUntil: null }), actions: report }
}

const leaveAction = (s: PolicyState, reason: string): Array<PolicyAction> => (s.farm === "left" ? [] : [{ _tag: "Leave", reason }])

const fail = (s: PolicyState, f: Failure, now: number): Step => {
  const actions: Array<PolicyAction> = []
  let farm = s.farm
  const recent = s.restarts.filter((t) => t > now - s.config.windowMs)
  const grace = s.config.restartGraceMs ?? 0
  // a quick restart may keep the buckets: once per failure (a failure during the grace reports at once)
  const keep = grace > 0 && farm === "up" && s.graceUntil === null && s.config.onFailure === "restart" && recent.length < s.config.maxRestarts
  if (!keep && (farm === "joining" || farm === "up")) {
    actions.push({ _tag: "ReportUnhealthy", checker: f.checker, reason: f.error })
    farm = "unhealthy"
  }
  const st: PolicyState = { ...s, farm, failure: f, deadline: null, graceUntil: keep ? now + grace : null }
  const stop = (why: string): Step => ({
    state: phase(st, "stopping", now, { farm: "left" }),
    actions: [
      ...actions, ...leaveAction(st, `${why}: ${f.checker}: ${f.error}`),
      appReport("stopped", `${why}: ${f.checker}: ${f.error}; stays stopped until an operator starts it`, { restarts: recent.length, checker: f.checker }),
      { _tag: "RunStop" }
    ]
  })
  if (s.config.onFailure === "stop") return stop("application failed (policy stop)")
  if (recent.length < s.config.maxRestarts) {
    return {
      state: phase(st, "restarting", now, { ...unknownHealth, restarts: [...recent, now] }),
      actions: [
        ...actions,
        appReport("restarting", `${f.checker}: ${f.error}; restart ${recent.length + 1} of ${s.config.maxRestarts} in ${Math.round(s.config.windowMs / 1000)} s${keep ? `; keeps its buckets for up to ${grace / 1000} s` : ""}`, {
          restarts: recent.length + 1, checker: f.checker
        }),
        { _tag: "RunRestart" }
      ]
    }
  }
  const why = `${recent.length} restart${recent.length === 1 ? "" : "s"} in ${Math.round(s.config.windowMs / 1000)} s used up`
  if (s.config.whenExhausted === "stop") return stop(why)
  return {
    state: phase(st, "left", now, { farm: "left", restarts: recent, lastHealAt: now, heals: 0 }),
    actions: [
      ...actions, ...leaveAction(st, `${why}: ${f.checker}: ${f.error}`),
      appReport("left", `${why}: ${f.checker}: ${f.error}; left the farm, healing every ${s.config.healIntervalMs / 1000} s`, { restarts: recent.length, checker: f.checker })
    ]
  }
}

/** In `left`: rejoin after settling, or try to heal. */
const whileLeft = (s: PolicyState, now: number): Step => {
  if (s.allUp && s.passingSince !== null && now - s.passingSince >= s.config.settleMs) return healthy(s, now)
  // heal when a checker is down (not merely unknown, as after a restart), or when nothing settled for long
  const wait = s.failing !== null ? s.config.healIntervalMs : Math.max(s.config.healIntervalMs, s.config.readyTimeoutMs)
  if (!s.allUp && s.lastHealAt !== null && now - s.lastHealAt >= wait) {
    const heals = s.heals + 1
    const f = s.failing ?? s.failure
    // reported on the 1st, 2nd, 4th, 8th, ... attempt
    const report: Array<PolicyAction> = (heals & (heals - 1)) === 0
      ? [appReport("healing", `heal attempt ${heals}: restart${f ? ` (${f.checker}: ${f.error})` : ""}`, { restarts: countIn(s, now), ...(f ? { checker: f.checker } : {}) })]
      : []
    return { state: phase(s, "healing", now, { ...unknownHealth, lastHealAt: now, heals }), actions: [...report, { _tag: "RunRestart" }] }
  }
  return { state: s, actions: [] }
}

const readyFailure = (s: PolicyState): Failure => ({
  checker: s.failing?.checker ?? "ready",
  error: `checkers did not all pass within ${s.config.readyTimeoutMs} ms${s.failing ? ` (${s.failing.checker}: ${s.failing.error})` : ""}`
})

const handle = (s: PolicyState, input: PolicyInput, now: number): Step => {
  const none: Step = { state: s, actions: [] }
  switch (input._tag) {
    case "Start":
      if (s.phase !== "stopped") return none
      return { state: phase(s, "starting", now, { ...unknownHealth, restarts: [], failure: null }), actions: [{ _tag: "RunStart" }] }
    case "Adopt":
      if (s.phase !== "stopped") return none
      return {
        state: phase(s, "up", now, { ...unknownHealth, farm: "up", failure: null, deadline: null, restarts: input.restartsAgoMs.map((a) => now - a) }),
        actions: []
      }
    case "Stop": {
      if (s.phase === "stopped" || s.phase === "stopping") return none
      const why = input.reason ?? "application stopped by the operator"
      return {
        state: phase(s, "stopping", now, { farm: "left", deadline: null }),
        actions: [...leaveAction(s, why), appReport("stopped", why, { restarts: countIn(s, now) }), { _tag: "RunStop" }]
      }
    }
    case "Health": {
      const passingSince = input.allUp ? (s.passingSince ?? now) : null
      const st: PolicyState = { ...s, allUp: input.allUp, failing: input.failing, passingSince }
      switch (s.phase) {
        case "waiting":
        case "recovering":
          return input.allUp ? healthy(st, now) : { state: st, actions: [] }
        case "up":
          return !input.allUp && input.failing !== null ? fail(st, input.failing, now) : { state: st, actions: [] }
        case "left":
          return whileLeft(st, now)
        default:
          return { state: st, actions: [] }
      }
    }
    case "StartDone":
    case "RestartDone": {
      const expected = input._tag === "StartDone" ? "starting" : "restarting"
      // health seen while the command ran describes the old process: forget it (the caller re-sends the current summary)
      if (s.phase === "healing") {
        const st = phase(s, "left", now, { ...unknownHealth, lastHealAt: now, ...(input.ok ? {} : { failure: { checker: "restart", error: input.error ?? "failed" } }) })
        return whileLeft(st, now)
      }
      if (s.phase !== expected) return none
      if (!input.ok) return fail(s, { checker: input._tag === "StartDone" ? "start" : "restart", error: input.error ?? "failed" }, now)
      return { state: phase(s, expected === "starting" ? "waiting" : "recovering", now, { ...unknownHealth, deadline: now + s.config.readyTimeoutMs }), actions: [] }
    }
    case "StopDone":
      if (s.phase !== "stopping") return none
      return {
        state: phase(s, "stopped", now, { ...unknownHealth }),
        actions: input.ok ? [] : [appReport("failed", `the stop command failed: ${input.error ?? "failed"}; the application may still run`, { checker: "stop" })]
      }
    case "Tick":
      if (s.graceUntil !== null && now >= s.graceUntil && s.farm === "up") {
        // the quick restart did not bring the checkers back in time: the buckets go now
        const f = s.failure ?? { checker: "restart", error: "restarting" }
        return {
          state: { ...s, farm: "unhealthy", graceUntil: null },
          actions: [{ _tag: "ReportUnhealthy", checker: f.checker, reason: `${f.error} (not back within ${(s.config.restartGraceMs ?? 0) / 1000} s of a restart)` }]
        }
      }
      if ((s.phase === "waiting" || s.phase === "recovering") && s.deadline !== null && now >= s.deadline) return fail(s, readyFailure(s), now)
      if (s.phase === "left") return whileLeft(s, now)
      return none
  }
}

/** One step of the policy. */
export const step = (s: PolicyState, input: PolicyInput, now: number): Step => handle(s, input, now)

/** When the policy next needs a `Tick` (null: only on other inputs). */
export const nextWakeAt = (s: PolicyState): number | null => {
  if (s.graceUntil !== null && s.farm === "up") return s.deadline !== null ? Math.min(s.graceUntil, s.deadline) : s.graceUntil
  if ((s.phase === "waiting" || s.phase === "recovering") && s.deadline !== null) return s.deadline
  if (s.phase === "left") {
    if (s.allUp && s.passingSince !== null) return s.passingSince + s.config.settleMs
    if (!s.allUp && s.lastHealAt !== null) {
      return s.lastHealAt + (s.failing !== null ? s.config.healIntervalMs : Math.max(s.config.healIntervalMs, s.config.readyTimeoutMs))
    }
  }
  return null
}

/**
 * What a daemon exiting for a keep-serving restart hands to the next one about its
 * application: `up` (the farm has it up: adopt it), `stopped` (an operator stopped it: leave
 * it stopped) or `other` (failing or starting: start it afresh).
 */
export interface AppHandover {
  readonly module: string
  readonly standing: "up" | "stopped" | "other"
  /** The restarts counted in the current window, as ages (ms). */
  readonly restartsAgoMs: ReadonlyArray<number>
}

/** The handover of the policy at `now` (see {@link AppHandover}). */
export const handoverOf = (s: PolicyState, module: string, now: number): AppHandover => ({
  module,
  standing: s.phase === "up" && s.farm === "up" ? "up" : s.phase === "stopped" || s.phase === "stopping" ? "stopped" : "other",
  restartsAgoMs: s.restarts.filter((t) => t > now - s.config.windowMs).map((t) => Math.max(0, now - t))
})

/** The operator-visible state. */
export interface AppStateView {
  readonly state: AppView
  /** The failing checker and its last error (when not up). */
  readonly checker: string | null
  readonly error: string | null
  readonly phase: Phase
  readonly farm: FarmStanding
  /** Restarts counted in the current window. */
  readonly restarts: number
  readonly since: number
}

/** The operator-visible state of the policy at `now`. */
export const viewOf = (s: PolicyState, now: number): AppStateView => {
  const state: AppView =
    s.phase === "up" ? "up"
    : s.phase === "stopped" || s.phase === "stopping" ? "stopped"
    : s.phase === "restarting" || s.phase === "recovering" ? "restarting"
    : s.phase === "left" || s.phase === "healing" ? "unhealthy"
    : s.failure !== null ? "unhealthy" : "starting"
  const f = s.phase === "up" ? null : (s.failure ?? (s.phase === "waiting" ? s.failing : null))
  return {
    state, checker: f?.checker ?? null, error: f?.error ?? null, phase: s.phase, farm: s.farm,
    restarts: s.restarts.filter((t) => t > now - s.config.windowMs).length, since: s.since
  }
}
