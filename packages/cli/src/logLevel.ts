/**
 * `--log-level` for every `farm` command, setting the level of vipfarm's own `log()`
 * (`@vipfarm/runtime` log.ts) rather than Effect's logger, which vipfarm does not log through:
 * effect/cli's built-in flag of that name set only Effect's minimum level, so it was accepted
 * and changed nothing. It replaces the built-in, with vipfarm's levels, and overrides
 * `VIPFARM_LOG`, which is validated before any command runs.
 */
import { Effect, Option } from "effect"
import { CliConfig, Command, Flag, GlobalFlag } from "effect/cli"
// log.ts itself, not the package: the whole runtime is loaded only by the commands that use it
import { type Level, LEVELS, levelFromEnv, setLogLevel } from "../../runtime/src/log.ts"

/** The `--log-level` setting: one of vipfarm's levels, for the command and its subcommands. */
export const LogLevelFlag = GlobalFlag.Setting("log-level")({
  flag: Flag.Literals("log-level", LEVELS as ReadonlyArray<Level>).pipe(
    Flag.optional,
    Flag.withMetavar(`<${LEVELS.join("|")}>`),
    Flag.withDescription(`Minimum level of the log lines on stderr (${LEVELS.join(", ")}; default: VIPFARM_LOG, else info)`)
  )
})

/** effect/cli's built-in global flags without its own `--log-level` (replaced by {@link LogLevelFlag}). */
export const builtIns = GlobalFlag.BuiltIns.filter((f) => f !== GlobalFlag.LogLevel)

/** The CLI configuration layer `farm` runs with (the built-ins above). */
export const cliConfigLayer = CliConfig.layer({ builtIns })

/**
 * Apply a level chosen on the command line: this process's `log()`, and `VIPFARM_LOG` for the
 * processes it starts (a lab's daemons, a restarted daemon), so the whole command logs at it.
 */
export const applyLogLevel = (level: Level): void => {
  setLogLevel(level)
  process.env.VIPFARM_LOG = level
}

/** A root command whose every subcommand honours `--log-level`. */
export const withLogLevel = <Name extends string, Input, ContextInput, E, R>(command: Command.Command<Name, Input, ContextInput, E, R>) =>
  command.pipe(
    Command.provideEffectDiscard(Effect.gen(function*() {
      const level = yield* LogLevelFlag
      if (Option.isSome(level)) applyLogLevel(level.value)
    })),
    Command.withGlobalFlags([LogLevelFlag])
  )

/** The problem with `VIPFARM_LOG`, or null when it is unset or a level. */
export const envLogLevelError = (env: NodeJS.ProcessEnv = process.env): string | null => {
  const r = levelFromEnv(env.VIPFARM_LOG)
  return "error" in r ? r.error : null
}
