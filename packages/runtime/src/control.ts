/**
 * The daemon's local control socket: a small HTTP/JSON API on a Unix socket
 * (`GET /status`, `GET /buckets`, `GET /events?from=N`, `POST /drain`, `POST /resume`,
 * `POST /restart`, `POST /app/start`, `POST /app/stop`, `POST /app/reload`), and the client
 * `farm status` uses.
 */
import { mkdirSync, rmSync, chmodSync } from "node:fs"
import { dirname } from "node:path"
import { createServer, type IncomingMessage, request, type ServerResponse } from "node:http"
import { Effect, Schema } from "effect"
import { eventsFromQuery, safeStringify } from "./events.ts"

/** What the control socket serves. */
export interface ControlHandlers {
  readonly status: () => unknown
  /** Owners of every bucket (`GET /buckets`). */
  readonly buckets: () => unknown
  readonly drain: () => Promise<unknown>
  readonly resume: () => Promise<unknown>
  /** The log's records the daemon folded, from sequence `from` (`GET /events?from=N`). */
  readonly events?: (from: number) => unknown
  /** Exit for a restart that keeps serving (`POST /restart`). */
  readonly restart?: () => Promise<unknown>
  /** The application module's operator commands (`POST /app/start|stop|reload`); absent without `app:`. */
  readonly app?: {
    readonly start: () => Promise<unknown>
    readonly stop: () => Promise<unknown>
    readonly reload: () => Promise<unknown>
  }
}

/** A request the daemon refuses in its current state (answered 409 with the message). */
export class ControlRefused extends Error {}

/** The control socket could not be opened or answered badly. */
export class ControlError extends Schema.TaggedError<ControlError>()("ControlError", {
  socket: Schema.String,
  message: Schema.String
}) {}

/** Serve the control API on `path` for the lifetime of the scope; the socket file is removed after. */
export const serveControl = (path: string, handlers: ControlHandlers) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          mkdirSync(dirname(path), { recursive: true })
          rmSync(path, { force: true })
          const server = createServer((req, res) => {
            // no answer may take the daemon down: a body that cannot be serialised is a 500, a handler that throws too
            const reply = (code: number, body: unknown) => {
              let text: string
              try {
                text = JSON.stringify(body) ?? "null"
              } catch (e) {
                code = 500
                text = safeStringify({ error: `the answer could not be serialised: ${(e as Error).message}` })
              }
              if (res.headersSent) return
              res.writeHead(code, { "content-type": "application/json" })
              res.end(text)
            }
            try {
              handle(req, res, reply)
            } catch (e) {
              reply(500, { error: e instanceof Error ? e.message : String(e) })
            }
          })
          const handle = (req: IncomingMessage, _res: ServerResponse, reply: (code: number, body: unknown) => void) => {
            const route = `${req.method} ${req.url}`
            if (route === "GET /status") return reply(200, handlers.status())
            if (route === "GET /buckets") return reply(200, handlers.buckets())
            if (route === "POST /drain") return void handlers.drain().then((b) => reply(200, b), (e) => reply(500, { error: String(e) }))
            if (route === "POST /resume") return void handlers.resume().then((b) => reply(200, b), (e) => reply(500, { error: String(e) }))
            if (handlers.events && req.method === "GET" && (req.url === "/events" || req.url?.startsWith("/events?"))) return reply(200, handlers.events(eventsFromQuery(req.url)))
            if (handlers.restart && route === "POST /restart") return void handlers.restart().then((b) => reply(200, b), (e) => reply(500, { error: String(e) }))
            const app = /^POST \/app\/(start|stop|reload)$/.exec(route)?.[1] as "start" | "stop" | "reload" | undefined
            if (app !== undefined) {
              if (handlers.app === undefined) return reply(409, { error: "this daemon supervises no application (its configuration has no app: module)" })
              return void handlers.app[app]().then((b) => reply(200, b), (e) => reply(e instanceof ControlRefused ? 409 : 500, { error: e instanceof Error ? e.message : String(e) }))
            }
            reply(404, { error: `no such endpoint: ${route}` })
          }
          server.once("error", reject)
          server.listen(path, () => {
            chmodSync(path, 0o660)
            resolve(server)
          })
        }),
      catch: (e) => new ControlError({ socket: path, message: (e as Error).message })
    }),
    (server) =>
      Effect.promise(
        () =>
          new Promise<void>((resolve) => {
            server.close(() => resolve())
            server.closeAllConnections?.()
            rmSync(path, { force: true })
          })
      )
  )

/** Call the control API of the daemon listening on `path` (no answer within `timeoutMs`: an error). */
export const callControl = (path: string, method: "GET" | "POST", route: string, timeoutMs = 5000): Effect.Effect<unknown, ControlError> =>
  Effect.tryPromise({
    try: () =>
      new Promise<unknown>((resolve, reject) => {
        // agent: false: a fresh connection per call. A pooled keep-alive socket the daemon closed
        // while this process's event loop was busy (spawnSync in tests) would fail with EPIPE.
        const req = request({ socketPath: path, method, path: route, timeout: timeoutMs, agent: false }, (res) => {
          let body = ""
          res.setEncoding("utf8")
          res.on("data", (c) => (body += c))
          res.on("end", () => {
            try {
              const parsed = JSON.parse(body)
              if ((res.statusCode ?? 500) >= 400) reject(new Error(parsed.error ?? `HTTP ${res.statusCode}`))
              else resolve(parsed)
            } catch (e) {
              reject(e)
            }
          })
        })
        req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)))
        req.on("error", reject)
        req.end()
      }),
    catch: (e) => {
      const err = e as NodeJS.ErrnoException
      const why = err.code === "ENOENT" || err.code === "ECONNREFUSED" ? `no daemon is listening (${err.code}); is farm daemon running?` : err.message
      return new ControlError({ socket: path, message: why })
    }
  })
