import { createHash } from "node:crypto"
import { describe, expect, it } from "vitest"
import fc from "fast-check"
import { canonicalJson, chainedRecord, type ChainRecord, recordHash, sha256Hex, verifyChain } from "./chain.ts"
import { applyEntry, foldLog } from "./reducer.ts"
import { initialState } from "./state.ts"

const cause = { kind: "daemon" as const, by: "s1" }
const joined = (node: string, incarnation = 1) => ({
  _tag: "MemberJoined", v: 1, cause, node, address: `198.18.0.${node.slice(1)}`, weight: 100, priority: 100, rulesDigest: "d", incarnation
})

/** A chained log: joins of s1..s3 then their ready events, each record committing to the one before. */
const chainedLog = (): Array<ChainRecord> => {
  const batches = [[joined("s1")], [joined("s2")], [joined("s3")], [{ _tag: "MemberReady", v: 1, cause, node: "s1" }], [{ _tag: "MemberReady", v: 1, cause, node: "s2" }]]
  const out: Array<ChainRecord> = []
  let prev = ""
  for (const events of batches) {
    const entry = chainedRecord(events, prev)
    out.push({ seq: out.length + 1, entry })
    prev = recordHash(entry)
  }
  return out
}

describe("canonical JSON", () => {
  it("sorts keys, drops whitespace and undefined members, writes numbers and strings as JSON.stringify", () => {
    expect(canonicalJson({ b: 1, a: [true, null, "x\n\u2028"], c: undefined, "é": -0, A: 1.5e-7 })).toBe(
      '{"A":1.5e-7,"a":[true,null,"x\\n\u2028"],"b":1,"é":0}'
    )
    expect(() => canonicalJson({ x: Number.NaN })).toThrow(/not a JSON number/)
  })

  it("is the same text whatever the key order and spacing of the stored JSON", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const reparsed = JSON.parse(JSON.stringify(v, null, 2))
        expect(canonicalJson(reparsed)).toBe(canonicalJson(v))
        expect(JSON.parse(canonicalJson(v))).toEqual(JSON.parse(JSON.stringify(v)))
      })
    )
  })
})

describe("sha256", () => {
  it("equals node:crypto's for any bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        expect(sha256Hex(bytes)).toBe(createHash("sha256").update(bytes).digest("hex"))
      })
    )
    expect(sha256Hex(new Uint8Array())).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
  })
})

describe("verifyChain", () => {
  it("verifies an intact log and reports its head", () => {
    const log = chainedLog()
    const r = verifyChain(log)
    expect(r).toMatchObject({ ok: true, count: 5, unchained: 0, lastSeq: 5, head: recordHash(log[4].entry) })
    expect(r.firstBad).toBeUndefined()
  })

  it("detects a tampered record: the next record's prev no longer matches", () => {
    const log = chainedLog()
    const e = log[1].entry as { events: Array<{ address: string }> }
    log[1] = { seq: 2, entry: { ...e, events: [{ ...e.events[0], address: "203.0.113.66" }] } }
    const r = verifyChain(log)
    expect(r).toMatchObject({ ok: false, firstBad: 3 })
    expect(r.reason).toMatch(/seq 3: prev does not match the hash of seq 2/)
  })

  it("detects a removed record, with a gap in the sequence or renumbered", () => {
    const gap = chainedLog().filter((r) => r.seq !== 3)
    expect(verifyChain(gap)).toMatchObject({ ok: false, firstBad: 4, reason: "seq 4: record 3 is missing" })
    const renumbered = gap.map((r, i) => ({ seq: i + 1, entry: r.entry }))
    expect(verifyChain(renumbered)).toMatchObject({ ok: false, firstBad: 3 })
  })

  it("detects a reordered record, renumbered or not", () => {
    const log = chainedLog()
    const swapped = [log[0], log[2], log[1], log[3], log[4]]
    expect(verifyChain(swapped)).toMatchObject({ ok: false, firstBad: 3 })
    const renumbered = swapped.map((r, i) => ({ seq: i + 1, entry: r.entry }))
    expect(verifyChain(renumbered)).toMatchObject({ ok: false, firstBad: 2 })
  })

  it("detects a tampered or missing first link and a record without prev inside the chain", () => {
    const log = chainedLog()
    log[0] = { seq: 1, entry: { ...(log[0].entry as object), prev: "ab" } }
    expect(verifyChain(log)).toMatchObject({ ok: false, firstBad: 1 })
    const noPrev = chainedLog()
    const { prev: _drop, ...rest } = noPrev[3].entry as { prev: string }
    noPrev[3] = { seq: 4, entry: rest }
    expect(verifyChain(noPrev)).toMatchObject({ ok: false, firstBad: 4 })
  })

  it("accepts a log that starts with records written before the chain existed", () => {
    const old = [{ seq: 1, entry: { v: 1, events: [joined("s1")] } }, { seq: 2, entry: { v: 1, events: [joined("s2")] } }]
    const next = { seq: 3, entry: chainedRecord([joined("s3")], recordHash(old[1].entry)) }
    const r = verifyChain([...old, next])
    expect(r).toMatchObject({ ok: true, unchained: 2, count: 3 })
    expect(r.reason).toMatch(/2 leading records without prev/)
  })
})

describe("the reducer and prev", () => {
  it("folds chained and unchained records to the same state", () => {
    const log = chainedLog()
    const withPrev = foldLog(initialState("f"), log.map((r) => r.entry))
    const without = foldLog(initialState("f"), log.map((r) => ({ v: 1, events: (r.entry as { events: unknown }).events })))
    expect({ ...withPrev, chain: undefined }).toEqual(without) // the chained fold also holds the head
    expect(withPrev.rejected).toBe(0)
    expect(withPrev.members.map((m) => m.status)).toEqual(["up", "up", "joining"])
    expect(applyEntry(initialState("f"), log[0].entry).members.length).toBe(1)
  })
})
