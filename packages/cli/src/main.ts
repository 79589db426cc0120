/** The `farm` command line. */
import { Cause, Effect } from "effect"
import { Command } from "effect/cli"
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { drain, resume, status } from "./commands/control.ts"
import { lab } from "./commands/lab.ts"
import { daemon } from "./commands/daemon.ts"
import { demo } from "./commands/demo.ts"
import { sim } from "./commands/sim.ts"
import { witness } from "./commands/witness.ts"
import { keygen } from "./commands/keygen.ts"
import { buckets, configCommand, events, restart } from "./commands/ops.ts"
import { audit } from "./commands/audit.ts"
import { app } from "./commands/app.ts"
import { VERSION } from "../../runtime/src/version.ts"
import { cliConfigLayer, envLogLevelError, withLogLevel } from "./logLevel.ts"

const farm = Command.make("farm").pipe(
  Command.withDescription("vipfarm: a Linux farm cluster, every server holds the VIP and an XDP filter takes its share"),
  Command.withSubcommands([sim, daemon, witness, status, drain, resume, lab, demo, audit, events, buckets, configCommand, restart, app, keygen]),
  withLogLevel
)

/** Print a failure as one line a person reads (the error names the file, key or socket). */
const report = (cause: Cause.Cause<unknown>) =>
  Effect.sync(() => {
    const failure = Cause.squash(cause)
    const message = failure instanceof Error ? failure.message : String(failure)
    const tag = (failure as { _tag?: string })._tag
    // the CLI's own parse errors are already shown with the help text
    if (tag !== undefined && /^(MissingOption|MissingArgument|InvalidValue|UnknownSubcommand|UnrecognizedOption|ShowHelp|DuplicateOption)/.test(tag)) return
    process.stderr.write(`farm: ${message}\n`)
  }).pipe(Effect.andThen(Effect.failCause(cause)))

// an invalid VIPFARM_LOG is a usage error, not "log everything"
const envError = envLogLevelError()
if (envError !== null) {
  process.stderr.write(`farm: ${envError}\n`)
  process.exit(2)
}

Command.run(farm, { version: VERSION }).pipe(
  Effect.catchCause(report),
  Effect.provide(cliConfigLayer),
  Effect.provide(NodeServices.layer),
  NodeRuntime.runMain({ disableErrorReporting: true })
)
