/**
 * Client traffic: TCP flows (SYN, the handshake's ACK, data with gaps and idle periods, then
 * the client's FIN and final ACK or a RST; a few long-lived ones), UDP flows and SYN floods
 * from many client addresses and ports, and the per-packet invariants: each packet taken by
 * the right server and no other, each new flow by exactly one (outside an excused window
 * without an owner, see claims.ts), client-ip affinity while membership is stable. Flows live
 * in typed arrays (struct of arrays, free list); a flow's next packet is one queue entry.
 * The bucket of a flow is computed once (the same hash spec on every server); each
 * server's verdict then comes from its bucket code (filterAdapter.ts).
 */
import { bucketOfHash, BUCKETS, farmSeed, jhash2, LocalBucket, MAX_TABLES } from "@vipfarm/domain"
import type { HeldFlow } from "../../runtime/src/controller/index.ts"
import { unansweredExcuse } from "./claims.ts"
import { ACK, claimsNew, FIN, PSH, RST, SYN, tcpPasses, udpPasses } from "./filterAdapter.ts"
import type { Prng } from "./prng.ts"
import type { FlowSpec, SimRule } from "./setup.ts"
import { MAXC, type World } from "./world.ts"

const FREE = 0
const GEN_TCP = 1
const GEN_UDP = 2
const FLOOD = 3
const TCP = 4
const UDP = 5

// TCP connection states (the server's socket, as the client's packets find it)
const SYN_SENT = 0
const SYN_RECV = 1
const ESTABLISHED = 2
const LAST_ACK = 3

/** Counters of the traffic model. */
export interface TrafficStats {
  packets: number
  tcpPackets: number
  udpPackets: number
  floodPackets: number
  accepted: number
  dropped: number
  tcpFlows: number
  udpFlows: number
  completed: number
  synRetries: number
  connectFailed: number
  lostToFault: number
  udpMovedInProbation: number
  resetsHandoff: number
  /** TCP connections the client closed with FIN (final ACK taken) and with RST. */
  closedFin: number
  closedRst: number
  /** Long-lived TCP connections started, and packets of established connections their holder took in a bucket moving out. */
  longFlows: number
  movingOutPackets: number
  /** SYNs and new UDP flows nobody took in a window without an owner excused by a failure or fault, and in a hand-off's hold. */
  unansweredExcused: number
  unansweredHandoff: number
  /** New flows of a client-ip rule compared with the client's previous flow while membership was stable. */
  affinityChecks: number
}

/** The client side of a run. */
export class Traffic {
  private readonly w: World
  private readonly rng: Prng
  private readonly seed: number
  private cap = 0
  private kind = new Uint8Array(0)
  private state = new Uint8Array(0)
  private idx = new Int32Array(0)
  private holder = new Int16Array(0)
  private sock = new Int32Array(0)
  private fault = new Int32Array(0)
  private left = new Int32Array(0)
  private gap = new Float32Array(0)
  private tries = new Uint8Array(0)
  private ends = new Float64Array(0)
  private uCount = new Uint8Array(0)
  private uLast = new Float64Array(0)
  private client = new Int32Array(0)
  private isLong = new Uint8Array(0)
  /** A flow's identity for the UDP hand-over reports (slots are reused). */
  private serial = new Float64Array(0)
  private nextSerial = 1
  private spec: Array<FlowSpec | null> = []
  private readonly free: Array<number> = []
  private top = 0
  private readonly tcpRules: ReadonlyArray<SimRule>
  private readonly udpRules: ReadonlyArray<SimRule>
  private readonly clientBucket = new Map<number, number>()
  private readonly key2 = [0, 0]
  private readonly key1 = [0]
  /** New flows accepted per server (cumulative). */
  readonly newFlows: Float64Array
  /** Generation on: false after the safety phase if the caller wants quiet. */
  generating = true
  readonly stats: TrafficStats = {
    packets: 0, tcpPackets: 0, udpPackets: 0, floodPackets: 0, accepted: 0, dropped: 0, tcpFlows: 0, udpFlows: 0,
    completed: 0, synRetries: 0, connectFailed: 0, lostToFault: 0, udpMovedInProbation: 0, resetsHandoff: 0,
    closedFin: 0, closedRst: 0, longFlows: 0, movingOutPackets: 0, unansweredExcused: 0, unansweredHandoff: 0, affinityChecks: 0
  }
  /** Client-ip affinity: per table (with a client-ip rule) and client, the last new flow's server and the state it saw. */
  private readonly affinity = new Map<number, { server: Int16Array; log: Int32Array; on: Int32Array; slot: Int32Array; epoch: Int32Array; at: Float64Array }>()
  private readonly maxClients: number
  private readonly longMaxMs: number
  private readonly udpIdleMs: number
  private readonly counts = new Uint32Array(MAX_TABLES * BUCKETS)

