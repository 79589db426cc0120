/**
 * Application modules: a directory with `module.yaml` (the application's start, stop and
 * reload commands, its checkers and its failure policy) and any scripts it calls. Validated
 * with Effect Schema; every error names the file, the line and the key.
 *
 * String values may use `${VAR}`: the module's `vars` (defaults), overridden by the caller
 * (the daemon's configuration), plus `MODULE_DIR`. Commands run with `/bin/sh -c` in the
 * module directory and get every var in their environment.
 */
import { readFileSync } from "node:fs"
import { resolve } from "node:path"
import { Effect, Result, Schema } from "effect"
import { decodeYaml, parseYaml, YamlError } from "../yamlSchema.ts"
import type { CheckerTiming } from "./health.ts"
import { DEFAULT_POLICY, type PolicyConfig } from "./policy.ts"

const Ms = (min: number, max: number) => Schema.Int.check(Schema.isBetween({ minimum: min, maximum: max }))
const Count = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 100 }))
const Name = Schema.String.check(Schema.isPattern(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/))

/** A command: shell text run with `/bin/sh -c` in the module directory. */
const CommandSpec = Schema.Struct({
  command: Schema.String.check(Schema.isMinLength(1)),
  timeoutMs: Schema.optionalKey(Ms(100, 3_600_000))
})

const StopSpec = Schema.Struct({
  command: Schema.String.check(Schema.isMinLength(1)),
  timeoutMs: Schema.optionalKey(Ms(100, 3_600_000)),
  /** After a hanging stop is sent SIGTERM, wait this long before SIGKILL. */
  graceMs: Schema.optionalKey(Ms(0, 600_000)),
  /** Run after a stop that failed or hung: force the application down (e.g. kill -9 by pid file). */
  force: Schema.optionalKey(Schema.String.check(Schema.isMinLength(1)))
})

const timing = {
  name: Name,
  intervalMs: Schema.optionalKey(Ms(50, 3_600_000)),
  timeoutMs: Schema.optionalKey(Ms(10, 600_000)),
  failures: Schema.optionalKey(Count),
  successes: Schema.optionalKey(Count)
}

const TcpChecker = Schema.Struct({ ...timing, type: Schema.Literal("tcp"), address: Schema.String })
const HttpChecker = Schema.Struct({
  ...timing,
  type: Schema.Literal("http"),
  url: Schema.String.check(Schema.isPattern(/^http:\/\/[^\s/]+(\/\S*)?$/)),
  /** Accepted status codes (default: 200-399). */
  status: Schema.optionalKey(Schema.Array(Schema.Int.check(Schema.isBetween({ minimum: 100, maximum: 599 })))),
  /** A regular expression the body must match. */
  body: Schema.optionalKey(Schema.String)
})
const ProcessChecker = Schema.Struct({
  ...timing,
  type: Schema.Literal("process"),
  /** Exact process name (/proc/PID/comm, or the base name of argv[0]). */
  process: Schema.optionalKey(Schema.String),
  /** A regular expression over the command line (arguments joined by spaces). */
  regex: Schema.optionalKey(Schema.String),
  atLeast: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 100000 }))),
  atMost: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 100000 })))
})
const CommandChecker = Schema.Struct({ ...timing, type: Schema.Literal("command"), command: Schema.String.check(Schema.isMinLength(1)) })

const Checker = Schema.Union([TcpChecker, HttpChecker, ProcessChecker, CommandChecker])

const PolicySpec = Schema.Struct({
  onFailure: Schema.optionalKey(Schema.Literals(["restart", "stop"])),
  maxRestarts: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 1000 }))),
  windowMs: Schema.optionalKey(Ms(1000, 30 * 86_400_000)),
  whenExhausted: Schema.optionalKey(Schema.Literals(["leave", "stop"])),
  readyTimeoutMs: Schema.optionalKey(Ms(100, 3_600_000)),
  settleMs: Schema.optionalKey(Ms(0, 3_600_000)),
  healIntervalMs: Schema.optionalKey(Ms(100, 86_400_000)),
  /** Keep the buckets while a restart runs, up to this long (0: they move at once). */
  restartGraceMs: Schema.optionalKey(Ms(0, 60_000))
})

/** `module.yaml` as written. */
export const ModuleFile = Schema.Struct({
  name: Name,
  description: Schema.optionalKey(Schema.String),
  vars: Schema.optionalKey(Schema.Record(Schema.String.check(Schema.isPattern(/^[A-Za-z_][A-Za-z0-9_]*$/)), Schema.String)),
  start: CommandSpec,
  stop: StopSpec,
  reload: Schema.optionalKey(CommandSpec),
  checkers: Schema.Array(Checker).check(Schema.isMinLength(1)),
  policy: Schema.optionalKey(PolicySpec)
})
/** `module.yaml` as written. */
export type ModuleFile = typeof ModuleFile.Type

