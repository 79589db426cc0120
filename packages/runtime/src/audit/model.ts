/**
 * The audit viewer's model of a farm's log: every record folded with the domain reducer
 * (the same `applyEntry` every server runs), the chain checked record by record, and
 * indexes for the questions an operator asks: what happened (timeline), what did the
 * farm look like at record N (time travel), why did this bucket or this client move.
 * Pure apart from the clock-free data it is fed.
 */
import {
  addressWords, affinityKey, type AffinityName, applyEntry, BUCKETS, bucketOfHash, type BucketState, type Cause, chainResult,
  chainStart, type ChainCursor, chainStep, farmSeed, type FarmState, initialState, jhash2, portRanges, ruleTables, type VerifyResult
} from "@vipfarm/domain"

/** A record of the log: stream sequence, append time (epoch ms, null when unknown), decoded JSON. */
export interface AuditRecord {
  readonly seq: number
  readonly time: number | null
  readonly entry: unknown
}

/** One event of the timeline. */
export interface TimelineEvent {
  readonly seq: number
  /** Position in its record's batch. */
  readonly index: number
  readonly time: number | null
  readonly tag: string
  readonly cause: Cause | null
  /** Servers the event names (subject, detector, hand-off ends, the cause's author). */
  readonly nodes: ReadonlyArray<string>
  /** One line a person reads. */
  readonly summary: string
  /** Buckets whose owner or state this record changed (all tables). */
  readonly bucketsChanged: number
  /** Set when the reducer refused the record (nothing of it applied). */
  readonly rejected: string | null
}

/** A bucket's change of owner or state in one record. */
export interface BucketChange {
  readonly table: number
  readonly bucket: number
  readonly before: BucketState
  readonly after: BucketState
}

/** Filters of the timeline. */
export interface TimelineFilter {
  readonly node?: string
  readonly bucket?: number
  readonly table?: number
  /** Epoch ms, inclusive. */
  readonly from?: number
  readonly to?: number
  readonly fromSeq?: number
  readonly toSeq?: number
  readonly limit?: number
}

/** A bucket state for the page: owner and state, compact. */
export interface CellView {
  readonly owner: string | null
  readonly state: BucketState["state"]
  readonly to?: string
  readonly from?: string
  readonly handoff?: string
}

const CHECKPOINT_EVERY = 128

const str = (v: unknown): string => (typeof v === "string" ? v : "?")

/** One line describing an event (the cause is shown beside it). */
export const describeEvent = (e: Record<string, unknown>): string => {
  const node = str(e.node)
  switch (e._tag) {
    case "MemberJoined":
      return `${node} joined (address ${str(e.address)}, weight ${e.weight}, priority ${e.priority}, incarnation ${e.incarnation})`
    case "MemberReady":
      return `${node} is ready: it may take buckets`
    case "MemberUnhealthy":
      return `${node} is unhealthy: checker ${str(e.checker)} failed: ${str(e.reason)}; its buckets are taken over`
    case "MemberRecovered":
      return `${node} recovered: its checkers pass again`
    case "ApplicationChanged": {
      const what: Record<string, string> = {
        running: "runs: every checker passes", restarting: "is being restarted", left: "failed and its restarts are used up: the server left the farm",
        healing: "is being healed (restarted while out of the farm)", stopped: "is stopped", failed: "failed"
      }
      const restarts = typeof e.restarts === "number" && e.restarts > 0 ? ` [${e.restarts} restart${e.restarts === 1 ? "" : "s"} in the window]` : ""
      return `${node}'s application ${what[str(e.state)] ?? str(e.state)}${typeof e.checker === "string" ? ` (checker ${e.checker})` : ""}: ${str(e.reason)}${restarts}`
    }
    case "MemberSuspected":
      return `${node} suspected by ${str(e.by)} (missed heartbeats)`
    case "MemberFailed":
      return `${node} failed (lease expired, incarnation ${e.incarnation}), detected by ${str(e.detectedBy)}; its buckets are taken over`
    case "MemberLeft":
      return `${node} left the farm`
    case "DrainStarted":
      return `${node} drains: its buckets move away keeping their connections`
    case "DrainFinished":
      return `${node} is drained: it owns nothing`
    case "WeightChanged":
      return `${node} weight is now ${e.weight}`
    case "HandoffStarted": {
      const moves = Array.isArray(e.moves) ? (e.moves as Array<{ from: string | null; to: string }>) : []
      const pairs = new Map<string, number>()
      for (const m of moves) pairs.set(`${m.from ?? "nobody"} → ${m.to}`, (pairs.get(`${m.from ?? "nobody"} → ${m.to}`) ?? 0) + 1)
      const detail = [...pairs].map(([k, n]) => `${k} ×${n}`).join(", ")
      return `hand-off ${str(e.handoff)} (${str(e.mode)}): ${moves.length} bucket${moves.length === 1 ? "" : "s"}${detail ? `: ${detail}` : ""}`
    }
    case "HandoffCompleted":
      return `hand-off ${str(e.handoff)} completed: its buckets belong to their new owners`
    case "ConfigChanged": {
      const vips = Array.isArray(e.vips) ? (e.vips as Array<{ address: string; rules: Array<{ proto: string; ports: Array<unknown>; affinity: string; mode?: string }> }>) : []
      return `services: ${vips.map((v) => `${v.address} ${v.rules.map((r) => `${r.proto}/${r.ports.join(",") || "*"} ${r.affinity}${r.mode === "single-host" ? " single-host" : ""}`).join("; ")}`).join(" | ") || "none"}`
    }
    default:
      return `${str(e._tag)}: unknown event`
  }
}