  constructor(world: World) {
    this.w = world
    this.rng = world.rng.fork()
    this.seed = farmSeed(world.setup.farm)
    this.tcpRules = world.setup.rules.filter((r) => r.proto === 6)
    this.udpRules = world.setup.rules.filter((r) => r.proto === 17)
    this.newFlows = new Float64Array(world.serverCount)
    this.udpIdleMs = world.setup.udpIdleMs
    this.maxClients = Math.max(world.setup.tcp?.clients ?? 0, world.setup.udp?.clients ?? 0)
    // with an operator's cap, a long connection ends before the hand-off's forced completion would reset it
    const cap = world.setup.timing.handoffMaxMs
    this.longMaxMs = cap === null ? Infinity : 0.8 * cap
    this.grow(1024)
    world.onFlowEvent = (f) => this.onEvent(f)
    world.flowsPerBucket = (s) => this.flowsPerBucket(s)
    world.udpFlowsHeld = (s) => this.udpFlowsHeld(s)
  }

  /** Start the flow generators of the scenario's load. */
  startGenerators(): void {
    const { tcp, udp } = this.w.setup
    if (tcp !== null && tcp.flowsPerSec > 0) this.generator(GEN_TCP, tcp, Infinity)
    if (udp !== null && udp.flowsPerSec > 0) this.generator(GEN_UDP, udp, Infinity)
  }

  /** A SYN flood of `rate` packets/s from spoofed addresses until `until`. */
  synFlood(rate: number, until: number): void {
    if (this.tcpRules.length === 0) return
    const spec: FlowSpec = {
      flowsPerSec: rate, clients: 1, medianPackets: 1, maxPackets: 1, sigma: 0, gapMs: 0, idle: 0, maxDurationMs: 0, rstShare: 0, long: { share: 0, durationMs: 0, gapMs: 0 }
    }
    this.generator(FLOOD, spec, until)
  }

  private generator(kind: number, spec: FlowSpec, until: number): void {
    const f = this.alloc()
    this.kind[f] = kind
    this.spec[f] = spec
    this.ends[f] = until
    this.w.q.push(this.w.now + this.rng.exp(1000 / spec.flowsPerSec), f)
  }

  private grow(n: number): void {
    const g = <T extends { length: number; set(a: ArrayLike<number>): void }>(a: T, C: new (n: number) => T): T => {
      const b = new C(n)
      b.set(a as unknown as ArrayLike<number>)
      return b
    }
    this.kind = g(this.kind, Uint8Array)
    this.state = g(this.state, Uint8Array)
    this.idx = g(this.idx, Int32Array)
    this.holder = g(this.holder, Int16Array)
    this.sock = g(this.sock, Int32Array)
    this.fault = g(this.fault, Int32Array)
    this.left = g(this.left, Int32Array)
    this.gap = g(this.gap, Float32Array)
    this.tries = g(this.tries, Uint8Array)
    this.ends = g(this.ends, Float64Array)
    this.uCount = g(this.uCount, Uint8Array)
    this.uLast = g(this.uLast, Float64Array)
    this.client = g(this.client, Int32Array)
    this.isLong = g(this.isLong, Uint8Array)
    this.serial = g(this.serial, Float64Array)
    this.cap = n
  }

  private alloc(): number {
    let f: number
    if (this.free.length > 0) f = this.free.pop()!
    else {
      if (this.top === this.cap) this.grow(this.cap * 2)
      f = this.top++
    }
    this.serial[f] = this.nextSerial++
    return f
  }

  private release(f: number): void {
    this.kind[f] = FREE
    this.spec[f] = null
    this.free.push(f)
  }

