/** Shared pieces of the application end-to-end tests: temp dirs, ports, report logs, clean-up by pid. */
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { FarmReport, Supervisor } from "../../packages/runtime/src/app/index.ts"

/** A temp dir readable by every user (nginx/apache workers run as nobody/www-data). */
export const tempDir = (prefix: string): string => {
  const d = mkdtempSync(join(tmpdir(), `vipfarm-${prefix}-`))
  chmodSync(d, 0o755)
  return d
}

/** A free TCP port on 127.0.0.1. */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = createServer()
    s.once("error", reject)
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })

/** Every farm report a supervisor sends, with the time (performance.now()). */
export const recordReports = (sup: Supervisor) => {
  const seen: Array<{ at: number; report: FarmReport }> = []
  sup.onReport((report) => seen.push({ at: performance.now(), report }))
  return {
    seen,
    tags: () => seen.map((s) => s.report._tag),
    /** Wait for the next report with this tag after index `from`. */
    waitFor: async (tag: FarmReport["_tag"], timeoutMs: number, from = 0) => {
      const t0 = performance.now()
      while (performance.now() - t0 < timeoutMs) {
        const hit = seen.slice(from).find((s) => s.report._tag === tag)
        if (hit) return hit
        await sleep(20)
      }
      throw new Error(`no ${tag} report within ${timeoutMs} ms; got ${JSON.stringify(seen.map((s) => s.report))}; status ${JSON.stringify(sup.status())}`)
    }
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Wait until `f()` is true. */
export const until = async (what: string, f: () => boolean, timeoutMs: number): Promise<void> => {
  const t0 = performance.now()
  while (!f()) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

/** Pids of processes whose command line mentions `needle` (our temp dir), except this one. */
export const pidsMentioning = (needle: string): Array<number> => {
  const out: Array<number> = []
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue
    try {
      if (readFileSync(`/proc/${d}/cmdline`, "utf8").includes(needle)) out.push(Number(d))
    } catch {
      // gone
    }
  }
  return out
}

/** Children of a process. */
export const childrenOf = (pid: number): Array<number> => {
  const out: Array<number> = []
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8")
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
      if (ppid === pid) out.push(Number(d))
    } catch {
      // gone
    }
  }
  return out
}

/** SIGKILL a process and its children (a crash); stopped first so it cannot respawn a child meanwhile. */
export const crash = (pid: number): void => {
  signal(pid, "SIGSTOP")
  for (const c of childrenOf(pid)) signal(c, "SIGKILL")
  signal(pid, "SIGKILL")
}

export const signal = (pid: number, sig: NodeJS.Signals): void => {
  try {
    process.kill(pid, sig)
  } catch {
    // gone
  }
}

export const readPid = (file: string): number | null => {
  try {
    const n = Number(readFileSync(file, "utf8").trim())
    return Number.isInteger(n) && n > 0 ? n : null
  } catch {
    return null
  }
}

/** Pids of processes holding a file under `dir` open (orphaned nginx workers hold its error log). */
export const pidsHolding = (dir: string): Array<number> => {
  const out: Array<number> = []
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue
    try {
      for (const fd of readdirSync(`/proc/${d}/fd`)) {
        if (readlinkSync(`/proc/${d}/fd/${fd}`).startsWith(dir + "/")) {
          out.push(Number(d))
          break
        }
      }
    } catch {
      // gone, or not ours to read
    }
  }
  return out
}

/** Last resort after a test: SIGKILL whatever we started (by its pid file, our temp dir in its command line or open files), remove the dir. */
export const cleanUp = (dir: string, pidFiles: ReadonlyArray<string> = []): void => {
  for (const f of pidFiles) {
    const pid = existsSync(f) ? readPid(f) : null
    if (pid !== null) crash(pid)
  }
  for (const pid of new Set([...pidsMentioning(dir), ...pidsHolding(dir)])) crash(pid)
  rmSync(dir, { recursive: true, force: true })
}

export const isRoot = typeof process.getuid === "function" && process.getuid() === 0
