/**
 * The daemon's configuration file (YAML), validated with Effect Schema. Every error names
 * the file, the line and the key, and the daemon refuses to start on any.
 */
import { existsSync, readFileSync, statSync } from "node:fs"
import { dirname, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { hostname } from "node:os"
import { Effect, Result, Schema } from "effect"
import { decodeYaml, parseYaml, parseYamlAll, YamlError, yamlIssues } from "./yamlSchema.ts"
import { Vip } from "@vipfarm/domain"
import { defaultTiming } from "./controller/types.ts"
import { parseModule } from "./app/module.ts"

/** A NATS server URL. */
const NatsUrl = Schema.String.check(Schema.isPattern(/^(nats|tls|ws|wss):\/\/[^\s/]+$/))

const Millis = (min: number, max: number) => Schema.Int.check(Schema.isBetween({ minimum: min, maximum: max }))

/** The configuration file, as written. */
export const ConfigFile = Schema.Struct({
  farm: Schema.String.check(Schema.isPattern(/^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/)),
  node: Schema.optionalKey(Schema.String.check(Schema.isPattern(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/))),
  interface: Schema.String.check(Schema.isPattern(/^[A-Za-z0-9._@-]{1,15}$/)),
  weight: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 10000 }))),
  priority: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1000000 }))),
  nats: Schema.Struct({
    servers: Schema.NonEmptyArray(NatsUrl),
    credentials: Schema.optionalKey(Schema.String),
    /** User/password authentication (nats-server `authorization { users = [...] }`): the user ... */
    user: Schema.optionalKey(Schema.String.check(Schema.isMinLength(1))),
    /** ... and a file holding its password (first line; keep it mode 0600), so the config file holds no secret. */
    passwordFile: Schema.optionalKey(Schema.String.check(Schema.isMinLength(1)))
  }),
  control: Schema.optionalKey(Schema.String),
  /** Names of heartbeat-only witnesses that count towards the quorum (a 2-server farm needs one). */
  witnesses: Schema.optionalKey(Schema.Array(Schema.String)),
  lease: Schema.optionalKey(Schema.Struct({
    heartbeatMs: Schema.optionalKey(Millis(10, 5000)),
    fenceAfterMs: Schema.optionalKey(Millis(50, 60000)),
    expireAfterMs: Schema.optionalKey(Millis(60, 120000))
  })),
  handoff: Schema.optionalKey(Schema.Struct({ maxMs: Schema.optionalKey(Millis(0, 3600000)) })),
  /** XDP attach mode: native (driver), generic (skb; needed on veth, where native XDP cannot make a rewritten frame the host's), or auto (native, else generic). */
  /** The application this server runs: a module directory (or a shipped one: generic, nginx, apache) and its vars. */
  app: Schema.optionalKey(Schema.Struct({
    module: Schema.String,
    vars: Schema.optionalKey(Schema.Record(Schema.String, Schema.String))
  })),
  xdp: Schema.optionalKey(Schema.Struct({ mode: Schema.optionalKey(Schema.Literals(["auto", "native", "generic"])) })),
  /** Prometheus metrics at http://LISTEN/metrics (off when absent). */
  metrics: Schema.optionalKey(Schema.Struct({ listen: Schema.String.check(Schema.isPattern(/^(\[[0-9a-fA-F:.]+\]|[^\s:\[\]]+):\d{1,5}$/)) })),
  /** `farm restart` / SIGUSR2: the peers hold this server's share for holdMs while the daemon restarts (the filter keeps serving). */
  restart: Schema.optionalKey(Schema.Struct({ holdMs: Schema.optionalKey(Millis(1000, 120000)) })),
  vips: Schema.Array(Vip)
})
/** The configuration file, as written. */
export type ConfigFile = typeof ConfigFile.Type

