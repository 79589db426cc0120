/**
 * The checkers' probes (I/O): one attempt each, bounded by the checker's timeout. The
 * verdicts over time are `health.ts`'s business.
 */
import { spawn } from "node:child_process"
import { readdirSync, readFileSync } from "node:fs"
import { request } from "node:http"
import { connect } from "node:net"
import type { ProbeResult } from "./health.ts"
import type { CheckerSpec } from "./module.ts"

const ok: ProbeResult = { ok: true }
const failed = (error: string): ProbeResult => ({ ok: false, error })

/** Connect to host:port. */
export const probeTcp = (host: string, port: number, timeoutMs: number): Promise<ProbeResult> =>
  new Promise((resolve) => {
    const s = connect({ host, port })
    const done = (r: ProbeResult) => {
      clearTimeout(timer)
      s.destroy()
      resolve(r)
    }
    const timer = setTimeout(() => done(failed(`connect ${host}:${port}: no answer within ${timeoutMs} ms`)), timeoutMs)
    s.once("connect", () => done(ok))
    s.once("error", (e: NodeJS.ErrnoException) => done(failed(`connect ${host}:${port}: ${e.code ?? e.message}`)))
  })

const MAX_BODY = 64 * 1024

/** GET the URL; the status must be accepted (default 200-399) and the body match `body` if given. */
export const probeHttp = (
  url: string,
  options: { readonly timeoutMs: number; readonly status: ReadonlyArray<number> | null; readonly body: string | null }
): Promise<ProbeResult> =>
  new Promise((resolve) => {
    let settled = false
    const done = (r: ProbeResult) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      req.destroy()
      resolve(r)
    }
    const req = request(url, { method: "GET", agent: false, headers: { "user-agent": "vipfarm-checker", connection: "close" } }, (res) => {
      const code = res.statusCode ?? 0
      const accepted = options.status ? options.status.includes(code) : code >= 200 && code < 400
      if (!accepted) return done(failed(`GET ${url}: status ${code}`))
      if (options.body === null) return done(ok)
      const chunks: Array<Buffer> = []
      let size = 0
      res.on("data", (c: Buffer) => {
        if (size < MAX_BODY) chunks.push(c)
        size += c.length
      })
      res.on("end", () => {
        const text = Buffer.concat(chunks).subarray(0, MAX_BODY).toString("utf8")
        done(new RegExp(options.body!).test(text) ? ok : failed(`GET ${url}: body does not match /${options.body}/`))
      })
      res.on("error", (e) => done(failed(`GET ${url}: ${e.message}`)))
    })
    const timer = setTimeout(() => done(failed(`GET ${url}: no answer within ${options.timeoutMs} ms`)), options.timeoutMs)
    req.on("error", (e: NodeJS.ErrnoException) => done(failed(`GET ${url}: ${e.code ?? e.message}`)))
    req.end()
  })

/** A process seen in /proc. */
export interface ProcInfo {
  readonly pid: number
  readonly comm: string
  /** Arguments joined by spaces (empty for kernel threads). */
  readonly cmdline: string
}

/** Every process in /proc (those that vanish while being read are skipped). */
export const listProcesses = (): Array<ProcInfo> => {
  const out: Array<ProcInfo> = []
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue
    try {
      const comm = readFileSync(`/proc/${d}/comm`, "utf8").trim()
      const cmdline = readFileSync(`/proc/${d}/cmdline`, "utf8").replace(/\0+$/, "").split("\0").join(" ")
      out.push({ pid: Number(d), comm, cmdline })
    } catch {
      // gone
    }
  }
  return out
}

/** Count matching processes (pure over a process list): exact name (comm or argv[0]'s base name) or regex over the command line. */
export const countProcesses = (procs: ReadonlyArray<ProcInfo>, match: { readonly process: string | null; readonly regex: string | null }, self = process.pid): number => {
  const re = match.regex !== null ? new RegExp(match.regex) : null
  let n = 0
  for (const p of procs) {
    if (p.pid === self || p.cmdline === "") continue
    if (re !== null ? re.test(p.cmdline) : p.comm === match.process || (p.cmdline.split(" ")[0].split("/").pop() ?? "") === match.process) n++
  }
  return n
}

/** Count processes by name or regex; pass when atLeast <= count <= atMost. */
export const probeProcess = (spec: { readonly process: string | null; readonly regex: string | null; readonly atLeast: number; readonly atMost: number | null }): ProbeResult => {
  const n = countProcesses(listProcesses(), spec)
  const what = spec.regex !== null ? `/${spec.regex}/` : spec.process
  if (n < spec.atLeast) return failed(`${n} process${n === 1 ? "" : "es"} match ${what}, want at least ${spec.atLeast}`)
  if (spec.atMost !== null && n > spec.atMost) return failed(`${n} processes match ${what}, want at most ${spec.atMost}`)
  return ok
}

/** Run a command (`/bin/sh -c`, own process group); exit 0 passes. Killed (group, SIGKILL) on timeout. */
export const probeCommand = (command: string, options: { readonly timeoutMs: number; readonly cwd: string; readonly env: Readonly<Record<string, string>> }): Promise<ProbeResult> =>
  new Promise((resolve) => {
    const child = spawn("/bin/sh", ["-c", command], { cwd: options.cwd, env: { ...process.env, ...options.env }, detached: true, stdio: ["ignore", "pipe", "pipe"] })
    let tail = ""
    const keep = (c: Buffer) => {
      tail = (tail + c.toString("utf8")).slice(-2000)
    }
    child.stdout!.on("data", keep)
    child.stderr!.on("data", keep)
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      try {
        process.kill(-child.pid!, "SIGKILL")
      } catch {
        // gone
      }
    }, options.timeoutMs)
    child.on("error", (e) => {
      clearTimeout(timer)
      resolve(failed(`${command}: ${e.message}`))
    })
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      const last = tail.trim().split("\n").pop()?.slice(0, 300) ?? ""
      if (timedOut) resolve(failed(`${command}: no exit within ${options.timeoutMs} ms`))
      else if (code === 0) resolve(ok)
      else resolve(failed(`${command}: ${signal ? `killed by ${signal}` : `exit ${code}`}${last ? `: ${last}` : ""}`))
    })
  })

/** Run one probe of a checker. */
export const probeChecker = (spec: CheckerSpec, ctx: { readonly cwd: string; readonly env: Readonly<Record<string, string>> }): Promise<ProbeResult> => {
  switch (spec.type) {
    case "tcp":
      return probeTcp(spec.host, spec.port, spec.timeoutMs)
    case "http":
      return probeHttp(spec.url, { timeoutMs: spec.timeoutMs, status: spec.status, body: spec.body })
    case "process":
      try {
        return Promise.resolve(probeProcess(spec))
      } catch (e) {
        return Promise.resolve(failed(`process scan: ${(e as Error).message}`))
      }
    case "command":
      return probeCommand(spec.command, { timeoutMs: spec.timeoutMs, cwd: ctx.cwd, env: ctx.env })
  }
}
