/**
 * Tamper evidence of the farm's log: every record commits to the one before it.
 *
 * A record is `{v: 1, events: [...], prev}` where `prev` is `recordHash` of the previous
 * record (the one at stream sequence seq - 1), or "" for the record at seq 1.
 *
 * - **Canonical JSON** (`canonicalJson`) is RFC 8785 (JCS) for the values a record holds:
 *   no whitespace; object members sorted by key, comparing keys as UTF-16 code units
 *   (JavaScript's default string order); members whose value is `undefined` omitted;
 *   arrays in order; strings and numbers exactly as ECMAScript `JSON.stringify` writes
 *   them (numbers must be finite; -0 is written 0); `null`, `true`, `false` as literals.
 * - **Record hash** (`recordHash`): SHA-256 of the UTF-8 bytes of the canonical JSON of the
 *   whole record as decoded from the log (its `prev` included), as 64 lower-case hex digits.
 *   The stream sequence is not hashed: a removed or reordered record shows because the
 *   next record's `prev` no longer matches.
 * - Logs written before the chain existed have records without `prev`: a log may begin with
 *   such records (they are reported as `unchained`); once a record carries `prev`, every
 *   later one must.
 * - The last record is committed to only once its successor is appended: an auditor who
 *   keeps the head hash (`VerifyResult.head`) pins it.
 *
 * Pure: no platform API (SHA-256 is implemented here), so the same code runs in Node,
 * in a browser or in a test.
 */

/** The canonical JSON text of a value (see the module comment). Throws on non-JSON values. */
export const canonicalJson = (value: unknown): string => {
  if (value === null) return "null"
  switch (typeof value) {
    case "boolean":
      return value ? "true" : "false"
    case "number":
      if (!Number.isFinite(value)) throw new Error(`canonical JSON: ${value} is not a JSON number`)
      return JSON.stringify(value)
    case "string":
      return JSON.stringify(value)
    case "object": {
      if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? "null" : canonicalJson(v))).join(",")}]`
      const o = value as Record<string, unknown>
      const keys = Object.keys(o).filter((k) => o[k] !== undefined).sort()
      return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(",")}}`
    }
    default:
      throw new Error(`canonical JSON: a ${typeof value} is not a JSON value`)
  }
}

// ---- SHA-256 (FIPS 180-4) ------------------------------------------------------------

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
])

/** SHA-256 of bytes, as 64 lower-case hex digits. */
export const sha256Hex = (data: Uint8Array): string => {
  const bitLen = data.length * 8
  const padded = new Uint8Array(((data.length + 9 + 63) >> 6) << 6)
  padded.set(data)
  padded[data.length] = 0x80
  const view = new DataView(padded.buffer)
  view.setUint32(padded.length - 8, Math.floor(bitLen / 4294967296))
  view.setUint32(padded.length - 4, bitLen >>> 0)
  const h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19])
  const w = new Uint32Array(64)
  const rotr = (x: number, n: number) => (x >>> n) | (x << (32 - n))
  for (let off = 0; off < padded.length; off += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(off + i * 4)
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3)
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10)
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) >>> 0
    }
    let a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7]
    for (let i = 0; i < 64; i++) {
      const S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
      const ch = (e & f) ^ (~e & g)
      const t1 = (hh + S1 + ch + K[i] + w[i]) >>> 0
      const S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
      const maj = (a & b) ^ (a & c) ^ (b & c)
      const t2 = (S0 + maj) >>> 0
      hh = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0
    }
    h[0] = (h[0] + a) >>> 0; h[1] = (h[1] + b) >>> 0; h[2] = (h[2] + c) >>> 0; h[3] = (h[3] + d) >>> 0
    h[4] = (h[4] + e) >>> 0; h[5] = (h[5] + f) >>> 0; h[6] = (h[6] + g) >>> 0; h[7] = (h[7] + hh) >>> 0
  }
  return Array.from(h, (x) => x.toString(16).padStart(8, "0")).join("")
}

const utf8 = new TextEncoder()

/** The hash a record's successor puts in its `prev`: SHA-256 hex of the record's canonical JSON. */
export const recordHash = (record: unknown): string => sha256Hex(utf8.encode(canonicalJson(record)))

/** The `prev` of a record, if it has one (a string), else undefined. */
export const recordPrev = (record: unknown): string | undefined => {
  if (typeof record !== "object" || record === null || Array.isArray(record)) return undefined
  const p = (record as { prev?: unknown }).prev
  return typeof p === "string" ? p : undefined
}

// ---- verification -----------------------------------------------------------------------

/** A record as read from the log: its stream sequence and its decoded JSON. */
export interface ChainRecord {
  readonly seq: number
  readonly entry: unknown
}

/** Where a chain check stands after some records (fold it with `chainStep`). */
export interface ChainCursor {
  /** Sequence of the last record seen, or null before the first. */
  readonly lastSeq: number | null
  /** Hash of the last record seen ("" before the first). */
  readonly lastHash: string
  /** True once a record with `prev` was seen (every later one must have one). */
  readonly chained: boolean
  /** Leading records without `prev` (written before the chain existed). */
  readonly unchained: number
  /** Records checked. */
  readonly count: number
  /** The first break, once found (later records are not checked). */
  readonly bad: { readonly seq: number; readonly reason: string } | null
  /** Set when the first record checked was not seq 1, so its own `prev` could not be checked. */
  readonly partialFrom: number | null
}

