import { describe, expect, it } from "vitest"
import { Result } from "effect"
import { chainedRecord, recordHash, verifyChain } from "@vipfarm/domain"
import { ChainGapError, ChainTail, formatChainHead } from "./chainTail.ts"

describe("ChainTail (the daemon's prev and head)", () => {
  it("chains appends to the records it holds, and reports the head", () => {
    const tail = new ChainTail(4)
    expect(tail.head()).toEqual({ seq: 0, head: "" })
    const records: Array<{ seq: number; entry: unknown }> = []
    for (let seq = 1; seq <= 10; seq++) {
      const prev = tail.prevFor(seq - 1)
      expect(Result.isSuccess(prev)).toBe(true)
      const entry = chainedRecord([{ _tag: "Noop", n: seq }], Result.isSuccess(prev) ? prev.success : "x")
      records.push({ seq, entry })
      tail.add(seq, entry)
    }
    expect(verifyChain(records).ok).toBe(true)
    expect(tail.head()).toEqual({ seq: 10, head: recordHash(records[9].entry) })
    expect(tail.head().head).toBe(verifyChain(records).head)
  })

  it("refuses (a typed error) to chain after a record it no longer holds instead of writing prev \"\"", () => {
    const tail = new ChainTail(4)
    for (let seq = 1; seq <= 10; seq++) tail.add(seq, chainedRecord([], String(seq)))
    const r = tail.prevFor(3)
    expect(Result.isFailure(r)).toBe(true)
    const e = Result.isFailure(r) ? r.failure : null
    expect(e).toBeInstanceOf(ChainGapError)
    expect(e?.message).toBe("cannot chain after seq 3: the record is not among the last folded (7..10)")
    expect(Result.isSuccess(tail.prevFor(7))).toBe(true)
    expect(Result.isFailure(new ChainTail().prevFor(5))).toBe(true)
  })

  it("formats the head for farm status", () => {
    expect(formatChainHead({ seq: 12, head: "ab".repeat(32) })).toContain(`head seq 12 ${"ab".repeat(32)}`)
    expect(formatChainHead(undefined)).toMatch(/no records/)
  })
})
