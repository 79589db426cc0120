/**
 * The chaos suite's load generator, run inside a lab client namespace (like probe.mjs):
 *   node load.mjs VIP SECONDS HTTP_ADDRS TCP_ADDRS UDP_ADDRS UDP_RATE
 * (address lists comma-separated, "-" for none). Until SECONDS (at most 1800) or SIGTERM:
 * - per HTTP address, a short GET every 250 ms (1 s timeout), retried once at once when it fails;
 * - per TCP address, a long-lived connection to VIP:7000 writing a line every 200 ms; one that
 *   is reset, closed, or answers nothing for 3 s is broken: it is reported and opened again;
 * - UDP requests to VIP:5300 at UDP_RATE per second in all, spread over one socket per UDP
 *   address, each with a request id; an id answered by two servers is reported.
 * Writes JSON lines on stdout (t: epoch ms):
 *   {k:"hf",t,te,src,try,err}       an HTTP attempt failed (started t, failed te)
 *   {k:"hx",t,src}                  an HTTP request failed after its retry
 *   {k:"tb",t,src,server,why,age}   a served TCP connection broke (t: its last answer for a
 *                                   silent one, else when it broke; server: its last answer)
 *   {k:"ts",t,src,from,to}          a TCP connection was answered by another server
 *   {k:"u2",t,id,servers}           a UDP request answered by two servers
 *   {k:"lag",t,ms}                  this process's own loop was ms late (a loaded machine:
 *                                   its timeouts then say little about the farm)
 *   {k:"s",t,http,httpFailed,tcpOpen,udpSent,udpAnswered,udpLost}  totals, every second
 *   {k:"ready",t}                   every TCP connection has had its first answer
 *   {k:"end",t,...totals}           last line
 */
import { request } from "node:http"
import { connect } from "node:net"
import { createSocket } from "node:dgram"

const [vip, secondsArg, httpArg, tcpArg, udpArg, rateArg] = process.argv.slice(2)
const list = (a) => (a === undefined || a === "-" ? [] : a.split(",").filter(Boolean).slice(0, 1024))
const seconds = Math.min(Math.max(Number(secondsArg) || 0, 1), 1800)
const httpAddrs = list(httpArg)
const tcpAddrs = list(tcpArg)
const udpAddrs = list(udpArg)
const udpRate = Math.min(Math.max(Number(rateArg) || 0, 0), 1000)
if (vip === undefined || !/^[0-9.]+$/.test(vip)) {
  process.stderr.write("usage: load.mjs VIP SECONDS HTTP_ADDRS TCP_ADDRS UDP_ADDRS UDP_RATE\n")
  process.exit(2)
}

const until = Date.now() + seconds * 1000
let stopping = false
const emit = (o) => process.stdout.write(JSON.stringify(o) + "\n")
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const totals = { http: 0, httpFailed: 0, tcpOpen: 0, tcpBroken: 0, udpSent: 0, udpAnswered: 0, udpLost: 0, udpTwice: 0 }

const httpOnce = (src) =>
  new Promise((resolve) => {
    const req = request({ host: vip, port: 80, path: "/", localAddress: src, timeout: 1000, agent: false }, (res) => {
      let body = ""
      res.on("data", (c) => (body += c))
      res.on("end", () => resolve(res.statusCode === 200 && body.trim() !== "" ? null : `status ${res.statusCode}`))
      res.on("error", (e) => resolve(e.code ?? e.message))
    })
    req.on("timeout", () => req.destroy(Object.assign(new Error("timeout"), { code: "timeout" })))
    req.on("error", (e) => resolve(e.code ?? e.message))
    req.end()
  })

const httpClient = async (src) => {
  await sleep(Math.random() * 250)
  while (!stopping && Date.now() < until) {
    const started = Date.now()
    let ok = false
    for (let attempt = 1; attempt <= 2 && !ok; attempt++) {
      const t = Date.now()
      const err = await httpOnce(src)
      if (err === null) ok = true
      else emit({ k: "hf", t, te: Date.now(), src, try: attempt, err })
    }
    totals.http++
    if (!ok) {
      totals.httpFailed++
      emit({ k: "hx", t: started, src })
    }
    await sleep(Math.max(0, 250 - (Date.now() - started)))
  }
}

