/**
 * Model-based generation of scenarios (fast-check commands): a model of the farm's
 * membership (each server up, down, leaving or out; draining, unhealthy, paused; the NATS
 * nodes; open partitions) from which every command of the scenario format is generated only
 * when it is valid in the model's state: no restart of a running server, no start of a
 * started one, no resume of a server that is not draining, no crash or kill of the last
 * server up, no stop or drain that leaves no server (up, not draining) to take the buckets,
 * a scale or rolling restart only while no server is leaving, rolling restarts spaced so that
 * a server is always up. Shrinking removes commands and skips those no longer valid, so a
 * shrunk timeline is valid too. What the model cannot know (how long a stopped server takes
 * to leave: {@link LEAVE_MS} after the log may stall) it estimates; a `start` of a server
 * still leaving then is a no-op in the simulator.
 *
 * The farm: 2..6 servers with unequal weights (1..400; the last 0..2 of them standby, for
 * `start` and `scale`), 0..2 witnesses, 3 or 5 NATS nodes. The timeline runs from
 * {@link FIRST_AT} to {@link HORIZON} ms of a {@link DURATION} ms safety phase.
 */
import fc from "fast-check"
import type { Scenario, TimelineEntry } from "./scenario.ts"

/** Time of the earliest generated entry (ms). */
export const FIRST_AT = 300
/** No entry is generated after this (ms). */
export const HORIZON = 7000
/** The safety phase of a generated scenario (ms). */
export const DURATION = 9000
/** Time a stopped server is assumed to need to leave (hand-offs wait for its flows: at most 2.5 s with the load below). */
export const LEAVE_MS = 3000
/** The longest append stall a NATS fault may cause (natsLog.ts). */
const STALL_MS = 7800

type Entry = TimelineEntry

/** One server of the model. */
interface ServerModel {
  readonly name: string
  weight: number
  /** up: running; down: crashed or killed (restart); leaving: stopped, exiting until outAt; out: standby or exited (start). */
  state: "up" | "down" | "leaving" | "out"
  /** When a leaving server is out (Infinity: not known, e.g. the log is unreachable). */
  outAt: number
  /** Until then an operation (scale, rolling restart) is carrying it out: no other command targets it. */
  busyUntil: number
  draining: boolean
  /** `unhealthy` with no `for`: healthy again only by a `healthy` entry. */
  unhealthyOpen: boolean
  unhealthyUntil: number
  pausedUntil: number
  slowUntil: number
  appBrokenUntil: number
}

/** The model: the farm's membership and network as the timeline so far leaves it. */
export interface FarmModel {
  /** Time of the last entry. */
  now: number
  readonly servers: Array<ServerModel>
  readonly witnesses: ReadonlyArray<string>
  readonly nats: Array<{ readonly name: string; up: boolean }>
  /** A partition or cut with no `for` is in force (a `heal` ends it). */
  openCut: boolean
  /** Until then the log may be stalled or unreachable (a stopped server may not leave before). */
  troubleUntil: number
}

/** What the commands build: the timeline. */
export interface TimelineBuild {
  readonly entries: Array<Entry>
}

/** The farm a generated scenario runs. */
export interface FarmShape {
  readonly weights: ReadonlyArray<number>
  readonly standby: number
  readonly witnesses: number
  readonly natsNodes: 3 | 5
}

