/**
 * Decoding what arrives from the network, bounded before it is parsed further: log records
 * (any value a stream may hold), heartbeats and UDP-flow reports (core NATS, any publisher
 * that may publish on the farm's subjects). Nothing here throws: a message that is too big,
 * not JSON, too deep or of the wrong shape is a typed rejection the caller counts and logs.
 */
import { createHash } from "node:crypto"
import { Result, Schema } from "effect"
import { RECORD_LIMITS, shapeProblem, type ShapeLimits } from "@vipfarm/domain"
import type { Heartbeat } from "./controller/index.ts"

/** Largest log record read (the stream's max_msg_size). */
export const MAX_RECORD_BYTES = 1 << 20
/** Largest heartbeat read (a heartbeat of a 64-server farm is a few kB). */
export const MAX_HEARTBEAT_BYTES = 64 << 10
/** Largest UDP-flow report read (20000 flows of IPv6 addresses). */
export const MAX_FLOWS_BYTES = 8 << 20

/** A network message that was refused before it reached the controller. */
export class WireRejected extends Schema.TaggedError<WireRejected>()("WireRejected", {
  kind: Schema.String,
  reason: Schema.String
}) {}

const utf8 = new TextDecoder("utf-8", { fatal: false })

/** The first `n` characters of a text, for a log line or a rejected record's preview. */
export const preview = (text: string, n = 120): string => (text.length <= n ? text : `${text.slice(0, n)}… (${text.length} characters)`)

/** Parse JSON text bounded in bytes and shape; the value, or why not. */
export const boundedJson = (bytes: Uint8Array, maxBytes: number, limits: ShapeLimits = RECORD_LIMITS): Result.Result<unknown, string> => {
  if (bytes.length > maxBytes) return Result.fail(`limits: ${bytes.length} bytes (at most ${maxBytes})`)
  let value: unknown
  try {
    value = JSON.parse(utf8.decode(bytes))
  } catch (e) {
    return Result.fail(`malformed: not JSON (${(e as Error).message.slice(0, 80)})`)
  }
  const over = shapeProblem(value, limits)
  return over === null ? Result.succeed(value) : Result.fail(over)
}

/**
 * A stored record as the folders see it: its JSON when within the limits, else a bounded
 * stand-in `{malformed, bytes, sha256, preview}` (every folder makes the same one, so the fold
 * rejects it and the chain goes on from its hash; `sha256` ties it to the stored bytes).
 */
export const decodeRecord = (bytes: Uint8Array): unknown => {
  const r = boundedJson(bytes, MAX_RECORD_BYTES)
  if (Result.isSuccess(r)) return r.success
  return {
    malformed: r.failure,
    bytes: bytes.length,
    sha256: createHash("sha256").update(bytes).digest("hex"),
    preview: preview(utf8.decode(bytes.subarray(0, 240)), 120)
  }
}

const Name = Schema.String.check(Schema.isMaxLength(64))
const Num = Schema.Finite
const SuspicionSchema = Schema.Struct({
  node: Name,
  incarnation: Num,
  heard: Num,
  until: Num,
  taken: Schema.optionalKey(Schema.Boolean),
  planSeq: Schema.optionalKey(Num)
})
/** A heartbeat as it must arrive (controller types.ts `Heartbeat`). */
export const HeartbeatWire = Schema.Struct({
  node: Name,
  incarnation: Num,
  seq: Num,
  sentAt: Num,
  echo: Schema.Array(Schema.Tuple([Name, Num])).check(Schema.isMaxLength(1024)),
  suspects: Schema.Array(SuspicionSchema).check(Schema.isMaxLength(1024)),
  done: Schema.Array(Schema.String.check(Schema.isMaxLength(256))).check(Schema.isMaxLength(4096)),
  pause: Schema.optionalKey(Num)
})

const Byte = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 255 }))
const Port = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 65535 }))
/** One UDP flow of a report. */
export const FlowWire = Schema.Struct({
  family: Schema.Literals([4, 6]),
  src: Schema.Array(Byte).check(Schema.isMaxLength(16)),
  dst: Schema.Array(Byte).check(Schema.isMaxLength(16)),
  sport: Port,
  dport: Port
})
/** A UDP-flow report of an old owner to the receiver of its moving buckets. */
export const FlowReportWire = Schema.Struct({
  handoff: Schema.String.check(Schema.isMaxLength(256)),
  /** The old owner the flows stay with (absent from daemons before per-owner hand-over: every old owner). */
  from: Schema.optionalKey(Name),
  to: Name,
  flows: Schema.Array(FlowWire).check(Schema.isMaxLength(20000))
})
/** A UDP-flow report. */
export type FlowReport = typeof FlowReportWire.Type

const WIRE_LIMITS: ShapeLimits = { maxDepth: 6, maxValues: 2_000_000, maxString: 4096 }

const decodeWith = <A>(kind: string, schema: Schema.Codec<A, unknown>, maxBytes: number) => {
  const decode = Schema.decodeUnknownResult(schema)
  return (bytes: Uint8Array): Result.Result<A, WireRejected> => {
    const v = boundedJson(bytes, maxBytes, WIRE_LIMITS)
    if (Result.isFailure(v)) return Result.fail(new WireRejected({ kind, reason: v.failure }))
    const r = decode(v.success)
    if (Result.isFailure(r)) return Result.fail(new WireRejected({ kind, reason: `malformed: ${preview(String(r.failure.message ?? r.failure), 200)}` }))
    // the value as sent (checked, no transformation in these schemas): fields this version does
    // not know are kept, so a newer peer's heartbeat is not cut down
    return Result.succeed(v.success as A)
  }
}

/** Decode a heartbeat message (bytes from core NATS). */
export const decodeHeartbeat: (bytes: Uint8Array) => Result.Result<Heartbeat, WireRejected> = decodeWith("heartbeat", HeartbeatWire as unknown as Schema.Codec<Heartbeat, unknown>, MAX_HEARTBEAT_BYTES)

/** Decode a UDP-flow report (bytes from core NATS). */
export const decodeFlowReport: (bytes: Uint8Array) => Result.Result<FlowReport, WireRejected> = decodeWith("udpflows", FlowReportWire as unknown as Schema.Codec<FlowReport, unknown>, MAX_FLOWS_BYTES)

/**
 * Logs a rejected message at most once per sender and kind per interval (a hostile publisher
 * must not flood the log); `count` is called for every one.
 */
export class RejectionLog {
  private readonly last = new Map<string, number>()
  constructor(private readonly intervalMs: number, private readonly emit: (key: string, suppressed: number) => void) {}
  private readonly suppressed = new Map<string, number>()

  /** Note one rejection from `key` (sender and kind) at `now`. */
  note(key: string, now: number): void {
    const at = this.last.get(key)
    if (at !== undefined && now - at < this.intervalMs) {
      this.suppressed.set(key, (this.suppressed.get(key) ?? 0) + 1)
      return
    }
    if (this.last.size > 4096) this.last.clear() // bounded: senders may be made up
    this.last.set(key, now)
    const n = this.suppressed.get(key) ?? 0
    this.suppressed.delete(key)
    this.emit(key, n)
  }
}
