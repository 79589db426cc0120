/**
 * `farm buckets`: owner and traffic of every bucket as one server sees them (`GET /buckets`:
 * the owners from the folded log, packets from the filter's per-bucket counters).
 */

/** One bucket in `GET /buckets`. */
export interface BucketView {
  readonly owner: string | null
  readonly state: string
  readonly to?: string
}

/** The answer of `GET /buckets`. */
export interface BucketsDoc {
  readonly farm: string
  readonly node: string
  readonly seq: number
  readonly seed?: number
  readonly tables: ReadonlyArray<ReadonlyArray<BucketView>>
  /**
   * Packets the filter on `node` counted per bucket of each table since it was loaded (every
   * server counts the packets it sees, owned or not; they reach all of them).
   */
  readonly packets?: ReadonlyArray<ReadonlyArray<number>>
}

/** Per table and owner: buckets and packets. */
export interface OwnerSummary {
  readonly table: number
  readonly owner: string
  readonly buckets: number
  readonly moving: number
  readonly packets: number
}

/** Sum buckets, moving buckets and packets per (table, owner); a moving bucket counts for its old owner and as moving. */
export const summarizeBuckets = (doc: BucketsDoc): Array<OwnerSummary> => {
  const out: Array<OwnerSummary> = []
  doc.tables.forEach((t, ti) => {
    const per = new Map<string, { buckets: number; moving: number; packets: number }>()
    t.forEach((b, bi) => {
      const k = b.owner ?? "(none)"
      const e = per.get(k) ?? { buckets: 0, moving: 0, packets: 0 }
      e.buckets++
      if (b.state === "moving") e.moving++
      e.packets += doc.packets?.[ti]?.[bi] ?? 0
      per.set(k, e)
    })
    for (const [owner, e] of [...per.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1))) out.push({ table: ti, owner, ...e })
  })
  return out
}

const pad = (s: string, n: number) => (s.length >= n ? s : s + " ".repeat(n - s.length))
const lpad = (s: string, n: number) => (s.length >= n ? s : " ".repeat(n - s.length) + s)

const table = (rows: Array<Array<string>>, right: ReadonlySet<number> = new Set()): Array<string> => {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)) + 2)
  return rows.map((r) => r.map((c, i) => (right.has(i) ? lpad(c, widths[i] - 2) + "  " : pad(c, widths[i]))).join("").trimEnd())
}

/** The text form: per table and owner, then the moving buckets (all buckets with `all`). */
export const formatBuckets = (doc: BucketsDoc, all = false): string => {
  const lines = [`farm ${doc.farm}, seen from ${doc.node} at log ${doc.seq}${doc.packets ? "; packets counted by this server's filter" : ""}`, ""]
  const sums = summarizeBuckets(doc)
  const totalPackets = new Map<number, number>()
  for (const s of sums) totalPackets.set(s.table, (totalPackets.get(s.table) ?? 0) + s.packets)
  const rows = [["TABLE", "OWNER", "BUCKETS", "MOVING", "PACKETS", "TRAFFIC"]]
  for (const s of sums) {
    const tot = totalPackets.get(s.table) ?? 0
    rows.push([String(s.table), s.owner, String(s.buckets), String(s.moving), String(s.packets), tot > 0 ? `${((100 * s.packets) / tot).toFixed(1)}%` : "-"])
  }
  lines.push(...table(rows, new Set([2, 3, 4, 5])))
  const detail = [["TABLE", "BUCKET", "OWNER", "STATE", "TO", "PACKETS"]]
  doc.tables.forEach((t, ti) => t.forEach((b, bi) => {
    if (all || b.state === "moving") detail.push([String(ti), String(bi), b.owner ?? "-", b.state, b.to ?? "", String(doc.packets?.[ti]?.[bi] ?? 0)])
  }))
  if (detail.length > 1) lines.push("", ...(all ? [] : ["moving buckets:"]), ...table(detail, new Set([1, 5])))
  return lines.join("\n")
}
