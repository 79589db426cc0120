/**
 * Run a module command (`/bin/sh -c` in its own process group) with a timeout, logging its
 * output line by line (`op=app.start module=nginx stream=stdout line=...`). A command that
 * outlives its timeout is escalated: SIGTERM to its process group, then SIGKILL after the
 * grace period.
 */
import { spawn } from "node:child_process"
import { readdirSync, readFileSync } from "node:fs"
import { log } from "../log.ts"

/** How a command ended. */
export interface CommandResult {
  readonly ok: boolean
  readonly exitCode: number | null
  readonly signal: string | null
  readonly timedOut: boolean
  /** `term`: SIGTERM ended it after the timeout; `kill`: it needed SIGKILL. */
  readonly escalated: "term" | "kill" | null
  readonly durationMs: number
  /** The last lines of its output (stdout and stderr interleaved). */
  readonly tail: string
  /** A one-line reason when not ok. */
  readonly error: string | null
}

/** Options of {@link runCommand}. */
export interface RunOptions {
  /** Log op, e.g. `app.start`. */
  readonly op: string
  readonly module: string
  readonly cwd: string
  readonly env: Readonly<Record<string, string>>
  readonly timeoutMs: number
  /** Between SIGTERM and SIGKILL after a timeout. */
  readonly graceMs: number
}

const now = () => performance.now()

const signalGroup = (pid: number, sig: NodeJS.Signals): boolean => {
  try {
    process.kill(-pid, sig)
    return true
  } catch {
    return false
  }
}

/** Whether any live (non-zombie) process is left in the group: zombies wait for a reaper we do not control. */
const groupAlive = (pgid: number): boolean => {
  try {
    process.kill(-pgid, 0)
  } catch {
    return false
  }
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8")
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      if (Number(f[2]) === pgid && f[0] !== "Z" && f[0] !== "X") return true
    } catch {
      // gone
    }
  }
  return false
}

/** Run a shell command; never rejects. */
export const runCommand = (command: string, o: RunOptions): Promise<CommandResult> =>
  new Promise((resolve) => {
    const t0 = now()
    log("info", o.op, { module: o.module, event: "run", command, timeoutMs: o.timeoutMs })
    const child = spawn("/bin/sh", ["-c", command], {
      cwd: o.cwd,
      env: { ...process.env, ...o.env },
      detached: true,
      stdio: ["ignore", "pipe", "pipe"]
    })
    const lines: Array<string> = []
    const reader = (stream: "stdout" | "stderr") => {
      let partial = ""
      return (c: Buffer) => {
        const parts = (partial + c.toString("utf8")).split("\n")
        partial = parts.pop() ?? ""
        if (partial.length > 4000) {
          parts.push(partial)
          partial = ""
        }
        for (const line of parts) {
          if (line === "") continue
          lines.push(line)
          if (lines.length > 20) lines.shift()
          log("info", o.op, { module: o.module, stream, line })
        }
      }
    }
    child.stdout!.on("data", reader("stdout"))
    child.stderr!.on("data", reader("stderr"))
    let timedOut = false
    let escalated: "term" | "kill" | null = null
    let killTimer: NodeJS.Timeout | undefined
    const timer = setTimeout(() => {
      timedOut = true
      escalated = "term"
      log("warn", o.op, { module: o.module, event: "timeout", pid: child.pid, timeoutMs: o.timeoutMs, signal: "SIGTERM" })
      signalGroup(child.pid!, "SIGTERM")
      killTimer = setTimeout(() => {
        if (groupAlive(child.pid!)) {
          escalated = "kill"
          log("warn", o.op, { module: o.module, event: "escalate", pid: child.pid, graceMs: o.graceMs, signal: "SIGKILL" })
          signalGroup(child.pid!, "SIGKILL")
        }
      }, o.graceMs)
    }, o.timeoutMs)
    let finished = false
    const finish = (code: number | null, signal: string | null, spawnError?: string) => {
      if (finished) return
      finished = true
      clearTimeout(timer)
      // the shell may be gone while the group lingers (a hanging grandchild); keep escalating until it is empty
      const settle = () => {
        if (timedOut && groupAlive(child.pid!)) {
          if (killTimer === undefined) signalGroup(child.pid!, "SIGKILL")
          setTimeout(settle, 20)
          return
        }
        clearTimeout(killTimer)
        const durationMs = Math.round(now() - t0)
        const isOk = !timedOut && code === 0 && spawnError === undefined
        const error = isOk ? null
          : spawnError ?? (timedOut ? `no exit within ${o.timeoutMs} ms (${escalated === "kill" ? "SIGTERM then SIGKILL" : "SIGTERM"})` : signal ? `killed by ${signal}` : `exit ${code}`) +
            (lines.length > 0 && !timedOut ? `: ${lines[lines.length - 1].slice(0, 300)}` : "")
        log(isOk ? "info" : "warn", o.op, { module: o.module, event: "done", ok: isOk, exit: code, signal, timedOut, escalated, ms: durationMs, error })
        resolve({ ok: isOk, exitCode: code, signal, timedOut, escalated, durationMs, tail: lines.join("\n"), error })
      }
      settle()
    }
    child.on("error", (e) => finish(null, null, e.message))
    // "exit", not "close": a background process the command started may hold its output pipes open
    child.on("exit", (code, signal) => {
      let closed = false
      child.once("close", () => {
        closed = true
        finish(code, signal)
      })
      setTimeout(() => {
        if (closed) return
        child.stdout!.destroy()
        child.stderr!.destroy()
        finish(code, signal)
      }, 100)
    })
  })
