/**
 * Helpers to drive the domain from commands in tests, the simulator and benchmarks:
 * decide, then fold what was decided, as a server does after a successful append.
 */
import { Result } from "effect"
import { type Command, decide } from "./decider.ts"
import type { Cause, FarmEvent } from "./events.ts"
import { foldEvents } from "./reducer.ts"
import { type FarmState, openHandoffs } from "./state.ts"

/** The cause used by tests and tools that act as an operator. */
export const operatorCause = (by = "operator"): Cause => ({ kind: "operator", by })

/** Decide and fold a command; returns the new state and the events appended (none if refused). */
export const execute = (state: FarmState, cmd: Command): { state: FarmState; events: Array<FarmEvent>; refused: string | null } => {
  const r = decide(cmd, state)
  if (Result.isFailure(r)) return { state, events: [], refused: r.failure.reason }
  return { state: foldEvents(state, r.success), events: r.success, refused: null }
}

/** Complete every open hand-off (and the rebalances that follow) until none is left. */
export const settle = (state: FarmState, log?: Array<FarmEvent>): FarmState => {
  let s = state
  for (let guard = 0; guard < 64; guard++) {
    const open = openHandoffs(s)
    if (open.length === 0) {
      const r = execute(s, { _tag: "Rebalance", cause: operatorCause("settle") })
      log?.push(...r.events)
      if (r.events.length === 0) return r.state
      s = r.state
      continue
    }
    for (const h of open) {
      const r = execute(s, { _tag: "CompleteHandoff", handoff: h, cause: operatorCause("settle") })
      log?.push(...r.events)
      s = r.state
    }
  }
  return s
}
