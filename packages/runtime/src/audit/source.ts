/**
 * Where the auditor reads a farm's log: the farm's JetStream stream (with each record's
 * append time) or an exported file. The export format is JSON lines, one record a line:
 * `{"farm": NAME, "seq": N, "time": "<ISO 8601 append time>", "record": <the record as stored>}`
 * (the farm name gives the hash seed; `time` may be null).
 */
import { readFileSync } from "node:fs"
import type { NatsConnection } from "@nats-io/transport-node"
import { DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream"
import { recordEntry, streamNames } from "../eventLog.ts"
import type { AuditRecord } from "./model.ts"

/** One export line for a record. */
export const exportLine = (farm: string, r: AuditRecord): string =>
  JSON.stringify({ farm, seq: r.seq, time: r.time === null ? null : new Date(r.time).toISOString(), record: r.entry })

/** Parse an export (JSON lines); throws naming the line of the first bad one. */
export const parseExport = (text: string, file = "export"): { readonly farm: string | null; readonly records: Array<AuditRecord> } => {
  const out: Array<AuditRecord> = []
  let farm: string | null = null
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return
    let v: { farm?: unknown; seq?: unknown; time?: unknown; record?: unknown }
    try {
      v = JSON.parse(line)
    } catch (e) {
      throw new Error(`${file}:${i + 1}: not JSON: ${(e as Error).message}`)
    }
    if (typeof v !== "object" || v === null || !Number.isSafeInteger(v.seq) || !("record" in v)) {
      throw new Error(`${file}:${i + 1}: expected {"seq": N, "time": ..., "record": {...}}`)
    }
    if (farm === null && typeof v.farm === "string") farm = v.farm
    const time = typeof v.time === "string" ? Date.parse(v.time) : typeof v.time === "number" ? v.time : null
    out.push({ seq: v.seq as number, time: time === null || Number.isNaN(time) ? null : time, entry: v.record })
  })
  return { farm, records: out }
}

/** Read an export file. */
export const readExport = (file: string): { readonly farm: string | null; readonly records: Array<AuditRecord> } => parseExport(readFileSync(file, "utf8"), file)

/** The stream's last sequence (0 when empty or missing). */
export const streamLastSeq = async (nc: NatsConnection, farm: string): Promise<number> => {
  const jsm = await jetstreamManager(nc)
  try {
    return (await jsm.streams.info(streamNames(farm).stream)).state.last_seq
  } catch {
    return 0
  }
}

/**
 * Follow the farm's stream from seq 1: every record, then live ones, with append times.
 * Returns a stop function. `onError` is called if the consumer dies.
 */
export const followStream = async (
  nc: NatsConnection,
  farm: string,
  onRecord: (r: AuditRecord) => void,
  onError: (e: Error) => void = () => undefined
): Promise<() => Promise<void>> => {
  const js = jetstream(nc, { timeout: 5000 })
  const consumer = await js.consumers.get(streamNames(farm).stream, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: 1 })
  const messages = await consumer.consume({ idle_heartbeat: 1000, expires: 5000 } as never)
  ;(async () => {
    try {
      for await (const m of messages) onRecord({ seq: m.seq, time: m.time.getTime(), entry: recordEntry(m) })
    } catch (e) {
      onError(e instanceof Error ? e : new Error(String(e)))
    }
  })()
  return () => messages.close().then(() => undefined, () => undefined)
}

/** Every record up to the stream's last sequence at the time of the call. */
export const readStream = async (nc: NatsConnection, farm: string): Promise<Array<AuditRecord>> => {
  const last = await streamLastSeq(nc, farm)
  const out: Array<AuditRecord> = []
  if (last === 0) return out
  let started: Promise<() => Promise<void>> | null = null
  await new Promise<void>((resolve, reject) => {
    started = followStream(nc, farm, (r) => {
      if (r.seq <= last) out.push(r)
      if (r.seq >= last) resolve()
    }, reject)
    started.catch(reject)
  })
  await (await started!)()
  return out
}
