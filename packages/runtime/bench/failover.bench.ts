/**
 * Failover, measured on a real lab farm (root): 3 servers, 1 client namespace with 40
 * addresses polling the VIP every 50 ms (100 ms timeout), as the end-to-end tests do.
 *
 *   node --import tsx packages/runtime/bench/failover.bench.ts [N] [--name LAB] [--cut-ms MS]
 *
 * Repeats N times (default 10) for each fault, rotating the victim over the servers:
 * - SIGKILL of a daemon: crash to every probed client of the victim served again by another
 *   server; then the daemon is restarted and the bench waits until it rejoined with a share;
 * - a cut link (the victim's switch port down): cut to every probed client served again;
 *   then the link is healed and the bench waits until the victim rejoined with a share.
 * Prints each run's worst client and the median and worst over the runs, per fault. The lab
 * is removed at the end, also on failure (exit code 1 then).
 */
import { cpSync, mkdirSync, readdirSync, rmSync } from "node:fs"
import { Effect } from "effect"
import {
  addressesOf, killDaemon, labDown, labLink, labPrefix, labStartDaemon, labStatus, labUp, listNamespaces, type LabState, type PollResult,
  recoveryTimes, runProbe, until, waitFarmUp
} from "@vipfarm/runtime"

const args = process.argv.slice(2)
const nameAt = args.indexOf("--name")
const NAME = nameAt >= 0 ? args[nameAt + 1] : "x5"
const cutAt = args.indexOf("--cut-ms")
const N = Number(args.find((a, i) => /^\d+$/.test(a) && args[i - 1] !== "--name" && args[i - 1] !== "--cut-ms") ?? 10)
/**
 * How long a link stays cut. Long enough (10 s) for the NATS cluster to elect a new stream
 * leader (4-9 s on nats-server 2.9.10) and the failure to reach the log: a shorter flap
 * (e.g. --cut-ms 3500) can leave the daemons' log consumers stuck at different sequences
 * (see the report of the e2e work: the server does not rejoin and two servers hold its buckets).
 */
const CUT_MS = cutAt >= 0 ? Number(args[cutAt + 1]) : 10_000

if (process.getuid?.() !== 0) {
  console.log("failover.bench: skipped: needs root (network namespaces, XDP)")
  process.exit(0)
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const stats = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  const median = s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
  return { median, worst: s[s.length - 1] }
}

/**
 * Wait until every server is up, holds a share, nothing moves, nobody is fenced and every
 * server folded the same log. (After a cut link the victim may come back as the same
 * incarnation: when JetStream could not take the failure's append before the heal, the
 * others end their takeover and the log never says it failed.)
 */
const settled = (lab: LabState, victim: string) =>
  until(`${victim} back with a share`, async () => {
    const seqs = new Set<number>()
    for (const s of lab.servers) {
      const st = await labStatus(lab, s.node)
      if (st.filter.fenced || st.handoffs.length > 0) return false
      if (st.members.length !== lab.servers.length || st.members.some((m) => m.state !== "up" || m.buckets < 250)) return false
      seqs.add(st.log.sequence)
    }
    return seqs.size === 1
  }, 60_000)

/** One fault: poll, inject at 1.5 s, return the worst client's recovery (ms). */
const measure = async (lab: LabState, victim: string, inject: () => Promise<number>): Promise<{ worst: number; clients: number }> => {
  const polled = runProbe<PollResult>(lab, "c1", ["poll", lab.vip, "5", ...addressesOf(lab)])
  await sleep(1500)
  const at = await inject()
  const times = recoveryTimes(await polled, at, victim)
  if (times.length === 0) throw new Error(`no probed client was served by ${victim} before the fault`)
  return { worst: Math.max(...times), clients: times.length }
}