const nodesOf = (e: Record<string, unknown>): Array<string> => {
  const out = new Set<string>()
  for (const k of ["node", "by", "detectedBy"] as const) if (typeof e[k] === "string") out.add(e[k] as string)
  if (Array.isArray(e.moves)) for (const m of e.moves as Array<{ from?: unknown; to?: unknown }>) {
    if (typeof m.from === "string") out.add(m.from)
    if (typeof m.to === "string") out.add(m.to)
  }
  const cause = e.cause as { by?: unknown } | undefined
  if (cause && typeof cause.by === "string") out.add(cause.by)
  return [...out]
}

const eventsOf = (entry: unknown): Array<Record<string, unknown>> => {
  if (typeof entry !== "object" || entry === null) return [{ _tag: "Malformed" }]
  const events = (entry as { events?: unknown }).events
  if (Array.isArray(events)) return events.map((e) => (typeof e === "object" && e !== null ? (e as Record<string, unknown>) : { _tag: "Malformed" }))
  if ("_tag" in entry) return [entry as Record<string, unknown>]
  return [{ _tag: "Malformed" }]
}

const sameCell = (a: BucketState, b: BucketState): boolean =>
  a === b || (a.state === b.state && a.owner === b.owner && (a as { to?: string }).to === (b as { to?: string }).to && (a as { from?: string }).from === (b as { from?: string }).from)

const diffTables = (before: FarmState, after: FarmState): Array<BucketChange> => {
  const out: Array<BucketChange> = []
  const n = Math.max(before.tables.length, after.tables.length)
  for (let t = 0; t < n; t++) {
    const a = before.tables[t]
    const b = after.tables[t]
    if (a === b || a === undefined || b === undefined) continue
    for (let i = 0; i < BUCKETS; i++) if (!sameCell(a[i], b[i])) out.push({ table: t, bucket: i, before: a[i], after: b[i] })
  }
  return out
}

/** Whether an event can have made this change of a bucket. */
const touchesBucket = (e: Record<string, unknown>, c: BucketChange): boolean => {
  switch (e._tag) {
    case "HandoffStarted":
      return Array.isArray(e.moves) && (e.moves as Array<{ table: number; bucket: number }>).some((m) => m.table === c.table && m.bucket === c.bucket)
    case "HandoffCompleted":
      return c.before.state === "moving" && c.before.handoff === e.handoff
    case "MemberFailed": case "MemberUnhealthy": case "MemberLeft":
      return c.before.owner === e.node || (c.before.state === "moving" && c.before.to === e.node)
    case "ConfigChanged":
      return true
    default:
      return false
  }
}

/** The events of a record that made a bucket's change (a batch may hold others too); all of them if none is singled out. */
const relevantEvents = (events: Array<Record<string, unknown>>, c: BucketChange) => {
  const all = events.map((e, index) => ({ e, index }))
  const some = all.filter(({ e }) => touchesBucket(e, c))
  return some.length > 0 ? some : all
}

/** The log of a farm as the auditor sees it; feed records in order with `add`. */
export class AuditModel {
  private readonly records: Array<AuditRecord> = []
  private readonly changes: Array<ReadonlyArray<BucketChange>> = []
  private readonly rejections: Array<string | null> = []
  /** State after records[0..i*CHECKPOINT_EVERY) for each i. */
  private readonly checkpoints: Array<FarmState> = []
  private state: FarmState
  private cursor: ChainCursor = chainStart
  private readonly listeners = new Set<(r: AuditRecord) => void>()

