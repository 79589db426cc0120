/**
 * The lab's client probe, run inside a client namespace:
 *   node probe.mjs http VIP ADDR...         one GET per source address → JSON [{src, server}]
 *   node probe.mjs poll VIP SECONDS ADDR...  per source address, a GET every 50 ms (100 ms timeout)
 *     → JSON [{src, samples: [[epochMs, server|null], ...], lagged}] (only changes are kept;
 *     `lagged` counts timeouts noticed late, with the prober itself stalled: not samples)
 *   node probe.mjs hold VIP SECONDS ADDR... one long-lived TCP connection per source
 *     address to VIP:7000, a line every 50 ms; → JSON per connection: the servers that answered,
 *     whether it was reset, the longest gap between answers, and when answers resumed after gaps.
 * Every loop is bounded in count and time.
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

const hold = (src, seconds, t0) =>
  new Promise((resolve) => {
    /** @type {any} */
    const h = { src, servers: [], answers: 0, reset: false, error: null, maxGapMs: 0, firstAnswerAt: null, lastAnswerAt: null }
    const sock = connect({ host: vip, port: 7000, localAddress: src })
    let buf = ""
    let n = 0
    const timer = setInterval(() => sock.write(`${n++}\n`), 50)
    const end = setTimeout(() => {
      clearInterval(timer)
      sock.end()
    }, seconds * 1000)
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
        if (h.servers[h.servers.length - 1] !== server) h.servers.push(server)
      }
    })
    sock.on("error", (e) => {
      h.error = e.code ?? e.message
      h.reset = e.code === "ECONNRESET"
    })
    sock.on("close", () => {
      clearInterval(timer)
      clearTimeout(end)
      resolve(h)
    })
  })

const main = async () => {
  if (mode === "http") {
    const out = []
    for (const src of rest.slice(0, 1024)) out.push(await httpOnce(src))
    process.stdout.write(JSON.stringify(out) + "\n")
  } else if (mode === "poll") {
    const until = Date.now() + Math.min(Number(rest[0]), 120) * 1000
    const out = await Promise.all(rest.slice(1, 257).map(async (src) => {
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
        await new Promise((res) => setTimeout(res, Math.max(0, 50 - (Date.now() - started))))
      }
      samples.push([Date.now(), samples[samples.length - 1]?.[1] ?? null])
      return { src, samples, lagged }
    }))
    process.stdout.write(JSON.stringify(out) + "\n")
  } else if (mode === "hold") {
    const seconds = Math.min(Number(rest[0]), 120)
    const t0 = Date.now()
    const out = await Promise.all(rest.slice(1, 1025).map((src) => hold(src, seconds, t0)))
    process.stdout.write(JSON.stringify(out) + "\n")
  } else {
    process.stderr.write("usage: probe.mjs http|hold VIP ...\n")
    process.exit(2)
  }
}
void main()
