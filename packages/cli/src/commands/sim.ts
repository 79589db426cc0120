/** `farm sim [SCENARIO] [--seed N]`: run a scenario in the discrete-event simulator (no root, no server). */
import { mkdirSync } from "node:fs"
import { dirname } from "node:path"
import { Console, Effect, Option, Schema } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import type { Progress } from "@vipfarm/sim"
// the help text lists the shipped scenarios: only this module of the simulator loads at start
import { defaultScenarioName, shippedScenarios } from "../../../sim/src/scenario.ts"
import { simulator } from "./lazy.ts"

/** The simulation found invariant violations (the report names each with its seed). */
export class SimFailed extends Schema.TaggedError<SimFailed>()("SimFailed", { message: Schema.String }) {}

const bar = (p: Progress): string => {
  const width = 30
  const f = Math.min(1, p.simulatedMs / Math.max(1, p.totalMs))
  const full = Math.round(f * width)
  return `[${"#".repeat(full)}${".".repeat(width - full)}] ${(p.simulatedMs / 1000).toFixed(1)}/${(p.totalMs / 1000).toFixed(1)} s simulated, ${p.phase}, ${p.packets.toLocaleString("en")} packets`
}

/** `farm sim`. */
export const sim = Command.make(
  "sim",
  {
    scenario: Argument.String("scenario").pipe(
      Argument.withDescription(`a scenario file (YAML/JSON) or a shipped one: ${shippedScenarios().join(", ")}`),
      Argument.withDefault(defaultScenarioName)
    ),
    seed: Flag.Int("seed").pipe(Flag.withDescription("seed (every run replays exactly from it)"), Flag.withDefault(1)),
    html: Flag.String("html").pipe(Flag.withDescription("write the HTML report here (default reports/sim-SCENARIO-SEED.html)"), Flag.optional),
    noHtml: Flag.Boolean("no-html").pipe(Flag.withDescription("do not write an HTML report"), Flag.withDefault(false))
  },
  ({ scenario, seed, html, noHtml }) =>
    Effect.gen(function* () {
      const { formatReport, loadScenario, runScenario, writeHtmlReport } = yield* simulator
      const s = yield* Effect.try({ try: () => loadScenario(scenario), catch: (e) => new SimFailed({ message: (e as Error).message }) })
      const tty = process.stderr.isTTY
      let last = 0
      const report = runScenario(s, {
        seed,
        source: scenario,
        onProgress: (p) => {
          if (!tty) return
          const now = performance.now()
          if (now - last < 100 && p.simulatedMs < p.totalMs) return
          last = now
          process.stderr.write(`\r${bar(p)}`)
        }
      })
      if (tty) process.stderr.write("\r\x1b[K")
      yield* Console.log(formatReport(report))
      if (!noHtml) {
        const path = Option.getOrElse(html, () => `reports/sim-${scenario.replace(/[^A-Za-z0-9_-]/g, "_")}-${seed}.html`)
        yield* Effect.sync(() => {
          mkdirSync(dirname(path), { recursive: true })
          writeHtmlReport(report, path)
        })
        yield* Console.log(`HTML report: ${path}`)
      }
      if (!report.ok) return yield* new SimFailed({ message: `invariants violated in ${scenario} with seed ${seed} (see the report above)` })
    })
).pipe(Command.withDescription("simulate a farm: scenario file or shipped scenario; the default needs no root and no server"))
