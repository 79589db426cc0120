/**
 * The chaos suite (`farm lab chaos`): on a 3-server lab farm, under load from a client
 * namespace (short HTTP requests retried once, long-lived TCP connections, UDP requests with
 * ids, see load.mjs), faults applied one after another, each healed and settled before the
 * next: SIGKILL of a daemon and its restart, a kill of the NATS node leading the farm's
 * stream, a partition {s1} / {s2, s3}, one link flapping, a rolling SIGTERM / restart and a
 * `farm restart` of every server. Per fault it reports what the clients saw.
 */
import { spawn, spawnSync } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { parse as parseYaml } from "yaml"
import { callControl } from "../control.ts"
import { streamNames } from "../eventLog.ts"
import { log } from "../log.ts"
import { daemonRunning, labStatus, until } from "./drive.ts"
import { labHealPartition, labLink, labPartition, labStartDaemon, spawnInNs, type LabServer, type LabState } from "./lab.ts"
import { namespacePids } from "./netns.ts"

const ROOT = fileURLToPath(new URL("../../../../", import.meta.url))
const LOAD = `${ROOT}packages/runtime/src/lab/load.mjs`
const NATS_LEADER = `${ROOT}packages/runtime/src/lab/natsLeader.mjs`

/** The faults the suite knows, in the order the full suite applies them. */
export const CHAOS_FAULTS = ["baseline", "sigkill", "nats-leader", "partition", "flap", "rolling", "farm-restart"] as const

/** One fault of the suite (`baseline`: none, the load alone for a few seconds). */
export type ChaosFault = (typeof CHAOS_FAULTS)[number]

/** Options of a chaos run. */
export interface ChaosOptions {
  readonly faults: ReadonlyArray<ChaosFault>
  /** Client addresses sending short HTTP requests (each every 250 ms, retried once). */
  readonly httpClients: number
  /** Long-lived TCP connections (a line every 200 ms). */
  readonly tcpConnections: number
  /** UDP requests per second, in all. */
  readonly udpRate: number
  /** Client addresses sending the UDP requests (one socket each). */
  readonly udpSockets: number
  /** How long the partition lasts. */
  readonly partitionMs: number
  /** How long the clients are watched after a fault's heal, at least (sporadic failures). */
  readonly observeMs: number
  /** How long a fault may take to settle (every server up with a share, unfenced, at one log sequence). */
  readonly settleTimeoutMs: number
}

/** The full suite: the load and faults of issue 16. */
export const chaosDefaults: ChaosOptions = {
  faults: CHAOS_FAULTS,
  httpClients: 60,
  tcpConnections: 30,
  udpRate: 100,
  udpSockets: 10,
  partitionMs: 8000,
  observeMs: 15_000,
  settleTimeoutMs: 120_000
}

/** Client addresses a run needs (HTTP, TCP and UDP clients each use their own). */
export const chaosAddresses = (o: ChaosOptions): number => o.httpClients + o.tcpConnections + o.udpSockets

/** What the clients saw during one fault (from its start until it settled and was watched). */
export interface ChaosRow {
  readonly fault: ChaosFault
  /** The fault in words (which server, which NATS node). */
  readonly label: string
  /** Epoch ms: fault applied, healed, end of the watch. */
  readonly faultAt: number
  readonly healAt: number
  readonly endAt: number
  /** HTTP requests that failed after their one retry. */
  readonly failedAfterRetry: number
  readonly httpRequests: number
  /** HTTP attempts (first tries and retries) that failed, in all and from the heal on. */
  readonly failedAttempts: number
  readonly failedAttemptsAfterHeal: number
  /** Ms from the heal to the end of the last failed attempt (0: none failed after the heal). */
  readonly allServedMs: number
  /** Ms from the fault to the end of the last failed attempt (null: none failed). */
  readonly lastFailureMs: number | null
  /** Connections broken that were held by a server not at fault at the time. */
  readonly othersBroken: { readonly during: number; readonly atCompletion: number }
  /** Connections broken that were held by the server at fault. */
  readonly ownBroken: number
  /** Connections answered by another server than the one holding them. */
  readonly switched: number
  readonly udpTwice: number
  /** Each request answered twice: ms from the fault at which it was sent, and who answered. */
  readonly udpTwiceAt: ReadonlyArray<{ readonly ms: number; readonly servers: ReadonlyArray<string> }>
  readonly udpSent: number
  readonly udpLost: number
  /** Every HTTP client served in the last 2 s of the watch (no attempt failed then). */
  readonly servedAtEnd: boolean
  /** Ms from the heal until the farm settled (null: it did not within the bound). */
  readonly settledMs: number | null
  /** The load generator's own stalls (its event loop late by more than 250 ms): count and longest, ms. */
  readonly loadStalls: { readonly count: number; readonly worstMs: number }
  /** Daemons found not running when the fault had settled (and restarted). */
  readonly daemonsDied: ReadonlyArray<string>
  readonly notes: ReadonlyArray<string>
}

