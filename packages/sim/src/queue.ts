/**
 * The event queue: a binary min-heap ordered by (time, seq), so events at the same time
 * run in the order they were scheduled, never in heap order. Entries are kept in typed
 * arrays (time, seq, ref) so scheduling a packet allocates nothing.
 */

/** A min-heap of (time, seq, ref) triples. */
export class EventQueue {
  private times: Float64Array
  private seqs: Float64Array
  private refs: Int32Array
  private n = 0
  private nextSeq = 0

  constructor(capacity = 1024) {
    this.times = new Float64Array(capacity)
    this.seqs = new Float64Array(capacity)
    this.refs = new Int32Array(capacity)
  }

  /** Number of queued events. */
  get size(): number {
    return this.n
  }

  /** Time of the earliest event (Infinity when empty). */
  peekTime(): number {
    return this.n === 0 ? Infinity : this.times[0]
  }

  /** Ref of the earliest event. */
  peekRef(): number {
    return this.refs[0]
  }

  /** Schedule `ref` at `time`. */
  push(time: number, ref: number): void {
    if (this.n === this.times.length) this.grow()
    const seq = this.nextSeq++
    let i = this.n++
    const times = this.times
    const seqs = this.seqs
    const refs = this.refs
    while (i > 0) {
      const p = (i - 1) >> 1
      const pt = times[p]
      if (pt < time || (pt === time && seqs[p] < seq)) break
      times[i] = pt
      seqs[i] = seqs[p]
      refs[i] = refs[p]
      i = p
    }
    times[i] = time
    seqs[i] = seq
    refs[i] = ref
  }

  /** Remove the earliest event; read its time and ref first with peekTime/peekRef. */
  pop(): void {
    const n = --this.n
    if (n === 0) return
    const times = this.times
    const seqs = this.seqs
    const refs = this.refs
    const t = times[n]
    const s = seqs[n]
    const r = refs[n]
    let i = 0
    for (;;) {
      let c = 2 * i + 1
      if (c >= n) break
      const c2 = c + 1
      if (c2 < n && (times[c2] < times[c] || (times[c2] === times[c] && seqs[c2] < seqs[c]))) c = c2
      if (t < times[c] || (t === times[c] && s < seqs[c])) break
      times[i] = times[c]
      seqs[i] = seqs[c]
      refs[i] = refs[c]
      i = c
    }
    times[i] = t
    seqs[i] = s
    refs[i] = r
  }

  private grow(): void {
    const cap = this.times.length * 2
    const t = new Float64Array(cap)
    t.set(this.times)
    const s = new Float64Array(cap)
    s.set(this.seqs)
    const r = new Int32Array(cap)
    r.set(this.refs)
    this.times = t
    this.seqs = s
    this.refs = r
  }
}
