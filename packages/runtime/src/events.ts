/**
 * `farm events`: the log's records as the daemon folded them, with their causes. The daemon
 * keeps the last records in memory ({@link EventStore}, `GET /events?from=N`); the CLI
 * prints them as lines a person reads, or as JSON lines for scripts.
 */

/** A record the daemon folded: its sequence, what it held, and when this daemon saw it (wall clock ms). */
export interface FoldedRecord {
  readonly seq: number
  readonly seenAt: number
  /** The record; for a rejected one, a bounded preview of its JSON text instead. */
  readonly entry: unknown
  /** Why the fold rejected the record (absent when it folded). */
  readonly rejected?: string
}

/** A bounded preview of any value's JSON text: never throws, never longer than `n` characters (plus a note). */
export const jsonPreview = (value: unknown, n = 300): string => {
  let text: string
  try {
    text = JSON.stringify(value) ?? String(value)
  } catch (e) {
    return `(not serialisable: ${(e as Error).message.slice(0, 80)})`
  }
  return text.length <= n ? text : `${text.slice(0, n)}… (${text.length} characters)`
}

/** JSON.stringify that never throws: a value it cannot write becomes `{error}`. */
export const safeStringify = (value: unknown): string => {
  try {
    return JSON.stringify(value) ?? "null"
  } catch (e) {
    return JSON.stringify({ error: `the answer could not be serialised: ${(e as Error).message.slice(0, 120)}` })
  }
}

/** The answer of `GET /events?from=N`. */
export interface EventsPage {
  readonly farm: string
  readonly node: string
  /** The lowest sequence still held (older ones were dropped; read JetStream with --nats for them). */
  readonly first: number
  /** The last sequence folded. */
  readonly last: number
  readonly records: ReadonlyArray<FoldedRecord>
  /** The audit chain's head as this server folded it (sequence and record hash): record it to pin the log. */
  readonly chain?: { readonly seq: number; readonly head: string }
}

/** The last `capacity` folded records. */
export class EventStore {
  private readonly ring: Array<FoldedRecord> = []
  /** The JSON size of each record held (same index as `ring`): a page is bounded in bytes too. */
  private readonly sizes: Array<number> = []
  constructor(private readonly capacity = 10_000) {}

  add(seq: number, entry: unknown, seenAt = Date.now(), rejected?: string): void {
    const last = this.ring[this.ring.length - 1]
    if (last !== undefined && seq <= last.seq) return
    // a rejected record may be hostile: only its reason and a bounded preview are kept and served
    const r: FoldedRecord = rejected === undefined ? { seq, seenAt, entry } : { seq, seenAt, entry: jsonPreview(entry), rejected: rejected.slice(0, 500) }
    this.ring.push(r)
    this.sizes.push(safeStringify(r).length)
    if (this.ring.length > this.capacity) {
      this.ring.splice(0, this.ring.length - this.capacity)
      this.sizes.splice(0, this.sizes.length - this.capacity)
    }
  }

  /** Records with seq >= from (at most `limit`). */
  from(from: number, limit = 5000, maxChars = 16 << 20): { first: number; last: number; records: Array<FoldedRecord> } {
    const first = this.ring[0]?.seq ?? 0
    const last = this.ring[this.ring.length - 1]?.seq ?? 0
    let i = 0
    // binary search: sequences are increasing
    let lo = 0
    let hi = this.ring.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (this.ring[mid].seq < from) lo = mid + 1
      else hi = mid
    }
    i = lo
    // at most `limit` records and about `maxChars` of JSON (at least one): the client asks again from the next seq
    let end = i
    for (let chars = 0; end < this.ring.length && end - i < limit && (end === i || chars + this.sizes[end] <= maxChars); end++) chars += this.sizes[end]
    return { first, last, records: this.ring.slice(i, end) }
  }
}

/** `from` of `/events?from=N` (default 1). */
export const eventsFromQuery = (url: string): number => {
  const q = url.indexOf("?")
  if (q < 0) return 1
  const v = new URLSearchParams(url.slice(q + 1)).get("from")
  const n = v === null ? 1 : Number(v)
  return Number.isFinite(n) && n >= 1 ? Math.floor(n) : 1
}

type Loose = Record<string, unknown>

/** The events of a record: a batch `{v, events}` or a single event. */
const eventsIn = (entry: unknown): Array<Loose> => {
  const batch = (entry as { events?: unknown } | null)?.events
  const list = (Array.isArray(batch) ? batch : [entry]) as Array<unknown>
  return list.filter((e): e is Loose => typeof e === "object" && e !== null)
}

// a long string is cut, not quoted: summaries are for people (a hostile value stays bounded either way)
const str = (v: unknown): string =>
  typeof v === "string" ? (v.length > 300 ? `${v.slice(0, 300)}… (${v.length} characters)` : v) : v === undefined ? "" : jsonPreview(v, 200)