/** A chaos run's result. */
export interface ChaosReport {
  readonly lab: string
  readonly startedAt: string
  readonly seconds: number
  readonly options: ChaosOptions
  /** /proc/loadavg at the start and the end. */
  readonly load: { readonly start: string; readonly end: string }
  readonly rows: ReadonlyArray<ChaosRow>
}

/** A line of load.mjs's output (see there). */
export type ChaosLoadEvent =
  | { k: "hf"; t: number; te: number; src: string; try: number; err: string }
  | { k: "hx"; t: number; src: string }
  | { k: "tb"; t: number; src: string; server: string; why: string; age: number }
  | { k: "ts"; t: number; src: string; from: string; to: string }
  | { k: "u2"; t: number; id: string; servers: Array<string> }
  | { k: "s"; t: number; http: number; udpSent: number; udpLost: number; tcpOpen: number }
  | { k: "lag"; t: number; ms: number }
  | { k: "ready"; t: number }
  | { k: "end"; t: number }
type LoadEvent = ChaosLoadEvent

/** A server at fault from `from` to `to` (epoch ms): its connections breaking are its own. */
export interface ChaosVictim {
  readonly node: string
  readonly from: number
  to: number
}

type Victim = ChaosVictim

/** A fault as applied: when, when healed, who was at fault, what was noticed. */
export interface ChaosPhase {
  readonly label: string
  readonly faultAt: number
  readonly healAt: number
  readonly victims: Array<Victim>
  readonly notes: Array<string>
}

type Phase = ChaosPhase

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))
const loadavg = () => {
  try {
    return readFileSync("/proc/loadavg", "utf8").trim()
  } catch {
    return "unknown"
  }
}

const server = (lab: LabState, node: string): LabServer => {
  const s = lab.servers.find((x) => x.node === node)
  if (s === undefined) throw new Error(`no server ${node} in lab ${lab.name}`)
  return s
}

/** Pids in a server's namespace whose command line contains `match`. */
const pidsOf = (ns: string, match: string): Array<number> =>
  namespacePids(ns).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ").includes(match)
    } catch {
      return false
    }
  })

const signalAll = (pids: ReadonlyArray<number>, signal: NodeJS.Signals) => {
  for (const pid of pids) {
    try {
      process.kill(pid, signal)
    } catch {
      // gone meanwhile
    }
  }
}

const daemonPids = (lab: LabState, node: string) => pidsOf(server(lab, node).ns, `daemon --config ${server(lab, node).config}`)
const natsConf = (lab: LabState, node: string) => `${lab.dir}/${node}-nats.conf`

/** The NATS URLs and credentials of a server's config. */
const natsAccess = (s: LabServer): { servers: Array<string>; user?: string; passwordFile?: string } => {
  const c = parseYaml(readFileSync(s.config, "utf8")) as { nats?: { servers?: Array<string>; user?: string; passwordFile?: string } }
  return { servers: c.nats?.servers ?? [], user: c.nats?.user, passwordFile: c.nats?.passwordFile }
}

/** The NATS node leading the farm's stream, asked from inside server `via`'s namespace. */
export const natsStreamLeader = (lab: LabState, via = lab.servers[0].node): { leader: string | null; replicas: Array<{ name: string; current: boolean }> } => {
  const s = server(lab, via)
  const a = natsAccess(s)
  const r = spawnSync("ip", [
    "netns", "exec", s.ns, process.execPath, NATS_LEADER, streamNames(lab.name).stream, a.servers.join(","),
    ...(a.user !== undefined && a.passwordFile !== undefined ? [a.user, a.passwordFile] : [])
  ], { encoding: "utf8", timeout: 10_000 })
  if (r.status !== 0) throw new Error(`stream leader of ${lab.name}: ${(r.stderr ?? "").trim() || `exit ${r.status}`}`)
  return JSON.parse(r.stdout)
}

