/** @vipfarm/runtime: the daemon's parts: config, event log, host set-up, control socket, status. */
export * from "./config.ts"
export * from "./eventLog.ts"
export * from "./hostNet.ts"
export * from "./control.ts"
export * from "./status.ts"
export * from "./log.ts"
export * from "./announce.ts"
