/**
 * `farm daemon`: one farm server. It folds the farm's JetStream log with the domain
 * reducer (through the node controller), heartbeats over core NATS, and drives the
 * server's XDP filter and host set-up. Everything it sets lives in one Effect scope:
 * SIGTERM drains, leaves and then removes all of it; a crash leaves a filter that fences
 * itself when its deadline lapses.
 */
import { Deferred, Effect, Result } from "effect"
import type { NatsConnection } from "@nats-io/transport-node"
import { addressWords, type AffinityName, BUCKETS, bucketOf, decide, farmSeed, LocalBucket, MAX_TABLES, portRanges, ruleTables, type Vip, virtualMac } from "@vipfarm/domain"
import { type FilterConfig, type FlowTuple, macBytes, type VipEntry, type VipRule } from "@vipfarm/filter-xdp"
import type { Config } from "./config.ts"
import { NodeController, defaultTiming, type Action, type Heartbeat, type HeldFlow, udpReports, UdpHandoverReceiver, type UdpReport } from "./controller/index.ts"
import { ensureStream, makeNatsEventLog, natsConnection, requireAuthentication, type EventLog, type LogRecord } from "./eventLog.ts"
import { followLog } from "./logFollower.ts"
import { profileCpuScoped } from "./cpuProfile.ts"
import { HostNetError, interfaceInfo } from "./hostNet.ts"
import { ControlRefused, serveControl } from "./control.ts"
import { statusOf } from "./status.ts"
import { announcementFrames, sendFrames } from "./announce.ts"
import { classifier, flowsPerBucket, hostTcpSockets } from "./flows.ts"
import { log } from "./log.ts"
import { loadModule } from "./app/module.ts"
import { type AppSupervisor, makeSupervisor } from "./app/runner.ts"
import { ApplicationLog } from "./app/logReports.ts"
import { findMember } from "@vipfarm/domain"
import { FarmMetrics, serveMetrics } from "./metrics.ts"
import { EventStore, type EventsPage } from "./events.ts"
import { scopedHostSetupKept } from "./hostNet.ts"
import { hostStatePath } from "./hostState.ts"
import { acquireFilterKept, attachFilter, encodeTables, RESTART_EXIT_CODE, restartStatePath, type RestartState, tablesOf, takeRestartState, writeRestartState } from "./restart.ts"
import { ChainTail } from "./audit/chainTail.ts"
import { loadConfig } from "./config.ts"
import { reloadConfig } from "./reload.ts"
import { notifySystemd } from "./sdNotify.ts"
import { loadSigner, signedEventLog } from "./signing.ts"
import { decodeFlowReport, decodeHeartbeat } from "./wire.ts"
import { noteRejected, WireRejections } from "./rejections.ts"

/** CLOCK_MONOTONIC in ms: the clock of the controller and of the filter's deadline. */
export const monotonicMs = (): number => Number(process.hrtime.bigint() / 1_000_000n)

/** The filter's rule map entries for the farm's VIPs (table per rule as the domain assigns). */
export const vipEntries = (vips: ReadonlyArray<Vip>): Array<VipEntry> => {
  const tables = ruleTables(vips)
  return vips.map((vip, i) => ({
    words: addressWords(vip.address),
    rules: vip.rules.flatMap((r, j) =>
      portRanges(r).map((g): VipRule => ({ proto: r.proto === "tcp" ? 6 : 17, affinity: r.affinity, table: tables[i][j], portLo: g.lo, portHi: g.hi }))
    )
  }))
}

/** A digest of the services, carried by MemberJoined so that differing configs show in the audit. */
export const rulesDigest = (vips: ReadonlyArray<Vip>): string => {
  const text = JSON.stringify(vips)
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0
  return h.toString(16).padStart(8, "0")
}

const sameVips = (a: ReadonlyArray<Vip>, b: ReadonlyArray<Vip>) => JSON.stringify(a) === JSON.stringify(b)

