/** `farm daemon --config FILE`: run this server of the farm in the foreground. */
import { Effect } from "effect"
import { Command, Flag } from "effect/cli"
import { loadConfig, runDaemon } from "@vipfarm/runtime"

/** `farm daemon`. */
export const daemon = Command.make(
  "daemon",
  { config: Flag.String("config").pipe(Flag.withAlias("c"), Flag.withDescription("configuration file"), Flag.withDefault("/etc/vipfarm/farm.yaml")) },
  ({ config }) => loadConfig(config).pipe(Effect.flatMap(runDaemon))
).pipe(Command.withDescription("run this server of the farm (foreground; logs to stderr; root)"))
