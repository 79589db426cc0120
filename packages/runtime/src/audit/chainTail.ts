/**
 * The daemon's side of the audit chain: the last records it folded, to put the hash of the
 * record an append follows in the new record's `prev`, and the head (sequence and hash of the
 * last record folded) that `farm status` / `farm events` show so an operator can record it
 * and later check an export against it (`farm audit --verify FILE --expect-head HASH`).
 */
import { Result, Schema } from "effect"
import { recordHash } from "@vipfarm/domain"

/**
 * An append would follow a record the daemon no longer holds (it keeps the last
 * {@link ChainTail.capacity} folded): writing `prev: ""` there would break the chain for
 * every auditor, so the append is refused instead.
 */
export class ChainGapError extends Schema.TaggedError<ChainGapError>()("ChainGapError", {
  /** The sequence the append follows. */
  seq: Schema.Number,
  /** The oldest and newest sequences held (0 when none). */
  oldest: Schema.Number,
  newest: Schema.Number
}) {
  override get message(): string {
    return `cannot chain after seq ${this.seq}: the record is not among the last folded (${this.oldest === 0 ? "none" : `${this.oldest}..${this.newest}`})`
  }
}

/** The head of the chain as this server folded it: the last record's sequence and hash ("" before any). */
export interface ChainHead {
  readonly seq: number
  readonly head: string
}

/** The last records folded, in sequence order. */
export class ChainTail {
  private readonly records = new Map<number, unknown>()
  private last: ChainHead = { seq: 0, head: "" }

  constructor(readonly capacity = 64) {}

  /** A record was folded (records arrive in sequence order). */
  add(seq: number, entry: unknown): void {
    this.records.set(seq, entry)
    if (this.records.size > this.capacity) this.records.delete(this.records.keys().next().value as number)
    if (seq >= this.last.seq) this.last = { seq, head: "" }
  }

  /** The `prev` of a record appended after `seq` (0: the first record, prev ""). */
  prevFor(seq: number): Result.Result<string, ChainGapError> {
    if (seq === 0) return Result.succeed("")
    if (this.records.has(seq)) return Result.succeed(recordHash(this.records.get(seq)))
    const keys = [...this.records.keys()]
    return Result.fail(new ChainGapError({ seq, oldest: keys[0] ?? 0, newest: keys.at(-1) ?? 0 }))
  }

  /** The last record folded and its hash (hashed on demand). */
  head(): ChainHead {
    if (this.last.seq > 0 && this.last.head === "" && this.records.has(this.last.seq)) {
      this.last = { seq: this.last.seq, head: recordHash(this.records.get(this.last.seq)) }
    }
    return this.last
  }
}

/** One line for `farm status` / `farm events`: the head an operator records to pin the log. */
export const formatChainHead = (h: ChainHead | null | undefined): string =>
  h === null || h === undefined || h.seq === 0
    ? "chain   no records folded yet"
    : `chain   head seq ${h.seq} ${h.head}  (record it; later: farm audit --verify FILE --expect-seq ${h.seq} --expect-head ${h.head})`
