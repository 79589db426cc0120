/** `farm status`, `farm drain`, `farm resume`: talk to the local daemon's control socket. */
import { Console, Effect } from "effect"
import { Command } from "effect/cli"
import type { ChainHead, Status } from "@vipfarm/runtime"
import { runtime } from "./lazy.ts"
import { configFlag, jsonFlag, socketFlag, socketOf } from "./socket.ts"

/** `farm status [--json]`. */
export const status = Command.make(
  "status",
  { config: configFlag, socket: socketFlag, json: jsonFlag },
  ({ config, socket, json }) =>
    Effect.gen(function* () {
      const { callControl, formatChainHead, formatStatus } = yield* runtime
      const path = yield* socketOf(config, socket)
      const s = (yield* callControl(path, "GET", "/status")) as Status
      // the audit chain head (record it to pin the log: farm audit --verify FILE --expect-head HASH)
      yield* Console.log(json ? JSON.stringify(s, null, 2) : `${formatStatus(s)}\n${formatChainHead((s as { chain?: ChainHead }).chain)}`)
    })
).pipe(Command.withDescription("show the farm as this server sees it"))

const action = (name: "drain" | "resume", description: string) =>
  Command.make(name, { config: configFlag, socket: socketFlag }, ({ config, socket }) =>
    Effect.gen(function* () {
      const { callControl } = yield* runtime
      const path = yield* socketOf(config, socket)
      const r = yield* callControl(path, "POST", `/${name}`)
      yield* Console.log(JSON.stringify(r))
    })
  ).pipe(Command.withDescription(description))

/** `farm drain`: move this server's buckets away, keeping every connection. */
export const drain = action("drain", "move this server's buckets away without resetting connections")
/** `farm resume`: take a share again after a drain. */
export const resume = action("resume", "take a share again after a drain")