/** What an event is about, in a few words. */
export const eventSummary = (e: Loose): string => {
  switch (e._tag) {
    case "MemberJoined":
      return `${str(e.node)} joined (incarnation ${str(e.incarnation)}, weight ${str(e.weight)}${e.address ? `, ${str(e.address)}` : ""})`
    case "MemberReady":
      return `${str(e.node)} ready`
    case "MemberUnhealthy":
      return `${str(e.node)} unhealthy${e.checker ? `: ${str(e.checker)}` : ""}${e.reason ? ` (${str(e.reason)})` : ""}`
    case "MemberRecovered":
      return `${str(e.node)} recovered${Array.isArray(e.restore) ? ` (stale unhealthy report withdrawn, ${e.restore.length} buckets restored)` : ""}`
    case "ApplicationChanged":
      return `${str(e.node)} application ${str(e.state)}${e.checker ? ` (${str(e.checker)})` : ""}: ${str(e.reason)}${typeof e.restarts === "number" && e.restarts > 0 ? ` [restarts ${e.restarts}]` : ""}`
    case "MemberSuspected":
      return `${str(e.node)} suspected by ${str(e.by)}`
    case "MemberFailed":
      return `${str(e.node)} failed (incarnation ${str(e.incarnation)}), detected by ${str(e.detectedBy)}${Array.isArray(e.plan) ? `, pinned plan of ${e.plan.length} buckets` : ""}`
    case "MemberLeft":
      return `${str(e.node)} left`
    case "DrainStarted":
      return `${str(e.node)} draining`
    case "DrainFinished":
      return `${str(e.node)} drained`
    case "WeightChanged":
      return `${str(e.node)} weight ${str(e.weight)}`
    case "HandoffStarted": {
      const moves = Array.isArray(e.moves) ? (e.moves as Array<Loose>) : []
      const pairs = new Map<string, number>()
      for (const m of moves) {
        const k = `${str(m.from ?? "-")}->${str(m.to)}`
        pairs.set(k, (pairs.get(k) ?? 0) + 1)
      }
      const summary = [...pairs.entries()].map(([k, n]) => `${k} ${n}`).join(", ")
      return `hand-off ${str(e.handoff)} ${str(e.mode)}: ${moves.length} buckets${summary ? ` (${summary})` : ""}`
    }
    case "HandoffCompleted":
      return `hand-off ${str(e.handoff)} completed`
    case "ConfigChanged": {
      const vips = Array.isArray(e.vips) ? (e.vips as Array<Loose>).map((v) => str(v.address)) : []
      return `services: ${vips.join(", ") || "none"}`
    }
    default:
      return jsonPreview(e, 200)
  }
}

/** The cause of an event: `kind by [detail]`. */
export const causeText = (e: Loose): string => {
  const c = e.cause as Loose | undefined
  if (c === undefined || c === null) return ""
  return `${str(c.kind)} by ${str(c.by)}${c.detail ? ` (${str(c.detail)})` : ""}`
}

const pad = (s: string, n: number) => (s.length >= n ? s : s + " ".repeat(n - s.length))

const timeText = (ms: number): string => new Date(ms).toISOString().replace("T", " ").replace("Z", "")

/** One line per event of a record: `seq  time  Tag  what  cause`. */
export const formatRecord = (r: FoldedRecord): Array<string> =>
  r.rejected !== undefined
    ? [`${pad(String(r.seq), 6)} ${timeText(r.seenAt)}  ${pad("REJECTED", 17)} ${str(r.rejected)}  ${str(r.entry)}`]
    : eventsIn(r.entry).map((e) => {
    const tag = typeof e._tag === "string" ? e._tag : "Malformed"
    const cause = causeText(e)
    return `${pad(String(r.seq), 6)} ${timeText(r.seenAt)}  ${pad(tag, 17)} ${eventSummary(e)}${cause ? `  [${cause}]` : ""}`
  })

/** The header line of the text form. */
export const eventsHeader = (): string => `${pad("SEQ", 6)} ${pad("SEEN (UTC)", 23)}  ${pad("EVENT", 17)} WHAT  [CAUSE]`

/** JSON lines: one object per event, with the record's sequence and time. */
export const recordJsonLines = (r: FoldedRecord): Array<string> =>
  r.rejected !== undefined
    ? [safeStringify({ seq: r.seq, seenAt: new Date(r.seenAt).toISOString(), rejected: r.rejected, preview: r.entry })]
    : eventsIn(r.entry).map((e, i) => safeStringify({ seq: r.seq, index: i, seenAt: new Date(r.seenAt).toISOString(), event: e }))
