/** `farm daemon --config FILE`: run this server of the farm in the foreground. */
import { Effect } from "effect"
import { Command, Flag } from "effect/cli"
import { runtime } from "./lazy.ts"
import { EXIT_CONFIG, stopsCleanlyOnSignal, withExitStatus } from "./exitStatus.ts"

/** `farm daemon`: exit statuses as exitStatus.ts lists them (0 stopped, 75 restart, 78 bad config, 1 fatal). */
export const daemon = Command.make(
  "daemon",
  { config: Flag.String("config").pipe(Flag.withAlias("c"), Flag.withDescription("configuration file"), Flag.withDefault("/etc/vipfarm/farm.yaml")) },
  ({ config }) =>
    runtime.pipe(Effect.flatMap(({ loadConfig, runDaemon, YamlError }) =>
      loadConfig(config).pipe(
        Effect.mapError(withExitStatus(EXIT_CONFIG)),
        // the application module's module.yaml is configuration too
        Effect.flatMap((c) => stopsCleanlyOnSignal(runDaemon(c).pipe(Effect.mapError((e) => (e instanceof YamlError ? withExitStatus(EXIT_CONFIG)(e) : e)))))
      )
    ))
).pipe(Command.withDescription("run this server of the farm (foreground; logs to stderr; root)"))
