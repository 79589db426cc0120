/**
 * `farm lab`: a real farm in network namespaces on one machine. A switch namespace with
 * a bridge; N server namespaces, each with a veth on the bridge, an address, a node of the
 * farm's NATS cluster, a `farm daemon` and an application; M client namespaces with many
 * addresses. Addresses come from 198.18.0.0/15; nothing leaves the namespaces.
 */
import { spawn, spawnSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { Effect, Schema } from "effect"
import { createHost, createSwitch, listNamespaces, nsRun, removeNamespaces, setLink } from "./netns.ts"
import { LAB_ENV, labProcesses, OWNER_ENV } from "./leftovers.ts"
import { runAttached } from "../hostNet.ts"
import { log } from "../log.ts"

export * from "./leftovers.ts"

/** A lab operation failed. */
export class LabError extends Schema.TaggedError<LabError>()("LabError", { op: Schema.String, message: Schema.String }) {}

/** Where labs keep their state, configs and logs. */
export const LAB_ROOT = "/run/vipfarm-lab"

/** The namespace prefix of a lab. */
export const labPrefix = (name: string) => `vf-${name}-`

/** A lab server. */
export interface LabServer {
  readonly node: string
  readonly ns: string
  readonly port: string
  readonly address: string
  readonly mac: string
  readonly config: string
  readonly control: string
}

/** A lab client namespace and its addresses. */
export interface LabClient {
  readonly node: string
  readonly ns: string
  readonly port: string
  readonly addresses: ReadonlyArray<string>
}

/** What `farm lab up` built; saved as state.json in the lab's directory. */
export interface LabState {
  readonly name: string
  readonly dir: string
  readonly switchNs: string
  readonly vip: string
  readonly servers: ReadonlyArray<LabServer>
  readonly clients: ReadonlyArray<LabClient>
  readonly app: "builtin" | "nginx" | "apache"
  /**
   * The process that owns the lab when it was built under a test run (`VIPFARM_LAB_OWNER`):
   * a lab whose owner is gone was left by a crashed run and may be removed.
   */
  readonly owner?: number
}

/** Options of `farm lab up`. */
export interface LabOptions {
  readonly name: string
  readonly servers: number
  readonly clients: number
  /** Addresses per client namespace. */
  readonly addressesPerClient: number
  readonly app: "builtin" | "nginx" | "apache"
  /** Start `farm daemon` on each server (the tests of the lab itself may not). */
  readonly daemons: boolean
  /** Extra YAML appended to every server's config (weights, lease timings, ...). */
  readonly extraConfig?: (node: string, index: number) => string
  /**
   * Run the lab's NATS with user/password authorization: every server gets its own user (its
   * node name) and a random password, written to `DIR/NODE.pass` (mode 0600) and named by
   * its config (`nats.user`, `nats.passwordFile`). Servers in `wrongPassword` get a file with
   * a password NATS does not know (a server without valid credentials).
   */
  readonly natsAuth?: { readonly wrongPassword?: ReadonlyArray<string> }
  /** How many servers (the first ones) run a node of the NATS cluster (default: all). */
  readonly natsNodes?: number
  /** With `app: "nginx"` or `"apache"`: the module (a shipped name or a directory) instead of the shipped one. */
  readonly appModule?: string
  /**
   * Add a witness host `w1` (198.18.0.9): a node of the NATS cluster and `farm witness`, a
   * heartbeat-only voter. A 2-server farm needs one (default: on for 2 servers, off otherwise).
   */
  readonly witness?: boolean
}

const ROOT = fileURLToPath(new URL("../../../../", import.meta.url))
const FARM_BIN = `${ROOT}packages/cli/bin/farm.mjs`
const APP = `${ROOT}packages/runtime/src/lab/app.mjs`
/**
 * How the lab starts `farm`: the checkout's (this build's) command, or the one `VIPFARM_FARM_BIN`
 * names (e.g. the installed /usr/bin/farm, run as it is: the package test serves a lab with it).
 */
const farmArgv = (): Array<string> => (process.env.VIPFARM_FARM_BIN ? [process.env.VIPFARM_FARM_BIN] : [process.execPath, FARM_BIN])

const mac = (kind: number, i: number) => `02:42:c6:12:${kind.toString(16).padStart(2, "0")}:${i.toString(16).padStart(2, "0")}`

/** The lab a namespace belongs to (`vf-NAME-...`), or null. */
const labOfNamespace = (ns: string): string | null => /^vf-([a-z0-9]+)-/.exec(ns)?.[1] ?? null

/**
 * Start a detached process inside a namespace; its output goes to `logFile`. Returns its pid.
 * In a lab's namespace it carries `VIPFARM_LAB=NAME` (its children too), so that it is found
 * again after a crash (see {@link labProcesses}).
 */
export const spawnInNs = (ns: string, argv: ReadonlyArray<string>, logFile: string): number => {
  const fd = openSync(logFile, "a")
  const lab = labOfNamespace(ns)
  const env = lab === null ? process.env : { ...process.env, [LAB_ENV]: lab }
  const child = spawn("ip", ["netns", "exec", ns, ...argv], { detached: true, stdio: ["ignore", fd, fd], env })
  closeSync(fd)
  child.unref()
  return child.pid ?? -1
}

const waitPort = (host: string, port: number, ns: string, timeoutMs: number) =>
  Effect.tryPromise({
    try: async () => {
      const deadline = Date.now() + timeoutMs
      while (Date.now() < deadline) {
        const r = spawnSync("ip", ["netns", "exec", ns, "bash", "-c", `exec 3<>/dev/tcp/${host}/${port}`], { stdio: "ignore" })
        if (r.status === 0) return
        await new Promise((res) => setTimeout(res, 100))
      }
      throw new Error(`${host}:${port} in ${ns} did not open within ${timeoutMs} ms`)
    },
    catch: (e) => new LabError({ op: "wait-port", message: (e as Error).message })
  })

const natsConfig = (s: LabServer, all: ReadonlyArray<LabServer>, dir: string, users: ReadonlyArray<{ user: string; password: string }> | null) => {
  const routes = all.filter((o) => o.node !== s.node).map((o) => `nats-route://${o.address}:6222`)
  return [
    `server_name: ${s.node}`,
    `listen: ${s.address}:4222`,
    `jetstream { store_dir: "${dir}/${s.node}-js" }`,
    all.length > 1 ? `cluster { name: lab, listen: ${s.address}:6222, routes: [${routes.join(", ")}] }` : "",
    users === null ? "" : `authorization { users = [\n${users.map((u) => `  {user: "${u.user}", password: "${u.password}"}`).join("\n")}\n] }`,
    ""
  ].join("\n")
}

/** An nginx configuration for a lab server: answers every request with the server's name. */
const nginxConfig = (s: LabServer, dir: string) => `# vipfarm lab: nginx of ${s.node}
pid ${dir}/${s.node}-nginx.pid;
error_log ${dir}/${s.node}-nginx.error.log;
worker_processes 1;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path ${dir}/${s.node}-nginx-tmp;
  server {
    listen 80;
    location / { default_type text/plain; add_header X-Server ${s.node}; return 200 "${s.node}\\n"; }
  }
}
`

const APACHE_MODS = "/usr/lib/apache2/modules"

/**
 * An apache2 configuration for a lab server (its own ServerRoot, pid file, logs and runtime
 * dir under the lab's directory; never the system service's): serves `DIR/NODE-www`, whose
 * index.html holds the server's name.
 */
const apacheConfig = (s: LabServer, dir: string) => `# vipfarm lab: apache2 of ${s.node}
ServerRoot ${dir}
ServerName ${s.node}
Listen 80
PidFile ${dir}/${s.node}-apache.pid
ErrorLog ${dir}/${s.node}-apache.error.log
DefaultRuntimeDir ${dir}/${s.node}-apache-run
Mutex file:${dir}/${s.node}-apache-run default
User nobody
Group nogroup
LoadModule mpm_event_module ${APACHE_MODS}/mod_mpm_event.so
LoadModule authz_core_module ${APACHE_MODS}/mod_authz_core.so
LoadModule dir_module ${APACHE_MODS}/mod_dir.so
StartServers 1
ServerLimit 2
ThreadsPerChild 16
MaxRequestWorkers 32
KeepAlive Off
DocumentRoot ${dir}/${s.node}-www
DirectoryIndex index.html
<Directory ${dir}/${s.node}-www>
  Require all granted
</Directory>
`

/** Write a lab server's apache2 configuration, document root and runtime dir. */
const writeApache = (s: LabServer, dir: string) => {
  mkdirSync(`${dir}/${s.node}-www`, { recursive: true, mode: 0o755 })
  mkdirSync(`${dir}/${s.node}-apache-run`, { recursive: true })
  writeFileSync(`${dir}/${s.node}-www/index.html`, `${s.node}\n`, { mode: 0o644 })
  writeFileSync(`${dir}/${s.node}-apache.conf`, apacheConfig(s, dir))
}

/** `nats` holds the servers that run a NATS node: this server's own first, when it runs one. */
const farmConfig = (o: LabOptions, s: LabServer, nats: ReadonlyArray<LabServer>, vip: string, i: number, dir: string) =>
  [
    `farm: ${o.name}`,
    `node: ${s.node}`,
    `interface: eth0`,
    `nats:`,
    `  servers: [${[...nats.filter((x) => x === s), ...nats.filter((x) => x !== s)].map((x) => `nats://${x.address}:4222`).join(", ")}]`,
    ...(o.natsAuth ? [`  user: ${s.node}`, `  passwordFile: ${dir}/${s.node}.pass`] : [`  insecure: true   # the lab's NATS has no users unless natsAuth (docs/security.md)`]),
    `control: ${s.control}`,
    ...(withWitness(o) ? [`witnesses: [w1]`] : []),
    `vips:`,
    `  - address: ${vip}`,
    `    rules:`,
    `      - {proto: tcp, ports: [80, 7000], affinity: client-ip}`,
    `      - {proto: udp, ports: [5300], affinity: client-ip-port}`,
    ...(o.app === "nginx"
      ? [`app:`, `  module: ${o.appModule ?? "nginx"}`, `  vars: {NGINX_CONF: ${s.config.replace(/\.yaml$/, "-nginx.conf")}, NGINX_PID: ${s.config.replace(/\.yaml$/, "-nginx.pid")}, HTTP_URL: "http://127.0.0.1/"}`]
      : []),
    ...(o.app === "apache"
      ? [
        `app:`,
        `  module: ${o.appModule ?? "apache"}`,
        `  vars: {APACHE_CONF: ${dir}/${s.node}-apache.conf, APACHE_PID: ${dir}/${s.node}-apache.pid, APACHE_ENVVARS: /nonexistent, HTTP_URL: "http://127.0.0.1/"}`
      ]
      : []),
    o.extraConfig?.(s.node, i) ?? "",
    ""
  ].join("\n")

/** Whether a lab gets a witness host. */
const withWitness = (o: LabOptions): boolean => o.witness ?? o.servers === 2

/** Read a lab's saved state. */
export const readLab = (name: string): Effect.Effect<LabState, LabError> =>
  Effect.try({
    try: () => JSON.parse(readFileSync(`${LAB_ROOT}/${name}/state.json`, "utf8")) as LabState,
    catch: () => new LabError({ op: "read", message: `no lab named ${name} (run: farm lab up --name ${name})` })
  })

/** Build a lab. Anything left from an earlier lab of the same name is removed first. */
export const labUp = (o: LabOptions): Effect.Effect<LabState, LabError> =>
  Effect.gen(function* () {
    if (!/^[a-z0-9]{1,8}$/.test(o.name)) return yield* new LabError({ op: "up", message: `name: 1 to 8 lower-case letters or digits, got "${o.name}"` })
    if (o.servers < 1 || o.servers > 32) return yield* new LabError({ op: "up", message: `servers: 1 to 32, got ${o.servers}` })
    if (o.clients < 0 || o.clients > 16) return yield* new LabError({ op: "up", message: `clients: 0 to 16, got ${o.clients}` })
    labDown(o.name)
    const dir = `${LAB_ROOT}/${o.name}`
    mkdirSync(dir, { recursive: true })
    const prefix = labPrefix(o.name)
    const switchNs = `${prefix}sw`
    const vip = "198.18.0.100"
    const servers: Array<LabServer> = Array.from({ length: o.servers }, (_, k) => {
      const i = k + 1
      return {
        node: `s${i}`, ns: `${prefix}s${i}`, port: `s${i}p`, address: `198.18.0.${10 + i}`, mac: mac(0, i),
        config: `${dir}/s${i}.yaml`, control: `${dir}/s${i}.sock`
      }
    })
    const clients: Array<LabClient> = Array.from({ length: o.clients }, (_, k) => {
      const i = k + 1
      return {
        node: `c${i}`, ns: `${prefix}c${i}`, port: `c${i}p`,
        addresses: Array.from({ length: o.addressesPerClient }, (_, a) => `198.18.${i}.${a + 1}`)
      }
    })
    const owner = Number(process.env[OWNER_ENV]) || undefined
    const state: LabState = { name: o.name, dir, switchNs, vip, servers, clients, app: o.app, ...(owner === undefined ? {} : { owner }) }
    writeFileSync(`${dir}/state.json`, JSON.stringify(state, null, 2))
    const build = Effect.gen(function* () {
      yield* createSwitch(switchNs)
      for (const s of servers) yield* createHost(switchNs, s.ns, s.port, s.mac, [s.address])
      for (const c of clients) yield* createHost(switchNs, c.ns, c.port, mac(1, Number(c.node.slice(1))), c.addresses)
      const witness: LabServer | null = withWitness(o)
        ? { node: "w1", ns: `${prefix}w1`, port: "w1p", address: "198.18.0.9", mac: mac(2, 1), config: "", control: "" }
        : null
      if (witness !== null) yield* createHost(switchNs, witness.ns, witness.port, witness.mac, [witness.address])
      log("info", "lab.net", { lab: o.name, servers: servers.length, clients: clients.length })
      const natsServers = [
        ...servers.slice(0, Math.max(1, Math.min(servers.length, o.natsNodes ?? servers.length))),
        ...(witness === null ? [] : [witness])
      ]
      const password = () => randomBytes(18).toString("base64url")
      const users = o.natsAuth ? [...servers, ...(witness === null ? [] : [witness])].map((s) => ({ user: s.node, password: password() })) : null
      if (users !== null) {
        for (const u of users) {
          const file = `${dir}/${u.user}.pass`
          writeFileSync(file, `${o.natsAuth?.wrongPassword?.includes(u.user) ? password() : u.password}\n`, { mode: 0o600 })
          chmodSync(file, 0o600)
        }
      }
      for (const s of servers) {
        if (natsServers.includes(s)) {
          writeFileSync(`${dir}/${s.node}-nats.conf`, natsConfig(s, natsServers, dir, users))
          spawnInNs(s.ns, ["nice", "-n", "-10", "nats-server", "-c", `${dir}/${s.node}-nats.conf`], `${dir}/${s.node}-nats.log`)
        }
        writeFileSync(s.config, farmConfig(o, s, natsServers, vip, Number(s.node.slice(1)), dir))
        spawnInNs(s.ns, [process.execPath, APP, s.node, ...(o.app === "builtin" ? [] : ["--no-http"])], `${dir}/${s.node}-app.log`)
        if (o.app === "nginx") writeFileSync(`${dir}/${s.node}-nginx.conf`, nginxConfig(s, dir))
        if (o.app === "apache") writeApache(s, dir)
      }
      if (witness !== null) {
        writeFileSync(`${dir}/w1-nats.conf`, natsConfig(witness, natsServers, dir, users))
        spawnInNs(witness.ns, ["nice", "-n", "-10", "nats-server", "-c", `${dir}/w1-nats.conf`], `${dir}/w1-nats.log`)
      }
      for (const s of natsServers) yield* waitPort(s.address, 4222, s.ns, 10_000)
      if (witness !== null) {
        spawnInNs(witness.ns, [
          "nice", "-n", "-10", ...farmArgv(), "witness", "--farm", o.name, "--node", "w1", "--nats", `nats://${witness.address}:4222`,
          ...(o.natsAuth ? ["--user", "w1", "--password-file", `${dir}/w1.pass`] : ["--insecure"])
        ], `${dir}/w1-witness.log`)
      }
      if (o.daemons) for (const s of servers) labStartDaemon(state, s.node)
      return state
    })
    return yield* build.pipe(
      Effect.mapError((e) => new LabError({ op: "up", message: e.message })),
      Effect.tapError(() => Effect.sync(() => labDown(o.name)))
    )
  })

/** Start a server's `farm daemon` (again); its output goes to the lab's log. */
export const labStartDaemon = (lab: LabState, node: string): number => {
  const s = lab.servers.find((x) => x.node === node)
  if (s === undefined) throw new Error(`no server ${node} in lab ${lab.name}`)
  return spawnInNs(s.ns, ["nice", "-n", "-10", ...farmArgv(), "daemon", "--config", s.config], `${lab.dir}/${s.node}-daemon.log`)
}

/**
 * Remove a lab: every process in its namespaces, the namespaces, any process of the lab left
 * outside them (found by `VIPFARM_LAB=NAME` in its environment), its directory. Safe after a
 * crash (no state needed) and to call twice. Returns the namespaces removed.
 */
export const labDown = (name: string): Array<string> => {
  const removed = removeNamespaces(labPrefix(name))
  for (const signal of ["SIGTERM", "SIGKILL"] as const) {
    const left = labProcesses(name)
    if (left.length === 0) break
    for (const p of left) {
      try {
        process.kill(p.pid, signal)
      } catch {
        // gone meanwhile
      }
    }
    for (let i = 0; i < 20 && labProcesses(name).length > 0; i++) spawnSync("sleep", ["0.1"])
  }
  rmSync(`${LAB_ROOT}/${name}`, { recursive: true, force: true })
  return removed
}

/** Every lab on this machine: with namespaces, a state directory or processes (also what a crash left). */
export const listLabs = (): Array<string> => {
  const dirs = existsSync(LAB_ROOT) ? readdirSync(LAB_ROOT).filter((d) => /^[a-z0-9]{1,8}$/.test(d)) : []
  const fromNs = listNamespaces("vf-").map(labOfNamespace).filter((n): n is string => n !== null)
  const fromProcs = labProcesses().map((p) => p.lab).filter((n): n is string => n !== null)
  return [...new Set([...fromNs, ...dirs, ...fromProcs])].sort()
}

/** Find a lab node (server or client) by name. */
export const labNode = (lab: LabState, node: string): Effect.Effect<LabServer | LabClient, LabError> => {
  const found = [...lab.servers, ...lab.clients].find((n) => n.node === node)
  return found ? Effect.succeed(found) : Effect.fail(new LabError({ op: "node", message: `no node ${node} in lab ${lab.name}` }))
}

/** SIGKILL a server's daemon (its filter then fails closed by its deadline). */
export const labKill = (lab: LabState, node: string) =>
  Effect.gen(function* () {
    const n = yield* labNode(lab, node)
    yield* nsRun(n.ns, "pkill", ["-KILL", "-f", ` daemon --config ${lab.dir}/${node}.yaml$`]).pipe(
      Effect.mapError((e) => new LabError({ op: "kill", message: `no daemon running on ${node}: ${e.message}` }))
    )
  })

/** Cut or heal a node's link to the switch. */
export const labLink = (lab: LabState, node: string, up: boolean) =>
  Effect.gen(function* () {
    const n = yield* labNode(lab, node)
    yield* setLink(lab.switchNs, n.port, up).pipe(Effect.mapError((e) => new LabError({ op: up ? "heal" : "cut", message: e.message })))
  })

/**
 * Partition the switch: frames between a port of one group and a port of the other are
 * dropped (nftables bridge filter in the switch namespace). Nodes in neither group are
 * unaffected. `heal` removes every partition.
 */
export const labPartition = (lab: LabState, a: ReadonlyArray<string>, b: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const ports = (names: ReadonlyArray<string>) => Effect.forEach(names, (n) => labNode(lab, n).pipe(Effect.map((x) => x.port)))
    const pa = yield* ports(a)
    const pb = yield* ports(b)
    const rules = [
      "table bridge vfpart {",
      "  chain forward {",
      "    type filter hook forward priority 0; policy accept;",
      `    iifname { ${pa.join(", ")} } oifname { ${pb.join(", ")} } drop`,
      `    iifname { ${pb.join(", ")} } oifname { ${pa.join(", ")} } drop`,
      "  }",
      "}"
    ].join("\n")
    writeFileSync(`${lab.dir}/partition.nft`, rules + "\n")
    yield* nsRun(lab.switchNs, "nft", ["delete", "table", "bridge", "vfpart"]).pipe(Effect.ignore)
    yield* nsRun(lab.switchNs, "nft", ["-f", `${lab.dir}/partition.nft`]).pipe(Effect.mapError((e) => new LabError({ op: "partition", message: e.message })))
  })

/** Remove every partition of the switch. */
export const labHealPartition = (lab: LabState) => nsRun(lab.switchNs, "nft", ["delete", "table", "bridge", "vfpart"]).pipe(Effect.ignore)

/**
 * Run a command in a node's namespace attached to this terminal (stdin, stdout and stderr
 * inherited, so `bash` there is interactive; no time limit). Returns its exit status.
 */
export const labExec = (lab: LabState, node: string, argv: ReadonlyArray<string>): Effect.Effect<number, LabError> =>
  Effect.gen(function* () {
    if (argv.length === 0) return yield* new LabError({ op: "exec", message: "command: missing (farm lab exec NODE -- CMD ...)" })
    const n = yield* labNode(lab, node)
    return yield* runAttached("ip", ["netns", "exec", n.ns, ...argv]).pipe(Effect.mapError((e) => new LabError({ op: "exec", message: e.message })))
  })

/** True when a lab of this name exists. */
export const labExists = (name: string): boolean => existsSync(`${LAB_ROOT}/${name}/state.json`) || listNamespaces(labPrefix(name)).length > 0
