/** Flags shared by the commands that talk to the local daemon, and how they find its control socket. */
import { Effect, Option } from "effect"
import { Flag } from "effect/cli"
import { runtime } from "./lazy.ts"

/** Where the daemon's configuration lives by default. */
export const DEFAULT_CONFIG = "/etc/vipfarm/farm.yaml"

/** `--config FILE` (optional). */
export const configFlag = Flag.String("config").pipe(
  Flag.withAlias("c"),
  Flag.withDescription(`the daemon's configuration file (default ${DEFAULT_CONFIG})`),
  Flag.optional
)

/** `--socket PATH` (optional). */
export const socketFlag = Flag.String("socket").pipe(Flag.withDescription("the control socket (default: from the config)"), Flag.optional)

/** `--json`. */
export const jsonFlag = Flag.Boolean("json").pipe(Flag.withDescription("print JSON for scripts"), Flag.withDefault(false))

/** The control socket path from --socket, or the config's `control`. */
export const socketOf = (config: Option.Option<string>, socket: Option.Option<string>) =>
  Option.isSome(socket)
    ? Effect.succeed(socket.value)
    : runtime.pipe(
        Effect.flatMap(({ loadConfig }) => loadConfig(Option.getOrElse(config, () => DEFAULT_CONFIG), { checkApp: false })),
        Effect.map((c) => c.control)
      )
