/**
 * What a folder checks about a log record before its events are judged on their content:
 *
 * - **Shape limits** (`shapeProblem`): nesting depth, number of values and string length are
 *   bounded, so no record can exhaust a folder's stack or memory when it is hashed, decoded or
 *   serialised again. The check is iterative (no recursion).
 * - **Authorship** (`authorshipProblem`): when the farm signs its records, every record names
 *   the server that signed it, and a server may speak only for itself in the events where only
 *   that server knows the truth. The signature itself is verified outside the domain (the
 *   runtime holds the keys and uses node:crypto, see runtime `signing.ts`) and its verdict is
 *   attached to the record under {@link RecordVerdict}, a symbol no JSON text can produce.
 *
 * Pure: no I/O, no clock; the same record with the same verdict always folds the same way.
 */

/** Bounds every record must stay within (checked before anything else reads it). */
export interface ShapeLimits {
  /** Deepest nesting of arrays and objects (the record itself is depth 1). */
  readonly maxDepth: number
  /** Values in the whole record (objects, arrays, members and scalars). */
  readonly maxValues: number
  /** Longest string, member names included (UTF-16 code units). */
  readonly maxString: number
}

/**
 * The farm's limits: a HandoffStarted that moves every bucket of 16 tables is about
 * 16 * 1024 * 5 values at depth 5; checker reasons and causes are short texts.
 */
export const RECORD_LIMITS: ShapeLimits = { maxDepth: 16, maxValues: 200_000, maxString: 16_384 }

/** Why a value exceeds `limits` (a short text naming the limit), or null when it does not. */
export const shapeProblem = (value: unknown, limits: ShapeLimits = RECORD_LIMITS): string | null => {
  const stack: Array<{ v: unknown; d: number }> = [{ v: value, d: 1 }]
  let count = 0
  while (stack.length > 0) {
    const { v, d } = stack.pop()!
    if (++count > limits.maxValues) return `limits: more than ${limits.maxValues} values`
    if (typeof v === "string") {
      if (v.length > limits.maxString) return `limits: a string of ${v.length} characters (at most ${limits.maxString})`
      continue
    }
    if (typeof v !== "object" || v === null) continue
    if (d > limits.maxDepth) return `limits: nested deeper than ${limits.maxDepth}`
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ v: v[i], d: d + 1 })
    } else {
      for (const k of Object.keys(v)) {
        if (k.length > limits.maxString) return `limits: a member name of ${k.length} characters (at most ${limits.maxString})`
        stack.push({ v: (v as Record<string, unknown>)[k], d: d + 1 })
      }
    }
  }
  return null
}

/** The signature verifier's verdict on a record. */
export type Verdict =
  | { readonly _tag: "Signed"; readonly by: string }
  | { readonly _tag: "Refused"; readonly reason: string }

/** Where a record carries its verdict (set by the runtime's verifier; never present in JSON). */
export const RecordVerdict: unique symbol = Symbol("vipfarm.recordVerdict")

/** Attach a verdict to a record (an object; other values are returned unchanged). */
export const attest = <T>(entry: T, verdict: Verdict): T => {
  if (typeof entry === "object" && entry !== null) {
    Object.defineProperty(entry, RecordVerdict, { value: verdict, enumerable: false, configurable: true })
  }
  return entry
}

/** The verdict attached to a record, if any. */
export const verdictOf = (entry: unknown): Verdict | undefined =>
  typeof entry === "object" && entry !== null ? (entry as { [RecordVerdict]?: Verdict })[RecordVerdict] : undefined

/**
 * Who may sign an event (the rule per event, written down in docs/security.md):
 * - only the server itself (`node` is the signer): MemberJoined, MemberReady, MemberUnhealthy,
 *   MemberRecovered, DrainStarted, WeightChanged, MemberLeft, ApplicationChanged: only that
 *   server knows it joined, is healthy, drains, leaves or what its application does;
 * - only a peer that names itself as the detector (`by` / `detectedBy` is the signer, and not
 *   the node): MemberSuspected, MemberFailed: a failed server cannot report its own failure;
 * - any server with a key: HandoffStarted, HandoffCompleted, DrainFinished, ConfigChanged: the
 *   deciders of every server write them (a server writes the farm's first ConfigChanged before
 *   it joins), and the reducer checks them against the state (a move must start from the
 *   bucket's owner, a completion must name an open hand-off).
 */
export const authorshipProblem = (event: { readonly _tag: string; readonly [k: string]: unknown }, signer: string): string | null => {
  switch (event._tag) {
    case "MemberJoined":
    case "MemberReady":
    case "MemberUnhealthy":
    case "MemberRecovered":
    case "DrainStarted":
    case "WeightChanged":
    case "MemberLeft":
    case "ApplicationChanged":
      return event.node === signer ? null : `author: ${event._tag} of ${String(event.node)} signed by ${signer} (only ${String(event.node)} may write it)`
    case "MemberSuspected":
    case "MemberFailed": {
      const by = event._tag === "MemberFailed" ? event.detectedBy : event.by
      if (event.node === signer) return `author: ${event._tag} of ${signer} signed by itself (only a peer may write it)`
      return by === signer ? null : `author: ${event._tag} detected by ${String(by)} signed by ${signer}`
    }
    default:
      return null
  }
}

/** The kind of a rejection reason, a bounded label for metrics: chain, signature, author, limits, malformed or invalid. */
export const rejectionKind = (reason: string): "chain" | "signature" | "author" | "limits" | "malformed" | "invalid" => {
  const m = /^(?:events\[\d+\]: )?(chain|signature|author|limits|malformed)\b/.exec(reason)
  return m === null ? "invalid" : (m[1] as "chain" | "signature" | "author" | "limits" | "malformed")
}
