/**
 * `VIPFARM_CPU_PROFILE=FILE`: profile the daemon's CPU from when it is ready until it stops
 * and write a .cpuprofile (Chrome DevTools, speedscope); `{node}` in FILE becomes the node name. `node --cpu-prof` cannot be used:
 * its sampling signals interrupt the BPF verifier (EAGAIN) while the filter loads.
 */
import { Effect } from "effect"
import { Session } from "node:inspector"
import { writeFileSync } from "node:fs"
import { log } from "./log.ts"

const post = (s: Session, method: string, params?: object) =>
  new Promise<unknown>((resolve, reject) => s.post(method, params ?? {}, (e, r) => (e ? reject(e) : resolve(r))))

/** Profile until the scope closes, when `file` is set. */
export const profileCpuScoped = (path: string | undefined, node: string) => {
  if (path === undefined || path === "") return Effect.void
  const file = path.replaceAll("{node}", node)
  return Effect.acquireRelease(
        Effect.promise(async () => {
          const s = new Session()
          s.connect()
          await post(s, "Profiler.enable")
          await post(s, "Profiler.setSamplingInterval", { interval: 1000 })
          await post(s, "Profiler.start")
          log("info", "daemon.profiling", { node, file })
          return s
        }),
        (s) =>
          Effect.promise(async () => {
            const r = (await post(s, "Profiler.stop")) as { profile: unknown }
            writeFileSync(file, JSON.stringify(r.profile))
            s.disconnect()
          })
      )
}
