/**
 * The daemon's application path alone, for running it inside a sandbox: load the daemon's
 * configuration file (its application module checked), load the module with the configured
 * vars and supervise it exactly as `farm daemon` does (daemon.ts: loadModule + makeSupervisor).
 * Prints one JSON line per report and the status once Ready (or when readyMs passes); on
 * "stop" (stdin) or SIGTERM it closes the scope (the module's stop command) and exits.
 *
 *   node --import tsx test/service/runApp.ts /path/farm.yaml [readyMs]
 */
import { Deferred, Effect } from "effect"
import { loadConfig } from "../../packages/runtime/src/config.ts"
import { loadModule, makeSupervisor } from "../../packages/runtime/src/app/index.ts"

const [file, readyArg] = process.argv.slice(2)
const readyMs = Number(readyArg ?? 15000)
const say = (o: unknown) => process.stdout.write(JSON.stringify(o) + "\n")

const program = Effect.scoped(
  Effect.gen(function* () {
    const config = yield* loadConfig(file)
    if (config.app === null) return yield* Effect.fail(new Error(`${file}: no app`))
    const stop = yield* Deferred.make<void>()
    const app = yield* loadModule(config.app.module, { vars: config.app.vars }).pipe(Effect.flatMap((m) => makeSupervisor(m, { node: config.node })))
    const timer = setTimeout(() => say({ event: "timeout", status: app.status() }), readyMs)
    app.onReport((r) => {
      say({ event: "report", report: r })
      if (r._tag === "Ready") {
        clearTimeout(timer)
        say({ event: "ready", status: app.status() })
      }
    })
    process.stdin.on("data", (d) => { if (String(d).includes("stop")) Effect.runFork(Deferred.succeed(stop, undefined)) })
    process.on("SIGTERM", () => Effect.runFork(Deferred.succeed(stop, undefined)))
    yield* Deferred.await(stop)
    clearTimeout(timer)
  })
).pipe(Effect.ensuring(Effect.sync(() => say({ event: "stopped" }))))

Effect.runPromise(program).then(
  () => process.exit(0),
  (e) => {
    say({ event: "error", error: e instanceof Error ? e.message : String(e) })
    process.exit(1)
  }
)