  /** `verify`: attaches the signature verdict to a record (runtime signing.ts `verifyRecord`) before the fold, as a daemon does. */
  constructor(readonly farm: string, private readonly verify: (entry: unknown) => unknown = (e) => e) {
    this.state = initialState(farm)
    this.checkpoints.push(this.state)
  }

  /** Fold one more record (records at or below the last sequence are ignored). */
  add(r: AuditRecord): void {
    const last = this.records.at(-1)
    if (last !== undefined && r.seq <= last.seq) return
    const before = this.state
    this.verify(r.entry) // the verdict is attached to the record itself (kept for replays)
    const after = applyEntry(before, r.entry)
    this.records.push(r)
    this.rejections.push(after.rejected !== before.rejected ? (after.lastRejection?.reason ?? "rejected") : null)
    this.changes.push(diffTables(before, after))
    this.state = after
    this.cursor = chainStep(this.cursor, r)
    if (this.records.length % CHECKPOINT_EVERY === 0) this.checkpoints.push(after)
    for (const f of this.listeners) f(r)
  }

  /** Call `f` after each record added; returns the unsubscribe. */
  onRecord(f: (r: AuditRecord) => void): () => void {
    this.listeners.add(f)
    return () => this.listeners.delete(f)
  }

  /** Every record, in order. */
  all(): ReadonlyArray<AuditRecord> {
    return this.records
  }

  /** Sequence of the last record (0 when empty). */
  get headSeq(): number {
    return this.records.at(-1)?.seq ?? 0
  }

  /** The state after every record. */
  get head(): FarmState {
    return this.state
  }

  /** Whether the chain verifies so far. */
  chain(): VerifyResult {
    return chainResult(this.cursor)
  }

