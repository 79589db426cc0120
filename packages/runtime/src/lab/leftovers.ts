/**
 * What a lab can leave on the machine once it is removed: network namespaces, processes,
 * veths in the host namespace, XDP programs. `farm demo`, `farm lab down` and the test run's
 * teardown look for them. Every process a lab starts carries `VIPFARM_LAB=NAME` in its
 * environment (and so do its children: nginx, apache2, workers), which is how its processes
 * are found again even after its namespaces are gone.
 */
import { spawnSync } from "node:child_process"
import { readdirSync, readFileSync } from "node:fs"
import koffi from "koffi"
import { listNamespaces } from "./netns.ts"

/** Environment variable naming the lab a process belongs to. */
export const LAB_ENV = "VIPFARM_LAB"

/**
 * Environment variable naming the process that owns a lab (the test run's vitest process):
 * labs built while it is set record it, so that a later run can tell a crashed run's labs
 * (owner gone) from a live one's.
 */
export const OWNER_ENV = "VIPFARM_LAB_OWNER"

/** A process that belongs to a lab or to a test run. */
export interface LabProcess {
  readonly pid: number
  /** The lab it belongs to (null: found by its owner only). */
  readonly lab: string | null
  /** The owner pid in its environment, if any. */
  readonly owner: number | null
  /** Its command line (for reports). */
  readonly cmd: string
}

const readProc = (pid: string, file: string): string => {
  try {
    return readFileSync(`/proc/${pid}/${file}`, "utf8")
  } catch {
    return ""
  }
}

/** Every process on the machine (but this one) whose environment names a lab or an owner. */
export const markedProcesses = (): Array<LabProcess> => {
  const out: Array<LabProcess> = []
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue
    const env = readProc(d, "environ")
    if (!env.includes(`${LAB_ENV}=`) && !env.includes(`${OWNER_ENV}=`)) continue
    const vars = new Map(env.split("\0").filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)] as const))
    const owner = vars.has(OWNER_ENV) ? Number(vars.get(OWNER_ENV)) || null : null
    const cmd = readProc(d, "cmdline").split("\0").join(" ").trim()
    if (cmd === "") continue // a zombie: gone once reaped
    out.push({ pid: Number(d), lab: vars.get(LAB_ENV) ?? null, owner, cmd })
  }
  return out
}

/** The processes of a lab (or of every lab), wherever they are (also outside its namespaces). */
export const labProcesses = (name?: string): Array<LabProcess> =>
  markedProcesses().filter((p) => p.lab !== null && (name === undefined || p.lab === name))

/** veth interfaces in this (the host's) network namespace. */
export const hostVeths = (): Array<string> =>
  (spawnSync("ip", ["-o", "link", "show", "type", "veth"], { encoding: "utf8" }).stdout ?? "")
    .split("\n")
    .map((l) => /^\d+: ([^:@]+)/.exec(l)?.[1])
    .filter((n): n is string => n !== undefined)

/** A loaded BPF program. */
export interface BpfProgram {
  readonly id: number
  readonly type: number
  readonly name: string
}

/** BPF program type of XDP programs (`BPF_PROG_TYPE_XDP`). */
export const BPF_PROG_TYPE_XDP = 6

let bpfCalls: { nextId: (start: number, next: Uint32Array) => number; fdById: (id: number) => number; info: (fd: number, info: Uint8Array, len: Uint32Array) => number; close: (fd: number) => number } | null = null

/**
 * Every XDP program loaded in the kernel (needs root and libbpf.so.1). A program stays loaded
 * while a device, a pin or an open descriptor holds it; freeing one is asynchronous after
 * its namespace is deleted, so callers poll for a moment.
 */