/** A command with its timeout resolved. */
export interface ModuleCommand {
  readonly command: string
  readonly timeoutMs: number
}

/** A checker with every default filled in. */
export type CheckerSpec = CheckerTiming &
  (
    | { readonly type: "tcp"; readonly host: string; readonly port: number }
    | { readonly type: "http"; readonly url: string; readonly status: ReadonlyArray<number> | null; readonly body: string | null }
    | { readonly type: "process"; readonly process: string | null; readonly regex: string | null; readonly atLeast: number; readonly atMost: number | null }
    | { readonly type: "command"; readonly command: string }
  )

/** A loaded module with every default filled in and every `${VAR}` substituted. */
export interface AppModule {
  readonly name: string
  readonly description: string
  readonly dir: string
  readonly file: string
  /** Every var (defaults, overrides, MODULE_DIR); commands get them as environment variables. */
  readonly vars: Readonly<Record<string, string>>
  readonly start: ModuleCommand
  readonly stop: ModuleCommand & { readonly graceMs: number; readonly force: string | null }
  readonly reload: ModuleCommand | null
  readonly checkers: ReadonlyArray<CheckerSpec>
  readonly policy: PolicyConfig
}

/**
 * Checker defaults: a probe every 500 ms with a 1 s timeout, 2 failures flip it down,
 * 2 successes flip it up. A dead application is seen within about 1 s (refused connection,
 * missing process), a hung one within 2.5 s (two timed-out probes): under 3 s either way.
 */
export const CHECKER_DEFAULTS = { intervalMs: 500, timeoutMs: 1000, failures: 2, successes: 2 } as const

/** `${NAME}` is substituted; `$${NAME}` stays a literal `${NAME}` for the shell. */
const VAR = /\$?\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g

/** Substitute `${VAR}` in every string of a parsed value; an unknown var is an error at its path. */
const substitute = (
  value: unknown,
  vars: Readonly<Record<string, string>>,
  path: Array<PropertyKey>,
  onError: (path: ReadonlyArray<PropertyKey>, problem: string) => YamlError
): unknown => {
  if (typeof value === "string") {
    return value.replace(VAR, (whole: string, name: string) => {
      if (whole.startsWith("$$")) return whole.slice(1)
      if (!(name in vars)) throw onError(path, `unknown variable \${${name}} (known: ${Object.keys(vars).sort().join(", ")})`)
      return vars[name]
    })
  }
  if (Array.isArray(value)) return value.map((v, i) => substitute(v, vars, [...path, i], onError))
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) out[k] = path.length === 0 && k === "vars" ? v : substitute(v, vars, [...path, k], onError)
    return out
  }
  return value
}

const splitAddress = (a: string): { host: string; port: number } | null => {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(a)
  if (!m) return null
  const port = Number(m[3])
  return port >= 1 && port <= 65535 ? { host: m[1] ?? m[2], port } : null
}

/** Options of {@link parseModule} / {@link loadModule}. */
export interface ModuleOptions {
  /** Values for the module's vars (override its defaults; may add new ones). */
  readonly vars?: Readonly<Record<string, string>>
}

