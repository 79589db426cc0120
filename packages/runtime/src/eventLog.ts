/**
 * The farm's event log on NATS JetStream: one stream per farm, appends that are
 * de-duplicated (deterministic message ids) and conditional on the last sequence the
 * decider saw, and an ordered consumer that delivers every record in order.
 */
import { Context, Effect, Layer, Queue, Schema, Stream } from "effect"
import { connect, credsAuthenticator, type NatsConnection } from "@nats-io/transport-node"
import { DeliverPolicy, JetStreamApiError, jetstream, jetstreamManager, RetentionPolicy, StorageType } from "@nats-io/jetstream"
import { readFileSync } from "node:fs"
import { decodeRecord } from "./wire.ts"

/** A record as stored: its stream sequence and its decoded JSON (untrusted until folded). */
export interface LogRecord {
  readonly seq: number
  readonly entry: unknown
}

/** What an append did. */
export type AppendResult =
  | { readonly _tag: "Appended"; readonly seq: number }
  | { readonly _tag: "Duplicate"; readonly seq: number }
  | { readonly _tag: "Conflict"; readonly lastSeq: number }

/** The log could not be reached or refused an operation. */
export class LogError extends Schema.TaggedError<LogError>()("LogError", {
  op: Schema.String,
  message: Schema.String
}) {}

/** The farm's event log. */
export class EventLog extends Context.Service<EventLog, {
  /** Append one record if the stream's last sequence is still `expectLastSeq`. */
  readonly append: (entry: unknown, options: { readonly expectLastSeq: number; readonly msgId: string }) => Effect.Effect<AppendResult, LogError>
  /**
   * Every record from `fromSeq` (1 = the beginning) on, in order, then live ones; it resumes
   * after a reconnect, and fails (op "consume") when its consumer stalls.
   */
  readonly records: (fromSeq: number) => Stream.Stream<LogRecord, LogError>
  /** The stream's last sequence (0 when empty). */
  readonly lastSeq: Effect.Effect<number, LogError>
  /**
   * One record by sequence (undefined when the stream does not hold it yet), answered by any
   * current replica (direct get): it needs neither the meta leader nor a consumer, so a reader
   * whose consumer's NATS node was cut off can still catch up.
   */
  readonly read: (seq: number) => Effect.Effect<LogRecord | undefined, LogError>
}>()("vipfarm/EventLog") {}

/**
 * A stored message's record: its JSON when within the size and shape limits, else a bounded
 * stand-in `{malformed, bytes, sha256, preview}` for the reducer to reject and count (wire.ts).
 */
export const recordEntry = (m: { readonly data: Uint8Array }): unknown => decodeRecord(m.data)

/** Stream and subject names of a farm. */
export const streamNames = (farm: string) => ({ stream: `VIPFARM_${farm.replace(/[^A-Za-z0-9_-]/g, "_")}`, subject: `vipfarm.${farm}.log` })

/** How to reach NATS. */
export interface NatsOptions {
  readonly servers: ReadonlyArray<string>
  readonly credentials?: string | null
  /** User/password authentication: the user and a file whose first line is the password. */
  readonly user?: string | null
  readonly passwordFile?: string | null
  readonly name?: string
  /** Replicas for the stream when it is created (capped by the cluster size). */
  readonly replicas?: number
  /** Accept a NATS server that requires no authentication (daemon and witness refuse one otherwise). */
  readonly insecure?: boolean
  /** TLS to NATS: CA bundle, client certificate and key (file paths). */
  readonly tls?: { readonly ca?: string | null; readonly cert?: string | null; readonly key?: string | null } | null
}

/**
 * Fail unless the connected NATS server requires authentication (its INFO `auth_required`) or
 * `insecure` is set: anybody who reaches an open server could append records every server folds.
 */
