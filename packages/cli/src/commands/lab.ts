/** `farm lab ...`: a real farm in network namespaces on this machine (root). */
import { Console, Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
// the chaos flags' help shows the faults and defaults: only this module of the lab loads at start
import { CHAOS_FAULTS, chaosDefaults, type ChaosFault } from "../../../runtime/src/lab/chaos.ts"
import { runtime } from "./lazy.ts"

const nameFlag = Flag.String("name").pipe(Flag.withDescription("lab name (1 to 8 lower-case letters or digits)"), Flag.withDefault("lab"))

const needRoot = runtime.pipe(Effect.flatMap(({ canUseNamespaces, LabError }) =>
  canUseNamespaces() ? Effect.void : Effect.fail(new LabError({ op: "lab", message: "the lab needs root (network namespaces, XDP)" }))
))

const up = Command.make(
  "up",
  {
    name: nameFlag,
    servers: Flag.Int("servers").pipe(Flag.withDescription("number of servers"), Flag.withDefault(3)),
    clients: Flag.Int("clients").pipe(Flag.withDescription("number of client namespaces"), Flag.withDefault(1)),
    addresses: Flag.Int("addresses").pipe(Flag.withDescription("addresses per client namespace"), Flag.withDefault(50)),
    app: Flag.Literals("app", ["builtin", "nginx", "apache"]).pipe(Flag.withDescription("the application each server runs"), Flag.withDefault("builtin" as const)),
    noDaemons: Flag.Boolean("no-daemons").pipe(Flag.withDescription("do not start farm daemons"), Flag.withDefault(false))
  },
  (o) =>
    Effect.gen(function* () {
      const { labUp } = yield* runtime
      yield* needRoot
      const lab = yield* labUp({ name: o.name, servers: o.servers, clients: o.clients, addressesPerClient: o.addresses, app: o.app, daemons: !o.noDaemons })
      yield* Console.log(`lab ${lab.name} is up: VIP ${lab.vip}; servers ${lab.servers.map((s) => `${s.node}=${s.address}`).join(" ")}; clients ${lab.clients.map((c) => `${c.node}=${c.addresses[0]}..`).join(" ")}`)
      yield* Console.log(`state, configs and logs: ${lab.dir}; try: farm lab exec c1 -- curl -s http://${lab.vip}/`)
    })
).pipe(Command.withDescription("build a farm in network namespaces"))

const down = Command.make(
  "down",
  {
    name: nameFlag,
    all: Flag.Boolean("all").pipe(Flag.withDescription("remove every lab on this machine (found by its namespaces, directory or processes)"), Flag.withDefault(false))
  },
  ({ name, all }) =>
    Effect.gen(function* () {
      const { describeLeftovers, isClean, LabError, labDown, labPrefix, labProcesses, listLabs, listNamespaces } = yield* runtime
      yield* needRoot
      const names = all ? listLabs() : [name]
      if (names.length === 0) yield* Console.log("no lab on this machine")
      let dirty = 0
      for (const n of names) {
        const removed = labDown(n)
        // what is the lab's own: its namespaces and processes (host veths and XDP programs cannot be told apart by lab)
        const left = { namespaces: listNamespaces(labPrefix(n)), processes: labProcesses(n), veths: [], xdp: [] }
        if (isClean(left)) yield* Console.log(`lab ${n}: removed ${removed.length} namespaces; no namespace or process of it is left`)
        else {
          dirty++
          yield* Console.error(`lab ${n}: LEFT BEHIND: ${describeLeftovers(left).join("; ")}`)
        }
      }
      if (dirty > 0) return yield* new LabError({ op: "down", message: `${dirty} lab(s) not fully removed` })
    })
).pipe(Command.withDescription("remove everything a lab made: processes, namespaces, state (also after a crash, with no state left; --all: every lab)"))

const nodeArg = Argument.String("node").pipe(Argument.withDescription("s1, s2, ... or c1, ..."))

const exec = Command.make("exec", { name: nameFlag, node: nodeArg, argv: Argument.String("command").pipe(Argument.variadic()) }, ({ name, node, argv }) =>
  Effect.gen(function* () {
    const { labExec, readLab } = yield* runtime
    yield* needRoot
    const lab = yield* readLab(name)
    const code = yield* labExec(lab, node, argv)
    process.exitCode = code
  })
).pipe(Command.withDescription("run a command in a node's namespace, attached to this terminal (farm lab exec c1 -- bash); exits with its status"))

const kill = Command.make("kill", { name: nameFlag, node: nodeArg }, ({ name, node }) =>
  runtime.pipe(
    Effect.flatMap(({ labKill, readLab }) => needRoot.pipe(Effect.andThen(readLab(name)), Effect.flatMap((lab) => labKill(lab, node)))),
    Effect.andThen(Console.log(`SIGKILL sent to the daemon of ${node}`))
  )
).pipe(Command.withDescription("SIGKILL a server's daemon"))

const cut = Command.make("cut", { name: nameFlag, node: nodeArg }, ({ name, node }) =>
  runtime.pipe(
    Effect.flatMap(({ labLink, readLab }) => needRoot.pipe(Effect.andThen(readLab(name)), Effect.flatMap((lab) => labLink(lab, node, false)))),
    Effect.andThen(Console.log(`${node}: link cut`))
  )
).pipe(Command.withDescription("cut a node's link to the switch"))

const heal = Command.make(
  "heal",
  {
    name: nameFlag,
    all: Flag.Boolean("all").pipe(Flag.withDescription("restore every node's link and remove partitions"), Flag.withDefault(false)),
    node: nodeArg.pipe(Argument.optional)
  },
  ({ name, all, node }) =>
    Effect.gen(function* () {
      const { labHealPartition, labLink, readLab } = yield* runtime
      yield* needRoot
      const lab = yield* readLab(name)
      if (all) {
        for (const n of [...lab.servers, ...lab.clients]) yield* labLink(lab, n.node, true)
        yield* labHealPartition(lab)
        return yield* Console.log("every link restored, partitions removed")
      }
      if (Option.isSome(node)) {
        yield* labLink(lab, node.value, true)
        return yield* Console.log(`${node.value}: link restored (a partition stays: farm lab heal removes it)`)
      }
      yield* labHealPartition(lab)
      yield* Console.log("partitions removed")
    })
).pipe(Command.withDescription("heal NODE: restore its link (not a partition); heal: remove partitions; heal --all: both, for every node"))

const partition = Command.make("partition", { name: nameFlag, spec: Argument.String("groups").pipe(Argument.variadic()) }, ({ name, spec }) =>
  Effect.gen(function* () {
    const { LabError, labPartition, readLab } = yield* runtime
    yield* needRoot
    const text = spec.join(" ")
    const [a, b] = text.split("/").map((g) => g.split(/[ ,]+/).filter(Boolean))
    if (!a?.length || !b?.length) return yield* new LabError({ op: "partition", message: `groups: expected "A,B / C", got "${text}"` })
    const lab = yield* readLab(name)
    yield* labPartition(lab, a, b)
    yield* Console.log(`partitioned ${a.join(",")} from ${b.join(",")}`)
  })
).pipe(Command.withDescription('partition the switch: farm lab partition s1,s2 / s3'))

const chaos = Command.make(
  "chaos",
  {
    name: Flag.String("name").pipe(Flag.withDescription("lab name (1 to 8 lower-case letters or digits)"), Flag.withDefault("chaos")),
    use: Flag.Boolean("use").pipe(Flag.withDescription("run on the existing lab --name (3 servers, a client with enough addresses) and leave it up"), Flag.withDefault(false)),
    keep: Flag.Boolean("keep").pipe(Flag.withDescription("leave the lab the suite built up afterwards"), Flag.withDefault(false)),
    faults: Flag.String("faults").pipe(Flag.withDescription(`comma-separated faults, in order (default all: ${CHAOS_FAULTS.join(",")})`), Flag.withDefault(CHAOS_FAULTS.join(","))),
    http: Flag.Int("http").pipe(Flag.withDescription("HTTP clients (a request every 250 ms each, retried once)"), Flag.withDefault(chaosDefaults.httpClients)),
    tcp: Flag.Int("tcp").pipe(Flag.withDescription("long-lived TCP connections"), Flag.withDefault(chaosDefaults.tcpConnections)),
    udp: Flag.Int("udp").pipe(Flag.withDescription("UDP requests per second"), Flag.withDefault(chaosDefaults.udpRate)),
    observe: Flag.Int("observe-ms").pipe(Flag.withDescription("how long the clients are watched after each heal, at least"), Flag.withDefault(chaosDefaults.observeMs)),
    json: Flag.Boolean("json").pipe(Flag.withDescription("print the report as JSON instead of the table"), Flag.withDefault(false))
  },
  (o) =>
    Effect.gen(function* () {
      const { chaosAddresses, chaosTable, LabError, labDown, labUp, readLab, runChaos, waitFarmUp } = yield* runtime
      yield* needRoot
      const faults = o.faults.split(",").map((f) => f.trim()).filter(Boolean)
      const unknown = faults.filter((f) => !(CHAOS_FAULTS as ReadonlyArray<string>).includes(f))
      if (faults.length === 0 || unknown.length > 0) return yield* new LabError({ op: "chaos", message: `faults: unknown ${unknown.join(",") || "(none given)"}; known: ${CHAOS_FAULTS.join(",")}` })
      for (const [field, v, max] of [["http", o.http, 500], ["tcp", o.tcp, 500], ["udp", o.udp, 1000], ["observe-ms", o.observe, 120_000]] as const) {
        if (!Number.isInteger(v) || v < 0 || v > max) return yield* new LabError({ op: "chaos", message: `${field}: 0 to ${max}, got ${v}` })
      }
      const options = { ...chaosDefaults, faults: faults as Array<ChaosFault>, httpClients: o.http, tcpConnections: o.tcp, udpRate: o.udp, observeMs: o.observe }
      const lab = o.use
        ? yield* readLab(o.name)
        : yield* labUp({ name: o.name, servers: 3, clients: 1, addressesPerClient: chaosAddresses(options), app: "builtin", daemons: true })
      const run = Effect.gen(function* () {
        yield* Effect.tryPromise({ try: () => waitFarmUp(lab, 60_000), catch: (e) => new LabError({ op: "chaos", message: `the farm did not come up: ${(e as Error).message}` }) })
        const report = yield* Effect.tryPromise({
          try: () => runChaos(lab, options, (line) => process.stderr.write(`${line}\n`)),
          catch: (e) => new LabError({ op: "chaos", message: (e as Error).message })
        })
        if (o.json) yield* Console.log(JSON.stringify(report, null, 2))
        else {
          yield* Console.log(`chaos suite on lab ${report.lab}, ${report.startedAt}, ${report.seconds} s; load average ${report.load.start} at the start, ${report.load.end} at the end`)
          yield* Console.log(chaosTable(report))
        }
      })
      yield* o.use || o.keep ? run : run.pipe(Effect.ensuring(Effect.sync(() => labDown(lab.name))))
    })
).pipe(Command.withDescription("the chaos suite: faults one after another under load on a 3-server lab, a table of what the clients saw (issue 16)"))

/** `farm lab`. */
export const lab = Command.make("lab").pipe(
  Command.withDescription("a real farm in network namespaces on one machine (root)"),
  Command.withSubcommands([up, down, exec, kill, cut, heal, partition, chaos])
)
