/**
 * Checker state machine, pure and deterministic: time is passed in, probes are run by the
 * caller (`probes.ts` in the daemon, a scripted model in the simulator).
 *
 * Each checker is probed every `intervalMs` (measured from the start of the previous probe;
 * one probe at a time). `failures` consecutive failed probes flip it `down`, `successes`
 * consecutive passing probes flip it `up`; it starts `unknown`. The application is healthy
 * when every checker is `up`.
 */

/** A checker's name and timing. */
export interface CheckerTiming {
  readonly name: string
  /** Time between the starts of two probes. */
  readonly intervalMs: number
  /** A probe that has not answered after this long fails. */
  readonly timeoutMs: number
  /** Consecutive failures that flip the checker down. */
  readonly failures: number
  /** Consecutive successes that flip the checker up. */
  readonly successes: number
}

/** A checker's verdict. */
export type CheckerStatus = "unknown" | "up" | "down"

/** One checker's state. */
export interface CheckerState {
  readonly timing: CheckerTiming
  readonly status: CheckerStatus
  /** Consecutive passing probes. */
  readonly okRun: number
  /** Consecutive failed probes. */
  readonly failRun: number
  /** The last failed probe's error (kept after recovery, for the audit). */
  readonly lastError: string | null
  readonly lastProbeAt: number | null
  /** When the status last changed. */
  readonly since: number
  readonly nextDueAt: number
  /** Token of the probe in flight, if any. */
  readonly inFlight: number | null
}

/** Every checker of an application. */
export interface HealthState {
  readonly checkers: ReadonlyArray<CheckerState>
  /** Incremented by every probe start and reset; identifies probes so stale results are ignored. */
  readonly token: number
}

/** Outcome of one probe. */
export type ProbeResult = { readonly ok: true } | { readonly ok: false; readonly error: string }

/** A checker flipped. */
export interface HealthChange {
  readonly checker: string
  readonly from: CheckerStatus
  readonly to: CheckerStatus
  readonly error: string | null
}

/** The application's health in one line: every checker up, or the first failing one. */
export interface HealthSummary {
  readonly allUp: boolean
  /** The first checker (in declared order) that is down, with its last error. */
  readonly failing: { readonly checker: string; readonly error: string } | null
}

const fresh = (timing: CheckerTiming, now: number): CheckerState => ({
  timing, status: "unknown", okRun: 0, failRun: 0, lastError: null, lastProbeAt: null, since: now, nextDueAt: now, inFlight: null
})

/** Every checker unknown, each due at once. */
export const initHealth = (timings: ReadonlyArray<CheckerTiming>, now: number): HealthState => ({
  checkers: timings.map((t) => fresh(t, now)),
  token: 0
})

/**
 * Forget every verdict (after the application is (re)started): each checker is unknown
 * again and due at once; probes in flight are ignored when they answer.
 */
export const resetHealth = (h: HealthState, now: number): HealthState => ({
  checkers: h.checkers.map((c) => ({ ...fresh(c.timing, now), lastError: c.lastError })),
  token: h.token + 1
})

/** Names of the checkers due for a probe at `now` (none in flight). */
export const dueProbes = (h: HealthState, now: number): Array<string> =>
  h.checkers.filter((c) => c.inFlight === null && c.nextDueAt <= now).map((c) => c.timing.name)

/** The earliest time a probe falls due (null when every checker has one in flight). */
export const nextProbeAt = (h: HealthState): number | null => {
  let t: number | null = null
  for (const c of h.checkers) if (c.inFlight === null && (t === null || c.nextDueAt < t)) t = c.nextDueAt
  return t
}

const update = (h: HealthState, name: string, f: (c: CheckerState) => CheckerState): HealthState => ({
  ...h,
  checkers: h.checkers.map((c) => (c.timing.name === name ? f(c) : c))
})

/** A probe of `name` starts at `now`; pass the returned token to {@link probeFinished}. */
export const probeStarted = (h: HealthState, name: string, now: number): { readonly state: HealthState; readonly token: number } => {
  const token = h.token + 1
  const state = update({ ...h, token }, name, (c) => ({ ...c, inFlight: token, nextDueAt: now + c.timing.intervalMs }))
  return { state, token }
}

/** A probe answered (or timed out: pass a failure). Stale answers (after a reset) are ignored. */
export const probeFinished = (
  h: HealthState,
  name: string,
  token: number,
  result: ProbeResult,
  now: number
): { readonly state: HealthState; readonly change: HealthChange | null } => {
  const c = h.checkers.find((x) => x.timing.name === name)
  if (c === undefined || c.inFlight !== token) return { state: h, change: null }
  const okRun = result.ok ? c.okRun + 1 : 0
  const failRun = result.ok ? 0 : c.failRun + 1
  const lastError = result.ok ? c.lastError : result.error
  let status = c.status
  if (result.ok && status !== "up" && okRun >= c.timing.successes) status = "up"
  if (!result.ok && status !== "down" && failRun >= c.timing.failures) status = "down"
  const next: CheckerState = { ...c, okRun, failRun, lastError, lastProbeAt: now, inFlight: null, status, since: status === c.status ? c.since : now }
  const change = status === c.status ? null : { checker: name, from: c.status, to: status, error: status === "down" ? lastError : null }
  return { state: update(h, name, () => next), change }
}

/** Every checker up, or the first one down. */
export const summarize = (h: HealthState): HealthSummary => {
  const down = h.checkers.find((c) => c.status === "down")
  return {
    allUp: h.checkers.length > 0 && h.checkers.every((c) => c.status === "up"),
    failing: down ? { checker: down.timing.name, error: down.lastError ?? "failed" } : null
  }
}