const stateAt = (s: ServerModel, at: number): ServerModel["state"] => (s.state === "leaving" && s.outAt <= at ? "out" : s.state)
const isUp = (s: ServerModel, at: number): boolean => stateAt(s, at) === "up"
const free = (s: ServerModel, at: number): boolean => s.busyUntil <= at
/** Servers up and free at `at` (a command may target them). */
const upFree = (m: FarmModel, at: number): Array<ServerModel> => m.servers.filter((s) => isUp(s, at) && free(s, at))
const upCount = (m: FarmModel, at: number): number => m.servers.filter((s) => isUp(s, at)).length
/** Servers up, free and not draining at `at`, other than `but`: those that can take a leaving or draining server's buckets. */
const takers = (m: FarmModel, at: number, but: ServerModel | null): number => upFree(m, at).filter((s) => s !== but && !s.draining).length
const pickOf = <T>(xs: ReadonlyArray<T>, pick: number): T => xs[pick % xs.length]
/** The log may stall until `until`: leaving servers may leave that much later. */
const trouble = (m: FarmModel, until: number): void => {
  m.troubleUntil = Math.max(m.troubleUntil, until)
  for (const s of m.servers) if (s.state === "leaving") s.outAt = Math.max(s.outAt, until + LEAVE_MS)
}
/** The network is whole again (a heal, a NATS node back): trouble with no known end ends a stall after now. */
const settleTrouble = (m: FarmModel, at: number): void => {
  if (m.troubleUntil !== Infinity || m.openCut || m.nats.some((n) => !n.up)) return
  m.troubleUntil = at + STALL_MS
  for (const s of m.servers) if (s.state === "leaving" && s.outAt === Infinity) s.outAt = m.troubleUntil + LEAVE_MS
}
const leave = (m: FarmModel, s: ServerModel, at: number): void => {
  s.state = "leaving"
  s.outAt = Math.max(at, m.troubleUntil, s.pausedUntil, s.slowUntil) + LEAVE_MS
}

/** A command of the model: it runs at the previous entry's time plus `gap`. */
abstract class ModelCommand implements fc.Command<FarmModel, TimelineBuild> {
  private made: ReadonlyArray<Entry> = []
  constructor(readonly gap: number) {}
  protected at(m: FarmModel): number {
    return Math.max(FIRST_AT, m.now + this.gap)
  }
  check(m: Readonly<FarmModel>): boolean {
    const at = this.at(m as FarmModel)
    return at <= HORIZON && this.valid(m as FarmModel, at)
  }
  run(m: FarmModel, r: TimelineBuild): void {
    const at = this.at(m)
    for (const s of m.servers) if (s.state === "leaving" && s.outAt <= at) s.state = "out"
    this.made = this.apply(m, at)
    r.entries.push(...this.made)
    m.now = at
  }
  toString(): string {
    return this.made.length === 0 ? `${this.constructor.name}(+${this.gap})` : this.made.map((e) => JSON.stringify(e)).join(", ")
  }
  /** Whether the command is valid at `at` in the model's state. */
  protected abstract valid(m: FarmModel, at: number): boolean
  /** Change the model and return the entries. */
  protected abstract apply(m: FarmModel, at: number): Array<Entry>
}

/** crash (machine) or kill (daemon only) of a running server; at least one other stays up. */
class Down extends ModelCommand {
  constructor(gap: number, readonly how: "crash" | "kill", readonly pick: number) { super(gap) }
  private targets(m: FarmModel, at: number): Array<ServerModel> {
    return m.servers.filter((s) => free(s, at) && (stateAt(s, at) === "leaving" || (isUp(s, at) && upCount(m, at) > 1)))
  }
  protected valid(m: FarmModel, at: number) { return this.targets(m, at).length > 0 }
  protected apply(m: FarmModel, at: number): Array<Entry> {
    const s = pickOf(this.targets(m, at), this.pick)
    s.state = "down"
    s.draining = false
    return [{ at, do: this.how, node: s.name }]
  }
}

/** restart of a crashed or killed server. */
class Restart extends ModelCommand {
  constructor(gap: number, readonly pick: number) { super(gap) }
  protected valid(m: FarmModel, at: number) { return m.servers.some((s) => s.state === "down" && free(s, at)) }
  protected apply(m: FarmModel, at: number): Array<Entry> {
    const s = pickOf(m.servers.filter((x) => x.state === "down" && free(x, at)), this.pick)
    s.state = "up"
    return [{ at, do: "restart", node: s.name }]
  }
}