/**
 * Every server up with a share, nobody fenced, every server at the same log sequence: that
 * sequence, or null. Open hand-offs do not count against it: a bucket stays moving for as long
 * as its old owner holds a connection in it (no cap by default), and the load's long-lived
 * connections live through the whole suite; {@link settle} waits for the log to go quiet instead.
 */
const settledAt = async (lab: LabState): Promise<number | null> => {
  const seqs = new Set<number>()
  for (const s of lab.servers) {
    const st = await labStatus(lab, s.node)
    if (st.filter.fenced) return null
    if (st.members.length !== lab.servers.length || st.members.some((m) => m.state !== "up" || m.buckets === 0)) return null
    seqs.add(st.log.sequence)
  }
  return seqs.size === 1 ? [...seqs][0] : null
}

/** How long the log must stay at one sequence, every server settled, before the farm counts as settled (the hand-offs' decisions done). */
const QUIET_MS = 5000

/** Each server's view of the farm in one line (what a fault that did not settle left). */
const views = async (lab: LabState): Promise<string> => {
  const out: Array<string> = []
  for (const s of lab.servers) {
    try {
      const st = await labStatus(lab, s.node)
      out.push(`${s.node} at log ${st.log.sequence}${st.filter.fenced ? " FENCED" : ""}: ${st.members.map((m) => `${m.name} ${m.state} ${m.buckets}`).join(", ")}${st.handoffs.length > 0 ? `; moving: ${st.handoffs.join(",")}` : ""}`)
    } catch (e) {
      out.push(`${s.node}: no status (${(e as Error).message})`)
    }
  }
  return out.join("; ")
}

/**
 * Wait until the farm settled and its log stayed quiet for QUIET_MS; returns when it first
 * reached that state (epoch ms), or null when it did not within the bound.
 */
const settle = async (lab: LabState, timeoutMs: number): Promise<number | null> => {
  let since: { seq: number; at: number } | null = null
  try {
    await until("the farm settled", async () => {
      const seq = await settledAt(lab)
      if (seq === null) since = null
      else if (since === null || since.seq !== seq) since = { seq, at: Date.now() }
      return since !== null && Date.now() - since.at >= QUIET_MS
    }, timeoutMs)
    return (since as { at: number } | null)?.at ?? Date.now()
  } catch {
    return null
  }
}

/** Start a daemon and wait until its control socket answers. */
const startDaemon = async (lab: LabState, node: string) => {
  labStartDaemon(lab, node)
  await until(`${node}'s daemon answers`, async () => (await labStatus(lab, node)).node === node, 30_000).catch(() => {})
}

/** Send a signal to a daemon and wait until it is gone. */
const stopDaemon = async (lab: LabState, node: string, signal: NodeJS.Signals, timeoutMs: number) => {
  signalAll(daemonPids(lab, node), signal)
  await until(`${node}'s daemon exited`, async () => !daemonRunning(lab, node), timeoutMs)
}

interface Ctx {
  readonly lab: LabState
  readonly o: ChaosOptions
  readonly progress: (line: string) => void
}