  private bucketOfClient(client: number): number {
    let b = this.clientBucket.get(client)
    if (b === undefined) {
      this.key1[0] = this.address(client)
      b = bucketOfHash(jhash2(this.key1, this.seed))
      this.clientBucket.set(client, b)
    }
    return b
  }

  private address(client: number): number {
    // 10.0.0.0/8, spread so neighbouring clients land in different /24s
    return (0x0a000000 + ((Math.imul(client + 1, 2654435761) >>> 8) & 0xffffff)) >>> 0
  }

  private bucketFor(rule: SimRule, client: number, sport: number): number {
    switch (rule.affinity) {
      case "client-ip":
        if (this.w.options.breakAffinity === true) {
          this.key2[0] = this.address(client)
          this.key2[1] = sport
          return bucketOfHash(jhash2(this.key2, this.seed))
        }
        return this.bucketOfClient(client)
      case "client-network":
        this.key1[0] = (this.address(client) & 0xffffff00) >>> 0
        return bucketOfHash(jhash2(this.key1, this.seed))
      default:
        this.key2[0] = this.address(client)
        this.key2[1] = sport
        return bucketOfHash(jhash2(this.key2, this.seed))
    }
  }

  private onEvent(f: number): void {
    switch (this.kind[f]) {
      case GEN_TCP:
      case GEN_UDP: {
        const spec = this.spec[f]!
        if (this.generating) this.spawn(this.kind[f] === GEN_TCP ? TCP : UDP, spec)
        this.w.q.push(this.w.now + this.rng.exp(1000 / spec.flowsPerSec), f)
        return
      }
      case FLOOD:
        this.floodPacket()
        if (this.w.now < this.ends[f]) this.w.q.push(this.w.now + this.rng.exp(1000 / this.spec[f]!.flowsPerSec), f)
        else this.release(f)
        return
      case TCP:
        if (this.state[f] === SYN_SENT) this.syn(f)
        else this.tcpSegment(f)
        return
      case UDP:
        this.udpPacket(f)
        return
    }
  }

  private spawn(kind: number, spec: FlowSpec): void {
    const rules = kind === TCP ? this.tcpRules : this.udpRules
    const rule = rules.length === 1 ? rules[0] : rules[this.rng.int(rules.length)]
    const client = this.rng.int(spec.clients)
    const sport = 1024 + this.rng.int(64512)
    const f = this.alloc()
    this.kind[f] = kind
    this.spec[f] = spec
    this.state[f] = 0
    this.idx[f] = rule.table * BUCKETS + this.bucketFor(rule, client, sport)
    this.holder[f] = -1
    this.tries[f] = 0
    this.uCount[f] = 0
    this.client[f] = rule.affinity === "client-ip" ? client : -1
    this.isLong[f] = 0
    const long = spec.long
    if (kind === TCP && long.share > 0 && this.rng.chance(long.share)) {
      // a long-lived connection: a packet every gap for about its duration
      const d = Math.min(this.longMaxMs, long.durationMs > 0 ? long.durationMs * this.rng.uniform(0.75, 1.25) : spec.maxDurationMs * this.rng.uniform(1, 1.25))
      this.isLong[f] = 1
      this.left[f] = Math.max(1, Math.round(d / long.gapMs))
      this.gap[f] = long.gapMs
      this.ends[f] = this.w.now + d
      this.stats.longFlows++
    } else {
      let n = Math.round(this.rng.lognormal(spec.medianPackets, spec.sigma))
      if (n < 1) n = 1
      if (n > spec.maxPackets) n = spec.maxPackets
      this.left[f] = n
      this.gap[f] = spec.gapMs
      this.ends[f] = this.w.now + spec.maxDurationMs
    }
    if (kind === TCP) this.stats.tcpFlows++
    else this.stats.udpFlows++
    this.onEvent(f)
  }

  private nextGap(f: number): number {
    const spec = this.spec[f]!
    return spec.idle > 0 && this.isLong[f] === 0 && this.rng.chance(spec.idle) ? this.rng.uniform(1000, 5000) : this.rng.exp(this.gap[f])
  }

  private scheduleNext(f: number): void {
    let t = this.w.now + this.nextGap(f)
    if (t >= this.ends[f]) {
      t = Math.max(this.w.now + 0.001, this.ends[f])
      if (this.left[f] > 1) this.left[f] = 1
    }
    this.w.q.push(t, f)
  }

