/**
 * The lab's client probe, run inside a client namespace:
 *   node probe.mjs http VIP ADDR...         one GET per source address → JSON [{src, server}]
 *   node probe.mjs poll VIP SECONDS ADDR...  per source address, a GET every 50 ms (100 ms timeout)
 *     → JSON [{src, samples: [[epochMs, server|null], ...], lagged}] (only changes are kept;
 *     `lagged` counts timeouts noticed late, with the prober itself stalled: not samples)
 *   node probe.mjs hold VIP SECONDS ADDR... one long-lived TCP connection per source
 *     (SIGTERM ends every connection early and reports as at the end)
 *     address to VIP:7000, a line every 50 ms; → JSON per connection: the servers that answered,
 *     whether it was reset, the longest gap between answers, and when answers resumed after gaps.
 * Every loop is bounded in count and time. poll and hold write "ready" on stderr once every
 * source address has had its first answer (or its first try, when nobody answers).
 */
import { request } from "node:http"
import { connect } from "node:net"

const [mode, vip, ...rest] = process.argv.slice(2)

const httpOnce = (src, timeoutMs = 2000) =>
  new Promise((resolve) => {
    const req = request({ host: vip, port: 80, path: "/", localAddress: src, timeout: timeoutMs, agent: false }, (res) => {
      let body = ""
      res.on("data", (c) => (body += c))
      res.on("end", () => resolve({ src, server: body.trim() }))
    })
    req.on("timeout", () => req.destroy(new Error("timeout")))
    req.on("error", (e) => resolve({ src, server: null, error: e.message }))
    req.end()
  })

/** Ends the hold connections early (SIGTERM). */
const enders = new Set()
process.on("SIGTERM", () => {
  for (const end of enders) end()
})

const hold = (src, seconds, t0, answered) =>
  new Promise((resolve) => {
    /** @type {any} */
    const h = { src, servers: [], answers: 0, reset: false, error: null, maxGapMs: 0, firstAnswerAt: null, lastAnswerAt: null }
    const sock = connect({ host: vip, port: 7000, localAddress: src })
    let buf = ""
    let n = 0
    const timer = setInterval(() => sock.write(`${n++}\n`), 50)
    const finish = () => {
      clearInterval(timer)
      sock.end()
    }
    const end = setTimeout(finish, seconds * 1000)
    enders.add(() => {
      clearTimeout(end)
      finish()
    })
    sock.setEncoding("utf8")
    sock.on("data", (chunk) => {
      buf += chunk
      let i
      while ((i = buf.indexOf("\n")) >= 0) {
        const server = buf.slice(0, i).split(" ")[0]
        buf = buf.slice(i + 1)
        const now = Date.now() - t0
        if (h.lastAnswerAt !== null) h.maxGapMs = Math.max(h.maxGapMs, now - h.lastAnswerAt)
        h.firstAnswerAt ??= now
        h.lastAnswerAt = now
        h.answers++
        answered(src)
        if (h.servers[h.servers.length - 1] !== server) h.servers.push(server)
      }
    })
    sock.on("error", (e) => {
      h.error = e.code ?? e.message
      h.reset = e.code === "ECONNRESET"
    })
    sock.on("close", () => {
      answered(src) // no answer ever: not waited for
      clearInterval(timer)
      clearTimeout(end)
      resolve(h)
    })
  })

/** Write "ready" on stderr once `count` sources have called the returned function. */
const readiness = (count) => {
  let left = count
  const seen = new Set()
  if (left === 0) process.stderr.write("ready\n")
  return (src) => {
    if (seen.has(src)) return
    seen.add(src)
    if (--left === 0) process.stderr.write("ready\n")
  }
}

const main = async () => {
  if (mode === "http") {
    const out = []
    for (const src of rest.slice(0, 1024)) out.push(await httpOnce(src))
    process.stdout.write(JSON.stringify(out) + "\n")
  } else if (mode === "poll") {
    const until = Date.now() + Math.min(Number(rest[0]), 120) * 1000
    const sources = rest.slice(1, 257)
    const tried = readiness(sources.length)
    const out = await Promise.all(sources.map(async (src) => {
      /** @type {Array<[number, string | null]>} */
      const samples = []
      let lagged = 0
      while (Date.now() < until) {
        const started = Date.now()
        const r = await httpOnce(src, 100)
        const last = samples[samples.length - 1]
        // a timeout noticed 60 ms late says this prober was stalled (CPU), not that nobody
        // answered: such a sample is no evidence either way and is only counted
        if (r.server === null && r.error === "timeout" && Date.now() - started > 160) lagged++
        else if (last === undefined || last[1] !== r.server) samples.push([started, r.server])
        tried(src)
        await new Promise((res) => setTimeout(res, Math.max(0, 50 - (Date.now() - started))))
      }
      samples.push([Date.now(), samples[samples.length - 1]?.[1] ?? null])
      return { src, samples, lagged }
    }))
    process.stdout.write(JSON.stringify(out) + "\n")
  } else if (mode === "hold") {
    const seconds = Math.min(Number(rest[0]), 120)
    const t0 = Date.now()
    const sources = rest.slice(1, 1025)
    const answered = readiness(sources.length)
    const out = await Promise.all(sources.map((src) => hold(src, seconds, t0, answered)))
    process.stdout.write(JSON.stringify(out) + "\n")
  } else {
    process.stderr.write("usage: probe.mjs http|hold VIP ...\n")
    process.exit(2)
  }
}
void main()