/** Apply one fault and heal it; the farm is settled afterwards by the caller (rolling faults settle between servers). */
const applyFault = async (c: Ctx, fault: ChaosFault): Promise<Phase> => {
  const { lab, o } = c
  const notes: Array<string> = []
  const [s1, s2, s3] = lab.servers.map((s) => s.node)
  switch (fault) {
    case "baseline": {
      const at = Date.now()
      await sleep(5000)
      return { label: "no fault (5 s of load)", faultAt: at, healAt: Date.now(), victims: [], notes }
    }
    case "sigkill": {
      const at = Date.now()
      signalAll(daemonPids(lab, s2), "SIGKILL")
      await until(`${s2} killed`, async () => !daemonRunning(lab, s2), 5000)
      await sleep(3000)
      const heal = Date.now()
      await startDaemon(lab, s2)
      return { label: `SIGKILL the daemon of ${s2}, restart after 3 s`, faultAt: at, healAt: heal, victims: [{ node: s2, from: at, to: Infinity }], notes }
    }
    case "nats-leader": {
      const { leader } = natsStreamLeader(lab)
      if (leader === null) throw new Error("the farm's stream has no leader")
      const victim = server(lab, leader)
      const conf = natsConf(lab, leader)
      const at = Date.now()
      signalAll(pidsOf(victim.ns, `nats-server -c ${conf}`), "SIGKILL")
      await until(`NATS node ${leader} killed`, async () => pidsOf(victim.ns, `nats-server -c ${conf}`).length === 0, 5000)
      await sleep(5000)
      const heal = Date.now()
      spawnInNs(victim.ns, ["nice", "-n", "-10", "nats-server", "-c", conf], `${lab.dir}/${leader}-nats.log`)
      // the stream has a leader again and its replicas caught up
      await until("the stream's replicas current", async () => {
        const r = natsStreamLeader(lab)
        return r.leader !== null && r.replicas.every((x) => x.current)
      }, o.settleTimeoutMs).catch(() => notes.push("the stream's replicas were not all current within the bound"))
      const now = natsStreamLeader(lab)
      notes.push(`stream leader ${leader} before, ${now.leader ?? "none"} after`)
      return { label: `SIGKILL the NATS node leading the stream (${leader}), restart after 5 s`, faultAt: at, healAt: heal, victims: [], notes }
    }
    case "partition": {
      const at = Date.now()
      await Effect.runPromise(labPartition(lab, [s1], [s2, s3]))
      await sleep(o.partitionMs)
      const heal = Date.now()
      await Effect.runPromise(labHealPartition(lab))
      return { label: `partition {${s1}} / {${s2}, ${s3}} for ${o.partitionMs / 1000} s`, faultAt: at, healAt: heal, victims: [{ node: s1, from: at, to: Infinity }], notes }
    }
    case "flap": {
      const at = Date.now()
      let heal = at
      for (let i = 0; i < 5; i++) {
        await Effect.runPromise(labLink(lab, s3, false))
        await sleep(1000)
        await Effect.runPromise(labLink(lab, s3, true))
        heal = Date.now()
        if (i < 4) await sleep(1000)
      }
      return { label: `${s3}'s link flapping 5x in 10 s (1 s down, 1 s up)`, faultAt: at, healAt: heal, victims: [{ node: s3, from: at, to: Infinity }], notes }
    }
    case "rolling":
    case "farm-restart": {
      const at = Date.now()
      let heal = at
      const victims: Array<Victim> = []
      for (const node of lab.servers.map((s) => s.node)) {
        const v: Victim = { node, from: Date.now(), to: Infinity }
        victims.push(v)
        if (fault === "rolling") await stopDaemon(lab, node, "SIGTERM", 60_000)
        else {
          const r = (await Effect.runPromise(callControl(server(lab, node).control, "POST", "/restart"))) as { granted?: boolean }
          if (r.granted !== true) notes.push(`${node}: restart not granted (${JSON.stringify(r)})`)
          await until(`${node}'s daemon exited`, async () => !daemonRunning(lab, node), 30_000)
        }
        heal = Date.now()
        // what systemd does: start the daemon again
        await startDaemon(lab, node)
        const done = await settle(lab, o.settleTimeoutMs)
        if (done === null) notes.push(`not settled within ${o.settleTimeoutMs / 1000} s after restarting ${node}: ${await views(lab)}`)
        v.to = done ?? Date.now()
        c.progress(`  ${fault}: ${node} back${done === null ? " (NOT settled)" : ` after ${Math.round((v.to - heal) / 100) / 10} s`}`)
      }
      const label = fault === "rolling" ? "rolling SIGTERM / restart of every server" : "`farm restart` of every server"
      return { label, faultAt: at, healAt: heal, victims, notes }
    }
  }
}

/**
 * After a fault that failed half-way: heal what any fault may have left (partition, links,
 * stopped NATS nodes and daemons), so that the suite can go on.
 */
