/**
 * Anchoring the audit chain. The chain alone shows a record altered, removed or reordered in
 * the middle of the log, but not a log cut short at the tail, nor one rewritten from start to
 * end with every hash recomputed: both still verify. An operator closes that gap by recording
 * the head (`farm status` / `farm events` / the viewer show its sequence and hash) somewhere
 * the farm cannot write, and checking later exports against it:
 * `farm audit --verify FILE --expect-seq N --expect-head HASH`. The record at seq N must hash
 * to HASH (it commits to every record before it), and the chain must verify from there on.
 */
import { recordHash, verifyChain, type ChainRecord, type VerifyResult } from "@vipfarm/domain"

/** A recorded head: its sequence, its hash, or both. */
export interface Anchor {
  readonly seq: number | null
  readonly head: string | null
}

/** What the anchor check found. */
export interface AnchorResult {
  readonly ok: boolean
  /** One line a person reads. */
  readonly reason: string
  /** The sequence the anchor was found at (null when not found). */
  readonly seq: number | null
}

/** A chain check with its anchor check: ok only when both pass. */
export interface AnchoredVerify extends VerifyResult {
  readonly anchor: AnchorResult | null
}

/** A bad anchor given on the command line (the field is named in the message). */
export const anchorProblem = (a: Anchor): string | null => {
  if (a.head !== null && !/^[0-9a-f]{64}$/.test(a.head)) return `--expect-head: expected 64 lower-case hex digits (a record hash), got ${JSON.stringify(a.head)}`
  if (a.seq !== null && (!Number.isSafeInteger(a.seq) || a.seq < 1)) return `--expect-seq: expected a log sequence (1 or more), got ${a.seq}`
  return null
}

/** Check records (already chain-verified or not) against a recorded head. */
export const checkAnchor = (records: ReadonlyArray<ChainRecord>, a: Anchor): AnchorResult => {
  const last = records.at(-1)?.seq ?? 0
  if (a.seq !== null) {
    const r = records.find((x) => x.seq === a.seq)
    if (r === undefined) {
      return a.seq > last
        ? { ok: false, seq: null, reason: `the log ends at seq ${last} but the recorded head is seq ${a.seq}: records ${last + 1}..${a.seq} were cut off` }
        : { ok: false, seq: null, reason: `the log does not hold seq ${a.seq} (the recorded head)` }
    }
    if (a.head === null) return { ok: true, seq: a.seq, reason: `reaches the recorded seq ${a.seq}` }
    const h = recordHash(r.entry)
    return h === a.head
      ? { ok: true, seq: a.seq, reason: `seq ${a.seq} hashes to the recorded head ${a.head.slice(0, 16)}…` }
      : { ok: false, seq: null, reason: `seq ${a.seq} hashes to ${h.slice(0, 16)}…, not the recorded head ${a.head.slice(0, 16)}…: the log up to seq ${a.seq} was rewritten` }
  }
  if (a.head === null) return { ok: true, seq: null, reason: "no anchor" }
  for (let i = records.length - 1; i >= 0; i--) {
    if (recordHash(records[i].entry) === a.head) return { ok: true, seq: records[i].seq, reason: `the recorded head is seq ${records[i].seq}` }
  }
  return { ok: false, seq: null, reason: `no record hashes to the recorded head ${a.head.slice(0, 16)}…: the log was rewritten, or cut before the recorded head (seq 1..${last} checked)` }
}

/** Verify the chain of records and, when given, the recorded head. */
export const verifyAnchored = (records: ReadonlyArray<ChainRecord>, a: Anchor | null): AnchoredVerify => {
  const chain = verifyChain(records)
  if (a === null || (a.seq === null && a.head === null)) return { ...chain, anchor: null }
  const anchor = checkAnchor(records, a)
  return { ...chain, ok: chain.ok && anchor.ok, anchor }
}
