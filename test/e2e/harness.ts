/** Helpers for end-to-end tests on a lab farm (the lab and its driving code are the product's own). */
import { Effect } from "effect"
import { expect } from "vitest"
import { spawnSync } from "node:child_process"
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs"
import {
  addressesOf, type BpfProgram, describeLeftovers, expectedServer, hostSnapshot, type HttpResult, LAB_ROOT, labDown, labLeftovers, labOwners, labStatus, labUp,
  runProbe, until, type LabOptions, type LabState, waitFarmUp
} from "@vipfarm/runtime"

export {
  addressesOf, daemonRunning, expectedServer, type HoldResult, type HttpResult, killDaemon, labOwners as owners, labStatus as status,
  type PollResult, recoveryTimes, runProbe as probe, silences, termDaemon, until
} from "@vipfarm/runtime"

/** True when this process can build labs; otherwise print why the suite is skipped. */
export const rootOrSkip = (suite: string): boolean => {
  const root = process.getuid?.() === 0
  if (!root) console.log(`${suite}: skipped: needs root (network namespaces, XDP); CI runs it as root`)
  return root
}

/** Host veths and XDP programs before each lab was built (what its removal is checked against). */
const before = new Map<string, { veths: ReadonlyArray<string>; xdp: ReadonlyArray<BpfProgram> }>()

/** Note what the host had before lab `name` is built (startLab does; tests calling labUp themselves call this first). */
export const noteHostBefore = (name: string): void => {
  before.set(name, hostSnapshot())
}

/** Build a lab with daemons and wait until every server is up and owns a share. */
export const startLab = async (o: Partial<LabOptions> & { name: string }): Promise<LabState> => {
  noteHostBefore(o.name)
  const lab = await Effect.runPromise(labUp({ servers: 3, clients: 1, addressesPerClient: 40, app: "builtin", daemons: true, ...o }))
  try {
    await waitFarmUp(lab)
  } catch (e) {
    labDown(o.name)
    throw e
  }
  return lab
}

/**
 * Remove a lab (its logs are kept under artifacts/e2e/NAME); returns what it left, one line per
 * kind (none, if clean-up works): namespaces, processes of the lab (also outside its
 * namespaces), and host veths and XDP programs that were not there before it was built.
 */
export const stopLab = (name: string): Array<string> => {
  const logs = `${LAB_ROOT}/${name}`
  if (existsSync(logs)) {
    const keep = `${process.cwd()}/artifacts/e2e/${name}`
    rmSync(keep, { recursive: true, force: true })
    mkdirSync(keep, { recursive: true })
    for (const f of readdirSync(logs)) if (f.endsWith(".log") || f.endsWith(".yaml") || f === "state.json") cpSync(`${logs}/${f}`, `${keep}/${f}`)
  }
  labDown(name)
  const host = before.get(name) ?? hostSnapshot()
  before.delete(name)
  return describeLeftovers(labLeftovers(name, host))
}

/** Who answered how many of an http probe's requests (null: no answer). */
export const answersPerServer = (results: ReadonlyArray<{ server: string | null }>): Record<string, number> => {
  const per: Record<string, number> = {}
  for (const r of results) per[r.server ?? "none"] = (per[r.server ?? "none"] ?? 0) + 1
  return per
}

/** Buckets per member as one server's status shows them. */
export const bucketsPerMember = async (lab: LabState, node: string): Promise<Record<string, number>> => {
  return Object.fromEntries((await labStatus(lab, node)).members.map((m) => [m.name, m.buckets]))
}