const main = async () => {
  const t0 = Date.now()
  console.log(`failover.bench: lab ${NAME}, 3 servers, 40 client addresses, ${N} runs per fault`)
  const lab = await Effect.runPromise(labUp({ name: NAME, servers: 3, clients: 1, addressesPerClient: 40, app: "builtin", daemons: true }))
  const results: Record<string, Array<number>> = { "SIGKILL of a daemon": [], "cut link": [] }
  const divergences: Array<string> = []
  try {
    await waitFarmUp(lab, 60_000)
    for (let i = 0; i < N; i++) {
      const victim = lab.servers[i % lab.servers.length].node
      const r = await measure(lab, victim, async () => killDaemon(lab, victim))
      results["SIGKILL of a daemon"].push(r.worst)
      console.log(`  SIGKILL ${victim} run ${i + 1}/${N}: every client served again after ${Math.round(r.worst)} ms (${r.clients} clients)`)
      labStartDaemon(lab, victim)
      await settled(lab, victim)
    }
    for (let i = 0; i < N; i++) {
      const victim = lab.servers[i % lab.servers.length].node
      const r = await measure(lab, victim, async () => {
        const at = Date.now()
        await Effect.runPromise(labLink(lab, victim, false))
        return at
      })
      results["cut link"].push(r.worst)
      console.log(`  cut link of ${victim} run ${i + 1}/${N}: every client served again after ${Math.round(r.worst)} ms (${r.clients} clients)`)
      await sleep(Math.max(0, CUT_MS - 3500))
      await Effect.runPromise(labLink(lab, victim, true))
      await settled(lab, victim).catch(async () => {
        // the daemons' views diverged (a log consumer stuck behind the stream): say so, restart the laggards' daemons
        const views = await Promise.all(lab.servers.map(async (s) => ({ node: s.node, st: await labStatus(lab, s.node) })))
        const head = Math.max(...views.map((v) => v.st.log.sequence))
        const behind = views.filter((v) => v.st.log.sequence < head).map((v) => v.node)
        divergences.push(`run ${i + 1} (cut ${victim}): ${views.map((v) => `${v.node} at log ${v.st.log.sequence} sees ${v.st.members.map((m) => `${m.name}:${m.state}:${m.buckets}`).join(",")}`).join("; ")}`)
        console.log(`  DIVERGED after healing ${victim}: ${divergences.at(-1)}; restarting the daemons of ${behind.join(", ")}`)
        for (const n of behind) {
          killDaemon(lab, n)
          await sleep(1000)
          labStartDaemon(lab, n)
        }
        await settled(lab, victim)
      })
    }
  } catch (e) {
    for (const s of lab.servers) {
      const st = await labStatus(lab, s.node).catch(() => null)
      console.log(`  ${s.node}: ${st === null ? "no status" : `log ${st.log.sequence}${st.filter.fenced ? " FENCED" : ""} ${st.members.map((m) => `${m.name}:${m.state}:${m.buckets}:i${m.incarnation}`).join(" ")}${st.handoffs.length ? ` handoffs ${st.handoffs.join(",")}` : ""}`}`)
    }
    throw e
  } finally {
    // keep the lab's logs and configs (artifacts/bench/NAME), then remove it
    const keep = `${process.cwd()}/artifacts/bench/${NAME}`
    rmSync(keep, { recursive: true, force: true })
    mkdirSync(keep, { recursive: true })
    for (const f of readdirSync(lab.dir)) if (f.endsWith(".log") || f.endsWith(".yaml")) cpSync(`${lab.dir}/${f}`, `${keep}/${f}`)
    labDown(NAME)
  }
  const left = listNamespaces(labPrefix(NAME))
  console.log("")
  console.log("| fault | runs | median | worst |")
  console.log("| --- | --- | --- | --- |")
  for (const [fault, xs] of Object.entries(results)) {
    const s = stats(xs)
    console.log(`| ${fault} | ${xs.length} | ${Math.round(s.median)} ms | ${Math.round(s.worst)} ms |`)
  }
  if (divergences.length > 0) console.log(`\n${divergences.length} heal(s) left the daemons' logs diverged (a product bug):\n  ${divergences.join("\n  ")}`)
  console.log(`\nfailover.bench: done in ${Math.round((Date.now() - t0) / 1000)} s; lab removed${left.length ? `, BUT LEFT: ${left.join(" ")}` : ""}`)
  if (left.length > 0) process.exitCode = 1
}

main().catch((e) => {
  console.error(`failover.bench: failed: ${(e as Error).message}`)
  process.exitCode = 1
})