export const requireAuthentication = (nc: NatsConnection, o: NatsOptions): Effect.Effect<void, LogError> =>
  nc.info?.auth_required === true || o.insecure === true
    ? Effect.void
    : Effect.fail(new LogError({
      op: "connect",
      message: `the NATS server ${nc.getServer()} does not require authentication: any host that reaches it could write the farm's log. ` +
        "Configure per-server users (docs/security.md) and nats.user/passwordFile or nats.credentials, or set nats.insecure: true (config key nats.insecure) to run without"
    }))

const tlsOptions = (t: NatsOptions["tls"]) =>
  t === undefined || t === null || (!t.ca && !t.cert && !t.key)
    ? {}
    : { tls: { ...(t.ca ? { caFile: t.ca } : {}), ...(t.cert ? { certFile: t.cert } : {}), ...(t.key ? { keyFile: t.key } : {}) } }

const failWith = (op: string) => (e: unknown) => new LogError({ op, message: e instanceof Error ? e.message : String(e) })

/** Connect to NATS with tight pings so a dead server is noticed in about a second. */
export const connectNats = (o: NatsOptions): Effect.Effect<NatsConnection, LogError> =>
  Effect.tryPromise({
    try: async () =>
      connect({
        servers: [...o.servers],
        // the first server listed is this host's own NATS node: a link cut elsewhere must not cut the daemon off
        noRandomize: true,
        name: o.name,
        pingInterval: 500,
        maxPingOut: 2,
        reconnectTimeWait: 200,
        maxReconnectAttempts: -1,
        timeout: 2000,
        ...(o.credentials ? { authenticator: credsAuthenticator(new Uint8Array(readFileSync(o.credentials))) } : {}),
        ...(o.user && o.passwordFile ? { user: o.user, pass: readFileSync(o.passwordFile, "utf8").split("\n")[0].trim() } : {}),
        ...tlsOptions(o.tls)
      }),
    catch: failWith("connect")
  })

/** A scoped NATS connection, drained when the scope closes. */
export const natsConnection = (o: NatsOptions) =>
  Effect.acquireRelease(connectNats(o), (nc) => Effect.promise(() => nc.drain().catch(() => undefined)))

/** Create the farm's stream if missing (replicated across the NATS cluster). */
export const ensureStream = (nc: NatsConnection, farm: string, replicas = 1): Effect.Effect<void, LogError> =>
  Effect.tryPromise({
    try: async () => {
      const jsm = await jetstreamManager(nc)
      const { stream, subject } = streamNames(farm)
      let info
      try {
        info = await jsm.streams.info(stream)
      } catch {
        info = undefined
      }
      if (info !== undefined) {
        // streams made before direct reads existed get them (any replica answers a read)
        if (info.config.allow_direct !== true) await jsm.streams.update(stream, { allow_direct: true })
      } else {
        await jsm.streams.add({
          name: stream,
          subjects: [subject],
          retention: RetentionPolicy.Limits,
          storage: StorageType.File,
          num_replicas: replicas,
          duplicate_window: 120_000_000_000,
          max_msg_size: 1 << 20,
          discard: "old" as never,
          allow_direct: true
        })
      }
    },
    catch: failWith("ensure-stream")
  })

/** Silence (no record, no idle heartbeat) after which a connected reader's consumer has stalled. */
const STALL_MS = 3000