export const xdpPrograms = (): Array<BpfProgram> => {
  if (bpfCalls === null) {
    const bpf = koffi.load("libbpf.so.1")
    const libc = koffi.load("libc.so.6")
    bpfCalls = {
      nextId: bpf.func("int bpf_prog_get_next_id(uint32_t start_id, _Inout_ uint32_t *next_id)") as never,
      fdById: bpf.func("int bpf_prog_get_fd_by_id(uint32_t id)") as never,
      info: bpf.func("int bpf_obj_get_info_by_fd(int fd, _Inout_ uint8_t *info, _Inout_ uint32_t *info_len)") as never,
      close: libc.func("int close(int fd)") as never
    }
  }
  const calls = bpfCalls
  const out: Array<BpfProgram> = []
  const next = new Uint32Array(1)
  let id = 0
  for (let guard = 0; guard < 100_000; guard++) {
    if (calls.nextId(id, next) !== 0) break
    id = next[0]
    const fd = calls.fdById(id)
    if (fd < 0) continue // freed meanwhile
    // struct bpf_prog_info: type u32 @0, id u32 @4, ..., name char[16] @64
    const info = new Uint8Array(80)
    const len = new Uint32Array([info.length])
    const r = calls.info(fd, info, len)
    calls.close(fd)
    if (r !== 0) continue
    const dv = new DataView(info.buffer)
    const name = Buffer.from(info.subarray(64, 80)).toString("latin1").replace(/\0.*$/s, "")
    if (dv.getUint32(0, true) === BPF_PROG_TYPE_XDP) out.push({ id: dv.getUint32(4, true), type: BPF_PROG_TYPE_XDP, name })
  }
  return out
}

/** What a lab left behind (all empty when its removal worked). */
export interface Leftovers {
  readonly namespaces: ReadonlyArray<string>
  readonly processes: ReadonlyArray<LabProcess>
  readonly veths: ReadonlyArray<string>
  readonly xdp: ReadonlyArray<BpfProgram>
}

/** True when nothing is left. */
export const isClean = (l: Leftovers): boolean => l.namespaces.length + l.processes.length + l.veths.length + l.xdp.length === 0

/** One line per kind of leftover (empty when clean). */
export const describeLeftovers = (l: Leftovers): Array<string> => [
  ...(l.namespaces.length ? [`namespaces: ${l.namespaces.join(", ")}`] : []),
  ...(l.processes.length ? [`processes: ${l.processes.map((p) => `${p.pid} (${p.lab === null ? "" : `lab ${p.lab}: `}${p.cmd.slice(0, 120)})`).join("; ")}`] : []),
  ...(l.veths.length ? [`host veths: ${l.veths.join(", ")}`] : []),
  ...(l.xdp.length ? [`XDP programs: ${l.xdp.map((p) => `${p.name}#${p.id}`).join(", ")}`] : [])
]

const sleepMs = (ms: number) => spawnSync("sleep", [String(ms / 1000)])

/**
 * What lab `name` left, compared with a snapshot taken before it was built (`before`: the host
 * veths and XDP programs that were there already). Polls up to `graceMs` for processes that
 * are exiting and programs the kernel frees asynchronously.
 */
export const labLeftovers = (
  name: string,
  before: { readonly veths: ReadonlyArray<string>; readonly xdp: ReadonlyArray<BpfProgram> },
  graceMs = 5000
): Leftovers => {
  const deadline = Date.now() + graceMs
  for (;;) {
    const now: Leftovers = {
      namespaces: listNamespaces(`vf-${name}-`),
      processes: labProcesses(name),
      veths: hostVeths().filter((v) => !before.veths.includes(v)),
      xdp: xdpPrograms().filter((p) => !before.xdp.some((b) => b.id === p.id))
    }
    if (isClean(now) || Date.now() >= deadline) return now
    sleepMs(200)
  }
}

/** The host veths and XDP programs present now (see {@link labLeftovers}). */
export const hostSnapshot = (): { veths: Array<string>; xdp: Array<BpfProgram> } => ({ veths: hostVeths(), xdp: xdpPrograms() })