/** stop (SIGTERM: drain, leave, then exit) of a server up; another, not draining, stays up to take its buckets. */
class Stop extends ModelCommand {
  constructor(gap: number, readonly pick: number) { super(gap) }
  private targets(m: FarmModel, at: number) { return upFree(m, at).filter((s) => takers(m, at, s) > 0) }
  protected valid(m: FarmModel, at: number) { return this.targets(m, at).length > 0 }
  protected apply(m: FarmModel, at: number): Array<Entry> {
    const s = pickOf(this.targets(m, at), this.pick)
    leave(m, s, at)
    return [{ at, do: "stop", node: s.name }]
  }
}

/** start of a server that is out (standby, or stopped and exited), maybe with a new weight. */
class Start extends ModelCommand {
  constructor(gap: number, readonly pick: number, readonly weight: number | null) { super(gap) }
  private targets(m: FarmModel, at: number) { return m.servers.filter((s) => stateAt(s, at) === "out" && free(s, at)) }
  protected valid(m: FarmModel, at: number) { return this.targets(m, at).length > 0 }
  protected apply(m: FarmModel, at: number): Array<Entry> {
    const s = pickOf(this.targets(m, at), this.pick)
    s.state = "up"
    s.draining = false
    if (this.weight === null) return [{ at, do: "start", node: s.name }]
    s.weight = this.weight
    return [{ at, do: "start", node: s.name, weight: this.weight }]
  }
}

/** drain of a server up and not draining (another, not draining, stays up to take its buckets), or resume of a draining one. */
class Drain extends ModelCommand {
  constructor(gap: number, readonly resume: boolean, readonly pick: number) { super(gap) }
  private targets(m: FarmModel, at: number) {
    return upFree(m, at).filter((s) => s.draining === this.resume && (this.resume || takers(m, at, s) > 0))
  }
  protected valid(m: FarmModel, at: number) { return this.targets(m, at).length > 0 }
  protected apply(m: FarmModel, at: number): Array<Entry> {
    const s = pickOf(this.targets(m, at), this.pick)
    s.draining = !this.resume
    return [{ at, do: this.resume ? "resume" : "drain", node: s.name }]
  }
}

/** unhealthy (for a while, or until a `healthy`) of a healthy server up. */
class Unhealthy extends ModelCommand {
  constructor(gap: number, readonly pick: number, readonly len: number | null) { super(gap) }
  private targets(m: FarmModel, at: number) { return upFree(m, at).filter((s) => !s.unhealthyOpen && s.unhealthyUntil <= at) }
  protected valid(m: FarmModel, at: number) { return this.targets(m, at).length > 0 }
  protected apply(m: FarmModel, at: number): Array<Entry> {
    const s = pickOf(this.targets(m, at), this.pick)
    if (this.len === null) {
      s.unhealthyOpen = true
      return [{ at, do: "unhealthy", node: s.name }]
    }
    s.unhealthyUntil = at + this.len
    return [{ at, do: "unhealthy", node: s.name, for: this.len }]
  }
}

/** healthy: ends an `unhealthy` with no `for`. */
class Healthy extends ModelCommand {
  constructor(gap: number, readonly pick: number) { super(gap) }
  protected valid(m: FarmModel) { return m.servers.some((s) => s.unhealthyOpen) }
  protected apply(m: FarmModel, at: number): Array<Entry> {
    const s = pickOf(m.servers.filter((x) => x.unhealthyOpen), this.pick)
    s.unhealthyOpen = false
    return [{ at, do: "healthy", node: s.name }]
  }
}

/** The application of a server up dies once (app-crash), or breaks for a while (app-broken). */
class AppFault extends ModelCommand {
  constructor(gap: number, readonly pick: number, readonly len: number | null) { super(gap) }
  private targets(m: FarmModel, at: number) { return upFree(m, at).filter((s) => s.appBrokenUntil <= at) }
  protected valid(m: FarmModel, at: number) { return this.targets(m, at).length > 0 }
  protected apply(m: FarmModel, at: number): Array<Entry> {
    const s = pickOf(this.targets(m, at), this.pick)
    if (this.len === null) return [{ at, do: "app-crash", node: s.name }]
    s.appBrokenUntil = at + this.len
    return [{ at, do: "app-broken", node: s.name, for: this.len }]
  }
}

