/**
 * Scenario files (YAML or JSON): topology, rules, client load, a timeline of faults and the
 * run's duration. Validated with Effect Schema; errors name the file and the key.
 */
import { readdirSync, readFileSync } from "node:fs"
import { basename, dirname, extname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { Vip } from "@vipfarm/domain"
import { Result, Schema } from "effect"
import { parse as parseYaml } from "yaml"

/** Directory of the shipped scenario library. */
export const scenariosDir: string = resolve(dirname(fileURLToPath(import.meta.url)), "..", "scenarios")

/** Name of the scenario `farm sim` runs with no argument. */
export const defaultScenarioName = "default"

const isDurationText = (s: string): boolean => /^\d+(\.\d+)?(ms|s|m|h)$/.test(s)

/** A duration: milliseconds as a number, or text such as "250ms", "2s", "1.5m", "1h". */
export const Duration = Schema.Union([
  Schema.Number.check(Schema.isGreaterThanOrEqualTo(0)),
  Schema.String.check(Schema.makeFilter((s: string) => isDurationText(s) || `expected a duration such as "500ms" or "2s", got "${s}"`))
])

/** Milliseconds of a Duration value. */
export const durationMs = (d: number | string): number => {
  if (typeof d === "number") return d
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(d)!
  const k = m[2] === "ms" ? 1 : m[2] === "s" ? 1000 : m[2] === "m" ? 60_000 : 3_600_000
  return Number(m[1]) * k
}

const Name = Schema.String.check(Schema.isPattern(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/))
const Weight = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 10000 }))
const Probability = Schema.Number.check(Schema.isBetween({ minimum: 0, maximum: 1 }))
const Range = Schema.Tuple([Schema.Number, Schema.Number])

const Server = Schema.Struct({
  name: Name,
  weight: Schema.optionalKey(Weight),
  /** Not started at time 0 (a later `start` or `scale` brings it in). */
  standby: Schema.optionalKey(Schema.Boolean)
})

const FlowLoad = Schema.Struct({
  /** New flows per simulated second. */
  flowsPerSec: Schema.Number.check(Schema.isGreaterThanOrEqualTo(0)),
  /** Distinct client addresses. */
  clients: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))),
  /** Packets per flow after the handshake: log-normal with this median, capped. */
  packets: Schema.optionalKey(Schema.Struct({ median: Schema.Number, max: Schema.Int, sigma: Schema.optionalKey(Schema.Number) })),
  /** Mean gap between a flow's packets. */
  gap: Schema.optionalKey(Duration),
  /** Probability that a gap is an idle period (1-5 s). */
  idle: Schema.optionalKey(Probability),
  /** A flow never lasts longer than this (its last packets are sent sooner). */
  maxDuration: Schema.optionalKey(Duration),
  /** TCP: the share of connections the client ends with a RST instead of a FIN (default 0.05). */
  rst: Schema.optionalKey(Probability),
  /**
   * TCP: long-lived connections (default: 0.2% of them, a packet every 500 ms), so hand-offs
   * move buckets holding established connections. They last `duration` (±25%), by default 1 to
   * 1.25 × `maxDuration`: longer than any other connection, so a hand-off waits for them. With
   * the controller's `handoffMax` set (an operator's cap, off by default) they end before it (a
   * longer one is reset by the hand-off's forced completion, by design); without it they hold
   * their buckets moving until they end.
   */
  long: Schema.optionalKey(Schema.Struct({ share: Schema.optionalKey(Probability), duration: Schema.optionalKey(Duration), gap: Schema.optionalKey(Duration) }))
})

const node = { at: Duration, node: Name }
const Action = <const T extends string>(tag: T) => Schema.Literal(tag)

