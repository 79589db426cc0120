/**
 * The daemon's configuration file (YAML), validated with Effect Schema. Every error names
 * the file, the line and the key, and the daemon refuses to start on any.
 */
import { existsSync, readFileSync, statSync } from "node:fs"
import { dirname, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { hostname } from "node:os"
import { Effect, Result, Schema } from "effect"
import { decodeUtf8, decodeYaml, parseYaml, parseYamlAll, YamlError, yamlIssues } from "./yamlSchema.ts"
import { Rule, Vip } from "@vipfarm/domain"
import { defaultTiming } from "./controller/types.ts"
import { parseModule } from "./app/module.ts"

/** A NATS server URL. */
const NatsUrl = Schema.String.check(Schema.isPattern(/^(nats|tls|ws|wss):\/\/[^\s/]+$/u)).annotate({
  description: "A NATS server URL: nats://, tls://, ws:// or wss://, host and port.", examples: ["nats://10.0.0.11:4222"]
})

const Millis = (min: number, max: number) => Schema.Int.check(Schema.isBetween({ minimum: min, maximum: max }))

/** A port rule as the config file writes it: the domain's rule, documented, and with at least one port. */
const ConfigRule = Rule.mapFields((f) => ({
  proto: f.proto.annotate({ description: "The rule's protocol." }),
  ports: f.ports.check(Schema.isMinLength(1, { message: "a rule needs at least one port (\"*\" for every port)" })).annotate({
    description: "The ports the rule covers: numbers, \"lo-hi\" ranges (inclusive), or \"*\" for every port; at least one.",
    examples: [[80, 443], ["5000-5100"], ["*"]]
  }),
  affinity: f.affinity.annotate({
    description: "What keeps going to one server: client-ip (a client's every connection; stateful services), client-ip-port (each connection on its own; stateless), client-network (a /24 or /48 stays together), symmetric-pair (both directions of a flow; firewalls), per-packet (stateless UDP)."
  }),
  mode: Schema.optionalKey(f.mode.schema.annotate({
    description: "multi-host: the rule's buckets are shared by weight; single-host: all on the live server of lowest priority number (a hot standby).",
    default: "multi-host"
  }))
}))

/** A virtual IP as the config file writes it (the domain's Vip, documented). */
const ConfigVip = Vip.mapFields((f) => ({
  // annotations of a checked schema go on its last check; the address check has no JSON Schema
  // form, so it declares an open approximation, else JSON Schema export drops the description
  address: f.address.annotate({ description: "The virtual IP, IPv4 or IPv6; every server holds it on lo.", examples: ["192.0.2.100", "2001:db8::100"], toJsonSchema: () => [{}, true] }),
  rules: Schema.Array(ConfigRule).annotate({ description: "The VIP's port rules; packets no rule matches are dropped." })
}))

/** The configuration file, as written. */
export const ConfigFile = Schema.Struct({
  farm: Schema.String.check(Schema.isPattern(/^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/u)).annotate({
    description: "The farm's name, the same on every server: it names the NATS stream and seeds the hash and the virtual MAC.", examples: ["web"]
  }),
  node: Schema.optionalKey(Schema.String.check(Schema.isPattern(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/u)).annotate({
    description: "This server's name in the farm, unique in it.", default: "the host name up to its first dot", examples: ["s1"]
  })),
  interface: Schema.String.check(Schema.isPattern(/^[A-Za-z0-9._@-]{1,15}$/u)).annotate({
    description: "The farm interface: where VIP traffic arrives and the XDP filter is attached.", examples: ["eth0"]
  }),
  weight: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 10000 })).annotate({
    description: "This server's share of the multi-host rules' buckets, relative to the others' weights (0: none).", default: 100
  })),
  priority: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1000000 })).annotate({
    description: "Single-host rules go to the live server of lowest priority number (1 is the highest priority; ties by name).", default: 100
  })),
  nats: Schema.Struct({
    servers: Schema.NonEmptyArray(NatsUrl).annotate({ description: "The NATS cluster (JetStream) holding the farm's event log: one or more of its servers.", examples: [["nats://10.0.0.11:4222", "nats://10.0.0.12:4222", "nats://10.0.0.13:4222"]] }),
    credentials: Schema.optionalKey(Schema.String.annotate({ description: "A NATS credentials file (JWT and nkey seed, decentralised auth); not with user/passwordFile.", examples: ["/etc/vipfarm/s1.creds"] })),
    /** User/password authentication (nats-server `authorization { users = [...] }`): the user ... */
    user: Schema.optionalKey(Schema.String.check(Schema.isMinLength(1)).annotate({ description: "User/password authentication (nats-server authorization { users = [...] }): the user; needs passwordFile.", examples: ["s1"] })),
    /** ... and a file holding its password (first line; keep it mode 0600), so the config file holds no secret. */
    passwordFile: Schema.optionalKey(Schema.String.check(Schema.isMinLength(1)).annotate({ description: "The file holding the user's password (first line; keep it mode 0600), relative to the config file, so the config holds no secret; needs user.", examples: ["/etc/vipfarm/nats-password"] })),
    insecure: Schema.optionalKey(Schema.Boolean.annotate({
      description: "Run against a NATS server that requires no authentication (the daemon and farm witness refuse to otherwise: any host reaching NATS could write the log). For labs and tests.", default: false
    })),
    tls: Schema.optionalKey(Schema.Struct({
      ca: Schema.optionalKey(Schema.String.check(Schema.isMinLength(1)).annotate({ description: "CA bundle (PEM) that verifies the NATS servers' certificates.", examples: ["/etc/vipfarm/nats-ca.pem"] })),
      cert: Schema.optionalKey(Schema.String.check(Schema.isMinLength(1)).annotate({ description: "This server's client certificate (PEM).", examples: ["/etc/vipfarm/s1.pem"] })),
      key: Schema.optionalKey(Schema.String.check(Schema.isMinLength(1)).annotate({ description: "The client certificate's private key (PEM).", examples: ["/etc/vipfarm/s1-key.pem"] }))
    }).annotate({ description: "TLS to NATS; file paths relative to the config file." }))
  }).annotate({ description: "How the daemon reaches the farm's event log." }),
  control: Schema.optionalKey(Schema.String.annotate({
    description: "The local control socket (farm status, drain, resume, restart, events).", default: "/run/vipfarm/FARM.sock"
  })),
  /** Names of heartbeat-only witnesses that count towards the quorum (a 2-server farm needs one). */
  witnesses: Schema.optionalKey(Schema.Array(Schema.String).annotate({
    description: "Names of heartbeat-only witnesses (farm witness) that count towards the quorum; a 2-server farm needs one.", default: [], examples: [["w1"]]
  })),
  lease: Schema.optionalKey(Schema.Struct({
    heartbeatMs: Schema.optionalKey(Millis(10, 5000).annotate({ description: "How often each server sends its heartbeat and renews its lease (ms).", default: defaultTiming.heartbeatMs })),
    fenceAfterMs: Schema.optionalKey(Millis(50, 60000).annotate({
      description: "A server that has not renewed its lease for this long (cut off from the quorum) stops serving VIP traffic: it fences itself (ms).", default: defaultTiming.fenceAfterMs
    })),
    expireAfterMs: Schema.optionalKey(Millis(60, 120000).annotate({
      description: "A peer silent for this long has failed: the others take its buckets over (ms); at least fenceAfterMs + heartbeatMs, so it has fenced first.",
      default: defaultTiming.expireAfterMs
    }))
  }).annotate({ description: "Failure detection: the same on every server." })),
  handoff: Schema.optionalKey(Schema.Struct({
    maxMs: Schema.optionalKey(Millis(0, 3600000).annotate({
      description: "An operator's cap on how long a graceful hand-off waits for the old owner's flows (ms): at the cap the bucket moves and those flows are reset. Absent: no cap, the bucket stays moving while the old owner still holds flows in it.",
      examples: [600000]
    }))
  }).annotate({ description: "Graceful hand-offs (join, drain, rejoin): a bucket moves once its old owner holds no flows in it." })),
  /** The application this server runs: a module directory (or a shipped one: generic, nginx, apache) and its vars. */
  app: Schema.optionalKey(Schema.Struct({
    module: Schema.String.annotate({
      description: "A shipped module (generic, nginx, apache) or a directory holding module.yaml, relative to the config file.", examples: ["nginx", "./shop"]
    }),
    vars: Schema.optionalKey(Schema.Record(Schema.String, Schema.String).annotate({
      description: "Values for the module's ${VAR}s, overriding its defaults.", default: {}, examples: [{ HTTP_URL: "http://127.0.0.1/health" }]
    }))
  }).annotate({ description: "The application this server balances, supervised through its module: the server takes buckets only while every checker passes." })),
  xdp: Schema.optionalKey(Schema.Struct({
    mode: Schema.optionalKey(Schema.Literals(["auto", "native", "generic"]).annotate({
      description: "auto: native, but generic on interfaces where native XDP cannot deliver a rewritten frame (veth, ...); native: refused where it cannot work; generic: skb mode.",
      default: "auto"
    }))
  }).annotate({ description: "How the XDP filter is attached." })),
  /** Prometheus metrics at http://LISTEN/metrics (off when absent). */
  metrics: Schema.optionalKey(Schema.Struct({
    listen: Schema.String.check(Schema.isPattern(/^(\[[0-9a-fA-F:.]+\]|[^\s:\[\]]+):\d{1,5}$/u)).annotate({
      description: "host:port (IPv6 as [addr]:port) to serve Prometheus metrics on, at /metrics.", examples: ["127.0.0.1:9469", "[::1]:9469"]
    })
  }).annotate({ description: "Prometheus metrics at http://LISTEN/metrics; off when absent." })),
  /** `farm restart` / SIGUSR2: the peers hold this server's share for holdMs while the daemon restarts (the filter keeps serving). */
  restart: Schema.optionalKey(Schema.Struct({
    holdMs: Schema.optionalKey(Millis(1000, 120000).annotate({
      description: "How long the peers hold this server's share while its daemon restarts (ms); the filter keeps serving meanwhile.", default: 10000
    }))
  }).annotate({ description: "Keep-serving restarts (farm restart, SIGUSR2)." })),
  signing: Schema.optionalKey(Schema.Struct({
    key: Schema.optionalKey(Schema.String.check(Schema.isMinLength(1)).annotate({
      description: "This server's Ed25519 private key (PEM file, made by farm keygen; mode 0600), relative to the config file: every record it appends is signed with it.", examples: ["/etc/vipfarm/s1.key"]
    })),
    keys: Schema.optionalKey(Schema.Record(Schema.String.check(Schema.isPattern(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/u)), Schema.String.check(Schema.isMinLength(1))).annotate({
      description: "Every server's (and witness's) public key by name (PEM or base64 SPKI). With keys set, an unsigned or wrongly signed record, or one speaking for another server, is rejected by every folder."
    }))
  }).annotate({ description: "Signed records (docs/security.md)." })),
  vips: Schema.Array(ConfigVip).annotate({ description: "The farm's virtual IPs and their rules, the same on every server." })
}).annotate({
  title: "vipfarm configuration",
  description: "The vipfarm daemon's configuration file (/etc/vipfarm/farm.yaml): one per server."
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
    /** Accept a NATS server without authentication. */
    readonly insecure: boolean
    /** TLS files (resolved), each null when not set. */
    readonly tls: { readonly ca: string | null; readonly cert: string | null; readonly key: string | null }
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
  /** Signing: this server's private key file (resolved) or null, and every server's public key (empty: the farm does not sign). */
  readonly signing: { readonly key: string | null; readonly keys: Readonly<Record<string, string>> }
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
  let moduleBytes: Uint8Array
  try {
    moduleBytes = readFileSync(file)
  } catch (e) {
    return [at(`${dir} holds no readable module.yaml (${(e as Error).message})`)]
  }
  const moduleText = decodeUtf8(moduleBytes, file)
  if (Result.isFailure(moduleText)) return [moduleText.failure]
  const m = parseModule(moduleText.success, file, dir, { vars: config.app.vars })
  return Result.isFailure(m) ? [m.failure] : []
}

/** A config file's contents: its bytes (decoded strictly as UTF-8) or text already decoded. */
export type ConfigText = string | Uint8Array

const textOf = (content: ConfigText, file: string): Result.Result<string, ConfigError> =>
  typeof content === "string" ? Result.succeed(content) : decodeUtf8(content, file)

/**
 * Every YAML and schema error of configuration text (empty when it decodes), in file order;
 * `farm config check` shows them all, {@link parseConfig} the first.
 */
export const configErrors = (content: ConfigText, file: string): Array<ConfigError> => {
  const text = textOf(content, file)
  if (Result.isFailure(text)) return [text.failure]
  const doc = parseYamlAll(text.success, file)
  return Result.isFailure(doc) ? doc.failure : yamlIssues(ConfigFile, doc.success)
}

/**
 * Every problem of configuration text: all YAML and schema errors, or, when the text decodes,
 * the checks across keys (the first failing one). Empty when the config is valid.
 */
export const checkConfig = (content: ConfigText, file: string): Array<ConfigError> => {
  const text = textOf(content, file)
  if (Result.isFailure(text)) return [text.failure]
  const errors = configErrors(text.success, file)
  if (errors.length > 0) return errors
  const r = parseConfig(text.success, file)
  return Result.isFailure(r) ? [r.failure] : appModuleErrors(r.success, text.success)
}

/** A path of the config file, resolved against its directory (null when not set). */
const rel = (file: string, p: string | undefined): string | null => (p === undefined ? null : resolve(dirname(file), p))

/** Parse and validate configuration text; `file` is used in error messages only. */
export const parseConfig = (content: ConfigText, file: string): Result.Result<Config, ConfigError> => {
  const text = textOf(content, file)
  if (Result.isFailure(text)) return Result.fail(text.failure)
  const parsed = parseYaml(text.success, file)
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
      user: c.nats.user ?? null, passwordFile: c.nats.passwordFile === undefined ? null : resolve(dirname(file), c.nats.passwordFile),
      insecure: c.nats.insecure ?? false,
      tls: { ca: rel(file, c.nats.tls?.ca), cert: rel(file, c.nats.tls?.cert), key: rel(file, c.nats.tls?.key) }
    },
    control: c.control ?? `/run/vipfarm/${c.farm}.sock`,
    witnesses: c.witnesses ?? [],
    lease,
    handoffMaxMs: c.handoff?.maxMs ?? null,
    xdpMode: c.xdp?.mode ?? "auto",
    app: c.app === undefined ? null : { module: moduleDir(c.app.module, file), vars: c.app.vars ?? {} },
    vips: c.vips,
    metrics: c.metrics === undefined ? null : { listen: c.metrics.listen },
    restart: { holdMs: c.restart?.holdMs ?? 10000 },
    signing: { key: rel(file, c.signing?.key), keys: c.signing?.keys ?? {} }
  })
}

/**
 * Read and validate a configuration file, its application module included (the daemon refuses
 * to start on any error). `checkApp: false` skips the module (a client that only needs the
 * socket path or the NATS settings must work while a module is being edited).
 */
export const loadConfig = (file: string, options: { readonly checkApp?: boolean } = {}): Effect.Effect<Config, ConfigError> =>
  Effect.suspend(() => {
    let bytes: Uint8Array
    try {
      bytes = readFileSync(file)
    } catch (e) {
      return Effect.fail(new YamlError({ file, line: 0, key: "", problem: `cannot read: ${(e as Error).message}` }))
    }
    const text = decodeUtf8(bytes, file)
    if (Result.isFailure(text)) return Effect.fail(text.failure)
    const r = parseConfig(text.success, file)
    if (Result.isFailure(r)) return Effect.fail(r.failure)
    const app = options.checkApp === false ? [] : appModuleErrors(r.success, text.success)
    return app.length > 0 ? Effect.fail(app[0]) : Effect.succeed(r.success)
  })
