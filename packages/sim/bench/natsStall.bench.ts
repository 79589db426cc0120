/**
 * The figure behind the simulator's `nats.stall` (natsLog.ts): on a 3-node nats-server
 * cluster of its own (loopback, free ports, temp store), an R3 stream as the daemon makes it;
 * SIGKILL of the node holding the stream leader, and the time until an append (the daemon's
 * conditional append, retried every 100 ms as the controller does) succeeds again; then the
 * same for a follower. The node is restarted and the cluster settles between rounds.
 * Run: node --import tsx packages/sim/bench/natsStall.bench.ts [ROUNDS]   (nats-server in PATH or NATS_SERVER)
 */
import { Effect } from "effect"
import { jetstreamManager } from "@nats-io/jetstream"
import { connectNats, ensureStream, makeNatsEventLog, streamNames } from "../../runtime/src/eventLog.ts"
import { freePort, sleep, testDir, testNatsServer } from "../../runtime/src/natsTestServer.ts"

const rounds = Number(process.argv[2] ?? 5)
const farm = "stall"
const tmp = testDir("vipfarm-stall-")
const ports = [await freePort(), await freePort(), await freePort()]
const routes = [await freePort(), await freePort(), await freePort()]
const servers = ports.map((port, i) => testNatsServer({ name: `n${i + 1}`, dir: tmp.dir, port, cluster: { port: routes[i], routes: routes.filter((_, j) => j !== i) } }))

/** Run an effect until it succeeds (every 100 ms, at most `ms`); its time. */
const retry = async <A>(eff: Effect.Effect<A, unknown>, ms: number): Promise<number> => {
  const t0 = Date.now()
  for (;;) {
    const r = await Effect.runPromise(Effect.result(eff))
    if (r._tag === "Success") return Date.now() - t0
    if (Date.now() - t0 > ms) throw new Error(`no success in ${ms} ms`)
    await sleep(100)
  }
}

try {
  await Promise.all(servers.map((s) => s.start()))
  const nc = await Effect.runPromise(connectNats({ servers: servers.map((s) => s.url), name: "stall-bench" }))
  await retry(ensureStream(nc, farm, 3), 30_000)
  const log = makeNatsEventLog(nc, farm)
  const jsm = await jetstreamManager(nc)
  let seq = 0
  const append = () => log.append({ v: 1, seq: seq + 1 }, { expectLastSeq: seq, msgId: `${farm}-${seq + 1}` }).pipe(Effect.tap(() => Effect.sync(() => void seq++)))
  await retry(append(), 20_000)
  const leaderName = async () => (await jsm.streams.info(streamNames(farm).stream)).cluster?.leader
  const rows: Array<string> = []
  for (let round = 0; round < rounds; round++) {
    for (const which of ["leader", "follower"] as const) {
      const leader = await leaderName()
      const victim = servers.find((s) => (which === "leader" ? s.name === leader : s.name !== leader && s.running()))!
      const t0 = Date.now()
      await victim.stop("SIGKILL")
      const back = await retry(append(), 30_000)
      const stallMs = Date.now() - t0
      const now = await leaderName().catch(() => "?")
      rows.push(`round ${round + 1}: SIGKILL of the ${which} ${victim.name}: appends back after ${stallMs} ms (retried ${back} ms); leader now ${now}`)
      console.log(rows.at(-1))
      await victim.start()
      // the restarted node catches up; the next round starts from a whole cluster
      await sleep(3000)
      await retry(append(), 30_000)
    }
  }
  await nc.close()
} finally {
  await Promise.all(servers.map((s) => s.stop("SIGKILL")))
  tmp.remove()
}
