/**
 * `farm demo` (root): the whole story on one machine. A 3-server farm comes up in network
 * namespaces; a few hundred clients spread over the servers; one client stays on its
 * server under client-ip affinity; a server crashes and the demo shows how long until every
 * client was served again and that the others' connections lived; the server comes back
 * and takes its share. Everything is removed at the end. Exits non-zero if a step failed.
 */
import { Effect } from "effect"
import { Command, Flag } from "effect/cli"
import type { HoldResult, HttpResult, PollResult } from "@vipfarm/runtime"
import { runtime } from "./lazy.ts"

const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s)
const ok = (s: string) => console.log(`  ${process.stdout.isTTY ? "\x1b[32m✔\x1b[0m" : "ok"} ${s}`)
const step = (n: number, s: string) => console.log(`\n${bold(`${n}. ${s}`)}`)

/** A horizontal bar chart of answers per server. */
export const barChart = (counts: ReadonlyMap<string, number>, width = 40): string => {
  const max = Math.max(1, ...counts.values())
  const total = [...counts.values()].reduce((a, b) => a + b, 0) || 1
  return [...counts.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([name, n]) => `  ${name.padEnd(4)} ${"█".repeat(Math.round((n / max) * width)).padEnd(width)} ${String(n).padStart(4)} (${((100 * n) / total).toFixed(0)}%)`)
    .join("\n")
}

const tally = (r: HttpResult) => {
  const m = new Map<string, number>()
  for (const x of r) if (x.server) m.set(x.server, (m.get(x.server) ?? 0) + 1)
  return m
}

const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

/** The demo itself; throws on the first failed step. */
export const runDemo = async (name: string): Promise<void> => {
  const { addressesOf, killDaemon, labStartDaemon, labStatus, labUp, recoveryTimes, runProbe, startProbe, until, waitFarmUp } = await import("@vipfarm/runtime")
  const fail = (msg: string): never => {
    throw new Error(msg)
  }
  step(1, "A 3-server farm comes up in network namespaces (NATS cluster, farm daemons, XDP filters)")
  const lab = await Effect.runPromise(labUp({ name, servers: 3, clients: 2, addressesPerClient: 150, app: "builtin", daemons: true }))
  await waitFarmUp(lab)
  ok(`VIP ${lab.vip} held by ${lab.servers.map((s) => `${s.node} (${s.address})`).join(", ")}`)

  step(2, "300 clients, each from its own address, open a connection to the VIP")
  const all = [...addressesOf(lab, "c1").map((a) => ["c1", a] as const), ...addressesOf(lab, "c2").map((a) => ["c2", a] as const)]
  const answers = [
    ...(await runProbe<HttpResult>(lab, "c1", ["http", lab.vip, ...addressesOf(lab, "c1")])),
    ...(await runProbe<HttpResult>(lab, "c2", ["http", lab.vip, ...addressesOf(lab, "c2")]))
  ]
  const unanswered = answers.filter((a) => a.server === null)
  if (unanswered.length > 0) fail(`${unanswered.length} of ${all.length} clients got no answer`)
  console.log(barChart(tally(answers)))
  ok(`${answers.length} clients, each answered by exactly one server`)

  step(3, "Client-ip affinity: one client connects 10 times")
  const one = addressesOf(lab, "c1")[7]
  const again = await runProbe<HttpResult>(lab, "c1", ["http", lab.vip, ...Array(10).fill(one)])
  const servers = new Set(again.map((a) => a.server))
  if (servers.size !== 1 || again.some((a) => a.server === null)) fail(`client ${one} was answered by ${[...servers].join(", ")}`)
  ok(`${one} landed on ${[...servers][0]} all 10 times`)

  step(4, "s2 crashes (its daemon is SIGKILLed; its filter fences itself)")
  const c1 = addressesOf(lab, "c1")
  const polling = startProbe<PollResult>(lab, "c1", ["poll", lab.vip, "6", ...c1.slice(0, 100)])
  const holding = startProbe<HoldResult>(lab, "c2", ["hold", lab.vip, "6", ...addressesOf(lab, "c2").slice(0, 90)])
  // crash once every client is being served (a probe's start takes a while on a busy machine)
  await Promise.all([polling.ready, holding.ready])
  await new Promise((r) => setTimeout(r, 500))
  const crashedAt = killDaemon(lab, "s2")
  const times = recoveryTimes(await polling.result, crashedAt, "s2")
  if (times.length === 0) fail("no probed client was on s2")
  const worst = Math.max(...times)
  if (!Number.isFinite(worst)) fail(`${times.filter((t) => !Number.isFinite(t)).length} clients of s2 were never served again`)
  ok(`all ${times.length} clients of s2 served again: median ${Math.round(median(times))} ms, worst ${Math.round(worst)} ms after the crash`)
  const h = await holding.result
  const others = h.filter((x) => x.servers[0] !== "s2")
  const broken = others.filter((x) => x.reset || x.error !== null || x.servers.length !== 1)
  if (broken.length > 0) fail(`${broken.length} long-lived connections on s1/s3 broke`)
  ok(`${others.length} of ${others.length} long-lived connections on s1 and s3 lived through it`)

  step(5, "s2 comes back and takes its share again (no connection reset)")
  // held from before s2 starts until a second after it has its share again (at most 90 s)
  const holdAcross = startProbe<HoldResult>(lab, "c2", ["hold", lab.vip, "90", ...addressesOf(lab, "c2").slice(0, 90)])
  await holdAcross.ready
  labStartDaemon(lab, "s2")
  await until("s2 back with a share", async () => ((await labStatus(lab, "s1")).members.find((m) => m.name === "s2")?.buckets ?? 0) > 300, 60_000)
  await waitFarmUp(lab)
  await new Promise((r) => setTimeout(r, 1000))
  holdAcross.stop()
  const kept = await holdAcross.result
  const resets = kept.filter((x) => x.reset || x.error !== null || x.servers.length !== 1)
  if (resets.length > 0) fail(`${resets.length} of ${kept.length} long-lived connections broke while s2 took its share back`)
  ok(`${kept.length} of ${kept.length} long-lived connections kept while s2 took its share back`)
  const back = [
    ...(await runProbe<HttpResult>(lab, "c1", ["http", lab.vip, ...addressesOf(lab, "c1")])),
    ...(await runProbe<HttpResult>(lab, "c2", ["http", lab.vip, ...addressesOf(lab, "c2")]))
  ]
  console.log(barChart(tally(back)))
  const lost = back.filter((a) => a.server === null)
  if (lost.length > 0) fail(`${lost.length} of ${back.length} clients got no answer after s2 came back`)
  const ofS2 = tally(back).get("s2") ?? 0
  if (ofS2 === 0) fail(`s2 answered none of ${back.length} clients after it came back`)
  ok(`the farm is whole again: all ${back.length} clients answered, ${ofS2} of them by s2`)
}