/** One fault or operation of the timeline. */
export const TimelineEntry = Schema.Union([
  Schema.Struct({ ...node, do: Action("crash") }),
  /** SIGKILL of the daemon only: the machine and its application keep running; the filter fences at its deadline. */
  Schema.Struct({ ...node, do: Action("kill") }),
  Schema.Struct({ ...node, do: Action("restart") }),
  Schema.Struct({ ...node, do: Action("stop") }),
  Schema.Struct({ ...node, do: Action("start"), weight: Schema.optionalKey(Weight) }),
  Schema.Struct({ ...node, do: Action("drain") }),
  Schema.Struct({ ...node, do: Action("resume") }),
  Schema.Struct({ ...node, do: Action("unhealthy"), for: Schema.optionalKey(Duration) }),
  Schema.Struct({ ...node, do: Action("healthy") }),
  /** The application dies once (its process exits); the policy restarts it. */
  Schema.Struct({ ...node, do: Action("app-crash") }),
  /** The application dies and cannot start for `for` (until the end of the safety phase without it). */
  Schema.Struct({ ...node, do: Action("app-broken"), for: Schema.optionalKey(Duration) }),
  Schema.Struct({ ...node, do: Action("pause"), for: Duration }),
  Schema.Struct({ ...node, do: Action("slow"), delay: Duration, for: Duration }),
  /** The server's log reader stops delivering for `for` (its consumer's NATS node was cut off); the rest of it runs. */
  Schema.Struct({ ...node, do: Action("reader-stall"), for: Duration }),
  Schema.Struct({ ...node, do: Action("weight"), weight: Weight }),
  Schema.Struct({ at: Duration, do: Action("partition"), groups: Schema.Array(Schema.Array(Name)), for: Schema.optionalKey(Duration) }),
  Schema.Struct({ at: Duration, do: Action("cut"), a: Name, b: Name, oneWay: Schema.optionalKey(Schema.Boolean), for: Schema.optionalKey(Duration) }),
  Schema.Struct({ at: Duration, do: Action("heal") }),
  Schema.Struct({ at: Duration, do: Action("nats-leader-kill") }),
  Schema.Struct({ ...node, do: Action("nats-node-down") }),
  Schema.Struct({ ...node, do: Action("nats-node-up") }),
  Schema.Struct({ at: Duration, do: Action("syn-flood"), rate: Schema.Number.check(Schema.isGreaterThan(0)), for: Duration }),
  Schema.Struct({ at: Duration, do: Action("rolling-restart"), gap: Duration, downtime: Schema.optionalKey(Duration) }),
  Schema.Struct({ at: Duration, do: Action("scale"), to: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 128 })), every: Duration })
])
/** One fault or operation of the timeline. */
export type TimelineEntry = typeof TimelineEntry.Type

/** Every timeline action name. */
export const timelineActions = [
  "crash", "kill", "restart", "stop", "start", "drain", "resume", "unhealthy", "healthy", "app-crash", "app-broken", "pause", "slow", "reader-stall", "weight",
  "partition", "cut", "heal", "nats-leader-kill", "nats-node-down", "nats-node-up", "syn-flood", "rolling-restart", "scale"
] as const

/**
 * The simulated application of every server (module defaults unless set): one `tcp`-like
 * checker, the start/stop command times, the failure policy. Simulated when this is given or
 * the timeline has an `app-*` fault.
 */
export const AppSpec = Schema.Struct({
  /** Time the start command takes (default 500 ms). */
  startTime: Schema.optionalKey(Duration),
  /** Time the stop command takes (default 100 ms). */
  stopTime: Schema.optionalKey(Duration),
  checker: Schema.optionalKey(Schema.Struct({
    interval: Schema.optionalKey(Duration),
    timeout: Schema.optionalKey(Duration),
    failures: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 100 }))),
    successes: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 100 })))
  })),
  policy: Schema.optionalKey(Schema.Struct({
    onFailure: Schema.optionalKey(Schema.Literals(["restart", "stop"])),
    maxRestarts: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 1000 }))),
    window: Schema.optionalKey(Duration),
    whenExhausted: Schema.optionalKey(Schema.Literals(["leave", "stop"])),
    readyTimeout: Schema.optionalKey(Duration),
    settle: Schema.optionalKey(Duration),
    healInterval: Schema.optionalKey(Duration)
  }))
})