  /** Number of records with sequence <= seq. */
  private countUpTo(seq: number): number {
    let lo = 0
    let hi = this.records.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (this.records[mid].seq <= seq) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /** The farm state after the records up to `seq` (time travel), replayed with the reducer. */
  stateAt(seq: number): FarmState {
    const n = this.countUpTo(seq)
    if (n === this.records.length) return this.state
    const k = Math.floor(n / CHECKPOINT_EVERY)
    let s = this.checkpoints[k]
    for (let i = k * CHECKPOINT_EVERY; i < n; i++) s = applyEntry(s, this.records[i].entry)
    return s
  }

  /** The time of the record `seq` (null when unknown). */
  timeOf(seq: number): number | null {
    const n = this.countUpTo(seq)
    return n === 0 ? null : this.records[n - 1].time
  }

  /** The last sequence at or before a time (epoch ms); 0 when the log starts later. */
  seqAtTime(t: number): number {
    let seq = 0
    for (const r of this.records) {
      if (r.time === null || r.time <= t) seq = r.seq
      else break
    }
    return seq
  }

  /** The timeline: every event with its cause, filtered; most recent last. */
  timeline(f: TimelineFilter = {}): { readonly events: ReadonlyArray<TimelineEvent>; readonly total: number } {
    const out: Array<TimelineEvent> = []
    let total = 0
    for (let i = 0; i < this.records.length; i++) {
      const r = this.records[i]
      if (f.fromSeq !== undefined && r.seq < f.fromSeq) continue
      if (f.toSeq !== undefined && r.seq > f.toSeq) continue
      if (f.from !== undefined && r.time !== null && r.time < f.from) continue
      if (f.to !== undefined && r.time !== null && r.time > f.to) continue
      const changes = this.changes[i]
      if (f.bucket !== undefined) {
        const table = f.table ?? 0
        const touches = changes.some((c) => c.bucket === f.bucket && c.table === table) ||
          eventsOf(r.entry).some((e) => Array.isArray(e.moves) && (e.moves as Array<{ table: number; bucket: number }>).some((m) => m.bucket === f.bucket && m.table === table))
        if (!touches) continue
      }
      eventsOf(r.entry).forEach((e, index) => {
        const nodes = nodesOf(e)
        if (f.node !== undefined && !nodes.includes(f.node)) return
        total++
        out.push({
          seq: r.seq, index, time: r.time, tag: str(e._tag), cause: (e.cause as Cause | undefined) ?? null, nodes,
          summary: describeEvent(e), bucketsChanged: changes.length, rejected: this.rejections[i]
        })
      })
    }
    const limit = f.limit ?? 2000
    return { events: out.length > limit ? out.slice(out.length - limit) : out, total }
  }

  /** Every record that changed a bucket's owner or state, with its events and their causes. */
  bucketHistory(table: number, bucket: number): Array<{ readonly seq: number; readonly time: number | null; readonly before: CellView; readonly after: CellView; readonly events: ReadonlyArray<TimelineEvent> }> {
    const out: Array<{ seq: number; time: number | null; before: CellView; after: CellView; events: ReadonlyArray<TimelineEvent> }> = []
    for (let i = 0; i < this.records.length; i++) {
      const c = this.changes[i].find((x) => x.table === table && x.bucket === bucket)
      if (c === undefined) continue
      const r = this.records[i]
      out.push({
        seq: r.seq, time: r.time, before: cellView(c.before), after: cellView(c.after),
        events: relevantEvents(eventsOf(r.entry), c).map(({ e, index }) => ({
          seq: r.seq, index, time: r.time, tag: str(e._tag), cause: (e.cause as Cause | undefined) ?? null, nodes: nodesOf(e),
          summary: describeEvent(e), bucketsChanged: this.changes[i].length, rejected: this.rejections[i]
        }))
      })
    }
    return out
  }

  /**
   * Where a client lands: for each VIP rule of the farm (as of `seq`, default the head), its
   * bucket by the domain hash and the farm's seed, the owner then, and that bucket's history.
   * `port` is the client's source port (needed by port-based affinities).
   */
  client(address: string, o: { readonly port?: number; readonly seq?: number } = {}) {
    const src = addressWords(address)
    const st = o.seq === undefined ? this.state : this.stateAt(o.seq)
    const seed = farmSeed(this.farm)
    const tables = ruleTables(st.vips)
    const rules: Array<{
      vip: string; proto: string; ports: string; affinity: AffinityName; table: number; bucket: number | null; note: string | null
      owner: CellView | null; history: ReturnType<AuditModel["bucketHistory"]>
    }> = []
    st.vips.forEach((vip, i) => vip.rules.forEach((rule, j) => {
      const dst = addressWords(vip.address)
      const table = tables[i][j]
      const ports = rule.ports.length === 0 ? "*" : rule.ports.join(",")
      if (dst.length !== src.length) return
      const needsPort = rule.affinity === "client-ip-port" || rule.affinity === "per-packet"
      if (needsPort && o.port === undefined) {
        rules.push({ vip: vip.address, proto: rule.proto, ports, affinity: rule.affinity, table, bucket: null, note: "depends on the client's source port (give one)", owner: null, history: [] })
        return
      }
      const key = affinityKey(rule.affinity, { src, dst, sport: o.port ?? 0, dport: portRanges(rule)[0].lo, packetId: 0, fragment: false })
      const bucket = bucketOfHash(jhash2(key, seed))
      rules.push({
        vip: vip.address, proto: rule.proto, ports, affinity: rule.affinity, table, bucket,
        note: rule.affinity === "per-packet" ? "per-packet affinity: every packet may land elsewhere" : null,
        owner: cellView(st.tables[table]?.[bucket] ?? { state: "owned", owner: null }), history: this.bucketHistory(table, bucket)
      })
    }))
    return { address, port: o.port ?? null, seq: st.seq, rules }
  }
}

/** A bucket state as the page shows it. */
export const cellView = (b: BucketState): CellView =>
  b.state === "moving" ? { owner: b.owner, state: b.state, to: b.to, handoff: b.handoff }
    : b.state === "taken-over" ? { owner: b.owner, state: b.state, from: b.from }
      : { owner: b.owner, state: b.state }

/** A farm state for the page: members with their share, and each table as owner indexes. */
export const stateView = (st: FarmState, seq: number, time: number | null) => {
  const names = st.members.map((m) => m.name)
  const index = (n: string | null) => (n === null ? -1 : names.indexOf(n))
  return {
    farm: st.farm,
    seq,
    folded: st.seq,
    time,
    rejected: st.rejected,
    lastRejection: st.lastRejection,
    members: st.members.map((m) => ({
      name: m.name, address: m.address, status: m.status, weight: m.weight, priority: m.priority, incarnation: m.incarnation,
      suspectedBy: m.suspectedBy, unhealthy: m.unhealthy, drained: m.drained, rulesDigest: m.rulesDigest,
      buckets: st.tables[0].filter((b) => b.owner === m.name).length
    })),
    vips: st.vips,
    /** Per table: owner index (into members, -1 nobody) per bucket; moving buckets as [bucket, to]; taken-over buckets. */
    tables: st.tables.map((t) => ({
      owner: t.map((b) => index(b.owner)),
      moving: t.flatMap((b, i) => (b.state === "moving" ? [[i, index(b.to)]] : [])),
      takenOver: t.flatMap((b, i) => (b.state === "taken-over" ? [i] : []))
    }))
  }
}