/** Run a farm server until SIGTERM/SIGINT (drain, leave, clean up) or a fatal error. */
export const runDaemon = (config: Config) =>
  Effect.scoped(
    Effect.gen(function* () {
      const node = config.node
      const vmac = virtualMac(config.farm)
      const seed = farmSeed(config.farm)
      const iface = yield* interfaceInfo(config.interface)
      // the member's address is the farm interface's: without one the Join would be refused by the log
      if (iface.address === "")
        return yield* new HostNetError({ op: `interface ${config.interface}`, message: `interface ${config.interface} has no IP address (config key: interface)` })
      log("info", "daemon.start", { node, farm: config.farm, interface: config.interface, vmac })

      // 1. NATS and the log
      const nc: NatsConnection = yield* natsConnection({ ...config.nats, name: `vipfarm-${node}` })
      yield* requireAuthentication(nc, config.nats)
      yield* ensureStream(nc, config.farm, Math.min(3, config.nats.servers.length))
      const signer = yield* loadSigner(node, config.signing, { needKey: true })
      const eventLog: EventLog["Service"] = signedEventLog(makeNatsEventLog(nc, config.farm), signer)
      const head = yield* eventLog.lastSeq

      // 2. the filter: attached fenced (deadline 0) with no buckets, so it fails closed from the first packet
      // a process that restarted keeping its filter (farm restart) left its lease, tables and
      // flows: a fresh object gets them and is attached over the running program (atomic replace)
      const restartPath = restartStatePath(config.control)
      const taken = takeRestartState(restartPath, { farm: config.farm, node, interface: config.interface }, monotonicMs())
      const inherited: RestartState | null = taken.state
      if (taken.why !== "none") log(inherited ? "info" : "warn", "restart.inherit", { node, result: taken.why, ...(inherited ? { deadline: inherited.deadlineMs, seq: inherited.seq } : {}) })
      let keeping = false // exiting for a keep-serving restart: the filter and the host set-up stay
      const filter = yield* acquireFilterKept(() => keeping)
      const filterConfig = (deadlineNs: bigint): FilterConfig => ({
        seed, vmac: macBytes(vmac), ifmac: macBytes(iface.mac), deadlineNs, answerNeighbours: true, udpIdleMs: 30_000
      })
      filter.setConfig(filterConfig(inherited ? BigInt(Math.floor(inherited.deadlineMs)) * 1_000_000n : 0n))
      filter.setBuckets(inherited ? tablesOf(inherited) : new Uint8Array(MAX_TABLES * BUCKETS))
      filter.setVips(vipEntries(inherited?.vips ?? config.vips))
      for (const f of inherited?.udpFlows ?? []) filter.putFlow("udp_flows", f.tuple, BigInt(f.lastSeenNs))
      const attached = yield* attachFilter(filter, config.interface, { setting: config.xdpMode, inherited: inherited?.mode ?? null, seed, vmac: macBytes(vmac) })
      const xdpMode = attached.mode
      log("info", "filter.attached", { node, interface: config.interface, mode: xdpMode, reason: attached.reason, inherited: inherited !== null, replaced: attached.replaced?.id })

      // 3. the host: sysctls, VIPs on lo, virtual MAC reception (all undone when the scope closes)
      const hostRecord = yield* scopedHostSetupKept(config.interface, vmac, config.vips.map((v) => v.address), inherited?.host ?? null, () => keeping, {
        farm: config.farm, node, statePath: hostStatePath(config.control) // adopted after a SIGKILL too (hostState.ts)
      })
      const macMode = hostRecord.mac
      log("info", "host.ready", { node, vips: config.vips.map((v) => v.address).join(","), vmac: macMode })

      // 4. the application: the server asks for buckets only once its checkers pass
      // (a keep-serving restart adopts the application the previous process ran: see restart.ts)
      const app = config.app === null ? null : yield* loadModule(config.app.module, { vars: config.app.vars }).pipe(Effect.flatMap((m) => makeSupervisor(m, { node, handover: inherited?.app ?? null })))

      // 5. the controller
      const t0 = monotonicMs()
      const ctl = new NodeController(
        {
          farm: config.farm, node, role: "server", address: iface.address, weight: config.weight, priority: config.priority,
          rulesDigest: rulesDigest(config.vips), witnesses: config.witnesses,
          ...defaultTiming,
          heartbeatMs: config.lease.heartbeatMs, fenceAfterMs: config.lease.fenceAfterMs, expireAfterMs: config.lease.expireAfterMs,
          handoffMaxMs: config.handoffMaxMs ?? defaultTiming.handoffMaxMs
        },
        t0
      )
      ctl.onLogHead(head)
      const events = new EventStore()
      let logHead = head // the highest sequence seen (records, peers' heartbeats)
      let installed: Uint8Array | null = null // bucket codes last written to the filter
      let adopting: RestartState | null = inherited
      if (inherited !== null) ctl.holdUntil(inherited.deadlineMs)
      const metrics = config.metrics === null ? null : new FarmMetrics({
        node, farm: config.farm,
        counters: () => filter.readCounters(),
        vipCounters: () => filter.readVipCounters(),
        bucketPackets: () => filter.readBucketCounters(),
        state: () => ctl.effectiveState,
        log: () => ({ folded: ctl.foldedState.seq, head: Math.max(logHead, ctl.foldedState.seq) }),
        flowsTracked: () => filter.readFlows("udp_flows").length,
        leaseRemainingMs: () => ctl.leaseDeadline - monotonicMs(),
        app: () => {
          const s = app?.status()
          return s === undefined ? null : { module: s.module, state: s.state, checkers: s.checkers }
        }
      })
      ctl.onAppHealth(app === null || app.healthy())
      app?.onReport((r) => {
        log(r._tag === "Ready" || r._tag === "ReportRecovered" ? "info" : "warn", `app.${r._tag}`, { node, ...("checker" in r ? { checker: r.checker } : {}), ...("reason" in r ? { reason: r.reason } : {}) })
        ctl.onAppHealth(
          r._tag === "Ready" || r._tag === "ReportRecovered",
          r._tag === "ReportUnhealthy" ? { checker: r.checker, reason: r.reason } : r._tag === "Leave" ? { checker: "policy", reason: r.reason } : undefined
        )
        run(ctl.drainActions())
      })
      // what the application does (restarting, left, healing, stopped, ...) goes to the log as ApplicationChanged
      const appLog = app === null ? null : new ApplicationLog({
        node, boot: `${process.pid.toString(36)}${Date.now().toString(36)}`,
        folded: () => ctl.foldedState,
        caughtUp: () => ctl.foldedState.seq >= logHead,
        now: monotonicMs,
        append: (cmd, events, expectLastSeq, msgId) => {
          const prev = prevFor(expectLastSeq)
          if (prev === null) return Promise.resolve("failed")
          return Effect.runPromise(Effect.result(eventLog.append({ v: 1, events, prev }, { expectLastSeq, msgId }))).then((r) => {
            log(Result.isFailure(r) ? "warn" : "info", "app.logged", {
              node, command: cmd._tag, msgId, seq: expectLastSeq, result: Result.isSuccess(r) ? r.success._tag : r.failure.message
            })
            if (Result.isFailure(r)) return "failed"
            if (r.success._tag === "Conflict") return "conflict"
            if (r.success.seq > logHead) logHead = r.success.seq
            return "ok"
          })
        }
      })
      app?.onApplication((r) => {
        appLog?.add(r)
        appLog?.pump()
      })
      const udp = new UdpHandoverReceiver<FlowTuple>(node, flowKey)
      const hbSubject = `vipfarm.${config.farm}.hb`
      const flowSubject = `vipfarm.${config.farm}.udpflows`
      const exit = yield* Deferred.make<void>()
      let served = false
      let lastDeadline = 0 // the deadline last written into the filter
      let filterVips = config.vips
      let lastTables: Uint8Array | null = null
      let configCheckedAt = -1
      let configWarned = false

      let foreignInstalled: ReadonlyArray<FlowTuple> = []
      const applyTables = (tables: Uint8Array, now: number) => {
        // receivers of moving buckets wait for each old owner's UDP flows before taking new UDP flows (controller/udpHandover.ts)
        const out = udp.adjust(tables, ctl.effectiveState, now).slice()
        if (udp.foreignFlows() !== foreignInstalled) filter.setForeignFlows([...(foreignInstalled = udp.foreignFlows())])
        filter.setBuckets(out)
        installed = out
        lastTables = tables
      }

      // each record appended commits to the hash of the record it follows (the last
      // one folded: appends are conditional on it). The last records folded are kept to hash on demand.
      // A record not held any more is refused (ChainGapError, logged), never written with prev "" (a broken chain).
      const chainTail = new ChainTail(64)
      const prevFor = (seq: number): string | null => {
        const p = chainTail.prevFor(seq)
        if (p._tag === "Success") return p.success
        log("error", "audit.chain-gap", { node, seq, error: p.failure.message })
        return null
      }

      const run = (actions: ReadonlyArray<Action>) => {
        for (const a of actions) {
          switch (a._tag) {
            case "PublishHeartbeat":
              nc.publish(hbSubject, JSON.stringify(a.heartbeat))
              break
            case "Append": {
              const prev = prevFor(a.expectLastSeq)
              if (prev === null) {
                ctl.onAppendResult(a.msgId, { ok: false, error: "unavailable" }, monotonicMs())
                break
              }
              const record = { v: 1 as const, events: a.events, prev }
              Effect.runPromise(Effect.result(eventLog.append(record, { expectLastSeq: a.expectLastSeq, msgId: a.msgId }))).then((r) => {
                const now = monotonicMs()
                if (Result.isFailure(r)) {
                  log("warn", "log.append-failed", { node, msgId: a.msgId, error: r.failure.message })
                  ctl.onAppendResult(a.msgId, { ok: false, error: /timeout/i.test(r.failure.message) ? "timeout" : "unavailable" }, now)
                } else if (r.success._tag === "Conflict") {
                  ctl.onAppendResult(a.msgId, { ok: false, error: "wrong-last-seq", lastSeq: r.success.lastSeq }, now)
                } else {
                  if (r.success.seq > logHead) logHead = r.success.seq
                  ctl.onAppendResult(a.msgId, { ok: true, seq: r.success.seq, duplicate: r.success._tag === "Duplicate" }, now)
                }
                run(ctl.drainActions())
              })
              break
            }
            case "SetFilter": {
              const now = monotonicMs()
              // exiting for a restart: the filter keeps the lease the peers granted. A restarted process keeps
              // the inherited filter until its controller serves (leased, caught up, holding buckets or out of the farm)
              if (keeping) break
              if (adopting !== null) {
                const me = findMember(ctl.foldedState, node)
                const ready = a.deadlineMs > now && ctl.foldedState.seq >= head && (me === undefined || me.status === "down" || a.tables.some((c) => c !== 0))
                if (now < adopting.deadlineMs && !ready) break
                log("info", "restart.adopted", { node, seq: ctl.foldedState.seq, incarnation: ctl.incarnation, leftMs: Math.round(adopting.deadlineMs - now) })
                adopting = null
                ctl.holdUntil(0)
              }
              if (a.tablesChanged || lastTables === null) {
                applyTables(a.tables, now)
                // count the flows of buckets that just started moving away before any hand-off can be called done
                if (a.tables.includes(LocalBucket.MOVING_OUT)) {
                  ctl.onFlowCounts(flowsPerBucket(filterVips, seed, hostTcpSockets(), freshUdpFlows(filter.readFlows("udp_flows"))))
                }
              }
              if (served && lastDeadline > 0 && lastDeadline < now && a.deadlineMs > now) {
                // the filter fenced itself before this refresh (a late echo or a stalled daemon)
                log("warn", "filter.lapsed", { node, ms: Math.round(now - lastDeadline) })
              }
              lastDeadline = a.deadlineMs
              filter.setDeadline(filterConfig(0n), BigInt(Math.max(0, Math.floor(a.deadlineMs))) * 1_000_000n)
              if (!served && a.deadlineMs > now) {
                served = true
                log("info", "filter.serving", { node, seq: ctl.foldedState.seq })
                Effect.runPromise(Effect.result(sendFrames(iface.index, announcementFrames(config.vips.map((v) => v.address), vmac, iface.mac)))).then((r) =>
                  log(Result.isFailure(r) ? "warn" : "info", "announce", { node, vips: config.vips.length, ...(Result.isFailure(r) ? { error: r.failure.message } : {}) })
                )
              }
              break
            }
            case "Log":
              log(a.op.includes("fail") || a.op.includes("reject") ? "warn" : "info", `ctl.${a.op}`, a.fields)
              metrics?.onControllerLog(a.op, a.fields, monotonicMs())
              break
            case "Exit":
              Effect.runFork(Deferred.succeed(exit, undefined))
              break
          }
        }
      }

      // the log: every record in order, folded by the controller (see logFollower.ts)
      const onRecord = (r: LogRecord) => {
        if (r.seq > ctl.foldedState.seq + 1) return ctl.onLogEntry(r.seq, r.entry, monotonicMs()) // logs the gap, folds nothing
        chainTail.add(r.seq, r.entry)
        const rejectedBefore = ctl.foldedState.rejected
        ctl.onLogEntry(r.seq, r.entry, monotonicMs())
        const rejected = ctl.foldedState.rejected !== rejectedBefore ? ctl.foldedState.lastRejection?.reason ?? "rejected" : undefined
        if (rejected !== undefined) noteRejected(node, r, rejected, metrics)
        events.add(r.seq, r.entry, undefined, rejected)
        metrics?.onRecord(r.entry)
        if (r.seq > logHead) logHead = r.seq
        appLog?.pump()
        const st = ctl.foldedState
        if (!sameVips(st.vips, filterVips) && st.vips.length > 0) {
          filterVips = st.vips
          filter.setVips(vipEntries(st.vips))
          log("info", "filter.vips", { node, seq: st.seq, vips: st.vips.map((v) => v.address).join(",") })
        }
        run(ctl.drainActions())
      }
      yield* followLog({ eventLog, node, folded: () => ctl.foldedState.seq, head: () => logHead, onRecord, now: monotonicMs })

      // heartbeats and UDP flow reports over core NATS
      const wireRejections = new WireRejections(node)
      const hbSub = nc.subscribe(hbSubject, {
        callback: (err, msg) => {
          if (err) return
          try {
            const d = decodeHeartbeat(msg.data)
            if (Result.isFailure(d)) return wireRejections.note(`heartbeat ${msg.subject}`, monotonicMs(), d.failure, metrics)
            const hb: Heartbeat = d.success
            const at = monotonicMs()
            ctl.onHeartbeat(hb, at)
            metrics?.onHeartbeat(hb.node, at)
            if (hb.seq > logHead) logHead = hb.seq
            run(ctl.drainActions())
          } catch (e) {
            log("warn", "heartbeat.malformed", { node, error: (e as Error).message })
          }
        }
      })
      const flowSub = nc.subscribe(flowSubject, {
        callback: (err, msg) => {
          if (err) return
          try {
            const d = decodeFlowReport(msg.data)
            if (Result.isFailure(d)) return wireRejections.note(`udpflows ${msg.subject}`, monotonicMs(), d.failure, metrics)
            const m = d.success as UdpReport<FlowTuple>
            if (m.to === node) {
              const again = udp.received(m)
              if (udp.foreignFlows() !== foreignInstalled) filter.setForeignFlows([...(foreignInstalled = udp.foreignFlows())])
              if (again && lastTables !== null) applyTables(lastTables, monotonicMs())
            }
          } catch (e) {
            log("warn", "udpflows.malformed", { node, error: (e as Error).message })
          }
        }
      })
      yield* Effect.addFinalizer(() => Effect.sync(() => { hbSub.unsubscribe(); flowSub.unsubscribe() }))

      // the clock: tick the controller, count flows of moving-out buckets, report UDP flows to receivers
      let lastFlowReport = 0
      const classify = () => classifier(filterVips)
      let lastTimerAt = monotonicMs()
      const timer = setInterval(() => {
        const now = monotonicMs()
        // the lease is refreshed from this loop: a stall longer than the fence margin fences the filter
        if (now - lastTimerAt > 150) log("warn", "daemon.stall", { node, ms: Math.round(now - lastTimerAt) })
        lastTimerAt = now
        ctl.tick(now)
        if (lastTables !== null && lastTables.includes(LocalBucket.MOVING_OUT) && now - lastFlowReport >= 250) {
          lastFlowReport = now
          const udpFlows = freshUdpFlows(filter.readFlows("udp_flows"))
          ctl.onFlowCounts(flowsPerBucket(filterVips, seed, hostTcpSockets(), udpFlows))
          // tell each receiver which UDP flows stay here: one report per hand-off and receiver
          const c = classify()
          const held: Array<HeldFlow<FlowTuple>> = []
          for (const f of udpFlows) {
            const k = c(f.dst, 17, f.dport)
            if (k !== null) held.push({ flow: f, table: k.table, bucket: countBucket(k.affinity, f, seed) })
          }
          for (const r of udpReports(ctl.effectiveState, node, held)) nc.publish(flowSubject, JSON.stringify({ ...r, flows: r.flows.slice(0, 20000) }))
        }
        // the farm's services come from the log; a server that finds none there writes its own
        const st = ctl.foldedState
        if (st.seq >= head && st.seq !== configCheckedAt) {
          configCheckedAt = st.seq
          if (st.vips.length === 0 && config.vips.length > 0) {
            const d = decide({ _tag: "Configure", vips: config.vips, cause: { kind: "config", by: node, detail: config.file } }, st)
            const prev = prevFor(st.seq)
            if (Result.isSuccess(d) && prev !== null) {
              Effect.runPromise(Effect.result(eventLog.append({ v: 1, events: d.success, prev }, { expectLastSeq: st.seq, msgId: `config-${st.seq}` }))).then((r) =>
                log("info", "config.proposed", { node, seq: st.seq, result: Result.isSuccess(r) ? r.success._tag : r.failure.message })
              )
            }
          } else if (!configWarned && st.vips.length > 0 && !sameVips(st.vips, config.vips)) {
            configWarned = true
            log("warn", "config.differs", { node, seq: st.seq, detail: "the farm's services in the log differ from this server's config file; the log wins" })
          }
        }
        appLog?.pump()
        run(ctl.drainActions())
      }, 10)
      yield* Effect.addFinalizer(() => Effect.sync(() => clearInterval(timer)))

      // the control socket
      yield* serveControl(config.control, {
        status: () => ({
          ...statusOf(ctl.effectiveState, node, { fenced: ctl.leaseDeadline <= monotonicMs(), deadlineMs: ctl.leaseDeadline, mode: null, leaving: false }),
          app: app?.status() ?? null,
          chain: chainTail.head()
        }),
        buckets: () => {
          const st = ctl.effectiveState
          return {
            farm: st.farm, node, seq: st.seq, seed,
            tables: st.tables.map((t) => t.map((b) => (b.state === "moving" ? { owner: b.owner, to: b.to, state: b.state } : { owner: b.owner, state: b.state }))),
            packets: ((c) => st.tables.map((_, ti) => Array.from(c.subarray(ti * BUCKETS, (ti + 1) * BUCKETS))))(filter.readBucketCounters())
          }
        },
        drain: async () => {
          ctl.drain()
          return { ok: true, node, op: "drain" }
        },
        resume: async () => {
          ctl.resume()
          return { ok: true, node, op: "resume" }
        },
        events: (from: number): EventsPage => ({ farm: config.farm, node, ...events.from(from), chain: chainTail.head() }),
        restart: () => keepRestart(),
        ...(app === null ? {} : { app: appControl(app, node) })
      })

      // Prometheus metrics; keep-serving restart (farm restart = POST /restart, or SIGUSR2)
      if (metrics !== null && config.metrics !== null) {
        yield* serveMetrics(config.metrics.listen, metrics)
        log("info", "metrics.listening", { node, listen: config.metrics.listen })
      }
      let restarting: Promise<unknown> | null = null
      function keepRestart(): Promise<unknown> {
        if (restarting !== null) return restarting
        restarting = (async () => {
          const t = monotonicMs()
          log("info", "daemon.restarting", { node, seq: ctl.foldedState.seq, holdMs: config.restart.holdMs })
          ctl.pauseFor(config.restart.holdMs, t)
          let d = 0
          // the peers' echo of a heartbeat asking them to hold (normally within two heartbeats)
          while (monotonicMs() - t < 3000) {
            d = ctl.pauseDeadline
            if (d > monotonicMs() + 1000) break
            await new Promise((r) => setTimeout(r, 10))
          }
          keeping = true
          const now = monotonicMs()
          const granted = d > now + 1000
          if (granted) {
            filter.setDeadline(filterConfig(0n), BigInt(Math.floor(d)) * 1_000_000n)
            writeRestartState(restartPath, {
              v: 1, farm: config.farm, node, interface: config.interface, mode: xdpMode, deadlineMs: d,
              tables: encodeTables(installed ?? (adopting !== null ? tablesOf(adopting) : new Uint8Array(MAX_TABLES * BUCKETS))),
              vips: filterVips, udpFlows: filter.readFlows("udp_flows").map((f) => ({ tuple: f.tuple, lastSeenNs: String(f.lastSeenNs) })),
              host: hostRecord, incarnation: ctl.incarnation, seq: ctl.foldedState.seq, app: app?.handover() ?? null
            })
          }
          log(granted ? "info" : "warn", "daemon.restart", {
            node, seq: ctl.foldedState.seq, granted, serveMs: Math.round(d - now), exit: RESTART_EXIT_CODE,
            ...(granted ? {} : { detail: "no majority granted the hold: the filter fences at its lease; the share fails over" })
          })
          setTimeout(() => process.exit(RESTART_EXIT_CODE), 50) // after the control reply
          return { ok: true, node, op: "restart", granted, serveMs: Math.round(d - now), exit: RESTART_EXIT_CODE }
        })()
        return restarting
      }
      const onUsr2 = () => void keepRestart()
      process.on("SIGUSR2", onUsr2)
      yield* Effect.addFinalizer(() => Effect.sync(() => process.off("SIGUSR2", onUsr2)))

      // reload (SIGHUP, systemctl reload): re-read the config file, apply what changes live, log what
      // is refused (see reload.ts). The weight goes to the log as the operator's commands do.
      let running = config
      let reloading: Promise<unknown> = Promise.resolve()
      const appendWeight = (weight: number): Promise<string> => {
        const st = ctl.foldedState
        const d = decide({ _tag: "SetWeight", node, weight, cause: { kind: "config", by: node, detail: running.file } }, st)
        if (Result.isFailure(d)) return Promise.reject(new Error(d.failure.reason))
        const prev = prevFor(st.seq)
        if (prev === null) return Promise.reject(new Error(`audit chain: record ${st.seq} is not held`))
        return Effect.runPromise(eventLog.append({ v: 1, events: d.success, prev }, { expectLastSeq: st.seq, msgId: `reload-${node}-${st.seq}-${weight}` }))
          .then((r) => (r._tag === "Conflict" ? Promise.reject(new Error(`the log moved on to ${r.lastSeq}: reload again`)) : r._tag))
      }
      const onHup = () => {
        reloading = reloading.then(() => reloadConfig({
          node, current: () => running, load: (f) => loadConfig(f), applied: (c) => { running = c }, apply: (c) => appendWeight(c.weight)
        }))
      }
      process.on("SIGHUP", onHup)
      yield* Effect.addFinalizer(() => Effect.sync(() => process.off("SIGHUP", onHup)))

      // SIGTERM / SIGINT interrupt the main fiber (the runtime's signal handling); this finalizer runs
      // first, while the log consumer and the clock still run: drain, wait for the hand-offs, leave.
      // Then the rest of the scope removes everything the daemon set.
      let exited = false
      yield* Effect.addFinalizer(() =>
        Effect.gen(function* () {
          if (!exited) {
            log("info", "daemon.stopping", { node, seq: ctl.foldedState.seq })
            notifySystemd("STOPPING=1", node)
            ctl.stop(monotonicMs())
            run(ctl.drainActions())
            yield* Deferred.await(exit).pipe(Effect.timeout(defaultTiming.stopMaxMs + 5_000), Effect.ignore)
          }
          // fence before anything else is removed: no VIP traffic is taken from here on
          filter.setDeadline(filterConfig(0n), 0n)
          log("info", "daemon.stop", { node, seq: ctl.foldedState.seq })
        })
      )

      log("info", "daemon.ready", { node, seq: head, control: config.control })
      notifySystemd("READY=1", node)
      yield* profileCpuScoped(process.env.VIPFARM_CPU_PROFILE, node)
      yield* Deferred.await(exit)
      exited = true
    })
  )

