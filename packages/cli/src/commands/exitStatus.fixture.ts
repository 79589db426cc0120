/**
 * A main program for exitStatus.test.ts, run like `farm` (NodeRuntime.runMain): `signal` waits
 * for SIGTERM/SIGINT and has a finalizer that takes a while, `config` fails with a config
 * error's status, `fatal` fails plainly, `done` succeeds.
 */
import { Effect } from "effect"
import { NodeRuntime } from "@effect/platform-node"
import { EXIT_CONFIG, stopsCleanlyOnSignal, withExitStatus } from "./exitStatus.ts"

const mode = process.argv[2]
const program =
  mode === "signal"
    ? Effect.scoped(
      Effect.gen(function* () {
        yield* Effect.addFinalizer(() => Effect.sleep(300).pipe(Effect.andThen(Effect.sync(() => process.stdout.write("finalized\n")))))
        process.stdout.write("ready\n")
        yield* Effect.never
      })
    )
    : mode === "config"
      ? Effect.fail(withExitStatus(EXIT_CONFIG)(new Error("bad config")))
      : mode === "fatal"
        ? Effect.fail(new Error("fatal"))
        : Effect.void

NodeRuntime.runMain(stopsCleanlyOnSignal(program), { disableErrorReporting: true })