/** pause, slow or reader-stall of a running daemon, for a while. */
class Hiccup extends ModelCommand {
  constructor(gap: number, readonly kind: "pause" | "slow" | "reader-stall", readonly pick: number, readonly len: number) { super(gap) }
  private targets(m: FarmModel, at: number) {
    return upFree(m, at).filter((s) => (this.kind === "pause" ? s.pausedUntil <= at : this.kind === "slow" ? s.slowUntil <= at : true))
  }
  protected valid(m: FarmModel, at: number) { return this.targets(m, at).length > 0 }
  protected apply(m: FarmModel, at: number): Array<Entry> {
    const s = pickOf(this.targets(m, at), this.pick)
    if (this.kind === "pause") {
      s.pausedUntil = at + this.len
      return [{ at, do: "pause", node: s.name, for: this.len }]
    }
    if (this.kind === "slow") {
      s.slowUntil = at + this.len
      return [{ at, do: "slow", node: s.name, delay: Math.max(1, Math.round(this.len / 10)), for: this.len }]
    }
    trouble(m, at + this.len)
    return [{ at, do: "reader-stall", node: s.name, for: this.len }]
  }
}

/** weight: a server's weight for its next join. */
class Weight extends ModelCommand {
  constructor(gap: number, readonly pick: number, readonly weight: number) { super(gap) }
  protected valid() { return true }
  protected apply(m: FarmModel, at: number): Array<Entry> {
    const s = pickOf(m.servers, this.pick)
    s.weight = this.weight
    return [{ at, do: "weight", node: s.name, weight: this.weight }]
  }
}

/**
 * partition: one server alone; one server with a minority of the NATS nodes; the servers
 * split in two (the NATS nodes too, a majority on one side); or one NATS node alone (the
 * stream leader n1 or a follower). For a while, or until a `heal`.
 */
class Partition extends ModelCommand {
  constructor(gap: number, readonly shape: "server" | "server-nats" | "split" | "nats", readonly pick: number, readonly mask: number, readonly len: number | null) { super(gap) }
  protected valid() { return true }
  protected apply(m: FarmModel, at: number): Array<Entry> {
    const servers = m.servers.map((s) => s.name)
    const nats = m.nats.map((n) => n.name)
    const minority = Math.floor(nats.length / 2)
    let b: Array<string>
    if (this.shape === "server") b = [pickOf(servers, this.pick)]
    else if (this.shape === "server-nats") b = [pickOf(servers, this.pick), ...rotate(nats, this.mask).slice(0, minority)]
    else if (this.shape === "nats") b = [pickOf(nats, this.pick)]
    else {
      b = servers.filter((_, i) => ((this.mask >> i) & 1) === 1)
      if (b.length === 0 || b.length === servers.length) b = [servers[this.pick % servers.length]]
      b.push(...rotate(nats, this.pick).slice(0, minority), ...m.witnesses.filter((_, i) => ((this.mask >> (8 + i)) & 1) === 1))
    }
    const a = [...servers, ...m.witnesses, ...nats].filter((n) => !b.includes(n))
    const groups = [a, b]
    trouble(m, this.len === null ? Infinity : at + this.len + STALL_MS)
    if (this.len === null) {
      m.openCut = true
      return [{ at, do: "partition", groups }]
    }
    return [{ at, do: "partition", groups, for: this.len }]
  }
}

const rotate = <T>(xs: ReadonlyArray<T>, k: number): Array<T> => xs.map((_, i) => xs[(i + k) % xs.length])

