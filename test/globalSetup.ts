/**
 * Around the whole test run (vitest globalSetup, in vitest's main process):
 *
 * - before: remove what a crashed earlier run left: labs (`vf-NAME-*` namespaces, their
 *   processes, their directory) built under a test run whose vitest process is gone, and
 *   lab namespaces or processes with no lab state at all. Labs built by hand
 *   (`farm lab up`, no owner) and labs of another live run are left alone.
 * - after: nothing the run made may remain: no network namespace, process started by the
 *   run (every test process carries `VIPFARM_LAB_OWNER=<this pid>`, see vitest.config.ts),
 *   lab process, veth in the host namespace or XDP program that was not there before. Each
 *   leftover is printed and written to artifacts/leaks.json (scripts/test.sh names its own file and counts them as
 *   failures in CI mode), then removed. In CI mode (VIPFARM_CI=1) a leftover fails the run.
 */
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { dirname } from "node:path"
import {
  type BpfProgram, hostVeths, type LabProcess, labProcesses, markedProcesses, OWNER_ENV, xdpPrograms
} from "../packages/runtime/src/lab/leftovers.ts"
import { LAB_ROOT, labDown, listLabs, type LabState } from "../packages/runtime/src/lab/lab.ts"

/** Where the leftovers are written (scripts/test.sh names its own file). */
const LEAKS = process.env.VIPFARM_LEAKS_FILE ?? "artifacts/leaks.json"
const ci = process.env.VIPFARM_CI === "1"
const me = process.pid
const say = (line: string) => process.stderr.write(`[leak check] ${line}\n`)

/** Every named network namespace. */
const namespaces = (): Array<string> =>
  (spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout ?? "").split("\n").map((l) => l.split(" ")[0]).filter(Boolean)

/** True while `pid` is a vitest process (a reused pid is not). */
const isVitest = (pid: number): boolean => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("vitest")
  } catch {
    return false
  }
}

/**
 * A lab's owner: from its state, else from its processes' environment (a lab whose state was
 * removed, as a test simulating a crash does); "none" when built by hand (farm lab up),
 * "orphan" when neither says (namespaces or processes with no state: a crash's leftovers).
 */
const ownerOf = (name: string): number | "none" | "orphan" => {
  try {
    const s = JSON.parse(readFileSync(`${LAB_ROOT}/${name}/state.json`, "utf8")) as LabState
    return s.owner ?? "none"
  } catch {
    const owners = labProcesses(name).map((p) => p.owner).filter((o): o is number => o !== null)
    return owners.find((o) => o === me || isVitest(o)) ?? "orphan"
  }
}

/** A lab that belongs to another live test run. */
const foreign = (name: string): boolean => {
  const o = ownerOf(name)
  return typeof o === "number" && o !== me && isVitest(o)
}

interface Snapshot {
  readonly namespaces: ReadonlyArray<string>
  readonly veths: ReadonlyArray<string>
  readonly xdp: ReadonlyArray<BpfProgram>
  readonly labPids: ReadonlyArray<number>
}

const removeStale = () => {
  for (const name of listLabs()) {
    const o = ownerOf(name)
    const stale = o === "orphan" ? "no state.json" : typeof o === "number" && o !== me && !isVitest(o) ? `its test run (pid ${o}) is gone` : null
    if (stale === null) {
      if (o === "none") say(`lab ${name} was built by hand (farm lab up): left alone`)
      continue
    }
    const removed = labDown(name)
    say(`removed stale lab ${name} (${stale}): ${removed.length} namespaces`)
  }
  // processes of an earlier run (lab or not) whose run is gone
  for (const p of markedProcesses()) {
    if (p.owner !== null && p.owner !== me && !isVitest(p.owner) && p.lab === null) {
      try {
        process.kill(p.pid, "SIGKILL")
        say(`killed process ${p.pid} left by test run ${p.owner}: ${p.cmd.slice(0, 100)}`)
      } catch {
        // gone
      }
    }
  }
}

/** A lab of this run: built under it, or an orphan (no state, no live owner). */
const ours = (lab: string): boolean => {
  const o = ownerOf(lab)
  return o === me || o === "orphan"
}

const leftovers = (before: Snapshot): Array<string> => {
  const ns = namespaces().filter((n) => !before.namespaces.includes(n)).filter((n) => !n.startsWith("vf-") || ours(n.split("-")[1]))
  const ofRun = (p: LabProcess) => p.owner === me || (p.lab !== null && ours(p.lab) && !before.labPids.includes(p.pid))
  const procs = markedProcesses().filter(ofRun)
  const veths = hostVeths().filter((v) => !before.veths.includes(v))
  // XDP programs cannot be told apart by lab: they are checked while no other lab is up
  const others = listLabs().filter((l) => !ours(l))
  const xdp = others.length > 0 ? [] : xdpPrograms().filter((p) => !before.xdp.some((b) => b.id === p.id))
  return [
    ...ns.map((n) => `namespace ${n}`),
    ...procs.map((p) => `process ${p.pid}${p.lab === null ? "" : ` of lab ${p.lab}`}: ${p.cmd.slice(0, 160)}`),
    ...veths.map((v) => `host veth ${v}`),
    ...xdp.map((p) => `XDP program ${p.name} (id ${p.id})`)
  ]
}

/**
 * Remove what the run left (after reporting it), so that the next run starts clean: its labs
 * and processes; in CI (where nothing else runs) also other new namespaces and host veths.
 */
const clean = (before: Snapshot) => {
  for (const name of listLabs()) if (ours(name)) labDown(name)
  for (const p of markedProcesses().filter((x) => x.owner === me)) {
    try {
      process.kill(p.pid, "SIGKILL")
    } catch {
      // gone
    }
  }
  if (!ci) return
  for (const n of namespaces().filter((x) => !before.namespaces.includes(x) && !x.startsWith("vf-"))) {
    for (const pid of (spawnSync("ip", ["netns", "pids", n], { encoding: "utf8" }).stdout ?? "").split("\n").filter(Boolean)) {
      try {
        process.kill(Number(pid), "SIGKILL")
      } catch {
        // gone
      }
    }
    spawnSync("ip", ["netns", "del", n])
  }
  for (const v of hostVeths().filter((x) => !before.veths.includes(x))) spawnSync("ip", ["link", "del", v])
}

export default function setup() {
  rmSync(LEAKS, { force: true })
  if (process.getuid?.() !== 0) return () => {}
  removeStale()
  const before: Snapshot = {
    namespaces: namespaces(),
    veths: hostVeths(),
    xdp: xdpPrograms(),
    labPids: labProcesses().map((p) => p.pid)
  }
  return async () => {
    // exiting processes and programs freed after a namespace's deletion take a moment
    let left = leftovers(before)
    for (let i = 0; i < 25 && left.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 200))
      left = leftovers(before)
    }
    const others = listLabs().filter((l) => !ours(l))
    if (others.length > 0) say(`XDP programs not checked: other labs are up (${others.join(", ")})`)
    mkdirSync(dirname(LEAKS), { recursive: true })
    writeFileSync(LEAKS, JSON.stringify({ owner: me, leaks: left }, null, 2) + "\n")
    if (left.length === 0) {
      say("nothing left: no namespace, process, host veth or XDP program of the run")
      return
    }
    for (const l of left) say(`LEFT BEHIND: ${l}`)
    clean(before)
    if (ci) throw new Error(`the test run left ${left.length} thing(s) behind (see [leak check] lines; ${OWNER_ENV}=${me})`)
  }
}
