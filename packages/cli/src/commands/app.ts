/** `farm app start|stop|reload`: the operator's commands for this server's application module. */
import { Console, Effect } from "effect"
import { Command } from "effect/cli"
import { runtime } from "./lazy.ts"
import { configFlag, jsonFlag, socketFlag, socketOf } from "./socket.ts"

/** What the daemon answers to an application command. */
interface AppReply {
  readonly ok: boolean
  readonly node: string
  readonly op: string
  readonly detail?: string
  readonly durationMs?: number
  readonly output?: string
  readonly app: { readonly module: string; readonly state: string; readonly checker: string | null; readonly error: string | null }
}

/** Long enough for a module's start (its timeout plus the checkers passing) or a stop that escalates. */
const APP_TIMEOUT_MS = 120_000

/** One line a person reads. */
const describe = (r: AppReply): string => {
  const a = r.app
  const state = `application ${a.module} ${a.state}${a.checker ? ` (${a.checker}: ${a.error ?? "failing"})` : ""}`
  if (r.op === "app.reload") return `${r.node}: reloaded in ${r.durationMs} ms; ${state}${r.output ? `\n${r.output}` : ""}`
  return `${r.node}: ${r.op.slice(4)}${r.detail ? ` (${r.detail})` : ""}: ${state}`
}

const action = (name: "start" | "stop" | "reload", description: string) =>
  Command.make(name, { config: configFlag, socket: socketFlag, json: jsonFlag }, ({ config, socket, json }) =>
    Effect.gen(function* () {
      const { callControl } = yield* runtime
      const path = yield* socketOf(config, socket)
      const r = (yield* callControl(path, "POST", `/app/${name}`, APP_TIMEOUT_MS)) as AppReply
      yield* Console.log(json ? JSON.stringify(r) : describe(r))
    })
  ).pipe(Command.withDescription(description))

/** `farm app ...`. */
export const app = Command.make("app").pipe(
  Command.withDescription("this server's application (its module): start, stop, reload"),
  Command.withSubcommands([
    action("start", "start the stopped application; the server rejoins once every checker passes"),
    action("stop", "leave the farm (buckets handed off) and stop the application; it stays stopped until farm app start"),
    action("reload", "run the module's reload command (configuration reloaded, no restart; the server stays in)")
  ])
)