/** cut: one link between two endpoints (servers, witnesses, NATS nodes), maybe one way; for a while or until a `heal`. */
class Cut extends ModelCommand {
  constructor(gap: number, readonly a: number, readonly b: number, readonly oneWay: boolean, readonly len: number | null) { super(gap) }
  private ends(m: FarmModel): [string, string] {
    const all = [...m.servers.map((s) => s.name), ...m.witnesses, ...m.nats.map((n) => n.name)]
    const a = this.a % all.length
    let b = this.b % all.length
    if (b === a) b = (b + 1) % all.length
    return [all[a], all[b]]
  }
  protected valid() { return true }
  protected apply(m: FarmModel, at: number): Array<Entry> {
    const [a, b] = this.ends(m)
    trouble(m, this.len === null ? Infinity : at + this.len + STALL_MS)
    if (this.len === null) m.openCut = true
    const e: Entry = this.len === null ? { at, do: "cut", a, b, oneWay: this.oneWay } : { at, do: "cut", a, b, oneWay: this.oneWay, for: this.len }
    return [e]
  }
}

/** heal: ends every partition and cut (valid while one with no `for` is in force). */
class Heal extends ModelCommand {
  protected valid(m: FarmModel) { return m.openCut }
  protected apply(m: FarmModel, at: number): Array<Entry> {
    m.openCut = false
    settleTrouble(m, at)
    return [{ at, do: "heal" }]
  }
}

/** nats-leader-kill, nats-node-down of a node up, nats-node-up of a node down. */
class Nats extends ModelCommand {
  constructor(gap: number, readonly kind: "nats-leader-kill" | "nats-node-down" | "nats-node-up", readonly pick: number) { super(gap) }
  private targets(m: FarmModel) { return m.nats.filter((n) => n.up === (this.kind === "nats-node-down")) }
  protected valid(m: FarmModel) { return this.kind === "nats-leader-kill" || this.targets(m).length > 0 }
  protected apply(m: FarmModel, at: number): Array<Entry> {
    if (this.kind === "nats-leader-kill") {
      trouble(m, at + STALL_MS)
      return [{ at, do: "nats-leader-kill" }]
    }
    const n = pickOf(this.targets(m), this.pick)
    n.up = this.kind === "nats-node-up"
    if (n.up) settleTrouble(m, at)
    else trouble(m, Infinity)
    return [{ at, do: this.kind, node: n.name }]
  }
}

/** syn-flood at `rate` SYN/s for a while. */
class SynFlood extends ModelCommand {
  constructor(gap: number, readonly rate: number, readonly len: number) { super(gap) }
  protected valid() { return true }
  protected apply(_m: FarmModel, at: number): Array<Entry> {
    return [{ at, do: "syn-flood", rate: this.rate, for: this.len }]
  }
}

/**
 * rolling-restart of every server up (at least two; none leaving or draining): each is
 * stopped `step` after the previous and started `downtime` after it exits. The step lets the
 * first server be back before the last one stops (a server is out for at most
 * {@link LEAVE_MS} + downtime + a second to rejoin, longer while the log may stall), so that
 * one server always stays up to take the buckets of those leaving.
 */
class RollingRestart extends ModelCommand {
  constructor(gap: number, readonly extra: number, readonly downtime: number) { super(gap) }
  protected valid(m: FarmModel, at: number) {
    return m.servers.every((s) => free(s, at) && stateAt(s, at) !== "leaving" && !(isUp(s, at) && s.draining)) && upCount(m, at) >= 2 &&
      m.troubleUntil !== Infinity
  }
  protected apply(m: FarmModel, at: number): Array<Entry> {
    const up = upFree(m, at)
    const out = Math.max(0, m.troubleUntil - at) + LEAVE_MS + this.downtime + 1000
    const step = Math.ceil(out / (up.length - 1)) + this.extra
    up.forEach((s, k) => {
      s.busyUntil = Math.max(at + k * step, m.troubleUntil, s.pausedUntil, s.slowUntil) + out
    })
    return [{ at, do: "rolling-restart", gap: step, downtime: this.downtime }]
  }
}

