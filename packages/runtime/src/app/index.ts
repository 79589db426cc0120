/** Application modules, checkers and the failure policy: the application side of a farm server. */
export * from "./module.ts"
export * from "./health.ts"
export * from "./policy.ts"
export * from "./probes.ts"
export * from "./command.ts"
export * from "./runner.ts"
export * from "./logReports.ts"
