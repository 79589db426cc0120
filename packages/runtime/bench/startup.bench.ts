/**
 * Start-up and memory of `farm`: the bundle (dist/farm.mjs, what the checkout's bin/farm.mjs
 * and the Debian package run) side by side with the TypeScript run through tsx (what `farm`
 * was before the build), measured in the same run (root: it builds a lab).
 *
 *   node --import tsx packages/runtime/bench/startup.bench.ts [N] [--name LAB]
 *
 * - `farm --help`: N runs each, median and worst wall time, CPU time and peak RSS (GNU time);
 * - `farm status` against a daemon that answers (a real daemon's control socket in a 1-server
 *   lab) and against a socket that is not there (fails fast: ENOENT);
 * - the daemon of that lab, bundle then tsx (3 starts each): process start to `op=daemon.ready`
 *   in its log, and its RSS at rest (10 s after ready; VmRSS and RssAnon), from /proc/PID/status.
 * The checkout's bin/farm.mjs is measured too: the bundle plus its staleness check.
 * The lab (default name pkg2) is removed at the end, also on failure (exit code 1 then).
 */
import { spawnSync } from "node:child_process"
import { existsSync, readFileSync, statSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { labDown, labUp, type LabState, spawnInNs } from "@vipfarm/runtime"

const args = process.argv.slice(2)
const nameAt = args.indexOf("--name")
const NAME = nameAt >= 0 ? args[nameAt + 1] : "pkg2"
const N = Number(args.find((a, i) => /^\d+$/.test(a) && args[i - 1] !== "--name") ?? 15)
const ROOT = fileURLToPath(new URL("../../../", import.meta.url))
const BUNDLE = `${ROOT}dist/farm.mjs`
const BIN = `${ROOT}packages/cli/bin/farm.mjs`
const MAIN = `${ROOT}packages/cli/src/main.ts`

const variants: ReadonlyArray<{ readonly name: string; readonly argv: ReadonlyArray<string> }> = [
  { name: "bundle (dist/farm.mjs)", argv: [process.execPath, BUNDLE] },
  { name: "bin/farm.mjs (bundle + staleness check)", argv: [process.execPath, BIN] },
  { name: "tsx (src/main.ts)", argv: [process.execPath, "--import", "tsx", MAIN] }
]

const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}
const fmt = (xs: ReadonlyArray<number>, unit: string) => `median ${Math.round(median(xs))} ${unit}, worst ${Math.round(Math.max(...xs))} ${unit}`

/**
 * Wall time (ms), CPU time (user + system, ms) and peak RSS (MB) of one command, through GNU
 * time. On a loaded machine the wall time is mostly waiting for a CPU: the CPU time is the
 * steadier figure.
 */
const timed = (argv: ReadonlyArray<string>): { ms: number; cpuMs: number; rssMb: number; status: number | null; out: string } => {
  const t0 = performance.now()
  const r = spawnSync("/usr/bin/time", ["-f", "%U %S %M", ...argv], { encoding: "utf8", cwd: ROOT })
  const ms = performance.now() - t0
  const [u, sys, kb] = (r.stderr.trim().split("\n").at(-1) ?? "").split(" ").map(Number)
  return { ms, cpuMs: (u + sys) * 1000, rssMb: kb / 1024, status: r.status, out: r.stdout + r.stderr }
}

const cli = (label: string, extra: ReadonlyArray<string>, expectOk: boolean) => {
  console.log(`\nfarm ${label} (${N} runs each)`)
  for (const v of variants) {
    const runs = Array.from({ length: N }, () => timed([...v.argv, ...extra]))
    const bad = runs.find((r) => (r.status === 0) !== expectOk)
    if (bad) throw new Error(`${v.name} farm ${label}: status ${bad.status}:\n${bad.out}`)
    console.log(`  ${v.name.padEnd(42)} wall ${fmt(runs.map((r) => r.ms), "ms")}; CPU ${fmt(runs.map((r) => r.cpuMs), "ms")}; peak RSS ${fmt(runs.map((r) => r.rssMb), "MB")}`)
  }
}

/** A `/proc/PID/status` memory field (VmRSS, RssAnon: the part that is the process's own), MB. */
const statusMb = (pid: number, key: string) => {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"))
  return m ? Number(m[1]) / 1024 : NaN
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Start a daemon with `argv`, wait for daemon.ready, let it rest, read its RSS, stop it (SIGTERM). */
const daemonRun = async (lab: LabState, argv: ReadonlyArray<string>, k: number) => {
  const s = lab.servers[0]
  const logFile = `${lab.dir}/bench-${k}-daemon.log`
  const t0 = performance.now()
  const pid = spawnInNs(s.ns, [...argv, "daemon", "--config", s.config], logFile)
  let readyMs = NaN
  while (performance.now() - t0 < 60_000) {
    if (existsSync(logFile) && readFileSync(logFile, "utf8").includes("op=daemon.ready")) {
      readyMs = performance.now() - t0
      break
    }
    await sleep(10)
  }
  if (Number.isNaN(readyMs)) throw new Error(`daemon (${argv.join(" ")}) not ready within 60 s:\n${readFileSync(logFile, "utf8")}`)
  await sleep(10_000)
  const rss = statusMb(pid, "VmRSS")
  const anon = statusMb(pid, "RssAnon")
  // the status answered by this daemon, bundle and tsx, while it runs
  if (k === 0) cli("status (a daemon that answers)", ["status", "--socket", s.control], true)
  process.kill(pid, "SIGTERM")
  for (let i = 0; i < 1000 && existsSync(`/proc/${pid}`); i++) await sleep(20)
  if (existsSync(`/proc/${pid}`)) process.kill(pid, "SIGKILL")
  return { readyMs, rss, anon }
}

const main = async () => {
  if (!existsSync(BUNDLE) || statSync(BUNDLE).size === 0) throw new Error("dist/farm.mjs is missing: npm run build")
  console.log(`startup bench: node ${process.version}, ${N} runs per command, load ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}`)
  const base = Array.from({ length: N }, () => timed([process.execPath, "-e", "0"]))
  console.log(`  baseline: node -e 0 wall ${fmt(base.map((r) => r.ms), "ms")}; CPU ${fmt(base.map((r) => r.cpuMs), "ms")}`)
  cli("--help", ["--help"], true)
  cli("status (no socket: fails fast)", ["status", "--socket", "/run/vipfarm-bench-none.sock"], false)
  const lab = await Effect.runPromise(labUp({ name: NAME, servers: 1, clients: 1, addressesPerClient: 1, app: "builtin", daemons: false }))
  try {
    console.log(`\nthe daemon of a 1-server lab (${NAME}): start to op=daemon.ready, RSS 10 s after ready (3 starts each)`)
    let k = 0
    for (const v of [variants[0], variants[2]]) {
      const runs: Array<{ readyMs: number; rss: number; anon: number }> = []
      for (let i = 0; i < 3; i++) runs.push(await daemonRun(lab, v.argv, k++))
      console.log(`  ${v.name.padEnd(42)} ready ${fmt(runs.map((r) => r.readyMs), "ms")}; RSS at rest ${fmt(runs.map((r) => r.rss), "MB")} (RssAnon ${fmt(runs.map((r) => r.anon), "MB")})`)
    }
  } finally {
    labDown(NAME)
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`startup bench failed: ${(e as Error).message}`)
    labDown(NAME)
    process.exit(1)
  }
)
