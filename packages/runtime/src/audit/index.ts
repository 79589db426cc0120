/** The audit viewer: model of the log, its sources, its web server, and the `farm audit` actions. */
export * from "./model.ts"
export * from "./source.ts"
export * from "./server.ts"
export * from "./run.ts"
export * from "./chainTail.ts"
export * from "./anchor.ts"
