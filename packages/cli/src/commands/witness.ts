/** `farm witness`: a heartbeat-only voter for a farm (a 2-server farm needs one). */
import { Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { runtime } from "./lazy.ts"
import { stopsCleanlyOnSignal } from "./exitStatus.ts"

/** `farm witness --farm NAME --node NAME --nats URL[,URL...]`: exits 0 when SIGTERM/SIGINT stop it (exitStatus.ts). */
export const witness = Command.make(
  "witness",
  {
    farm: Flag.String("farm").pipe(Flag.withDescription("the farm's name")),
    node: Flag.String("node").pipe(Flag.withDescription("this witness's name, as listed in the servers' `witnesses`")),
    nats: Flag.String("nats").pipe(Flag.withDescription("NATS servers, comma separated, the local node first")),
    witnesses: Flag.String("witnesses").pipe(Flag.withDescription("every witness of the farm, comma separated (default: this one)"), Flag.optional),
    credentials: Flag.String("credentials").pipe(Flag.withDescription("NATS credentials file"), Flag.optional),
    user: Flag.String("user").pipe(Flag.withDescription("NATS user"), Flag.optional),
    passwordFile: Flag.String("password-file").pipe(Flag.withDescription("file whose first line is the NATS password"), Flag.optional),
    insecure: Flag.Boolean("insecure").pipe(Flag.withDescription("accept a NATS server that requires no authentication (labs and tests)"))
  },
  (o) =>
    runtime.pipe(Effect.flatMap(({ runWitness }) => stopsCleanlyOnSignal(runWitness({
      farm: o.farm,
      node: o.node,
      witnesses: Option.getOrElse(Option.map(o.witnesses, (w) => w.split(",").filter(Boolean)), () => [o.node]),
      nats: {
        servers: o.nats.split(",").filter(Boolean),
        credentials: Option.getOrNull(o.credentials),
        user: Option.getOrNull(o.user),
        passwordFile: Option.getOrNull(o.passwordFile),
        insecure: o.insecure
      }
    }))))
).pipe(Command.withDescription("run a heartbeat-only voter: owns no bucket, lets a 2-server farm keep its quorum"))
