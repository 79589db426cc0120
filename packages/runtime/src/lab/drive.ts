/**
 * Driving a lab farm from the outside, as `farm demo` and the end-to-end tests do: read the
 * daemons' status and bucket owners through their control sockets, run the client probe
 * inside client namespaces, kill or stop daemons. No traffic leaves the lab's namespaces.
 */
import { spawn, spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { addressWords, bucketOf, farmSeed } from "@vipfarm/domain"
import { callControl } from "../control.ts"
import type { Status } from "../status.ts"
import type { LabState } from "./lab.ts"

const ROOT = fileURLToPath(new URL("../../../../", import.meta.url))
const PROBE = `${ROOT}packages/runtime/src/lab/probe.mjs`

const serverOf = (lab: LabState, node: string) => {
  const s = lab.servers.find((x) => x.node === node)
  if (s === undefined) throw new Error(`no server ${node} in lab ${lab.name}`)
  return s
}

/** Status document of a server (through its control socket). */
export const labStatus = (lab: LabState, node: string): Promise<Status> =>
  Effect.runPromise(callControl(serverOf(lab, node).control, "GET", "/status")) as Promise<Status>

/** Owners of table 0 as a server sees them (the receiver for buckets in flight). */
export const labOwners = async (lab: LabState, node: string): Promise<Array<string | null>> => {
  const r = (await Effect.runPromise(callControl(serverOf(lab, node).control, "GET", "/buckets"))) as {
    tables: Array<Array<{ owner: string | null; to?: string }>>
  }
  return r.tables[0].map((b) => b.to ?? b.owner)
}

/** The server that should answer a client address under client-ip affinity. */
export const expectedServer = (lab: LabState, table: ReadonlyArray<string | null>, src: string): string | null =>
  table[bucketOf("client-ip", { src: addressWords(src), dst: addressWords(lab.vip), sport: 0, dport: 80, packetId: 0, fragment: false }, farmSeed(lab.name))]

/** Poll until `check` holds, or fail after `timeoutMs`. */
export const until = async (what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  let last: unknown = null
  while (Date.now() < deadline) {
    try {
      if (await check()) return
    } catch (e) {
      last = e
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`)
}

/** Wait until every server of the lab is up, owns a share and serves. */
export const waitFarmUp = (lab: LabState, timeoutMs = 30_000): Promise<void> =>
  until("every server up with buckets", async () => {
    for (const s of lab.servers) {
      const st = await labStatus(lab, s.node)
      if (st.members.length !== lab.servers.length || st.members.some((m) => m.state !== "up" || m.buckets === 0)) return false
      if (st.filter.fenced) return false
    }
    return true
  }, timeoutMs)

/**
 * Start the probe in a client namespace. `ready` resolves once a poll or hold probe has had a
 * first answer from every source address (or has ended); `result` with its JSON output;
 * `stop()` ends a hold probe early (it reports as at its end).
 */
export const startProbe = <T>(lab: LabState, client: string, args: ReadonlyArray<string>): { ready: Promise<void>; result: Promise<T>; stop: () => void } => {
  let stop: () => void = () => {}
  let markReady: () => void = () => {}
  const ready = new Promise<void>((r) => (markReady = r))
  const result = new Promise<T>((resolve, reject) => {
    const c = lab.clients.find((x) => x.node === client)
    if (c === undefined) {
      markReady()
      return reject(new Error(`no client ${client} in lab ${lab.name}`))
    }
    const child = spawn("ip", ["netns", "exec", c.ns, process.execPath, PROBE, ...args], { stdio: ["ignore", "pipe", "pipe"] })
    // `ip netns exec` execs the probe: the child is the probe itself
    stop = () => child.kill("SIGTERM")
    let out = ""
    let err = ""
    child.stdout.on("data", (d) => (out += d))
    child.stderr.on("data", (d) => {
      err += d
      if (/^ready$/m.test(err)) markReady()
    })
    child.on("close", (code) => {
      markReady()
      try {
        resolve(JSON.parse(out) as T)
      } catch {
        reject(new Error(`probe exited ${code}: ${err.slice(0, 500)}`))
      }
    })
  })
  return { ready, result, stop: () => stop() }
}

/** Run the probe in a client namespace; resolves with its JSON output. */
export const runProbe = <T>(lab: LabState, client: string, args: ReadonlyArray<string>): Promise<T> => startProbe<T>(lab, client, args).result

/** SIGKILL a server's daemon; returns the epoch ms at which the signal was sent. */
export const killDaemon = (lab: LabState, node: string): number => {
  const s = serverOf(lab, node)
  const t = Date.now()
  spawnSync("ip", ["netns", "exec", s.ns, "pkill", "-KILL", "-f", `daemon --config ${s.config}`])
  return t
}

/** SIGTERM a server's daemon. */
export const termDaemon = (lab: LabState, node: string): void => {
  const s = serverOf(lab, node)
  spawnSync("ip", ["netns", "exec", s.ns, "pkill", "-TERM", "-f", `daemon --config ${s.config}`])
}

/** True while a server's daemon process runs. */
export const daemonRunning = (lab: LabState, node: string): boolean => {
  const s = serverOf(lab, node)
  return spawnSync("ip", ["netns", "exec", s.ns, "pgrep", "-f", `daemon --config ${s.config}`]).status === 0
}

/** Client addresses of a lab client. */
export const addressesOf = (lab: LabState, client = "c1"): Array<string> => [...(lab.clients.find((c) => c.node === client)?.addresses ?? [])]

/** One GET per address: who answered. */
export type HttpResult = Array<{ src: string; server: string | null; error?: string }>

/** A poll probe's samples: per address, [epochMs, server|null] at each change. */
export type PollResult = Array<{ src: string; samples: Array<[number, string | null]>; lagged?: number }>

/** A hold probe's report per connection. */
export type HoldResult = Array<{ src: string; servers: Array<string>; answers: number; reset: boolean; error: string | null; maxGapMs: number }>

/** For each address that `gone` served at `since`: ms until another server answered it (Infinity if never). */
/** The stretches a poller got no answer from `since` on, as [duration ms, start ms]; the trace's last sample ends the last one. */
export const silences = (samples: PollResult[number]["samples"], since: number): Array<[number, number]> => {
  const out: Array<[number, number]> = []
  for (let i = 0; i + 1 < samples.length; i++) {
    const [t, s] = samples[i]
    const end = samples[i + 1][0]
    if (s === null && end > since) out.push([end - Math.max(t, since), Math.max(t, since)])
  }
  return out
}

export const recoveryTimes = (poll: PollResult, since: number, gone: string): Array<number> =>
  poll
    .filter((p) => {
      let at: string | null = null
      for (const [t, s] of p.samples) if (t <= since) at = s
      return at === gone
    })
    .map((p) => {
      const back = p.samples.find(([t, s]) => t >= since && s !== null && s !== gone)
      return back ? back[0] - since : Infinity
    })