/** scale to `to` servers (1..all), one every `every`: starts servers not running in name order, or stops the last running ones. */
class Scale extends ModelCommand {
  constructor(gap: number, readonly to: number, readonly every: number) { super(gap) }
  private target(m: FarmModel): number {
    return 1 + (this.to % m.servers.length)
  }
  protected valid(m: FarmModel, at: number) {
    if (!m.servers.every((s) => free(s, at) && stateAt(s, at) !== "leaving")) return false
    const up = m.servers.filter((s) => isUp(s, at))
    const to = this.target(m)
    // scaling down keeps a server that is not draining, to take the buckets of those leaving
    return to !== up.length && (to > up.length || up.slice(0, to).some((s) => !s.draining))
  }
  protected apply(m: FarmModel, at: number): Array<Entry> {
    const to = this.target(m)
    const running = m.servers.filter((s) => isUp(s, at))
    if (to > running.length) {
      m.servers.filter((s) => !isUp(s, at)).slice(0, to - running.length).forEach((s, k) => {
        s.state = "up"
        s.draining = false
        s.busyUntil = at + k * this.every
      })
    } else {
      running.slice(to).reverse().forEach((s, k) => {
        leave(m, s, at + k * this.every)
        s.busyUntil = s.outAt
      })
    }
    return [{ at, do: "scale", to, every: this.every }]
  }
}

const gap = fc.integer({ min: 0, max: 1000 })
const pick = fc.nat({ max: 63 })
const len = fc.integer({ min: 100, max: 3000 })
const weight = fc.integer({ min: 1, max: 400 })

/** The commands, one arbitrary per kind of timeline entry (every action of the scenario format). */
const commandArbs: Array<fc.Arbitrary<fc.Command<FarmModel, TimelineBuild>>> = [
  fc.tuple(gap, fc.constantFrom("crash" as const, "kill" as const), pick).map(([g, h, p]) => new Down(g, h, p)),
  fc.tuple(gap, pick).map(([g, p]) => new Restart(g, p)),
  fc.tuple(gap, pick).map(([g, p]) => new Stop(g, p)),
  fc.tuple(gap, pick, fc.option(weight)).map(([g, p, w]) => new Start(g, p, w)),
  fc.tuple(gap, fc.boolean(), pick).map(([g, r, p]) => new Drain(g, r, p)),
  fc.tuple(gap, pick, fc.option(len)).map(([g, p, l]) => new Unhealthy(g, p, l)),
  fc.tuple(gap, pick).map(([g, p]) => new Healthy(g, p)),
  fc.tuple(gap, pick, fc.option(len)).map(([g, p, l]) => new AppFault(g, p, l)),
  fc.tuple(gap, fc.constantFrom("pause" as const, "slow" as const, "reader-stall" as const), pick, len).map(([g, k, p, l]) => new Hiccup(g, k, p, l)),
  fc.tuple(gap, pick, fc.integer({ min: 0, max: 400 })).map(([g, p, w]) => new Weight(g, p, w)),
  fc.tuple(gap, fc.constantFrom("server" as const, "server-nats" as const, "split" as const, "nats" as const), pick, fc.nat({ max: 1023 }), fc.option(len))
    .map(([g, s, p, k, l]) => new Partition(g, s, p, k, l)),
  fc.tuple(gap, pick, pick, fc.boolean(), fc.option(len)).map(([g, a, b, o, l]) => new Cut(g, a, b, o, l)),
  gap.map((g) => new Heal(g)),
  fc.tuple(gap, fc.constantFrom("nats-leader-kill" as const, "nats-node-down" as const, "nats-node-up" as const), pick).map(([g, k, p]) => new Nats(g, k, p)),
  fc.tuple(gap, fc.integer({ min: 1000, max: 20_000 }), fc.integer({ min: 100, max: 2000 })).map(([g, r, l]) => new SynFlood(g, r, l)),
  fc.tuple(gap, fc.integer({ min: 0, max: 1500 }), fc.integer({ min: 100, max: 1000 })).map(([g, x, d]) => new RollingRestart(g, x, d)),
  fc.tuple(gap, fc.nat({ max: 5 }), fc.integer({ min: 100, max: 800 })).map(([g, t, e]) => new Scale(g, t, e))
]

