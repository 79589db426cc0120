/**
 * The audit viewer's web server: node:http, one self-contained page (HTML, CSS and JS
 * read from this directory at start; nothing from the internet) and a JSON API over an
 * AuditModel. Off by default; binds 127.0.0.1 unless told otherwise. On loopback the
 * Host header must name loopback (no DNS rebinding); anywhere else every request needs
 * the token (query `token=`, `Authorization: Bearer`, or the cookie the page sets).
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto"
import { readFileSync } from "node:fs"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import { isIP } from "node:net"
import { AuditModel, stateView, type TimelineFilter } from "./model.ts"
import { exportLine } from "./source.ts"

const asset = (name: string) => readFileSync(new URL(`./${name}`, import.meta.url), "utf8")

/** The page's files, read once. */
const assets = (() => {
  let cache: Record<string, { type: string; body: string }> | null = null
  return () =>
    (cache ??= {
      "/": { type: "text/html; charset=utf-8", body: asset("page.html") },
      "/app.js": { type: "text/javascript; charset=utf-8", body: asset("page.js") },
      "/app.css": { type: "text/css; charset=utf-8", body: asset("page.css") }
    })
})()

/** Parse `ADDR:PORT` (IPv6 in brackets) or a bare port. */
export const parseListen = (s: string): { readonly host: string; readonly port: number } => {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+))?:?(\d{1,5})$/.exec(s.trim())
  const host = m?.[1] ?? m?.[2] ?? "127.0.0.1"
  const port = m ? Number(m[3]) : NaN
  if (!m || port > 65535) throw new Error(`--listen: expected ADDR:PORT (e.g. 127.0.0.1:8700 or [::1]:8700), got "${s}"`)
  return { host, port }
}

/** True for addresses only this machine reaches. */
export const isLoopback = (host: string): boolean =>
  host === "localhost" || host === "::1" || (isIP(host) === 4 && host.startsWith("127."))

/** A fresh random token. */
export const generateToken = (): string => randomBytes(18).toString("base64url")

const digest = (s: string) => createHash("sha256").update(s).digest()
const sameToken = (a: string, b: string) => timingSafeEqual(digest(a), digest(b))

/** Options of the audit server. */
export interface AuditServerOptions {
  readonly host: string
  readonly port: number
  /** Required when `host` is not loopback. */
  readonly token: string | null
  /** Where the log comes from, as shown on the page. */
  readonly source: string
}

/** A running audit server. */
export interface AuditServer {
  readonly url: string
  readonly port: number
  readonly close: () => Promise<void>
}

const COOKIE = "vipfarm_audit"

const json = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" })
  res.end(JSON.stringify(body))
}

const num = (v: string | null): number | undefined => {
  if (v === null || v.trim() === "") return undefined
  const n = Number(v)
  return Number.isFinite(n) ? n : undefined
}

const timeParam = (v: string | null): number | undefined => {
  if (v === null || v.trim() === "") return undefined
  const n = /^\d+$/.test(v) ? Number(v) : Date.parse(v)
  return Number.isNaN(n) ? undefined : n
}