/** A scenario as written. */
export const Scenario = Schema.Struct({
  name: Schema.String,
  description: Schema.optionalKey(Schema.String),
  farm: Schema.optionalKey(Name),
  /** Simulated time of the safety phase. */
  duration: Duration,
  servers: Schema.Union([
    Schema.Array(Server),
    Schema.Struct({ count: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 128 })), weight: Schema.optionalKey(Weight), standby: Schema.optionalKey(Schema.Int) })
  ]),
  /** Heartbeat-only voters (a 2-server farm needs one). */
  witnesses: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 5 }))),
  vips: Schema.optionalKey(Schema.Array(Vip)),
  nats: Schema.optionalKey(Schema.Struct({
    nodes: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 7 }))),
    appendLatency: Schema.optionalKey(Range),
    delivery: Schema.optionalKey(Range),
    stall: Schema.optionalKey(Range),
    appendTimeout: Schema.optionalKey(Duration)
  })),
  network: Schema.optionalKey(Schema.Struct({ delay: Schema.optionalKey(Range), loss: Schema.optionalKey(Probability) })),
  load: Schema.optionalKey(Schema.Struct({ tcp: Schema.optionalKey(FlowLoad), udp: Schema.optionalKey(FlowLoad) })),
  controller: Schema.optionalKey(Schema.Struct({
    heartbeat: Schema.optionalKey(Duration),
    fenceAfter: Schema.optionalKey(Duration),
    expireAfter: Schema.optionalKey(Duration),
    hold: Schema.optionalKey(Duration),
    handoffMax: Schema.optionalKey(Duration),
    tick: Schema.optionalKey(Duration)
  })),
  timeline: Schema.optionalKey(Schema.Array(TimelineEntry)),
  app: Schema.optionalKey(AppSpec),
  liveness: Schema.optionalKey(Schema.Struct({ timeout: Schema.optionalKey(Duration), restartCrashed: Schema.optionalKey(Schema.Boolean) })),
  checks: Schema.optionalKey(Schema.Struct({
    failoverMedian: Schema.optionalKey(Duration),
    failoverWorst: Schema.optionalKey(Duration),
    /** Flows shorter than the hand-off bound: any reset by a hand-off is a violation. */
    samples: Schema.optionalKey(Schema.Int)
  }))
})
/** A scenario as written. */
export type Scenario = typeof Scenario.Type

/** A scenario file that cannot be read or is not valid; the message names the file and key. */
export class ScenarioError extends Schema.TaggedError<ScenarioError>()("ScenarioError", { message: Schema.String }) {}

const decode = Schema.decodeUnknownResult(Scenario, { onExcessProperty: "error" })

/** Validate a parsed value as a scenario; `source` names it in errors. */
export const parseScenario = (value: unknown, source = "scenario"): Result.Result<Scenario, ScenarioError> => {
  // a friendlier message than the union's for an unknown action
  const tl = (value as { timeline?: unknown })?.timeline
  if (Array.isArray(tl)) {
    for (let i = 0; i < tl.length; i++) {
      const d = (tl[i] as { do?: unknown })?.do
      if (!(timelineActions as ReadonlyArray<unknown>).includes(d)) {
        return Result.fail(new ScenarioError({ message: `${source}: timeline[${i}].do: unknown action ${JSON.stringify(d)} (one of ${timelineActions.join(", ")})` }))
      }
    }
  }
  const r = decode(value)
  if (Result.isSuccess(r)) return Result.succeed(r.success)
  const text = String(r.failure.message).replace(/\n\s*at /g, " at ").trim()
  return Result.fail(new ScenarioError({ message: `${source}: ${text}` }))
}

/** Parse scenario text (YAML, of which JSON is a subset). */
export const parseScenarioText = (text: string, source = "scenario"): Result.Result<Scenario, ScenarioError> => {
  let value: unknown
  try {
    value = parseYaml(text)
  } catch (e) {
    return Result.fail(new ScenarioError({ message: `${source}: not valid YAML/JSON: ${(e as Error).message}` }))
  }
  return parseScenario(value, source)
}

/**
 * Resolve a scenario argument: an existing path, or the name of a shipped scenario
 * ("crash" → scenariosDir/crash.yaml).
 */
export const resolveScenarioPath = (ref: string): string => {
  const candidates = [ref, join(scenariosDir, ref), join(scenariosDir, `${ref}.yaml`), join(scenariosDir, `${ref}.yml`), join(scenariosDir, `${ref}.json`)]
  for (const c of candidates) {
    try {
      readFileSync(c)
      return c
    } catch {
      // next
    }
  }
  return ref
}

/** Read and validate a scenario file (or a shipped scenario's name); throws ScenarioError. */
export const loadScenario = (path: string): Scenario => {
  const file = resolveScenarioPath(path)
  let text: string
  try {
    text = readFileSync(file, "utf8")
  } catch (e) {
    throw new ScenarioError({ message: `${path}: cannot read: ${(e as Error).message}` })
  }
  const r = parseScenarioText(text, file)
  if (Result.isFailure(r)) throw r.failure
  return r.success
}

/** The names of the shipped scenarios. */
export const shippedScenarios = (): Array<string> =>
  readdirSync(scenariosDir)
    .filter((f) => [".yaml", ".yml", ".json"].includes(extname(f)))
    .map((f) => basename(f, extname(f)))
    .sort()
