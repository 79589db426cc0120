import { describe, expect, it } from "vitest"
import { type Command, type FarmEvent, type FarmState, foldEvents, initialState } from "@vipfarm/domain"
import { execute, operatorCause, settle } from "@vipfarm/domain/testkit"
import { describeEvent } from "../audit/model.ts"
import { eventSummary } from "../events.ts"
import { formatStatus, statusOf } from "../status.ts"
import { type AppendOutcome, ApplicationLog } from "./logReports.ts"

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** A farm with s1 and s2 up. */
const farm = (): FarmState => {
  let s = initialState("web")
  for (const n of ["s1", "s2"]) {
    s = execute(s, { _tag: "Join", node: n, address: n === "s1" ? "198.18.0.11" : "198.18.0.12", weight: 100, priority: 100, rulesDigest: "x", cause: operatorCause() }).state
    s = execute(s, { _tag: "Ready", node: n, cause: operatorCause() }).state
  }
  return settle(s)
}

/** A log that the test scripts: each append answers with the next outcome (default ok) and folds what it took. */
const scriptedLog = (start: FarmState, outcomes: Array<AppendOutcome> = []) => {
  let state = start
  const appended: Array<{ events: ReadonlyArray<FarmEvent>; expectLastSeq: number; msgId: string }> = []
  const attempts: Array<string> = []
  let now = 0
  const log = new ApplicationLog({
    node: "s2", boot: "b1", folded: () => state, caughtUp: () => true, now: () => now,
    append: async (_cmd: Command, events, expectLastSeq, msgId) => {
      attempts.push(msgId)
      const o = outcomes.shift() ?? "ok"
      if (o === "ok") {
        appended.push({ events: events as ReadonlyArray<FarmEvent>, expectLastSeq, msgId })
        state = foldEvents(state, events as Array<FarmEvent>)
      }
      return o
    }
  })
  return { log, appended, attempts, get state() { return state }, set state(s: FarmState) { state = s }, tick: (ms: number) => { now += ms } }
}

describe("application reports in the log", () => {
  it("appends each report in order as ApplicationChanged; the member's application shows the latest", async () => {
    const l = scriptedLog(farm())
    l.log.add({ _tag: "ReportApplication", state: "restarting", reason: "http: status 500; restart 1 of 3 in 86400 s", restarts: 1, checker: "http" })
    l.log.add({ _tag: "ReportApplication", state: "running", reason: "restarted: every checker passes", restarts: 1 })
    l.log.pump()
    await sleep(0)
    await sleep(0)
    expect(l.appended.map((a) => a.events.map((e) => e._tag))).toEqual([["ApplicationChanged"], ["ApplicationChanged"]])
    expect(l.appended[0].events[0]).toMatchObject({
      _tag: "ApplicationChanged", node: "s2", incarnation: 1, state: "restarting", checker: "http", restarts: 1,
      cause: { kind: "checker", by: "s2", detail: "http" }
    })
    expect(l.appended[1].expectLastSeq).toBe(l.appended[0].expectLastSeq + 1)
    expect(l.appended.map((a) => a.msgId)).toEqual(["app-s2-b1-1", "app-s2-b1-2"])
    const s2 = statusOf(l.state, "s1", { fenced: false, deadlineMs: null, mode: null }).members.find((m) => m.name === "s2")!
    expect(s2.application).toEqual({ state: "running", reason: "restarted: every checker passes", restarts: 1 })
    expect(l.log.waiting).toBe(0)
  })

  it("retries a conflict once the winning record is folded, with the same message id, an unavailable log after a pause; waits for the Join", async () => {
    const l = scriptedLog(initialState("web"), ["conflict", "failed"])
    l.log.add({ _tag: "ReportApplication", state: "left", reason: "3 restarts in 86400 s used up: http: status 500", restarts: 3, checker: "http" })
    l.log.pump()
    expect(l.attempts).toEqual([]) // s2 is no member yet
    const joined = farm()
    l.state = joined
    l.log.pump()
    await sleep(0)
    expect(l.attempts).toEqual(["app-s2-b1-1"]) // a conflict: another append won
    l.log.pump()
    await sleep(0)
    expect(l.attempts.length).toBe(1) // not before the record that won is folded
    l.state = execute(joined, { _tag: "SetWeight", node: "s1", weight: 50, cause: operatorCause() }).state
    l.log.pump()
    await sleep(0)
    expect(l.attempts).toEqual(["app-s2-b1-1", "app-s2-b1-1"]) // retried: failed
    l.log.pump()
    expect(l.attempts.length).toBe(2) // waits RETRY_MS
    l.tick(600)
    l.log.pump()
    await sleep(0)
    expect(l.appended.map((a) => a.msgId)).toEqual(["app-s2-b1-1"])
    expect(l.log.waiting).toBe(0)
  })

  it("farm status, farm events and the audit describe it", async () => {
    const l = scriptedLog(farm())
    l.log.add({ _tag: "ReportApplication", state: "left", reason: "1 restart in 86400 s used up: flag: exit 4; left the farm, healing every 10 s", restarts: 1, checker: "flag" })
    l.log.pump()
    await sleep(0)
    const e = l.appended[0].events[0] as unknown as Record<string, unknown>
    expect(describeEvent(e)).toBe(
      "s2's application failed and its restarts are used up: the server left the farm (checker flag): 1 restart in 86400 s used up: flag: exit 4; left the farm, healing every 10 s [1 restart in the window]"
    )
    expect(eventSummary(e)).toBe("s2 application left (flag): 1 restart in 86400 s used up: flag: exit 4; left the farm, healing every 10 s [restarts 1]")
    const text = formatStatus(statusOf(l.state, "s1", { fenced: false, deadlineMs: null, mode: null }))
    expect(text).toMatch(/^SERVER +STATE +APP +WEIGHT/m)
    expect(text).toMatch(/^s1 +up +- +100/m)
    expect(text).toMatch(/^s2 +up +left \(1 restart\) +100 .*app left: 1 restart in 86400 s used up: flag: exit 4/m)
  })
})