/** Start serving `model`. */
export const startAuditServer = (model: AuditModel, o: AuditServerOptions): Promise<AuditServer> => {
  const loopback = isLoopback(o.host)
  if (!loopback && (o.token === null || o.token === "")) return Promise.reject(new Error(`--listen ${o.host}: not loopback, a token is required`))
  const files = assets()
  const streams = new Set<ServerResponse>()
  let boundPort = o.port

  const authorized = (req: IncomingMessage, url: URL): { ok: boolean; viaQuery: boolean } => {
    if (o.token === null || o.token === "") return { ok: true, viaQuery: false }
    const q = url.searchParams.get("token")
    if (q !== null && sameToken(q, o.token)) return { ok: true, viaQuery: true }
    const auth = req.headers.authorization
    if (auth?.startsWith("Bearer ") && sameToken(auth.slice(7), o.token)) return { ok: true, viaQuery: false }
    const cookie = (req.headers.cookie ?? "").split(/;\s*/).find((c) => c.startsWith(`${COOKIE}=`))
    if (cookie !== undefined && sameToken(decodeURIComponent(cookie.slice(COOKIE.length + 1)), o.token)) return { ok: true, viaQuery: false }
    return { ok: false, viaQuery: false }
  }

  const hostAllowed = (req: IncomingMessage): boolean => {
    if (!loopback) return true
    const h = (req.headers.host ?? "").toLowerCase()
    return [`127.0.0.1:${boundPort}`, `localhost:${boundPort}`, `[::1]:${boundPort}`, `${o.host}:${boundPort}`].includes(h)
  }

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://audit.invalid")
    res.setHeader("x-content-type-options", "nosniff")
    res.setHeader("referrer-policy", "no-referrer")
    res.setHeader("x-frame-options", "DENY")
    if (!hostAllowed(req)) return json(res, 403, { error: "Host header is not loopback (DNS rebinding?)" })
    const auth = authorized(req, url)
    if (!auth.ok) return json(res, 401, { error: "a token is required: open the URL farm audit printed (…/?token=…)" })
    if (req.method !== "GET" && req.method !== "HEAD") return json(res, 405, { error: "read-only" })
    const p = url.pathname
    const file = files[p]
    if (file !== undefined) {
      const headers: Record<string, string> = {
        "content-type": file.type,
        "cache-control": "no-store",
        "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
      }
      if (auth.viaQuery) headers["set-cookie"] = `${COOKIE}=${encodeURIComponent(o.token!)}; HttpOnly; SameSite=Strict; Path=/`
      res.writeHead(200, headers)
      return res.end(req.method === "HEAD" ? undefined : file.body)
    }
    try {
      switch (p) {
        case "/api/info": {
          const all = model.all()
          return json(res, 200, {
            farm: model.farm, source: o.source, headSeq: model.headSeq, firstSeq: all[0]?.seq ?? 0,
            firstTime: all[0]?.time ?? null, headTime: all.at(-1)?.time ?? null, chain: model.chain()
          })
        }
        case "/api/timeline": {
          const q = url.searchParams
          const f: TimelineFilter = {
            node: q.get("node") || undefined, bucket: num(q.get("bucket")), table: num(q.get("table")),
            from: timeParam(q.get("from")), to: timeParam(q.get("to")), fromSeq: num(q.get("fromSeq")), toSeq: num(q.get("toSeq")),
            limit: num(q.get("limit"))
          }
          return json(res, 200, model.timeline(f))
        }
        case "/api/state": {
          const t = timeParam(url.searchParams.get("time"))
          const seq = num(url.searchParams.get("seq")) ?? (t !== undefined ? model.seqAtTime(t) : model.headSeq)
          return json(res, 200, stateView(model.stateAt(seq), Math.min(seq, model.headSeq), model.timeOf(seq)))
        }
        case "/api/bucket": {
          const bucket = num(url.searchParams.get("bucket"))
          const table = num(url.searchParams.get("table")) ?? 0
          if (bucket === undefined || !Number.isInteger(bucket) || bucket < 0 || bucket > 1023) return json(res, 400, { error: "bucket: 0..1023" })
          return json(res, 200, { table, bucket, history: model.bucketHistory(table, bucket) })
        }
        case "/api/client": {
          const address = url.searchParams.get("address") ?? ""
          const port = num(url.searchParams.get("port"))
          try {
            return json(res, 200, model.client(address.trim(), { port, seq: num(url.searchParams.get("seq")) }))
          } catch (e) {
            return json(res, 400, { error: (e as Error).message })
          }
        }
        case "/api/export": {
          res.writeHead(200, { "content-type": "application/x-ndjson", "content-disposition": `attachment; filename="${model.farm}-log.jsonl"` })
          for (const r of model.all()) res.write(exportLine(model.farm, r) + "\n")
          return res.end()
        }
        case "/api/live": {
          res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store", connection: "keep-alive" })
          res.write(`retry: 1000\nevent: head\ndata: ${JSON.stringify({ seq: model.headSeq, chain: model.chain() })}\n\n`)
          streams.add(res)
          req.on("close", () => streams.delete(res))
          return
        }
        default:
          return json(res, 404, { error: `no such page: ${p}` })
      }
    } catch (e) {
      return json(res, 500, { error: (e as Error).message })
    }
  }

  // live updates: one message per burst of records (at most every 100 ms)
  let pending: NodeJS.Timeout | null = null
  const unsubscribe = model.onRecord(() => {
    if (pending !== null) return
    pending = setTimeout(() => {
      pending = null
      const msg = `event: head\ndata: ${JSON.stringify({ seq: model.headSeq, chain: model.chain() })}\n\n`
      for (const s of streams) s.write(msg)
    }, 100)
  })
  const keepAlive = setInterval(() => { for (const s of streams) s.write(": keep-alive\n\n") }, 15_000)

  const server = createServer(handle)
  return new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen(o.port, o.host, () => {
      const addr = server.address()
      boundPort = typeof addr === "object" && addr !== null ? addr.port : o.port
      const hostText = o.host.includes(":") ? `[${o.host}]` : o.host
      resolve({
        url: `http://${hostText}:${boundPort}/${o.token ? `?token=${encodeURIComponent(o.token)}` : ""}`,
        port: boundPort,
        close: () =>
          new Promise<void>((done) => {
            unsubscribe()
            clearInterval(keepAlive)
            if (pending !== null) clearTimeout(pending)
            for (const s of streams) s.end()
            server.close(() => done())
            server.closeAllConnections()
          })
      })
    })
  })
}