const recover = async (lab: LabState) => {
  await Effect.runPromise(labHealPartition(lab))
  for (const s of lab.servers) {
    await Effect.runPromise(labLink(lab, s.node, true).pipe(Effect.ignore))
    const conf = natsConf(lab, s.node)
    if (existsSync(conf) && pidsOf(s.ns, `nats-server -c ${conf}`).length === 0) {
      spawnInNs(s.ns, ["nice", "-n", "-10", "nats-server", "-c", conf], `${lab.dir}/${s.node}-nats.log`)
    }
    if (!daemonRunning(lab, s.node)) await startDaemon(lab, s.node)
  }
}

/** The farm's HandoffCompleted records, by sequence: the earliest time a server folded it. */
const collectCompletions = async (lab: LabState, into: Map<number, number>) => {
  for (const s of lab.servers) {
    try {
      const page = (await Effect.runPromise(callControl(s.control, "GET", "/events?from=1", 10_000))) as {
        records: Array<{ seq: number; seenAt: number; entry: unknown }>
      }
      for (const r of page.records) {
        const batch = (r.entry as { events?: unknown } | null)?.events
        const events = (Array.isArray(batch) ? batch : [r.entry]) as Array<{ _tag?: unknown } | null>
        if (!events.some((e) => e?._tag === "HandoffCompleted")) continue
        into.set(r.seq, Math.min(into.get(r.seq) ?? Infinity, r.seenAt))
      }
    } catch {
      // a daemon that does not answer has no record to add
    }
  }
}

/** The load generator in client c1; its events as they come. */
const startLoad = (lab: LabState, o: ChaosOptions, seconds: number) => {
  const c = lab.clients[0]
  if (c === undefined) throw new Error(`lab ${lab.name} has no client namespace`)
  const need = chaosAddresses(o)
  if (c.addresses.length < need) throw new Error(`client ${c.node} of lab ${lab.name} has ${c.addresses.length} addresses, the load needs ${need}`)
  const http = c.addresses.slice(0, o.httpClients)
  const tcp = c.addresses.slice(o.httpClients, o.httpClients + o.tcpConnections)
  const udp = c.addresses.slice(o.httpClients + o.tcpConnections, need)
  const csv = (xs: ReadonlyArray<string>) => (xs.length === 0 ? "-" : xs.join(","))
  const child = spawn("ip", ["netns", "exec", c.ns, process.execPath, LOAD, lab.vip, String(seconds), csv(http), csv(tcp), csv(udp), String(o.udpRate)], {
    stdio: ["ignore", "pipe", "pipe"]
  })
  const events: Array<LoadEvent> = []
  let err = ""
  let markReady: () => void = () => {}
  const ready = new Promise<void>((r) => (markReady = r))
  createInterface({ input: child.stdout }).on("line", (line) => {
    try {
      const e = JSON.parse(line) as LoadEvent
      events.push(e)
      if (e.k === "ready") markReady()
    } catch {
      err += `unparsable: ${line.slice(0, 200)}\n`
    }
  })
  child.stderr.on("data", (d) => (err += d))
  const exited = new Promise<number | null>((r) => child.on("close", (code) => {
    markReady()
    r(code)
  }))
  return { events, ready, exited, stderr: () => err, stop: () => child.kill("SIGTERM") }
}

