/** `farm status`, `farm drain`, `farm resume`: talk to the local daemon's control socket. */
import { Console, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { callControl, formatStatus, loadConfig, type Status } from "@vipfarm/runtime"

const DEFAULT_CONFIG = "/etc/vipfarm/farm.yaml"

const configFlag = Flag.String("config").pipe(
  Flag.withAlias("c"),
  Flag.withDescription(`the daemon's configuration file (default ${DEFAULT_CONFIG})`),
  Flag.optional
)
const socketFlag = Flag.String("socket").pipe(Flag.withDescription("the control socket (default: from the config)"), Flag.optional)

/** The control socket path from --socket, or the config's `control`. */
const socketOf = (config: Option.Option<string>, socket: Option.Option<string>) =>
  Option.isSome(socket)
    ? Effect.succeed(socket.value)
    : loadConfig(Option.getOrElse(config, () => DEFAULT_CONFIG)).pipe(Effect.map((c) => c.control))

/** `farm status [--json]`. */
export const status = Command.make(
  "status",
  { config: configFlag, socket: socketFlag, json: Flag.Boolean("json").pipe(Flag.withDescription("print JSON for scripts"), Flag.withDefault(false)) },
  ({ config, socket, json }) =>
    Effect.gen(function* () {
      const path = yield* socketOf(config, socket)
      const s = (yield* callControl(path, "GET", "/status")) as Status
      yield* Console.log(json ? JSON.stringify(s, null, 2) : formatStatus(s))
    })
).pipe(Command.withDescription("show the farm as this server sees it"))

const action = (name: "drain" | "resume", description: string) =>
  Command.make(name, { config: configFlag, socket: socketFlag }, ({ config, socket }) =>
    Effect.gen(function* () {
      const path = yield* socketOf(config, socket)
      const r = yield* callControl(path, "POST", `/${name}`)
      yield* Console.log(JSON.stringify(r))
    })
  ).pipe(Command.withDescription(description))

/** `farm drain`: move this server's buckets away, keeping every connection. */
export const drain = action("drain", "move this server's buckets away without resetting connections")
/** `farm resume`: take a share again after a drain. */
export const resume = action("resume", "take a share again after a drain")
