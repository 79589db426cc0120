/**
 * The implementation packages, loaded when a command runs rather than when `farm` starts. The
 * command tree (names, flags, help) is all `farm` evaluates at start; in the bundle each
 * package below is reached only through a dynamic `import()`, so esbuild wraps it in a lazy
 * initialiser and its top level (schemas, metrics, NATS and lab code) runs only for the
 * commands that use it: `farm --help` and `farm daemon` do not evaluate the simulator, the
 * lab or the audit viewer they do not run.
 */
import { Effect } from "effect"

/** `@vipfarm/runtime`: the daemon, its control socket, the lab, the audit viewer. */
export const runtime = Effect.promise(() => import("@vipfarm/runtime"))

/** `@vipfarm/sim`: the discrete-event simulator. */
export const simulator = Effect.promise(() => import("@vipfarm/sim"))