/** The row of one fault from the load's events in [faultAt, endAt) and the hand-off completions' times. */
export const chaosRow = (
  fault: ChaosFault, p: Phase, endAt: number, settledAt: number | null, events: ReadonlyArray<LoadEvent>, completions: ReadonlyArray<number>,
  died: ReadonlyArray<string>
): ChaosRow => {
  const inside = events.filter((e) => e.t >= p.faultAt && e.t < endAt)
  const fails = inside.filter((e): e is Extract<LoadEvent, { k: "hf" }> => e.k === "hf")
  const lastFail = fails.reduce((m, e) => Math.max(m, e.te), -Infinity)
  const breaks = inside.filter((e): e is Extract<LoadEvent, { k: "tb" }> => e.k === "tb")
  const own = breaks.filter((b) => p.victims.some((v) => v.node === b.server && b.t >= v.from - 200 && b.t <= v.to))
  const others = breaks.filter((b) => !own.includes(b))
  const atCompletion = others.filter((b) => completions.some((c) => b.t >= c - 500 && b.t <= c + 1500))
  // the load's running totals just before the fault and at the end of the watch
  const stat = (at: number) => {
    let last: Extract<LoadEvent, { k: "s" }> | undefined
    for (const e of events) if (e.k === "s" && e.t <= at) last = e
    return last ?? { http: 0, udpSent: 0, udpLost: 0 }
  }
  const a = stat(p.faultAt)
  const servedAtEnd = !fails.some((e) => e.te >= endAt - 2000)
  // UDP requests are judged lost 5 s after they were sent
  const b = stat(endAt)
  const bLost = stat(endAt + 6000)
  return {
    fault,
    label: p.label,
    faultAt: p.faultAt,
    healAt: p.healAt,
    endAt,
    failedAfterRetry: inside.filter((e) => e.k === "hx").length,
    httpRequests: b.http - a.http,
    failedAttempts: fails.length,
    failedAttemptsAfterHeal: fails.filter((e) => e.t >= p.healAt).length,
    allServedMs: lastFail > p.healAt ? lastFail - p.healAt : 0,
    lastFailureMs: fails.length === 0 ? null : lastFail - p.faultAt,
    othersBroken: { during: others.length - atCompletion.length, atCompletion: atCompletion.length },
    ownBroken: own.length,
    switched: inside.filter((e) => e.k === "ts").length,
    udpTwice: inside.filter((e) => e.k === "u2").length,
    udpTwiceAt: inside.filter((e): e is Extract<LoadEvent, { k: "u2" }> => e.k === "u2").map((e) => ({ ms: e.t - p.faultAt, servers: e.servers })),
    udpSent: b.udpSent - a.udpSent,
    udpLost: Math.max(0, bLost.udpLost - a.udpLost),
    servedAtEnd,
    loadStalls: {
      count: inside.filter((e) => e.k === "lag").length,
      worstMs: inside.reduce((m, e) => (e.k === "lag" ? Math.max(m, e.ms) : m), 0)
    },
    settledMs: settledAt === null ? null : Math.max(0, settledAt - p.healAt),
    daemonsDied: died,
    notes: servedAtEnd ? p.notes : [...p.notes, "HTTP clients still failing in the last 2 s of the watch"]
  }
}

/**
 * Run the chaos suite on a lab whose farm is up (3 servers, a client namespace with
 * {@link chaosAddresses} addresses). The lab is left as it was built; a fault that does not
 * settle is noted and the suite goes on.
 */
