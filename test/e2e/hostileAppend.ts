/**
 * Appends random and adversarial records to a farm's stream (run inside a lab namespace by
 * hostile.e2e.test.ts): deep nesting, huge strings, wrong types, every event with fields
 * swapped, unchained records, wrongly signed ones, a record signed by s1 in s2's name.
 * Usage: hostileAppend.ts NATS_URL FARM S1_KEY_FILE COUNT. Prints one JSON line at the end.
 */
import { Effect } from "effect"
import { connect } from "@nats-io/transport-node"
import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import { EVENT_VERSION, recordHash } from "@vipfarm/domain"
import { streamNames } from "../../packages/runtime/src/eventLog.ts"
import { loadSigner, signRecord } from "../../packages/runtime/src/signing.ts"
import { decodeRecord } from "../../packages/runtime/src/wire.ts"

const [url, farm, keyFile, countText] = process.argv.slice(2)
const count = Number(countText)
const { stream, subject } = streamNames(farm)
const nc = await connect({ servers: url, timeout: 3000 })
const js = jetstream(nc, { timeout: 3000 })
const jsm = await jetstreamManager(nc)
const s1 = await Effect.runPromise(loadSigner("s1", { key: keyFile, keys: {} }, { needKey: true }))

let seed = 16
const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 4294967296)
const pick = <T>(xs: ReadonlyArray<T>): T => xs[Math.floor(rand() * xs.length)]
const cause = { kind: "daemon", by: "s1" }
const values: ReadonlyArray<unknown> = [null, true, 0, -1, 1e308, "", "s2", "x".repeat(300), [], {}, [1, [2, [3]]], { a: { b: "c" } }, "198.18.0.1"]
const events: ReadonlyArray<Record<string, unknown>> = [
  { _tag: "MemberJoined", v: EVENT_VERSION, cause, node: "s9", address: "198.18.0.99", weight: 100, priority: 1, rulesDigest: "d", incarnation: 1 },
  { _tag: "MemberReady", v: EVENT_VERSION, cause, node: "s2" },
  { _tag: "MemberUnhealthy", v: EVENT_VERSION, cause, node: "s2", checker: "http", reason: "x" },
  { _tag: "MemberRecovered", v: EVENT_VERSION, cause, node: "s2" },
  { _tag: "MemberSuspected", v: EVENT_VERSION, cause, node: "s2", by: "s1" },
  { _tag: "MemberFailed", v: EVENT_VERSION, cause, node: "s2", detectedBy: "s1", incarnation: 1 },
  { _tag: "MemberLeft", v: EVENT_VERSION, cause, node: "s2" },
  { _tag: "DrainStarted", v: EVENT_VERSION, cause, node: "s2" },
  { _tag: "DrainFinished", v: EVENT_VERSION, cause, node: "s2" },
  { _tag: "WeightChanged", v: EVENT_VERSION, cause, node: "s2", weight: 0 },
  { _tag: "HandoffStarted", v: EVENT_VERSION, cause, handoff: "evil@1", mode: "takeover", moves: Array.from({ length: 1024 }, (_, b) => ({ table: 0, bucket: b, from: "s2", to: "s1" })) },
  { _tag: "HandoffCompleted", v: EVENT_VERSION, cause, handoff: "never@1" },
  { _tag: "ConfigChanged", v: EVENT_VERSION, cause, vips: [] },
  { _tag: "ApplicationChanged", v: EVENT_VERSION, cause, node: "s2", incarnation: 1, state: "failed", reason: "x" }
]
/** An event with two of its fields' values swapped, or one replaced by a value of another type. */
const mangle = (e: Record<string, unknown>): Record<string, unknown> => {
  const keys = Object.keys(e)
  const a = pick(keys)
  const b = pick(keys)
  return rand() < 0.5 ? { ...e, [a]: e[b], [b]: e[a] } : { ...e, [a]: pick(values) }
}
const deepText = (n: number) => "[".repeat(n) + "]".repeat(n)

/** The hash of the stream's last record, as the folders decode it (what a chained record must carry). */
const headHash = async (): Promise<string> => {
  const last = (await jsm.streams.info(stream)).state.last_seq
  if (last === 0) return ""
  const m = await jsm.streams.getMessage(stream, { seq: last })
  return recordHash(decodeRecord(m!.data))
}

const kinds: Record<string, number> = {}
for (let i = 0; i < count; i++) {
  const kind = pick(["deep", "huge", "types", "swapped", "unchained", "badsig", "impersonate", "garbage"])
  kinds[kind] = (kinds[kind] ?? 0) + 1
  let payload: string
  switch (kind) {
    case "deep": payload = rand() < 0.5 ? deepText(200_000) : `{"v":1,"events":${deepText(5000)},"prev":""}`; break
    case "huge": payload = JSON.stringify({ v: 1, events: [{ ...pick(events), reason: "x".repeat(900_000) }], prev: await headHash() }); break
    case "types": payload = JSON.stringify(pick([42, "text", null, [1, 2], { v: "1", events: {} }, { v: 1, events: [null, 7] }, { v: 1, events: [], prev: 5 }])); break
    case "swapped": payload = JSON.stringify({ v: 1, events: [mangle(pick(events))], prev: await headHash() }); break
    case "unchained": payload = JSON.stringify({ v: 1, events: [pick(events)] }); break
    case "badsig": payload = JSON.stringify({ v: 1, events: [pick(events)], prev: await headHash(), sig: { by: "s1", ed25519: Buffer.from("not a signature").toString("base64") } }); break
    case "impersonate": payload = JSON.stringify(signRecord(s1, { v: 1, events: [{ _tag: "DrainStarted", v: EVENT_VERSION, cause, node: "s2" }], prev: await headHash() })); break
    default: payload = Buffer.from(Array.from({ length: 64 }, () => Math.floor(rand() * 256))).toString("latin1")
  }
  await js.publish(subject, new TextEncoder().encode(payload))
  await new Promise((r) => setTimeout(r, 20))
}
console.log(JSON.stringify({ appended: count, kinds }))
await nc.close()
