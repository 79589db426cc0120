/**
 * @vipfarm/domain: the farm's events, the deterministic reducer, deciders and the hash spec.
 * Helpers that drive it from commands in tests and tools: `@vipfarm/domain/testkit`.
 */
export * from "./hash.ts"
export * from "./localView.ts"
export * from "./rules.ts"
export * from "./events.ts"
export * from "./state.ts"
export * from "./assignment.ts"
export * from "./plan.ts"
export * from "./reducer.ts"
export * from "./decider.ts"
export * from "./chain.ts"
export * from "./verify.ts"
