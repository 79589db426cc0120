/** `farm lab ...`: a real farm in network namespaces on this machine (root). */
import { Console, Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import {
  canUseNamespaces, describeLeftovers, isClean, labDown, labExec, labHealPartition, labKill, labLink, labPartition, labPrefix, labProcesses, labUp,
  listLabs, listNamespaces, readLab, LabError
} from "@vipfarm/runtime"

const nameFlag = Flag.String("name").pipe(Flag.withDescription("lab name (1 to 8 lower-case letters or digits)"), Flag.withDefault("lab"))

const needRoot = Effect.suspend(() =>
  canUseNamespaces() ? Effect.void : Effect.fail(new LabError({ op: "lab", message: "the lab needs root (network namespaces, XDP)" }))
)

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
    yield* needRoot
    const lab = yield* readLab(name)
    const code = yield* labExec(lab, node, argv)
    process.exitCode = code
  })
).pipe(Command.withDescription("run a command in a node's namespace, attached to this terminal (farm lab exec c1 -- bash); exits with its status"))

const kill = Command.make("kill", { name: nameFlag, node: nodeArg }, ({ name, node }) =>
  needRoot.pipe(Effect.andThen(readLab(name)), Effect.flatMap((lab) => labKill(lab, node)), Effect.andThen(Console.log(`SIGKILL sent to the daemon of ${node}`)))
).pipe(Command.withDescription("SIGKILL a server's daemon"))

const cut = Command.make("cut", { name: nameFlag, node: nodeArg }, ({ name, node }) =>
  needRoot.pipe(Effect.andThen(readLab(name)), Effect.flatMap((lab) => labLink(lab, node, false)), Effect.andThen(Console.log(`${node}: link cut`)))
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
    yield* needRoot
    const text = spec.join(" ")
    const [a, b] = text.split("/").map((g) => g.split(/[ ,]+/).filter(Boolean))
    if (!a?.length || !b?.length) return yield* new LabError({ op: "partition", message: `groups: expected "A,B / C", got "${text}"` })
    const lab = yield* readLab(name)
    yield* labPartition(lab, a, b)
    yield* Console.log(`partitioned ${a.join(",")} from ${b.join(",")}`)
  })
).pipe(Command.withDescription('partition the switch: farm lab partition s1,s2 / s3'))

/** `farm lab`. */
export const lab = Command.make("lab").pipe(
  Command.withDescription("a real farm in network namespaces on one machine (root)"),
  Command.withSubcommands([up, down, exec, kill, cut, heal, partition])
)
