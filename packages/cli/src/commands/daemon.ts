/** `farm daemon --config FILE`: run this server of the farm in the foreground. */
import { setFlagsFromString } from "node:v8"
import { Effect } from "effect"
import { Command, Flag } from "effect/cli"
import { runtime } from "./lazy.ts"
import { EXIT_CONFIG, stopsCleanlyOnSignal, withExitStatus } from "./exitStatus.ts"

/**
 * Keep V8's young generation at its initial size (2 MB) in the daemon. Loading the runtime
 * grows it to 16 MB, and a daemon allocating a little for every heartbeat cycles through all
 * of it, so all of it stays resident: capped, the daemon's RSS at rest is about 5 MB lower and
 * its CPU at rest no higher (BENCHMARKS.md, "Start-up and memory"). V8 reads this flag each
 * time it would grow the young generation, so setting it before the runtime loads works;
 * `--max-semi-space-size` would need the node command line.
 */
const capYoungGeneration = () => setFlagsFromString("--semi-space-growth-factor=1")

/** `farm daemon`: exit statuses as exitStatus.ts lists them (0 stopped, 75 restart, 78 bad config, 1 fatal). */
export const daemon = Command.make(
  "daemon",
  { config: Flag.String("config").pipe(Flag.withAlias("c"), Flag.withDescription("configuration file"), Flag.withDefault("/etc/vipfarm/farm.yaml")) },
  ({ config }) =>
    Effect.sync(capYoungGeneration).pipe(
      Effect.andThen(runtime),
      Effect.flatMap(({ loadConfig, runDaemon, YamlError }) =>
        loadConfig(config).pipe(
          Effect.mapError(withExitStatus(EXIT_CONFIG)),
          // the application module's module.yaml is configuration too
          Effect.flatMap((c) => stopsCleanlyOnSignal(runDaemon(c).pipe(Effect.mapError((e) => (e instanceof YamlError ? withExitStatus(EXIT_CONFIG)(e) : e)))))
        )
      )
    )
).pipe(Command.withDescription("run this server of the farm (foreground; logs to stderr; root)"))