/** The configuration with every default filled in. */
export interface Config {
  readonly file: string
  readonly farm: string
  readonly node: string
  readonly interface: string
  readonly weight: number
  readonly priority: number
  readonly nats: {
    readonly servers: ReadonlyArray<string>
    readonly credentials: string | null
    /** User/password authentication: both set, or neither. */
    readonly user: string | null
    readonly passwordFile: string | null
  }
  readonly control: string
  readonly witnesses: ReadonlyArray<string>
  readonly lease: { readonly heartbeatMs: number; readonly fenceAfterMs: number; readonly expireAfterMs: number }
  /** `handoff.maxMs`: the operator's cap on a hand-off waiting for flows (they are reset then); null: no cap. */
  readonly handoffMaxMs: number | null
  readonly xdpMode: "auto" | "native" | "generic"
  /** The application module (directory resolved), or null: the server is healthy as soon as it runs. */
  readonly app: { readonly module: string; readonly vars: Readonly<Record<string, string>> } | null
  readonly vips: ConfigFile["vips"]
  /** Prometheus endpoint (`host:port`), or null: no metrics. */
  readonly metrics: { readonly listen: string } | null
  /** Keep-serving restarts: how long the peers hold this server's share while it restarts. */
  readonly restart: { readonly holdMs: number }
}

/** A configuration problem: file, line and key, and what is wrong (the shared YAML error). */
export const ConfigError = YamlError
/** A configuration problem: file, line and key, and what is wrong. */
export type ConfigError = YamlError

/** Shipped modules by name; other values are directories, relative to the config file. */
const moduleDir = (module: string, file: string): string => {
  if (/^[a-z]+$/.test(module)) return fileURLToPath(new URL(`../modules/${module}`, import.meta.url))
  return resolve(dirname(file), module)
}

/** The modules shipped with vipfarm (`app.module: NAME`). */
const SHIPPED = ["apache", "generic", "nginx"]

/**
 * The configured application module, checked as the daemon will load it: `app.module` names a
 * shipped module or a directory holding `module.yaml`, and that file is valid with the
 * configured vars. A problem with `app.module` itself names the config file's line; one inside
 * `module.yaml` names that file's line and key. Reads files; touches nothing.
 */
export const appModuleErrors = (config: Config, text: string): Array<ConfigError> => {
  if (config.app === null) return []
  const doc = parseYaml(text, config.file)
  const at = (problem: string) =>
    new ConfigError({ file: config.file, line: Result.isSuccess(doc) ? doc.success.lineOf(["app", "module"]) : 1, key: "app.module", problem })
  const written = Result.isSuccess(doc) ? String((doc.success.value as { app?: { module?: unknown } }).app?.module ?? "") : ""
  const dir = config.app.module
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    return [at(/^[a-z]+$/.test(written)
      ? `no shipped module ${JSON.stringify(written)} (shipped: ${SHIPPED.join(", ")}); a module of your own is a directory: write a path, e.g. ./${written}`
      : `no module directory ${dir}`)]
  }
  const file = `${dir}/module.yaml`
  let moduleText: string
  try {
    moduleText = readFileSync(file, "utf8")
  } catch (e) {
    return [at(`${dir} holds no readable module.yaml (${(e as Error).message})`)]
  }
  const m = parseModule(moduleText, file, dir, { vars: config.app.vars })
  return Result.isFailure(m) ? [m.failure] : []
}

/**
 * Every YAML and schema error of configuration text (empty when it decodes), in file order;
 * `farm config check` shows them all, {@link parseConfig} the first.
 */
export const configErrors = (text: string, file: string): Array<ConfigError> => {
  const doc = parseYamlAll(text, file)
  return Result.isFailure(doc) ? doc.failure : yamlIssues(ConfigFile, doc.success)
}

/**
 * Every problem of configuration text: all YAML and schema errors, or, when the text decodes,
 * the checks across keys (the first failing one). Empty when the config is valid.
 */
export const checkConfig = (text: string, file: string): Array<ConfigError> => {
  const errors = configErrors(text, file)
  if (errors.length > 0) return errors
  const r = parseConfig(text, file)
  return Result.isFailure(r) ? [r.failure] : appModuleErrors(r.success, text)
}

