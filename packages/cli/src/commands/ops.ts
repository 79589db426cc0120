/** `farm events`, `farm buckets`, `farm config check`, `farm restart`: operating a farm server. */
import { readFileSync } from "node:fs"
import { Console, Effect, Option, Schema } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import type { BucketsDoc, EventsPage } from "@vipfarm/runtime"
import { runtime } from "./lazy.ts"
import { configFlag, socketFlag, socketOf, jsonFlag } from "./socket.ts"

/** `farm events [--follow] [--json] [--from N]`. */
export const events = Command.make(
  "events",
  {
    config: configFlag, socket: socketFlag, json: jsonFlag,
    follow: Flag.Boolean("follow").pipe(Flag.withAlias("f"), Flag.withDescription("keep printing events as they arrive"), Flag.withDefault(false)),
    from: Flag.Int("from").pipe(Flag.withDescription("first log sequence (default: the oldest the daemon keeps)"), Flag.withDefault(1))
  },
  ({ config, socket, json, follow, from }) =>
    Effect.gen(function* () {
      const { callControl, eventsHeader, formatChainHead, formatRecord, recordJsonLines } = yield* runtime
      const path = yield* socketOf(config, socket)
      let next = Math.max(1, from)
      let first = true
      for (;;) {
        const page = (yield* callControl(path, "GET", `/events?from=${next}`)) as EventsPage
        if (first && !json) {
          if (page.first > next && page.records.length > 0) yield* Console.log(`(the daemon keeps records from ${page.first}; older ones are in the JetStream log)`)
          yield* Console.log(eventsHeader())
        }
        for (const r of page.records) {
          const lines = json ? recordJsonLines(r) : formatRecord(r)
          for (const l of lines) yield* Console.log(l)
          next = r.seq + 1
        }
        // the audit chain head as this server folded it (record it: farm audit --verify FILE --expect-head HASH)
        if (first && !json) yield* Console.log(formatChainHead(page.chain))
        first = false
        if (!follow) return
        if (page.records.length === 0) yield* Effect.sleep("500 millis")
      }
    })
).pipe(Command.withDescription("the farm's event log with causes, as this server folded it"))

/** `farm buckets [--json] [--all]`. */
export const buckets = Command.make(
  "buckets",
  {
    config: configFlag, socket: socketFlag, json: jsonFlag,
    all: Flag.Boolean("all").pipe(Flag.withDescription("list every bucket, not only the moving ones"), Flag.withDefault(false))
  },
  ({ config, socket, json, all }) =>
    Effect.gen(function* () {
      const { callControl, formatBuckets, summarizeBuckets } = yield* runtime
      const path = yield* socketOf(config, socket)
      const doc = (yield* callControl(path, "GET", "/buckets")) as BucketsDoc
      yield* Console.log(json ? JSON.stringify({ ...doc, summary: summarizeBuckets(doc) }, null, 2) : formatBuckets(doc, all))
    })
).pipe(Command.withDescription("owner and traffic per bucket"))

/** The config check found problems (the CLI exits non-zero). */
export class ConfigCheckFailed extends Schema.TaggedError<ConfigCheckFailed>()("ConfigCheckFailed", { file: Schema.String, errors: Schema.Number }) {
  override get message(): string {
    return `${this.file}: ${this.errors} error${this.errors === 1 ? "" : "s"}`
  }
}

/** `farm config check FILE [--json]`. */
const check = Command.make(
  "check",
  { file: Argument.String("file").pipe(Argument.withDescription("the configuration file")), json: jsonFlag },
  ({ file, json }) =>
    Effect.gen(function* () {
      let text: Uint8Array
      try {
        text = readFileSync(file) // decoded strictly by checkConfig: a byte that is not UTF-8 is an error
      } catch (e) {
        return yield* Effect.fail(new ConfigCheckFailed({ file, errors: 1 })).pipe(
          Effect.tap(() => Console.error(`${file}:0: cannot read: ${(e as Error).message}`))
        )
      }
      const { checkConfig } = yield* runtime
      const errors = checkConfig(text, file)
      if (json) yield* Console.log(JSON.stringify({ file, ok: errors.length === 0, errors: errors.map((e) => ({ line: e.line, key: e.key, problem: e.problem, message: e.message })) }, null, 2))
      else if (errors.length === 0) yield* Console.log(`${file}: ok`)
      else for (const e of errors) yield* Console.error(e.message)
      if (errors.length > 0) return yield* Effect.fail(new ConfigCheckFailed({ file, errors: errors.length }))
    })
).pipe(Command.withDescription("validate a configuration file without touching the system (every error with file:line)"))

/** `farm config ...`. */
export const configCommand = Command.make("config").pipe(
  Command.withDescription("configuration files"),
  Command.withSubcommands([check])
)

/** `farm restart`: restart the daemon keeping the server's connections. */
export const restart = Command.make("restart", { config: configFlag, socket: socketFlag }, ({ config, socket }) =>
  Effect.gen(function* () {
    const { callControl } = yield* runtime
    const path = yield* socketOf(config, socket)
    const r = yield* callControl(path, "POST", "/restart")
    yield* Console.log(JSON.stringify(r))
  })
).pipe(Command.withDescription("restart the daemon keeping the filter serving (exit 75; systemd starts the new one), e.g. after an upgrade"))