export const runChaos = async (lab: LabState, o: ChaosOptions = chaosDefaults, progress: (line: string) => void = () => {}): Promise<ChaosReport> => {
  if (lab.servers.length !== 3) throw new Error(`the chaos suite needs a 3-server lab, ${lab.name} has ${lab.servers.length}`)
  const started = Date.now()
  const loadStart = loadavg()
  const c: Ctx = { lab, o, progress }
  // bound the load: each fault takes well under 3 minutes
  const seconds = Math.min(1800, 60 + o.faults.length * 180)
  const load = startLoad(lab, o, seconds)
  const completions = new Map<number, number>()
  const rows: Array<ChaosRow> = []
  try {
    await Promise.race([load.ready, sleep(30_000)])
    if (load.events.every((e) => e.k !== "ready")) throw new Error(`the load did not get every TCP connection answered within 30 s: ${load.stderr().slice(0, 500)}`)
    await sleep(2000)
    log("info", "chaos.start", { lab: lab.name, faults: o.faults.join(","), http: o.httpClients, tcp: o.tcpConnections, udp: o.udpRate })
    for (const fault of o.faults) {
      progress(`${fault}: applying`)
      const failedAt = Date.now()
      const p = await applyFault(c, fault).catch(async (e): Promise<Phase> => {
        log("warn", "chaos.fault", { fault, error: (e as Error).message })
        await recover(lab)
        return { label: fault, faultAt: failedAt, healAt: Date.now(), victims: [], notes: [`the fault failed: ${(e as Error).message}`] }
      })
      const settledAt = await settle(lab, o.settleTimeoutMs)
      if (settledAt === null) p.notes.push(`not settled within ${o.settleTimeoutMs / 1000} s of the heal: ${await views(lab)}`)
      for (const v of p.victims) if (v.to === Infinity) v.to = settledAt ?? Date.now()
      const died: Array<string> = []
      for (const s of lab.servers) {
        if (daemonRunning(lab, s.node)) continue
        died.push(s.node)
        await startDaemon(lab, s.node)
      }
      if (died.length > 0) {
        p.notes.push(`daemon(s) ${died.join(", ")} had died; restarted`)
        if ((await settle(lab, o.settleTimeoutMs)) === null) p.notes.push("not settled after restarting them")
      }
      // watched at least 2 s after it settled: a client failing then is not served again
      const endAt = Math.max(Date.now() + 2000, p.healAt + (fault === "baseline" ? 0 : o.observeMs))
      await sleep(endAt - Date.now())
      await collectCompletions(lab, completions)
      const row = chaosRow(fault, p, endAt, settledAt, load.events, [...completions.values()], died)
      rows.push(row)
      log("info", "chaos.fault", {
        fault, failed: row.failedAfterRetry, servedMs: row.allServedMs, broken: row.othersBroken.during + row.othersBroken.atCompletion, twice: row.udpTwice,
        settledMs: row.settledMs ?? "none"
      })
      progress(`${fault}: ${chaosRowText(row)}`)
    }
  } finally {
    load.stop()
    await Promise.race([load.exited, sleep(10_000)])
  }
  // lost UDP requests are counted by the load 5 s after they were sent: the final totals hold them
  const end = load.events.find((e) => e.k === "end") as (LoadEvent & { udpLost?: number }) | undefined
  const last = rows[rows.length - 1]
  if (end !== undefined && last !== undefined && typeof end.udpLost === "number") {
    const before = load.events.filter((e): e is Extract<LoadEvent, { k: "s" }> => e.k === "s" && e.t <= last.faultAt).pop()
    rows[rows.length - 1] = { ...last, udpLost: Math.max(0, end.udpLost - (before?.udpLost ?? 0)) }
  }
  return { lab: lab.name, startedAt: new Date(started).toISOString(), seconds: Math.round((Date.now() - started) / 1000), options: o, load: { start: loadStart, end: loadavg() }, rows }
}

const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`

/** A row's figures in one line (progress output). */
const chaosRowText = (r: ChaosRow): string =>
  `failed after retry ${r.failedAfterRetry}/${r.httpRequests}, all served ${secs(r.allServedMs)} after the heal (${r.failedAttemptsAfterHeal} failed attempts after it), ` +
  `others' connections broken ${r.othersBroken.during} during + ${r.othersBroken.atCompletion} at completion, own ${r.ownBroken}, UDP answered twice ${r.udpTwice}` +
  `${r.settledMs === null ? ", NOT SETTLED" : ""}${r.servedAtEnd ? "" : ", NOT ALL SERVED at the end"}`

/** The report as the markdown table of issue 16 (plus the columns that explain it). */
export const chaosTable = (r: ChaosReport): string => {
  const lines = [
    "| fault | requests failed after one retry | time to all served (from the heal) | failed attempts (after the heal) | others' connections broken (during / at hand-off completion) | own connections broken | UDP datagrams answered twice | UDP lost | settled after | client stalls > 250 ms (worst) |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  ]
  for (const x of r.rows) {
    lines.push(
      `| ${x.label} | ${x.failedAfterRetry} of ${x.httpRequests} | ${secs(x.allServedMs)} | ${x.failedAttempts} (${x.failedAttemptsAfterHeal}) | ` +
        `${x.othersBroken.during} / ${x.othersBroken.atCompletion} | ${x.ownBroken} | ${x.udpTwice} | ${x.udpLost} of ${x.udpSent} | ${x.settledMs === null ? "NOT SETTLED" : secs(x.settledMs)} | ${x.loadStalls.count} (${x.loadStalls.worstMs} ms) |`
    )
  }
  const notes = r.rows.flatMap((x) => [
    ...x.notes.map((n) => `- ${x.fault}: ${n}`),
    ...x.udpTwiceAt.map((u) => `- ${x.fault}: a UDP request sent ${secs(u.ms)} after the fault was answered by ${u.servers.join(" and ")}`)
  ])
  return [...lines, ...(notes.length > 0 ? ["", ...notes] : [])].join("\n")
}
