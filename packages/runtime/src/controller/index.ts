/** The node controller: pure control logic shared by the daemon and the simulator. */
export * from "./types.ts"
export * from "./liveness.ts"
export * from "./controller.ts"
export * from "./udpHandover.ts"