/** Median and worst of a list of times, for the reports the tests print. */
export const medianWorst = (xs: ReadonlyArray<number>): { median: number; worst: number; text: string } => {
  const s = [...xs].sort((a, b) => a - b)
  const median = s.length === 0 ? NaN : s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
  const worst = s.length === 0 ? NaN : s[s.length - 1]
  return { median, worst, text: `median ${Math.round(median)} ms, worst ${Math.round(worst)} ms (n=${s.length})` }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** One line per server: its view of the farm (for failure messages). */
export const farmViews = async (lab: LabState): Promise<string> => {
  const lines: Array<string> = []
  for (const s of lab.servers) {
    try {
      const st = await labStatus(lab, s.node)
      lines.push(`${s.node}: log ${st.log.sequence}${st.filter.fenced ? " FENCED" : ""} ${st.members.map((m) => `${m.name}:${m.state}:${m.buckets}:i${m.incarnation}`).join(" ")}${st.handoffs.length ? ` handoffs ${st.handoffs.join(",")}` : ""}${st.app ? ` app ${st.app.state}` : ""}`)
    } catch (e) {
      lines.push(`${s.node}: no status (${(e as Error).message})`)
    }
  }
  return lines.join("\n")
}

/** `until`, but a time-out names every server's view of the farm. */
export const untilFarm = async (lab: LabState, what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> => {
  try {
    await until(what, check, timeoutMs)
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${await farmViews(lab)}`)
  }
}

/** A process's parent pid (null when it is gone). */
const parentOf = (pid: number): number | null => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
  } catch {
    return null
  }
}

/**
 * A lab server's application (nginx or apache2): its parent (from the lab's per-server pid
 * file, checked to live in that server's network namespace and to run that server's config)
 * and the parent's children (workers). Empty when not running.
 */
export const appPids = (lab: LabState, node: string, app: "nginx" | "apache"): { parent: number | null; children: Array<number> } => {
  const s = lab.servers.find((x) => x.node === node)!
  let parent: number | null = null
  try {
    parent = Number(readFileSync(`${lab.dir}/${node}-${app}.pid`, "utf8").trim()) || null
  } catch {
    return { parent: null, children: [] }
  }
  if (parent === null || !existsSync(`/proc/${parent}`)) return { parent: null, children: [] }
  const ns = spawnSync("ip", ["netns", "identify", String(parent)], { encoding: "utf8" }).stdout.trim()
  if (ns !== s.ns) throw new Error(`pid ${parent} from ${node}'s ${app} pid file is not in ${s.ns} (in "${ns}")`)
  if (app === "apache") {
    const cmdline = readFileSync(`/proc/${parent}/cmdline`, "utf8")
    if (!cmdline.includes(`${lab.dir}/${node}-apache.conf`)) throw new Error(`pid ${parent} is not ${node}'s apache2: ${cmdline}`)
  }
  const children = readdirSync("/proc").filter((d) => /^\d+$/.test(d)).map(Number).filter((p) => parentOf(p) === parent)
  return { parent, children }
}

/** Crash a lab server's application: SIGSTOP the parent (no respawn), SIGKILL its children, SIGKILL it. Returns the epoch ms. */
export const crashApp = (lab: LabState, node: string, app: "nginx" | "apache"): number => {
  const { parent, children } = appPids(lab, node, app)
  if (parent === null) throw new Error(`no ${app} running on ${node}`)
  const t = Date.now()
  process.kill(parent, "SIGSTOP")
  for (const c of children) {
    try {
      process.kill(c, "SIGKILL")
    } catch {
      // gone
    }
  }
  process.kill(parent, "SIGKILL")
  return t
}

/** The nginx of a lab server: master and workers (see {@link appPids}). */
export const nginxPids = (lab: LabState, node: string): { master: number | null; workers: Array<number> } => {
  const { parent, children } = appPids(lab, node, "nginx")
  return { master: parent, workers: children }
}

/** Crash a lab server's nginx (see {@link crashApp}). */
export const crashNginx = (lab: LabState, node: string): number => crashApp(lab, node, "nginx")

/** After a daemon stopped: nothing it set is left on its server (XDP on eth0, the VIP on lo, ARP sysctls). */
export const expectHostClean = (lab: LabState, node: string): void => {
  const s = lab.servers.find((x) => x.node === node)!
  const inNs = (...cmd: Array<string>) => spawnSync("ip", ["netns", "exec", s.ns, ...cmd], { encoding: "utf8" }).stdout
  expect(inNs("ip", "-d", "link", "show", "eth0"), `${node}: XDP left on eth0`).not.toMatch(/xdp/)
  expect(inNs("ip", "addr", "show", "lo"), `${node}: VIP left on lo`).not.toContain(lab.vip)
  expect(inNs("sysctl", "-n", "net.ipv4.conf.all.arp_ignore").trim(), `${node}: arp_ignore left set`).toBe("0")
}

/** GET the VIP from every address of client c1: each answered by its bucket's owner in `from`'s table (and never by `not`). */
export const expectEveryClientServed = async (lab: LabState, from: string, not?: string): Promise<HttpResult> => {
  const table = await labOwners(lab, from)
  const r = await runProbe<HttpResult>(lab, "c1", ["http", lab.vip, ...addressesOf(lab)])
  for (const x of r) {
    expect(x.server, `answer to ${x.src}`).toBe(expectedServer(lab, table, x.src))
    if (not) expect(x.server).not.toBe(not)
  }
  return r
}