/** Parse and validate `module.yaml` text; `dir` is the module directory (commands run there). */
export const parseModule = (text: string, file: string, dir: string, options: ModuleOptions = {}): Result.Result<AppModule, YamlError> => {
  const parsed = parseYaml(text, file)
  if (Result.isFailure(parsed)) return Result.fail(parsed.failure)
  const doc = parsed.success
  const raw = doc.value as { vars?: unknown }
  const defaults = raw !== null && typeof raw === "object" && raw.vars !== null && typeof raw.vars === "object" ? (raw.vars as Record<string, unknown>) : {}
  const vars: Record<string, string> = { MODULE_DIR: dir }
  for (const [k, v] of Object.entries(defaults)) if (typeof v === "string" || typeof v === "number") vars[k] = String(v)
  for (const [k, v] of Object.entries(options.vars ?? {})) vars[k] = v
  let value: unknown
  try {
    value = substitute(doc.value, vars, [], doc.error)
  } catch (e) {
    if (e instanceof YamlError) return Result.fail(e)
    throw e
  }
  const decoded = decodeYaml(ModuleFile, doc, value)
  if (Result.isFailure(decoded)) return Result.fail(decoded.failure)
  const m = decoded.success
  const checkers: Array<CheckerSpec> = []
  const names = new Set<string>()
  for (let i = 0; i < m.checkers.length; i++) {
    const c = m.checkers[i]
    const at = (key: string) => ["checkers", i, key]
    if (names.has(c.name)) return Result.fail(doc.error(at("name"), `duplicate checker name ${c.name}`))
    names.add(c.name)
    const t: CheckerTiming = {
      name: c.name,
      intervalMs: c.intervalMs ?? CHECKER_DEFAULTS.intervalMs,
      timeoutMs: c.timeoutMs ?? CHECKER_DEFAULTS.timeoutMs,
      failures: c.failures ?? CHECKER_DEFAULTS.failures,
      successes: c.successes ?? CHECKER_DEFAULTS.successes
    }
    switch (c.type) {
      case "tcp": {
        const a = splitAddress(c.address)
        if (a === null) return Result.fail(doc.error(at("address"), `expected host:port or [v6]:port, got ${JSON.stringify(c.address)}`))
        checkers.push({ ...t, type: "tcp", ...a })
        break
      }
      case "http":
        if (c.body !== undefined) {
          try {
            new RegExp(c.body)
          } catch (e) {
            return Result.fail(doc.error(at("body"), `invalid regular expression: ${(e as Error).message}`))
          }
        }
        checkers.push({ ...t, type: "http", url: c.url, status: c.status ?? null, body: c.body ?? null })
        break
      case "process": {
        if ((c.process === undefined) === (c.regex === undefined)) return Result.fail(doc.error(["checkers", i], "a process checker needs exactly one of process (a name) or regex"))
        if (c.regex !== undefined) {
          try {
            new RegExp(c.regex)
          } catch (e) {
            return Result.fail(doc.error(at("regex"), `invalid regular expression: ${(e as Error).message}`))
          }
        }
        const atLeast = c.atLeast ?? 1
        if (c.atMost !== undefined && c.atMost < atLeast) return Result.fail(doc.error(at("atMost"), `must be at least atLeast (${atLeast})`))
        checkers.push({ ...t, type: "process", process: c.process ?? null, regex: c.regex ?? null, atLeast, atMost: c.atMost ?? null })
        break
      }
      case "command":
        checkers.push({ ...t, type: "command", command: c.command })
        break
    }
  }
  const p = m.policy ?? {}
  const policy: PolicyConfig = {
    onFailure: p.onFailure ?? DEFAULT_POLICY.onFailure,
    maxRestarts: p.maxRestarts ?? DEFAULT_POLICY.maxRestarts,
    windowMs: p.windowMs ?? DEFAULT_POLICY.windowMs,
    whenExhausted: p.whenExhausted ?? DEFAULT_POLICY.whenExhausted,
    readyTimeoutMs: p.readyTimeoutMs ?? DEFAULT_POLICY.readyTimeoutMs,
    settleMs: p.settleMs ?? DEFAULT_POLICY.settleMs,
    healIntervalMs: p.healIntervalMs ?? DEFAULT_POLICY.healIntervalMs,
    ...(p.restartGraceMs === undefined || p.restartGraceMs === 0 ? {} : { restartGraceMs: p.restartGraceMs })
  }
  return Result.succeed({
    name: m.name,
    description: m.description ?? "",
    dir,
    file,
    vars,
    start: { command: m.start.command, timeoutMs: m.start.timeoutMs ?? 30_000 },
    stop: { command: m.stop.command, timeoutMs: m.stop.timeoutMs ?? 30_000, graceMs: m.stop.graceMs ?? 5_000, force: m.stop.force ?? null },
    reload: m.reload ? { command: m.reload.command, timeoutMs: m.reload.timeoutMs ?? 30_000 } : null,
    checkers,
    policy
  })
}

/** Read and validate `DIR/module.yaml`. */
export const loadModule = (dir: string, options: ModuleOptions = {}): Effect.Effect<AppModule, YamlError> =>
  Effect.suspend(() => {
    const abs = resolve(dir)
    const file = `${abs}/module.yaml`
    let text: string
    try {
      text = readFileSync(file, "utf8")
    } catch (e) {
      return Effect.fail(new YamlError({ file, line: 0, key: "", problem: `cannot read: ${(e as Error).message}` }))
    }
    const r = parseModule(text, file, abs, options)
    return Result.isSuccess(r) ? Effect.succeed(r.success) : Effect.fail(r.failure)
  })

/** Where the shipped modules live (`packages/runtime/modules/NAME`). */
export const shippedModule = (name: "generic" | "nginx" | "apache"): string =>
  new URL(`../../modules/${name}`, import.meta.url).pathname
