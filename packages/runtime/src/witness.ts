/**
 * `farm witness`: a heartbeat-only voter. It folds the farm's log and heartbeats over core
 * NATS like a server, but owns no bucket and sets nothing on its host. A 2-server farm needs
 * one: with two voters, a survivor alone is no majority and would fence itself; with a
 * witness, the survivor and the witness are two of three. Servers list it in `witnesses`.
 */
import { Deferred, Effect } from "effect"
import { defaultTiming, type Heartbeat, NodeController } from "./controller/index.ts"
import { ensureStream, makeNatsEventLog, natsConnection, requireAuthentication, type NatsOptions } from "./eventLog.ts"
import { Result } from "effect"
import { loadSigner, signedEventLog, type SigningConfig } from "./signing.ts"
import { decodeHeartbeat } from "./wire.ts"
import { noteRejected, WireRejections } from "./rejections.ts"
import { followLog } from "./logFollower.ts"
import { log } from "./log.ts"

/** What a witness needs to know. */
export interface WitnessOptions {
  readonly farm: string
  readonly node: string
  readonly nats: NatsOptions
  readonly witnesses: ReadonlyArray<string>
  readonly lease?: { readonly heartbeatMs: number; readonly fenceAfterMs: number; readonly expireAfterMs: number }
  /** The farm's public keys (the witness appends nothing, so it needs no private key). */
  readonly signing?: SigningConfig
}

const now = (): number => Number(process.hrtime.bigint() / 1_000_000n)

/** Run a witness until interrupted (SIGTERM/SIGINT through the runtime). */
export const runWitness = (o: WitnessOptions) =>
  Effect.scoped(
    Effect.gen(function* () {
      const nc = yield* natsConnection({ ...o.nats, name: `vipfarm-witness-${o.node}` })
      yield* requireAuthentication(nc, o.nats)
      yield* ensureStream(nc, o.farm, Math.min(3, o.nats.servers.length))
      const signer = yield* loadSigner(o.node, o.signing ?? { key: null, keys: {} }, { needKey: false })
      const eventLog = signedEventLog(makeNatsEventLog(nc, o.farm), signer)
      const head = yield* eventLog.lastSeq
      const ctl = new NodeController(
        {
          ...defaultTiming, ...o.lease, farm: o.farm, node: o.node, role: "witness", address: "", weight: 0, priority: 1000000,
          rulesDigest: "", witnesses: o.witnesses
        },
        now()
      )
      ctl.onLogHead(head)
      const subject = `vipfarm.${o.farm}.hb`
      const flush = () => {
        for (const a of ctl.drainActions()) {
          if (a._tag === "PublishHeartbeat") nc.publish(subject, JSON.stringify(a.heartbeat))
          else if (a._tag === "Log") log("info", `ctl.${a.op}`, a.fields)
        }
      }
      let logHead = head
      yield* followLog({
        eventLog, node: o.node, folded: () => ctl.foldedState.seq, head: () => logHead, now,
        onRecord: (r) => {
          const before = ctl.foldedState.rejected
          ctl.onLogEntry(r.seq, r.entry, now())
          if (ctl.foldedState.rejected !== before) noteRejected(o.node, r, ctl.foldedState.lastRejection?.reason ?? "rejected", null)
          flush()
        }
      })
      const wireRejections = new WireRejections(o.node)
      const sub = nc.subscribe(subject, {
        callback: (err, msg) => {
          if (err) return
          try {
            const d = decodeHeartbeat(msg.data)
            if (Result.isFailure(d)) return wireRejections.note(msg.subject, now(), d.failure, null)
            const hb: Heartbeat = d.success
            if (hb.seq > logHead) logHead = hb.seq
            ctl.onHeartbeat(hb, now())
            flush()
          } catch (e) {
            log("warn", "heartbeat.malformed", { node: o.node, error: (e as Error).message })
          }
        }
      })
      const timer = setInterval(() => {
        ctl.tick(now())
        flush()
      }, 10)
      yield* Effect.addFinalizer(() => Effect.sync(() => {
        clearInterval(timer)
        sub.unsubscribe()
      }))
      log("info", "witness.ready", { node: o.node, farm: o.farm, seq: head })
      yield* Deferred.await(yield* Deferred.make<void>())
    })
  )