  private label(f: number, what: string): string {
    const i = this.idx[f]
    return `${what} of flow ${f} (${this.kind[f] === TCP ? "tcp" : "udp"}) bucket ${i >> 10}/${i & 1023} at ${this.w.now.toFixed(3)} ms`
  }

  private floodPacket(): void {
    const w = this.w
    this.stats.packets++
    this.stats.floodPackets++
    const rule = this.tcpRules[0]
    this.key2[0] = this.rng.u32()
    this.key2[1] = 1024 + this.rng.int(64512)
    const i = rule.table * BUCKETS + bucketOfHash(jhash2(rule.affinity === "client-ip" ? [this.key2[0]] : this.key2, this.seed))
    const n = w.candN[i]
    let acc = 0
    for (let k = 0; k < n; k++) {
      const s = w.cand[i * MAXC + k]
      if (w.on[s] === 1 && tcpPasses(w.tables[s][i], SYN, false)) acc++
    }
    if (acc === 0) {
      this.stats.dropped++
      this.unanswered(i, `syn-flood SYN in bucket ${i >> 10}/${i & 1023}`, `syn-flood packet at ${w.now.toFixed(3)} ms`)
    } else this.stats.accepted++
    if (acc > 1) w.violation("new-flow-accepted-twice", `syn-flood SYN in bucket ${i >> 10}/${i & 1023} accepted by ${acc} servers`, `syn-flood packet at ${w.now.toFixed(3)} ms`)
  }

  /** A new flow nobody took: allowed only in a window without an owner that a failure being measured, a fault, the farm forming or a hand-off's hold explains. */
  private unanswered(i: number, what: string, event: string): void {
    const w = this.w
    const why = unansweredExcuse(w, i)
    if (why === 3) {
      this.stats.unansweredHandoff++
      return
    }
    if (why !== 0) {
      this.stats.unansweredExcused++
      return
    }
    const since = w.unclaimedSince[i]
    w.violation("new-flow-unanswered", `${what} taken by no server: ${since >= 0 ? `no live owner since ${since.toFixed(3)} ms, no failure or fault to explain it` : "its owner refused it"}`, event)
  }

  /** Client-ip affinity: while nothing changed for the bucket (no log entry, no server in or out, no code of the bucket changed), a client's new flows land on one server. */
  private affine(f: number, server: number): void {
    const key = this.client[f]
    if (key < 0) return
    const w = this.w
    const i = this.idx[f]
    const table = i >> 10
    let a = this.affinity.get(table)
    if (a === undefined) {
      const n = this.maxClients
      a = { server: new Int16Array(n).fill(-1), log: new Int32Array(n), on: new Int32Array(n), slot: new Int32Array(n), epoch: new Int32Array(n), at: new Float64Array(n) }
      this.affinity.set(table, a)
    }
    const prev = a.server[key]
    if (prev >= 0 && a.log[key] === w.log.length && a.on[key] === w.onEpoch && a.epoch[key] === w.slotEpoch[a.slot[key]]) {
      this.stats.affinityChecks++
      if (prev !== server) {
        const addr = this.address(key)
        w.violation("client-ip-affinity", `client ${addr >>> 24}.${(addr >>> 16) & 255}.${(addr >>> 8) & 255}.${addr & 255} (client-ip, table ${table}): new flow taken by ${w.procs[server].name}, its previous flow at ${a.at[key].toFixed(3)} ms by ${w.procs[prev].name}, membership unchanged since`, this.label(f, "new flow"))
      }
    }
    a.server[key] = server
    a.log[key] = w.log.length
    a.on[key] = w.onEpoch
    a.slot[key] = i
    a.epoch[key] = w.slotEpoch[i]
    a.at[key] = w.now
  }