/** The farm: 2..6 servers with their weights (the last `standby` of them not started), witnesses, NATS nodes. */
export const arbFarm: fc.Arbitrary<FarmShape> = fc
  .record({
    weights: fc.array(weight, { minLength: 2, maxLength: 6 }),
    standby: fc.nat({ max: 2 }),
    witnesses: fc.nat({ max: 2 }),
    natsNodes: fc.constantFrom(3 as const, 5 as const)
  })
  .map((f) => ({ ...f, standby: Math.min(f.standby, f.weights.length - 2) }))

/** A generated case: the farm, the run's seed and the commands of its timeline. */
export interface ModelCase {
  readonly farm: FarmShape
  readonly seed: number
  readonly commands: Iterable<fc.Command<FarmModel, TimelineBuild>>
}

/** Generated cases (at most `maxCommands` commands; those invalid when they come are skipped). */
export const arbModelCase = (maxCommands = 14): fc.Arbitrary<ModelCase> =>
  fc.record({ farm: arbFarm, seed: fc.integer({ min: 1, max: 1_000_000 }), commands: fc.commands(commandArbs, { maxCommands }) })

/** The model of a farm at time 0. */
export const initialModel = (farm: FarmShape): FarmModel => ({
  now: 0,
  servers: farm.weights.map((w, i) => ({
    name: `s${i + 1}`, weight: w, state: i >= farm.weights.length - farm.standby ? "out" : "up", outAt: 0, busyUntil: 0, draining: false,
    unhealthyOpen: false, unhealthyUntil: 0, pausedUntil: 0, slowUntil: 0, appBrokenUntil: 0
  })),
  witnesses: Array.from({ length: farm.witnesses }, (_, i) => `w${i + 1}`),
  nats: Array.from({ length: farm.natsNodes }, (_, i) => ({ name: `n${i + 1}`, up: true })),
  openCut: false,
  troubleUntil: 0
})

/** Run the commands on the model: the timeline they make (only the commands valid in turn). */
export const buildTimeline = (c: ModelCase): Array<Entry> => {
  const real: TimelineBuild = { entries: [] }
  fc.modelRun(() => ({ model: initialModel(c.farm), real }), c.commands)
  return real.entries
}

/** Options of {@link modelScenario}. */
export interface ModelScenarioOptions {
  /** Lease and hold timing (the controller section). */
  readonly controller?: { readonly heartbeat?: number; readonly fenceAfter?: number; readonly expireAfter?: number; readonly hold?: number }
}

/** The scenario of a farm and a timeline: steady TCP and UDP load, the timeline, a liveness phase. */
export const modelScenario = (farm: FarmShape, timeline: ReadonlyArray<Entry>, options: ModelScenarioOptions = {}): Scenario => ({
  name: "model",
  duration: DURATION,
  servers: farm.weights.map((weight, i) => ({ name: `s${i + 1}`, weight, ...(i >= farm.weights.length - farm.standby ? { standby: true } : {}) })),
  witnesses: farm.witnesses,
  nats: { nodes: farm.natsNodes },
  load: { tcp: { flowsPerSec: 400, maxDuration: "2s" }, udp: { flowsPerSec: 60, maxDuration: "2s" } },
  timeline,
  liveness: { timeout: "30s" },
  ...(options.controller === undefined ? {} : { controller: options.controller })
})

/**
 * After fast-check's shrinking (greedy: it may keep an entry it could drop once other
 * entries shrank), drop entries one at a time while the timeline still fails and stays valid:
 * a timeline from which no single entry can be removed.
 */
export const minimizeTimeline = (
  timeline: ReadonlyArray<Entry>,
  fails: (t: ReadonlyArray<Entry>) => boolean,
  valid: (t: ReadonlyArray<Entry>) => boolean = () => true
): Array<Entry> => {
  let t = [...timeline]
  for (let i = t.length - 1; i >= 0; i--) {
    const without = [...t.slice(0, i), ...t.slice(i + 1)]
    if (valid(without) && fails(without)) t = without
  }
  return t
}