let unready = new Set(tcpAddrs)
const markAnswered = (src) => {
  if (unready === null || !unready.delete(src)) return
  if (unready.size === 0) {
    unready = null
    emit({ k: "ready", t: Date.now() })
  }
}

/** One connection's life: resolves when it ends (broken, or at the end of the run). */
const tcpOnce = (src) =>
  new Promise((resolve) => {
    const sock = connect({ host: vip, port: 7000, localAddress: src })
    const opened = Date.now()
    let server = null
    let lastAnswer = 0
    let buf = ""
    let n = 0
    let done = false
    const end = (why, t) => {
      if (done) return
      done = true
      clearInterval(writer)
      clearInterval(watch)
      if (server !== null) {
        totals.tcpOpen--
        if (why !== null) {
          totals.tcpBroken++
          emit({ k: "tb", t, src, server, why, age: t - opened })
        }
      }
      sock.destroy()
      resolve()
    }
    const writer = setInterval(() => {
      if (stopping || Date.now() >= until) return end(null, Date.now())
      sock.write(`${n++}\n`)
    }, 200)
    const watch = setInterval(() => {
      const now = Date.now()
      if (server !== null && now - lastAnswer > 3000) end("timeout", lastAnswer)
      else if (server === null && now - opened > 5000) end(null, now)
    }, 250)
    sock.setEncoding("utf8")
    sock.on("data", (chunk) => {
      buf += chunk
      let i
      while ((i = buf.indexOf("\n")) >= 0) {
        const who = buf.slice(0, i).split(" ")[0]
        buf = buf.slice(i + 1)
        lastAnswer = Date.now()
        if (server === null) {
          totals.tcpOpen++
          markAnswered(src)
        } else if (who !== server) emit({ k: "ts", t: lastAnswer, src, from: server, to: who })
        server = who
      }
    })
    sock.on("error", (e) => end(e.code ?? e.message, Date.now()))
    sock.on("close", () => end("closed", Date.now()))
  })

const tcpClient = async (src) => {
  while (!stopping && Date.now() < until) {
    await tcpOnce(src)
    await sleep(500)
  }
}

/** Requests in flight: id → {t, servers}; dropped (lost when unanswered) after 5 s. */
const pending = new Map()
const udpClients = () => {
  if (udpAddrs.length === 0 || udpRate === 0) return []
  const every = (1000 * udpAddrs.length) / udpRate
  return udpAddrs.map((src, k) =>
    new Promise((resolve) => {
      const sock = createSocket("udp4")
      let n = 0
      sock.on("message", (msg) => {
        const [server, , id] = msg.toString().split(" ")
        const p = pending.get(id)
        if (p === undefined) return
        if (p.servers.length === 0) totals.udpAnswered++
        if (!p.servers.includes(server)) {
          p.servers.push(server)
          if (p.servers.length === 2) {
            totals.udpTwice++
            emit({ k: "u2", t: p.t, id, servers: p.servers })
          }
        }
      })
      sock.on("error", () => {})
      sock.bind({ address: src, port: 0 }, () => {
        const send = () => {
          if (stopping || Date.now() >= until) {
            clearInterval(timer)
            setTimeout(() => {
              sock.close()
              resolve()
            }, 1000)
            return
          }
          const id = `${k}.${n++}`
          pending.set(id, { t: Date.now(), servers: [] })
          totals.udpSent++
          sock.send(`q ${id}`, 5300, vip)
        }
        const timer = setInterval(send, every)
      })
    })
  )
}

const sweeper = setInterval(() => {
  const old = Date.now() - 5000
  for (const [id, p] of pending) {
    if (p.t >= old) break
    if (p.servers.length === 0) totals.udpLost++
    pending.delete(id)
  }
  emit({ k: "s", t: Date.now(), ...totals })
}, 1000)

let tick = Date.now()
const lagWatch = setInterval(() => {
  const now = Date.now()
  if (now - tick > 350) emit({ k: "lag", t: tick, ms: now - tick - 100 })
  tick = now
}, 100)

process.on("SIGTERM", () => (stopping = true))
if (tcpAddrs.length === 0) emit({ k: "ready", t: Date.now() })

await Promise.all([...httpAddrs.map(httpClient), ...tcpAddrs.map(tcpClient), ...udpClients()])
clearInterval(sweeper)
clearInterval(lagWatch)
for (const p of pending.values()) if (p.servers.length === 0) totals.udpLost++
emit({ k: "end", t: Date.now(), ...totals })