/** The cursor before any record. */
export const chainStart: ChainCursor = { lastSeq: null, lastHash: "", chained: false, unchained: 0, count: 0, bad: null, partialFrom: null }

/** Check one more record against the chain so far. */
export const chainStep = (c: ChainCursor, r: ChainRecord): ChainCursor => {
  if (c.bad !== null) return c
  const fail = (reason: string): ChainCursor => ({ ...c, bad: { seq: r.seq, reason: `seq ${r.seq}: ${reason}` } })
  if (!Number.isSafeInteger(r.seq) || r.seq < 1) return fail("not a valid sequence number")
  let hash: string
  try {
    hash = recordHash(r.entry)
  } catch (e) {
    return fail(`not a JSON record (${(e as Error).message})`)
  }
  const prev = recordPrev(r.entry)
  const isObject = typeof r.entry === "object" && r.entry !== null && !Array.isArray(r.entry)
  if (!isObject) return fail("not a JSON object")
  const next = (chained: boolean, unchained: number, partialFrom: number | null): ChainCursor => ({
    lastSeq: r.seq, lastHash: hash, chained, unchained, count: c.count + 1, bad: null, partialFrom
  })
  if (c.lastSeq === null) {
    // the first record checked
    if (prev === undefined) {
      if ("prev" in (r.entry as object)) return fail("prev is not a string")
      return next(false, 1, r.seq === 1 ? null : r.seq)
    }
    if (r.seq === 1) return prev === "" ? next(true, 0, null) : fail(`the first record's prev must be "", found "${prev.slice(0, 16)}…"`)
    return next(true, 0, r.seq)
  }
  if (r.seq <= c.lastSeq) return fail(`out of order: comes after seq ${c.lastSeq}`)
  if (r.seq !== c.lastSeq + 1) {
    const missing = r.seq - c.lastSeq - 1
    return fail(`${missing === 1 ? `record ${c.lastSeq + 1} is` : `records ${c.lastSeq + 1}..${r.seq - 1} are`} missing`)
  }
  if (prev === undefined) {
    if ("prev" in (r.entry as object)) return fail("prev is not a string")
    if (c.chained) return fail(`no prev: the chain started before (records after the first with prev must all carry one)`)
    return next(false, c.unchained + 1, c.partialFrom)
  }
  if (prev !== c.lastHash) {
    return fail(`prev does not match the hash of seq ${c.lastSeq} (seq ${c.lastSeq} was altered, or records were removed or reordered before seq ${r.seq})`)
  }
  return next(true, c.unchained, c.partialFrom)
}

/** What `verifyChain` found. */
export interface VerifyResult {
  readonly ok: boolean
  /** The sequence of the first record where the chain breaks (when not ok). */
  readonly firstBad?: number
  /** One line a person reads: why it breaks, or what was verified. */
  readonly reason: string
  /** Records checked. */
  readonly count: number
  /** Leading records without `prev` (older log format; not covered by the chain). */
  readonly unchained: number
  /** Hash of the last record checked: keep it to pin the head. */
  readonly head: string
  /** Sequence of the last record checked (0 when none). */
  readonly lastSeq: number
}

/** The result of a cursor, as `verifyChain` reports it. */
export const chainResult = (c: ChainCursor): VerifyResult => {
  if (c.bad !== null) {
    return { ok: false, firstBad: c.bad.seq, reason: c.bad.reason, count: c.count, unchained: c.unchained, head: c.lastHash, lastSeq: c.lastSeq ?? 0 }
  }
  const parts = [
    c.count === 0 ? "no records" : `${c.count} record${c.count === 1 ? "" : "s"} verified (seq ${c.lastSeq! - c.count + 1}..${c.lastSeq})`,
    c.unchained > 0 ? `${c.unchained} leading record${c.unchained === 1 ? "" : "s"} without prev (written before the chain)` : "",
    c.partialFrom !== null ? `starts at seq ${c.partialFrom}: its own prev is not checked` : ""
  ].filter((s) => s !== "")
  return { ok: true, reason: parts.join("; "), count: c.count, unchained: c.unchained, head: c.lastHash, lastSeq: c.lastSeq ?? 0 }
}

/** Verify a log's records in the order given: each record's `prev` is the hash of the record before it. */
export const verifyChain = (records: Iterable<ChainRecord>): VerifyResult => {
  let c = chainStart
  for (const r of records) {
    c = chainStep(c, r)
    if (c.bad !== null) break
  }
  return chainResult(c)
}

/** The record the daemon appends: a batch of events committing to the previous record's hash. */
export const chainedRecord = (events: ReadonlyArray<unknown>, prev: string): { readonly v: 1; readonly events: ReadonlyArray<unknown>; readonly prev: string } => ({
  v: 1,
  events,
  prev
})
