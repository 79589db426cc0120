import { describe, expect, it } from "vitest"
import { chaosRow, chaosTable, type ChaosLoadEvent, type ChaosPhase, chaosDefaults } from "./chaos.ts"

const F = 1_000_000
const phase: ChaosPhase = { label: "SIGKILL s2", faultAt: F, healAt: F + 3000, victims: [{ node: "s2", from: F, to: F + 8000 }], notes: [] }

const events: Array<ChaosLoadEvent> = [
  { k: "s", t: F - 10, http: 100, udpSent: 50, udpLost: 1, tcpOpen: 30 },
  // before the fault: not this row's
  { k: "hf", t: F - 500, te: F - 400, src: "a", try: 1, err: "timeout" },
  { k: "hf", t: F + 100, te: F + 1100, src: "a", try: 1, err: "timeout" },
  { k: "hf", t: F + 1100, te: F + 2100, src: "a", try: 2, err: "timeout" },
  { k: "hx", t: F + 100, src: "a" },
  { k: "hf", t: F + 4000, te: F + 4500, src: "b", try: 1, err: "ECONNRESET" },
  // s2's own connection, one of s1's during the fault, one of s3's at a hand-off completion
  { k: "tb", t: F + 400, src: "c", server: "s2", why: "ECONNRESET", age: 60_000 },
  { k: "tb", t: F + 600, src: "d", server: "s1", why: "timeout", age: 60_000 },
  { k: "tb", t: F + 7100, src: "e", server: "s3", why: "ECONNRESET", age: 60_000 },
  // s2's connection after it was no longer at fault: another's, at no completion
  { k: "tb", t: F + 12_000, src: "f", server: "s2", why: "closed", age: 60_000 },
  { k: "u2", t: F + 5000, id: "3.17", servers: ["s1", "s2"] },
  { k: "lag", t: F + 200, ms: 400 },
  { k: "s", t: F + 20_000, http: 400, udpSent: 250, udpLost: 3, tcpOpen: 30 },
  // requests are judged lost 5 s after they were sent: the totals 6 s after the watch count them
  { k: "s", t: F + 25_500, http: 420, udpSent: 270, udpLost: 4, tcpOpen: 30 },
  // after the watch: not this row's
  { k: "hf", t: F + 20_500, te: F + 21_000, src: "a", try: 1, err: "timeout" }
]

describe("chaosRow", () => {
  const row = chaosRow("sigkill", phase, F + 20_000, F + 7000, events, [F + 7000], [])

  it("counts the requests failed after a retry and when every client was served again", () => {
    expect(row.failedAfterRetry).toBe(1)
    expect(row.failedAttempts).toBe(3)
    expect(row.failedAttemptsAfterHeal).toBe(1)
    expect(row.allServedMs).toBe(1500)
    expect(row.lastFailureMs).toBe(4500)
    expect(row.httpRequests).toBe(300)
    expect(row.servedAtEnd).toBe(true)
    expect(row.settledMs).toBe(4000)
  })

  it("tells the server at fault's connections from the others', and the others' by when", () => {
    expect(row.ownBroken).toBe(1)
    expect(row.othersBroken).toEqual({ during: 2, atCompletion: 1 })
  })

  it("lists the datagrams answered twice, the lost ones and the client's stalls", () => {
    expect(row.udpTwice).toBe(1)
    expect(row.udpTwiceAt).toEqual([{ ms: 5000, servers: ["s1", "s2"] }])
    expect(row.udpSent).toBe(200)
    expect(row.udpLost).toBe(3)
    expect(row.loadStalls).toEqual({ count: 1, worstMs: 400 })
    const table = chaosTable({ lab: "x", startedAt: "", seconds: 1, options: chaosDefaults, load: { start: "", end: "" }, rows: [row] })
    expect(table).toContain("| SIGKILL s2 | 1 of 300 | 1.5 s | 3 (1) | 2 / 1 | 1 | 1 | 3 of 200 | 4.0 s | 1 (400 ms) |")
    expect(table).toContain("a UDP request sent 5.0 s after the fault was answered by s1 and s2")
  })

  it("a client failing at the end of the watch is not served again, and the table says so", () => {
    const late = chaosRow("sigkill", phase, F + 4600, null, events, [], [])
    expect(late.servedAtEnd).toBe(false)
    expect(late.settledMs).toBeNull()
    const table = chaosTable({ lab: "x", startedAt: "", seconds: 1, options: chaosDefaults, load: { start: "", end: "" }, rows: [late] })
    expect(table).toMatch(/\| SIGKILL s2 \| 1 of \d+ \|.*NOT SETTLED/)
    expect(table).toContain("HTTP clients still failing in the last 2 s of the watch")
  })
})
