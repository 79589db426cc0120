/**
 * End-to-end: a short chaos suite on a real 3-server lab farm (lab chaost). Under reduced load
 * (20 HTTP clients retried once, 10 long-lived TCP connections, UDP at 20/s), a SIGKILL of a
 * daemon and its restart, a kill of the NATS node leading the stream, and a 4 s partition
 * {s1} / {s2, s3}, one after another. What the farm promises today: no daemon dies, every
 * fault settles and every client is served again after each heal (liveness bounds, not
 * timings), no request fails after one retry through a daemon or NATS node crash, and no UDP
 * datagram is answered by two servers through a NATS node crash or a partition. Issue 16's
 * open items are printed, not asserted: connections reset at hand-off completion, the
 * partition's failed requests, and a datagram answered twice as a SIGKILLed server's share
 * goes back to it (one in two of four runs, as the hand-off back completed: item 5).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Effect } from "effect"
import { chaosAddresses, chaosDefaults, type ChaosOptions, chaosTable, daemonRunning, labUp, type LabState, listLabs, runChaos, waitFarmUp } from "@vipfarm/runtime"
import { expectEveryClientServed, noteHostBefore, rootOrSkip, stopLab } from "./harness.ts"

const NAME = "chaost"
const root = rootOrSkip("chaos.e2e.test.ts")

const options: ChaosOptions = {
  ...chaosDefaults,
  faults: ["sigkill", "nats-leader", "partition"],
  httpClients: 20,
  tcpConnections: 10,
  udpRate: 20,
  udpSockets: 4,
  partitionMs: 4000,
  observeMs: 3000,
  settleTimeoutMs: 120_000
}

describe.skipIf(!root)("chaos: faults in sequence under load", () => {
  let lab: LabState

  beforeAll(async () => {
    noteHostBefore(NAME)
    lab = await Effect.runPromise(labUp({ name: NAME, servers: 3, clients: 1, addressesPerClient: chaosAddresses(options), app: "builtin", daemons: true }))
    // a loaded machine (other labs' tests) can take a while to verify and attach three filters
    await waitFarmUp(lab, 120_000)
  }, 180_000)

  afterAll(() => {
    if (!root) return
    const left = stopLab(NAME)
    // XDP programs cannot be told apart by lab: with another lab up, its programs are not ours
    const others = listLabs().filter((l) => l !== NAME)
    if (others.length > 0) console.log(`chaos.e2e: XDP programs not checked: other labs are up (${others.join(", ")})`)
    expect(others.length > 0 ? left.filter((l) => !l.startsWith("XDP programs:")) : left).toEqual([])
  })

  it("no daemon dies, every client is served again after each heal, no double answer through a NATS crash or a partition", async () => {
    const report = await runChaos(lab, options, (line) => console.log(`chaos: ${line}`))
    console.log(`chaos.e2e (load average ${report.load.start} at the start):\n${chaosTable(report)}`)
    expect(report.rows.map((r) => r.fault)).toEqual(options.faults)
    for (const r of report.rows) {
      expect(r.notes.filter((n) => n.startsWith("the fault failed")), `${r.fault}: applied and healed`).toEqual([])
      expect(r.daemonsDied, `${r.fault}: daemons that died`).toEqual([])
      expect(r.settledMs, `${r.fault}: the farm settled after the heal`).not.toBeNull()
      expect(r.servedAtEnd, `${r.fault}: every client served again after the heal`).toBe(true)
      if (r.fault !== "sigkill") expect(r.udpTwice, `${r.fault}: UDP datagrams answered twice`).toBe(0)
      expect(r.httpRequests, `${r.fault}: the load ran`).toBeGreaterThan(0)
      expect(r.udpSent, `${r.fault}: UDP requests sent`).toBeGreaterThan(0)
    }
    for (const fault of ["sigkill", "nats-leader"] as const) {
      expect(report.rows.find((r) => r.fault === fault)!.failedAfterRetry, `${fault}: requests failed after one retry`).toBe(0)
    }
    for (const s of lab.servers) expect(daemonRunning(lab, s.node), `${s.node}'s daemon runs`).toBe(true)
    await expectEveryClientServed(lab, "s1")
  }, 600_000)
})
