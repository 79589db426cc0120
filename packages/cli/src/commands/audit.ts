/**
 * `farm audit`: the event-log audit viewer (a web page on 127.0.0.1 by default), and
 * `--export FILE` / `--verify FILE` for scripts.
 */
import { Console, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import type { AuditSource } from "@vipfarm/runtime"
import { runtime } from "./lazy.ts"
import { jsonFlag } from "./socket.ts"

const opt = (name: string, description: string) => Flag.String(name).pipe(Flag.withDescription(description), Flag.optional)

/** `farm audit`. */
export const audit = Command.make(
  "audit",
  {
    config: opt("config", "read the farm's name and NATS settings from a daemon's config file (e.g. /etc/vipfarm/farm.yaml)").pipe(Flag.withAlias("c")),
    nats: opt("nats", "NATS server URL(s), comma-separated (read the farm's JetStream log)"),
    creds: opt("creds", "NATS credentials file"),
    user: opt("user", "NATS user (with --password-file)"),
    passwordFile: opt("password-file", "file whose first line is the NATS user's password"),
    farm: opt("farm", "the farm's name (with --nats; with --file it comes from the export)"),
    file: opt("file", "read an exported log (JSON lines) instead of NATS"),
    listen: Flag.String("listen").pipe(Flag.withDescription("ADDR:PORT to serve the viewer on; not loopback needs a token"), Flag.withDefault("127.0.0.1:8700")),
    token: opt("token", "the token every request must carry (generated and printed when not on loopback)"),
    export: opt("export", "write the log as JSON lines to FILE (- for stdout) and exit"),
    verify: opt("verify", "verify the hash chain of an exported FILE; exit 1 naming the first bad seq"),
    expectHead: opt("expect-head", "with --verify: the head hash recorded earlier (farm status/events, the viewer) must be in the log: detects a rewritten log"),
    expectSeq: Flag.Int("expect-seq").pipe(
      Flag.withDescription("with --verify: the log must reach this seq (with --expect-head: the recorded head's seq): detects a log cut short"), Flag.optional
    ),
    json: jsonFlag
  },
  (o) =>
    Effect.gen(function* () {
      const { AuditError, exportSource, loadConfig, loadSigner, serveAudit, verifyFile } = yield* runtime
      if (Option.isSome(o.verify)) {
        const file = o.verify.value
        const anchor = Option.isSome(o.expectHead) || Option.isSome(o.expectSeq)
          ? { head: Option.getOrNull(o.expectHead), seq: Option.getOrNull(o.expectSeq) }
          : null
        const r = yield* verifyFile(file, anchor)
        if (o.json) yield* Console.log(JSON.stringify({ file, ...r }, null, 2))
        const chainBroken = r.firstBad !== undefined
        if (chainBroken) return yield* new AuditError({ message: `${file}: chain broken at ${r.reason}` })
        if (r.anchor !== null && !r.anchor.ok) return yield* new AuditError({ message: `${file}: chain verifies (${r.reason}) but not against the recorded head: ${r.anchor.reason}` })
        if (!o.json) {
          yield* Console.log(`${file}: chain verifies: ${r.reason}; head seq ${r.lastSeq} ${r.head || "-"}`)
          if (r.anchor !== null) yield* Console.log(`${file}: recorded head: ${r.anchor.reason}`)
        }
        return
      }
      if (Option.isSome(o.expectHead) || Option.isSome(o.expectSeq)) return yield* new AuditError({ message: "--expect-head and --expect-seq go with --verify FILE" })
      const config = Option.isSome(o.config) ? yield* loadConfig(o.config.value, { checkApp: false }) : null
      const servers = Option.isSome(o.nats) ? o.nats.value.split(",").map((s) => s.trim()).filter((s) => s !== "") : config?.nats.servers
      const farm = Option.getOrNull(o.farm) ?? config?.farm ?? null
      const source: AuditSource = Option.isSome(o.file)
        ? { _tag: "File", file: o.file.value, farm: Option.getOrNull(o.farm) }
        : servers !== undefined && servers.length > 0 && farm !== null
          ? {
              _tag: "Nats", servers, farm,
              credentials: Option.getOrNull(o.creds) ?? config?.nats.credentials ?? null,
              user: Option.getOrNull(o.user) ?? config?.nats.user ?? null,
              passwordFile: Option.getOrNull(o.passwordFile) ?? config?.nats.passwordFile ?? null
            }
          : yield* new AuditError({ message: "give --file FILE, or --nats URL and --farm NAME, or --config FILE" })
      if (Option.isSome(o.export)) {
        const n = yield* exportSource(source, o.export.value)
        if (o.export.value !== "-") yield* Console.log(`${n} records written to ${o.export.value}`)
        return
      }
      // a signed farm (its config lists keys): the viewer verifies every record as the daemons do
      const signer = config !== null && Object.keys(config.signing.keys).length > 0
        ? yield* loadSigner(config.node, { key: null, keys: config.signing.keys }, { needKey: false })
        : undefined
      yield* serveAudit(source, { listen: o.listen, token: Option.getOrNull(o.token), ...(signer ? { signer } : {}) }, (url, generated) => {
        process.stdout.write(`audit viewer: ${url}\n`)
        if (generated) process.stdout.write("(a token was generated for this run: it is in the URL above; pass --token to choose one)\n")
      })
    })
).pipe(Command.withDescription("the farm's event log as a web page (timeline, time travel, bucket and client history, chain check)"))
