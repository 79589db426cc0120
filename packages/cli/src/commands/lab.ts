/** `farm lab ...`: a real farm in network namespaces on this machine (root). */
import { Console, Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { canUseNamespaces, labDown, labExec, labHealPartition, labKill, labLink, labPartition, labUp, listLabs, readLab, LabError } from "@vipfarm/runtime"

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

const down = Command.make("down", { name: nameFlag, all: Flag.Boolean("all").pipe(Flag.withDefault(false)) }, ({ name, all }) =>
  Effect.gen(function* () {
    yield* needRoot
    for (const n of all ? listLabs() : [name]) {
      const removed = labDown(n)
      yield* Console.log(`lab ${n}: removed ${removed.length} namespaces`)
    }
  })
).pipe(Command.withDescription("remove everything a lab made (also after a crash)"))

const nodeArg = Argument.String("node").pipe(Argument.withDescription("s1, s2, ... or c1, ..."))

const exec = Command.make("exec", { name: nameFlag, node: nodeArg, argv: Argument.String("command").pipe(Argument.variadic()) }, ({ name, node, argv }) =>
  Effect.gen(function* () {
    yield* needRoot
    const lab = yield* readLab(name)
    const out = yield* labExec(lab, node, argv)
    yield* Console.log(out.trimEnd())
  })
).pipe(Command.withDescription("run a command in a node's namespace"))

const kill = Command.make("kill", { name: nameFlag, node: nodeArg }, ({ name, node }) =>
  readLab(name).pipe(Effect.flatMap((lab) => labKill(lab, node)), Effect.andThen(Console.log(`SIGKILL sent to the daemon of ${node}`)))
).pipe(Command.withDescription("SIGKILL a server's daemon"))

const cut = Command.make("cut", { name: nameFlag, node: nodeArg }, ({ name, node }) =>
  readLab(name).pipe(Effect.flatMap((lab) => labLink(lab, node, false)), Effect.andThen(Console.log(`${node}: link cut`)))
).pipe(Command.withDescription("cut a node's link to the switch"))

const heal = Command.make("heal", { name: nameFlag, node: nodeArg.pipe(Argument.optional) }, ({ name, node }) =>
  Effect.gen(function* () {
    const lab = yield* readLab(name)
    if (Option.isSome(node)) yield* labLink(lab, node.value, true)
    else yield* labHealPartition(lab)
    yield* Console.log(Option.isSome(node) ? `${node.value}: link restored` : "partitions removed")
  })
).pipe(Command.withDescription("restore a node's link, or with no node remove partitions"))

const partition = Command.make("partition", { name: nameFlag, spec: Argument.String("groups").pipe(Argument.variadic()) }, ({ name, spec }) =>
  Effect.gen(function* () {
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