  private syn(f: number): void {
    const w = this.w
    this.stats.packets++
    this.stats.tcpPackets++
    const i = this.idx[f]
    const n = w.candN[i]
    let acc = 0
    let first = -1
    for (let k = 0; k < n; k++) {
      const s = w.cand[i * MAXC + k]
      if (w.on[s] === 1 && tcpPasses(w.tables[s][i], SYN, false)) {
        acc++
        if (first < 0) first = s
      }
    }
    if (acc === 0) {
      this.stats.dropped++
      this.unanswered(i, `SYN in bucket ${i >> 10}/${i & 1023}`, this.label(f, "SYN"))
      const t = ++this.tries[f]
      if (t > 3) {
        this.stats.connectFailed++
        this.release(f)
        return
      }
      this.stats.synRetries++
      w.q.push(w.now + 1000 * (1 << (t - 1)), f)
      return
    }
    this.stats.accepted++
    if (acc > 1) w.violation("new-flow-accepted-twice", `SYN accepted by ${acc} servers`, this.label(f, "SYN"))
    this.holder[f] = first
    this.sock[f] = w.sockGen[first]
    this.fault[f] = w.faultGen[first]
    this.state[f] = SYN_RECV
    this.newFlows[first]++
    this.affine(f, first)
    // the SYN-ACK's round trip, then the handshake's ACK
    w.q.push(w.now + this.rng.uniform(0.2, 2), f)
  }

  /**
   * A TCP packet after the SYN: the handshake's ACK, data, then the client's FIN and (after
   * the server's FIN) the final ACK, or a RST. Each must be taken by the server holding the
   * socket and by no other.
   */
  private tcpSegment(f: number): void {
    const w = this.w
    this.stats.packets++
    this.stats.tcpPackets++
    const st = this.state[f]
    let flags: number
    let what: string
    if (st === SYN_RECV) {
      flags = ACK
      what = "handshake ACK"
    } else if (st === LAST_ACK) {
      flags = ACK
      what = "final ACK"
    } else if (this.left[f] > 0) {
      flags = ACK | PSH
      what = "data packet"
    } else if (this.rng.chance(this.spec[f]!.rstShare)) {
      flags = RST | ACK
      what = "RST"
    } else {
      flags = FIN | ACK
      what = "FIN"
    }
    const i = this.idx[f]
    const h = this.holder[f]
    // a deliberately broken stack forgets the socket at the client's FIN
    const socketAlive = w.sockGen[h] === this.sock[f] && !(st === LAST_ACK && w.options.closeAtFin === true)
    const disrupted = w.sockGen[h] !== this.sock[f] || w.faultGen[h] !== this.fault[f] || !w.procs[h].healthy || w.procs[h].appDown
    const n = w.candN[i]
    let byHolder = false
    let other = -1
    for (let k = 0; k < n; k++) {
      const s = w.cand[i * MAXC + k]
      if (w.on[s] === 0) continue
      if (tcpPasses(w.tables[s][i], flags, s === h && socketAlive)) {
        if (s === h && socketAlive) byHolder = true
        else other = s
      }
    }
    if (byHolder && other < 0) {
      this.stats.accepted++
      if (w.tables[h][i] === LocalBucket.MOVING_OUT) this.stats.movingOutPackets++
      if (st === SYN_RECV) {
        this.state[f] = ESTABLISHED
        this.scheduleNext(f)
      } else if (st === LAST_ACK) {
        this.stats.completed++
        this.stats.closedFin++
        this.release(f)
      } else if (flags === (FIN | ACK)) {
        // the server's FIN comes back after a round trip: the final ACK
        this.state[f] = LAST_ACK
        w.q.push(w.now + this.rng.uniform(0.2, 2), f)
      } else if (flags === (RST | ACK)) {
        this.stats.completed++
        this.stats.closedRst++
        this.release(f)
      } else {
        this.left[f]--
        this.scheduleNext(f)
      }
      return
    }
    if (byHolder || other >= 0) this.stats.accepted++
    else this.stats.dropped++
    if (disrupted) {
      // the holder crashed, was fenced or failed: its flows are lost, as expected
      this.stats.lostToFault++
      this.release(f)
      return
    }
    if (byHolder) {
      w.violation("established-flow-accepted-twice", `${what} accepted by its holder ${w.procs[h].name} and by ${w.procs[other].name}`, this.label(f, what))
      this.release(f)
      return
    }
    if (other >= 0) {
      this.stats.resetsHandoff++
      w.violation("connection-reset", `${w.procs[other].name} (no socket) took the ${what} of a flow held by live ${w.procs[h].name}: reset`, this.label(f, what))
    } else {
      w.violation("established-flow-dropped", `no server took the ${what} of a flow held by live ${w.procs[h].name} (code ${w.tables[h][i]})`, this.label(f, what))
    }
    this.release(f)
  }

