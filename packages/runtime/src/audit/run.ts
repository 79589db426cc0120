/**
 * `farm audit` as Effects: serve the viewer, export the log, verify an export.
 */
import { Effect, Schema } from "effect"
import { writeFileSync } from "node:fs"
import { type Anchor, anchorProblem, type AnchoredVerify, verifyAnchored } from "./anchor.ts"
import { natsConnection } from "../eventLog.ts"
import { log } from "../log.ts"
import { AuditModel, type AuditRecord } from "./model.ts"
import { exportLine, followStream, readExport, readStream } from "./source.ts"
import { type Signer, verifyRecord } from "../signing.ts"
import { generateToken, isLoopback, parseListen, startAuditServer } from "./server.ts"

/** `farm audit` could not do what was asked. */
export class AuditError extends Schema.TaggedError<AuditError>()("AuditError", { message: Schema.String }) {}

/** Where the log comes from. */
export type AuditSource =
  | {
      readonly _tag: "Nats"; readonly servers: ReadonlyArray<string>; readonly farm: string
      readonly credentials: string | null; readonly user?: string | null; readonly passwordFile?: string | null
    }
  | { readonly _tag: "File"; readonly file: string; readonly farm: string | null }

const natsOptions = (s: Extract<AuditSource, { _tag: "Nats" }>) =>
  ({ servers: s.servers, credentials: s.credentials, user: s.user ?? null, passwordFile: s.passwordFile ?? null, name: "vipfarm-audit" })

const fail = (e: unknown) => new AuditError({ message: e instanceof Error ? e.message : String(e) })

/** Every record of a source (the stream up to its last sequence now) and the farm's name. */
export const readSource = (s: AuditSource): Effect.Effect<{ readonly farm: string; readonly records: Array<AuditRecord> }, AuditError> =>
  s._tag === "File"
    ? Effect.try({
        try: () => {
          const r = readExport(s.file)
          const farm = s.farm ?? r.farm
          if (farm === null) throw new Error(`${s.file}: no farm name in the export: give --farm`)
          return { farm, records: r.records }
        },
        catch: fail
      })
    : Effect.scoped(
        natsConnection(natsOptions(s)).pipe(
          Effect.mapError(fail),
          Effect.flatMap((nc) => Effect.tryPromise({ try: async () => ({ farm: s.farm, records: await readStream(nc, s.farm) }), catch: fail }))
        )
      )

/** Write every record of a source as JSON lines; returns how many. */
export const exportSource = (s: AuditSource, out: string): Effect.Effect<number, AuditError> =>
  readSource(s).pipe(
    Effect.flatMap(({ farm, records }) =>
      Effect.try({
        try: () => {
          const text = records.map((r) => exportLine(farm, r) + "\n").join("")
          if (out === "-") process.stdout.write(text)
          else writeFileSync(out, text)
          return records.length
        },
        catch: fail
      })
    )
  )

/** Verify the chain of an export file and, when given, that it holds the recorded head (see anchor.ts). */
export const verifyFile = (file: string, anchor: Anchor | null = null): Effect.Effect<AnchoredVerify, AuditError> =>
  Effect.suspend(() => {
    const problem = anchor === null ? null : anchorProblem(anchor)
    if (problem !== null) return Effect.fail(new AuditError({ message: problem }))
    return Effect.try({ try: () => verifyAnchored(readExport(file).records, anchor), catch: fail })
  })

/** Options of the viewer. */
export interface ServeOptions {
  readonly listen: string
  readonly token: string | null
  /** The farm's public keys (from a daemon's config): the viewer folds as the daemons do, forged records rejected. */
  readonly signer?: Signer
}

/** Serve the viewer until interrupted; `onReady` gets the URL to open. */
const verifier = (o: ServeOptions) => (o.signer === undefined ? undefined : (e: unknown) => verifyRecord(o.signer!, e))

export const serveAudit = (s: AuditSource, o: ServeOptions, onReady: (url: string, generatedToken: boolean) => void) =>
  Effect.scoped(
    Effect.gen(function* () {
      const { host, port } = yield* Effect.try({ try: () => parseListen(o.listen), catch: fail })
      const generated = !isLoopback(host) && (o.token === null || o.token === "")
      const token = generated ? generateToken() : o.token
      let model: AuditModel
      if (s._tag === "File") {
        const { farm, records } = yield* readSource(s)
        model = new AuditModel(farm, verifier(o))
        for (const r of records) model.add(r)
      } else {
        model = new AuditModel(s.farm, verifier(o))
        const nc = yield* natsConnection(natsOptions(s)).pipe(Effect.mapError(fail))
        const stop = yield* Effect.tryPromise({
          try: () => followStream(nc, s.farm, (r) => model.add(r), (e) => log("error", "audit.consume", { farm: s.farm, error: e.message })),
          catch: fail
        })
        yield* Effect.addFinalizer(() => Effect.promise(stop))
      }
      const source = s._tag === "File" ? `file ${s.file}` : `JetStream ${s.servers.join(",")} farm ${s.farm}`
      const server = yield* Effect.acquireRelease(
        Effect.tryPromise({ try: () => startAuditServer(model, { host, port, token, source }), catch: fail }),
        (srv) => Effect.promise(srv.close)
      )
      onReady(server.url, generated)
      return yield* Effect.never
    })
  )