/** The EventLog of a farm over an open NATS connection. */
export const makeNatsEventLog = (nc: NatsConnection, farm: string): EventLog["Service"] => {
  const js = jetstream(nc, { timeout: 2000 })
  const { stream, subject } = streamNames(farm)
  const encoder = new TextEncoder()
  // one manager for direct reads, made on first use; no API check: that asks the meta leader,
  // which a partition may have taken away
  let direct: ReturnType<typeof jetstreamManager> | undefined
  const directReads = () =>
    (direct ??= jetstreamManager(nc, { timeout: 1000, checkAPI: false }).catch((e) => {
      direct = undefined // not kept: the next read tries again
      throw e
    }))
  return {
    append: (entry, { expectLastSeq, msgId }) =>
      Effect.tryPromise({
        try: async (): Promise<AppendResult> => {
          try {
            const ack = await js.publish(subject, encoder.encode(JSON.stringify(entry)), {
              msgID: msgId,
              expect: { lastSequence: expectLastSeq, streamName: stream },
              timeout: 2000
            })
            return ack.duplicate ? { _tag: "Duplicate", seq: ack.seq } : { _tag: "Appended", seq: ack.seq }
          } catch (e) {
            if (e instanceof JetStreamApiError && e.code === 10071) {
              const m = /(?:wrong last sequence|last sequence mismatch): (\d+)/.exec(e.message)
              return { _tag: "Conflict", lastSeq: m ? Number(m[1]) : -1 }
            }
            throw e
          }
        },
        catch: failWith("append")
      }),
    records: (fromSeq) =>
      Stream.callback<LogRecord, LogError>((queue) =>
        Effect.acquireRelease(
          Effect.tryPromise({
            try: async () => {
              const consumer = await js.consumers.get(stream, {
                deliver_policy: DeliverPolicy.StartSequence,
                opt_start_seq: Math.max(1, fromSeq)
              })
              const messages = await consumer.consume({ idle_heartbeat: 1000, expires: 5000 } as never)
              // A stalled consumer fails the stream (the follower re-subscribes from what it folded).
              // nats.js recreates an ordered consumer only when its info answers "consumer not
              // found"; the consumer is R1 on one NATS node, and when that node dies it stays
              // assigned: its info times out, and nats.js waits (pulling nothing) until the node
              // returns. So: connected, and neither a record nor an idle heartbeat for STALL_MS.
              let lastSign = Date.now()
              let connected = true
              const conn = nc.status()
              ;(async () => {
                for await (const s of conn) {
                  if (s.type === "disconnect") connected = false
                  else if (s.type === "reconnect") (connected = true), (lastSign = Date.now())
                }
              })()
              ;(async () => {
                for await (const s of messages.status()) if (s.type === "heartbeat") lastSign = Date.now()
              })()
              let lastTick = Date.now()
              const watchdog = setInterval(() => {
                const now = Date.now()
                const late = now - lastTick > 1000 // the event loop was blocked: read what came first
                lastTick = now
                if (late || !connected || now - lastSign <= STALL_MS) return
                clearInterval(watchdog)
                const message = `consumer stalled: no record or heartbeat for ${STALL_MS} ms`
                void Effect.runPromise(Queue.fail(queue, new LogError({ op: "consume", message })))
              }, 250)
              ;(async () => {
                try {
                  for await (const m of messages) {
                    lastSign = Date.now()
                    await Effect.runPromise(Queue.offer(queue, { seq: m.seq, entry: recordEntry(m) }))
                  }
                } catch (e) {
                  await Effect.runPromise(Queue.fail(queue, failWith("consume")(e)))
                }
              })()
              return { messages, conn, watchdog }
            },
            catch: failWith("consume")
          }),
          ({ conn, messages, watchdog }) =>
            Effect.promise(() => {
              clearInterval(watchdog)
              ;(conn as unknown as { stop: () => void }).stop()
              return messages.close().catch(() => undefined)
            })
        )
      ),
    read: (seq) =>
      Effect.tryPromise({
        try: async (): Promise<LogRecord | undefined> => {
          const m = await (await directReads()).direct.getMessage(stream, { seq })
          return m === null ? undefined : { seq: m.seq, entry: recordEntry(m) }
        },
        catch: failWith("read")
      }),
    lastSeq: Effect.tryPromise({
      try: async () => {
        const jsm = await jetstreamManager(nc)
        const info = await jsm.streams.info(stream)
        return info.state.last_seq
      },
      catch: failWith("last-seq")
    })
  }
}


/** A layer providing the farm's EventLog over NATS (connection scoped to the layer). */
export const layerNats = (farm: string, o: NatsOptions): Layer.Layer<EventLog, LogError> =>
  Layer.effect(EventLog)(
    Effect.gen(function* () {
      const nc = yield* natsConnection(o)
      yield* ensureStream(nc, farm, o.replicas ?? 1)
      return makeNatsEventLog(nc, farm)
    })
  )