  private udpPacket(f: number): void {
    const w = this.w
    this.stats.packets++
    this.stats.udpPackets++
    const i = this.idx[f]
    const h = this.holder[f]
    const now = w.now
    const fresh = this.uCount[f] >= 2 && now - this.uLast[f] < this.udpIdleMs
    const holderUp = h >= 0 && w.sockGen[h] === this.sock[f]
    const n = w.candN[i]
    let acc = 0
    let first = -1
    let byHolder = false
    for (let k = 0; k < n; k++) {
      const s = w.cand[i * MAXC + k]
      if (w.on[s] === 0) continue
      const mine = s === h && holderUp
      // the receiver's foreign-flow map holds what the old owners reported (daemon UdpHandover)
      if (udpPasses(w.tables[s][i], mine && fresh, !mine && w.procs[s].udp?.isForeign(this.serial[f]) === true)) {
        acc++
        if (mine) byHolder = true
        else if (first < 0) first = s
      }
    }
    if (acc === 0) this.stats.dropped++
    else this.stats.accepted++
    if (acc > 1) w.violation("udp-packet-accepted-twice", `UDP packet accepted by ${acc} servers`, this.label(f, "UDP packet"))
    if (h < 0) {
      if (first >= 0) {
        this.holder[f] = first
        this.sock[f] = w.sockGen[first]
        this.fault[f] = w.faultGen[first]
        this.uCount[f] = 1
        this.uLast[f] = now
        this.newFlows[first]++
        this.affine(f, first)
      } else if (w.unclaimedSince[i] >= 0) {
        // (a bucket moving in waits before it takes UDP: dropped by design while a claimant exists)
        this.unanswered(i, `new UDP flow in bucket ${i >> 10}/${i & 1023}`, this.label(f, "UDP packet"))
      }
    } else if (byHolder) {
      const code = w.tables[h][i]
      if (claimsNew(code)) {
        if (this.uCount[f] < 2) this.uCount[f]++
        this.uLast[f] = now
      } else this.uLast[f] = now
    } else if (first >= 0) {
      const disrupted = !holderUp || w.faultGen[h] !== this.fault[f] || !w.procs[h].healthy || w.procs[h].appDown
      if (disrupted) this.stats.lostToFault++
      else if (!fresh) this.stats.udpMovedInProbation++
      else w.violation("udp-flow-moved", `UDP flow held by live ${w.procs[h].name} moved to ${w.procs[first].name}`, this.label(f, "UDP packet"))
      this.holder[f] = first
      this.sock[f] = w.sockGen[first]
      this.fault[f] = w.faultGen[first]
      this.uCount[f] = 1
      this.uLast[f] = now
    }
    if (--this.left[f] <= 0) {
      this.stats.completed++
      this.release(f)
    } else this.scheduleNext(f)
  }

  /** The UDP flows server s holds past probation and fresh (its filter's `udp_flows`), for its hand-over reports. */
  udpFlowsHeld(s: number): Array<HeldFlow<number>> {
    const out: Array<HeldFlow<number>> = []
    const sock = this.w.sockGen[s]
    const now = this.w.now
    for (let f = 0; f < this.top; f++) {
      if (this.kind[f] !== UDP || this.holder[f] !== s || this.sock[f] !== sock || this.uCount[f] < 2 || now - this.uLast[f] >= this.udpIdleMs) continue
      const i = this.idx[f]
      out.push({ flow: this.serial[f], table: i >> 10, bucket: i & 1023 })
    }
    return out
  }

  /** Flows server s holds per bucket (TCP sockets SYN_RECV to LAST_ACK, UDP flows past probation). */
  flowsPerBucket(s: number): Uint32Array {
    const out = this.counts
    out.fill(0)
    const sock = this.w.sockGen[s]
    const lastAck = this.w.options.closeAtFin === true ? LAST_ACK : LAST_ACK + 1
    for (let f = 0; f < this.top; f++) {
      const k = this.kind[f]
      if ((k === TCP && this.state[f] >= SYN_RECV && this.state[f] < lastAck) || (k === UDP && this.uCount[f] >= 2)) {
        if (this.holder[f] === s && this.sock[f] === sock) out[this.idx[f]]++
      }
    }
    return out
  }
}