/**
 * The operator's application commands on the control socket (`farm app start|stop|reload`):
 * start a stopped application (the server rejoins once its checkers pass), stop it (the
 * server leaves first), run the module's reload command.
 */
const appControl = (app: AppSupervisor["Service"], node: string) => ({
  start: async () => {
    const before = app.status()
    if (before.phase !== "stopped") {
      throw new ControlRefused(`the application ${app.module.name} is ${before.state} (${before.phase}); start applies to a stopped application`)
    }
    log("info", "app.operator", { node, module: app.module.name, op: "start" })
    await Effect.runPromise(app.start)
    const st = app.status()
    return { ok: st.state === "up", node, op: "app.start", app: st }
  },
  stop: async () => {
    const before = app.status()
    log("info", "app.operator", { node, module: app.module.name, op: "stop", from: before.phase })
    if (before.phase !== "stopped") await Effect.runPromise(app.stop)
    return { ok: true, node, op: "app.stop", ...(before.phase === "stopped" ? { detail: "already stopped" } : {}), app: app.status() }
  },
  reload: async () => {
    log("info", "app.operator", { node, module: app.module.name, op: "reload" })
    const r = await Effect.runPromise(app.reload)
    if (r === null) throw new ControlRefused(`module ${app.module.name} has no reload command`)
    if (!r.ok) throw new Error(`reload of ${app.module.name} failed: ${r.error}${r.tail ? `\n${r.tail}` : ""}`)
    return { ok: true, node, op: "app.reload", durationMs: Math.round(r.durationMs), output: r.tail, app: app.status() }
  }
})

const countBucket = (affinity: AffinityName, f: FlowTuple, seed: number) =>
  bucketOf(affinity, { src: f.src, dst: f.dst, sport: f.sport, dport: f.dport, packetId: 0, fragment: false }, seed)

/** A UDP flow's identity in the hand-over reports. */
const flowKey = (f: FlowTuple): string => `${f.src.join(".")}:${f.sport}>${f.dst.join(".")}:${f.dport}`

/** The filter's UDP idle time (FilterConfig.udpIdleMs): an older flow-map entry is no flow the filter still passes. */
const UDP_IDLE_NS = 30_000n * 1_000_000n

/**
 * The UDP flows of the flow map the filter still passes (seen within the idle time; the map keeps
 * entries until they are evicted): without a hand-off cap, a stale entry held its bucket moving for good.
 */
const freshUdpFlows = (entries: ReadonlyArray<{ readonly tuple: FlowTuple; readonly lastSeenNs: bigint }>): Array<FlowTuple> => {
  const now = process.hrtime.bigint()
  return entries.filter((e) => now - e.lastSeenNs < UDP_IDLE_NS).map((e) => e.tuple)
}
