/**
 * The chaos suite of issue 16 on a lab farm of its own (root), as `farm lab chaos` runs it:
 *
 *   node --import tsx packages/runtime/bench/chaos.bench.ts [--name LAB] [--json] [--faults a,b,...]
 *
 * 3 servers, one client namespace (60 HTTP clients retried once, 30 long-lived TCP
 * connections, UDP at 100/s); the faults one after another, each healed and settled. Prints
 * the table (or the JSON report); the lab's logs are kept under artifacts/bench/LAB and the
 * lab is removed at the end, also on failure (exit code 1 then).
 */
import { cpSync, mkdirSync, readdirSync, rmSync } from "node:fs"
import { Effect } from "effect"
import { CHAOS_FAULTS, chaosAddresses, chaosDefaults, type ChaosFault, chaosTable, labDown, labPrefix, labUp, listNamespaces, runChaos, waitFarmUp } from "@vipfarm/runtime"

const args = process.argv.slice(2)
const flag = (name: string) => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : undefined
}
const NAME = flag("--name") ?? "chaosb"
const JSON_OUT = args.includes("--json")
const faults = (flag("--faults") ?? CHAOS_FAULTS.join(",")).split(",") as Array<ChaosFault>
const unknown = faults.filter((f) => !(CHAOS_FAULTS as ReadonlyArray<string>).includes(f))
if (unknown.length > 0) {
  console.error(`chaos.bench: faults: unknown ${unknown.join(",")}; known: ${CHAOS_FAULTS.join(",")}`)
  process.exit(2)
}

if (process.getuid?.() !== 0) {
  console.log("chaos.bench: skipped: needs root (network namespaces, XDP)")
  process.exit(0)
}

const main = async () => {
  const options = { ...chaosDefaults, faults }
  const lab = await Effect.runPromise(labUp({ name: NAME, servers: 3, clients: 1, addressesPerClient: chaosAddresses(options), app: "builtin", daemons: true }))
  try {
    await waitFarmUp(lab, 60_000)
    const report = await runChaos(lab, options, (line) => console.error(line))
    if (JSON_OUT) console.log(JSON.stringify(report, null, 2))
    else {
      console.log(`chaos.bench: lab ${NAME}, ${report.startedAt}, ${report.seconds} s; load average ${report.load.start} at the start, ${report.load.end} at the end`)
      console.log(chaosTable(report))
    }
  } finally {
    const keep = `${process.cwd()}/artifacts/bench/${NAME}`
    rmSync(keep, { recursive: true, force: true })
    mkdirSync(keep, { recursive: true })
    for (const f of readdirSync(lab.dir)) if (f.endsWith(".log") || f.endsWith(".yaml")) cpSync(`${lab.dir}/${f}`, `${keep}/${f}`)
    labDown(NAME)
  }
  const left = listNamespaces(labPrefix(NAME))
  if (left.length > 0) {
    console.error(`chaos.bench: LEFT: ${left.join(" ")}`)
    process.exitCode = 1
  }
}

main().catch((e) => {
  console.error(`chaos.bench: failed: ${(e as Error).message}`)
  process.exitCode = 1
})