/** `farm demo`. */
export const demo = Command.make(
  "demo",
  { name: Flag.String("name").pipe(Flag.withDescription("lab name"), Flag.withDefault("demo")) },
  ({ name }) =>
    Effect.gen(function* () {
      const { canUseNamespaces, describeLeftovers, hostSnapshot, isClean, LabError, labDown, labLeftovers } = yield* runtime
      if (!canUseNamespaces()) return yield* new LabError({ op: "demo", message: "the demo needs root (network namespaces, XDP)" })
      // what was on the host before: the clean-up is checked against it
      const before = hostSnapshot()
      const story = Effect.tryPromise({ try: () => runDemo(name), catch: (e) => new LabError({ op: "demo", message: (e as Error).message }) })
      const cleanUp = Effect.suspend(() => {
        labDown(name)
        const left = labLeftovers(name, before)
        console.log(`\n${bold("6. Clean-up")}`)
        if (isClean(left)) {
          ok("everything removed: no namespace, process or host veth of the lab left, no XDP program left loaded")
          return Effect.void
        }
        for (const line of describeLeftovers(left)) console.log(`  LEFT BEHIND: ${line}`)
        return Effect.fail(new LabError({ op: "demo", message: `the clean-up left something behind (${describeLeftovers(left).join("; ")})` }))
      })
      // the clean-up runs also when a step failed; the step's failure is the one reported then
      yield* story.pipe(
        Effect.matchEffect({
          onFailure: (e) => cleanUp.pipe(Effect.ignore, Effect.andThen(Effect.fail(e))),
          onSuccess: () => cleanUp
        }),
        Effect.onInterrupt(() => Effect.sync(() => labDown(name)))
      )
    })
).pipe(Command.withDescription("the whole story on one machine: a real 3-server farm, a crash, a recovery (root)"))