/** Parse and validate configuration text; `file` is used in error messages only. */
export const parseConfig = (text: string, file: string): Result.Result<Config, ConfigError> => {
  const parsed = parseYaml(text, file)
  if (Result.isFailure(parsed)) return Result.fail(parsed.failure)
  const doc = parsed.success
  const lineOf = doc.lineOf
  const decoded = decodeYaml(ConfigFile, doc)
  if (Result.isFailure(decoded)) return Result.fail(decoded.failure)
  const c = decoded.success
  const lease = {
    heartbeatMs: c.lease?.heartbeatMs ?? defaultTiming.heartbeatMs,
    fenceAfterMs: c.lease?.fenceAfterMs ?? defaultTiming.fenceAfterMs,
    expireAfterMs: c.lease?.expireAfterMs ?? defaultTiming.expireAfterMs
  }
  if (lease.expireAfterMs < lease.fenceAfterMs + lease.heartbeatMs) {
    return Result.fail(new ConfigError({
      file, line: lineOf(["lease", "expireAfterMs"]), key: "lease.expireAfterMs",
      problem: `must be at least fenceAfterMs + heartbeatMs (${lease.fenceAfterMs + lease.heartbeatMs}) so a cut-off server fences before its buckets are taken`
    }))
  }
  if ((c.nats.user === undefined) !== (c.nats.passwordFile === undefined)) {
    const key = c.nats.user === undefined ? "passwordFile" : "user"
    return Result.fail(new ConfigError({ file, line: lineOf(["nats", key]), key: `nats.${key}`, problem: `needs nats.${key === "user" ? "passwordFile" : "user"} as well` }))
  }
  if (c.nats.user !== undefined && c.nats.credentials !== undefined) {
    return Result.fail(new ConfigError({ file, line: lineOf(["nats", "user"]), key: "nats.user", problem: "use either nats.credentials or nats.user/passwordFile, not both" }))
  }
  return Result.succeed({
    file,
    farm: c.farm,
    node: c.node ?? hostname().split(".")[0],
    interface: c.interface,
    weight: c.weight ?? 100,
    priority: c.priority ?? 100,
    nats: {
      servers: c.nats.servers, credentials: c.nats.credentials ?? null,
      user: c.nats.user ?? null, passwordFile: c.nats.passwordFile === undefined ? null : resolve(dirname(file), c.nats.passwordFile)
    },
    control: c.control ?? `/run/vipfarm/${c.farm}.sock`,
    witnesses: c.witnesses ?? [],
    lease,
    handoffMaxMs: c.handoff?.maxMs ?? null,
    xdpMode: c.xdp?.mode ?? "auto",
    app: c.app === undefined ? null : { module: moduleDir(c.app.module, file), vars: c.app.vars ?? {} },
    vips: c.vips,
    metrics: c.metrics === undefined ? null : { listen: c.metrics.listen },
    restart: { holdMs: c.restart?.holdMs ?? 10000 }
  })
}

/**
 * Read and validate a configuration file, its application module included (the daemon refuses
 * to start on any error). `checkApp: false` skips the module (a client that only needs the
 * socket path or the NATS settings must work while a module is being edited).
 */
export const loadConfig = (file: string, options: { readonly checkApp?: boolean } = {}): Effect.Effect<Config, ConfigError> =>
  Effect.suspend(() => {
    let text: string
    try {
      text = readFileSync(file, "utf8")
    } catch (e) {
      return Effect.fail(new YamlError({ file, line: 0, key: "", problem: `cannot read: ${(e as Error).message}` }))
    }
    const r = parseConfig(text, file)
    if (Result.isFailure(r)) return Effect.fail(r.failure)
    const app = options.checkApp === false ? [] : appModuleErrors(r.success, text)
    return app.length > 0 ? Effect.fail(app[0]) : Effect.succeed(r.success)
  })
