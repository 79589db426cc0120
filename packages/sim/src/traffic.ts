/**
 * Client traffic: TCP flows (SYN, data with gaps and idle periods, FIN), UDP flows and SYN
 * floods from many client addresses and ports, and the per-packet invariants. Flows live
 * in typed arrays (struct of arrays, free list); a flow's next packet is one queue entry.
 * The bucket of a flow is computed once (the same hash spec on every server); each
 * server's verdict then comes from its bucket code (filterAdapter.ts).
 */
import { bucketOfHash, BUCKETS, farmSeed, jhash2, MAX_TABLES } from "@vipfarm/domain"
import { claimsNew, tcpPasses, udpPasses } from "./filterAdapter.ts"
import type { Prng } from "./prng.ts"
import type { FlowSpec, SimRule } from "./setup.ts"
import { MAXC, type World } from "./world.ts"

const FREE = 0
const GEN_TCP = 1
const GEN_UDP = 2
const FLOOD = 3
const TCP = 4
const UDP = 5

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
    completed: 0, synRetries: 0, connectFailed: 0, lostToFault: 0, udpMovedInProbation: 0, resetsHandoff: 0
  }
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
    this.grow(1024)
    world.onFlowEvent = (f) => this.onEvent(f)
    world.flowsPerBucket = (s) => this.flowsPerBucket(s)
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
    const spec: FlowSpec = { flowsPerSec: rate, clients: 1, medianPackets: 1, maxPackets: 1, sigma: 0, gapMs: 0, idle: 0, maxDurationMs: 0 }
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
    this.cap = n
  }

  private alloc(): number {
    if (this.free.length > 0) return this.free.pop()!
    if (this.top === this.cap) this.grow(this.cap * 2)
    return this.top++
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
        if (this.state[f] === 0) this.syn(f)
        else this.tcpData(f)
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
    let n = Math.round(this.rng.lognormal(spec.medianPackets, spec.sigma))
    if (n < 1) n = 1
    if (n > spec.maxPackets) n = spec.maxPackets
    this.left[f] = n
    this.gap[f] = spec.gapMs
    this.ends[f] = this.w.now + spec.maxDurationMs
    if (kind === TCP) this.stats.tcpFlows++
    else this.stats.udpFlows++
    this.onEvent(f)
  }

  private nextGap(f: number): number {
    const spec = this.spec[f]!
    return spec.idle > 0 && this.rng.chance(spec.idle) ? this.rng.uniform(1000, 5000) : this.rng.exp(this.gap[f])
  }

  private scheduleNext(f: number): void {
    let t = this.w.now + this.nextGap(f)
    if (t >= this.ends[f]) {
      t = Math.max(this.w.now + 0.001, this.ends[f])
      this.left[f] = 1
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
      if (w.on[s] === 1 && tcpPasses(w.tables[s][i], true, false)) acc++
    }
    if (acc === 0) this.stats.dropped++
    else this.stats.accepted++
    if (acc > 1) w.violation("new-flow-accepted-twice", `syn-flood SYN in bucket ${i >> 10}/${i & 1023} accepted by ${acc} servers`, `syn-flood packet at ${w.now.toFixed(3)} ms`)
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
      if (w.on[s] === 1 && tcpPasses(w.tables[s][i], true, false)) {
        acc++
        if (first < 0) first = s
      }
    }
    if (acc === 0) {
      this.stats.dropped++
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
    this.state[f] = 1
    this.newFlows[first]++
    this.scheduleNext(f)
  }

  private tcpData(f: number): void {
    const w = this.w
    this.stats.packets++
    this.stats.tcpPackets++
    const i = this.idx[f]
    const h = this.holder[f]
    const socketAlive = w.sockGen[h] === this.sock[f]
    const disrupted = !socketAlive || w.faultGen[h] !== this.fault[f] || !w.procs[h].healthy || w.procs[h].appDown
    const n = w.candN[i]
    let byHolder = false
    let other = -1
    for (let k = 0; k < n; k++) {
      const s = w.cand[i * MAXC + k]
      if (w.on[s] === 0) continue
      if (tcpPasses(w.tables[s][i], false, s === h && socketAlive)) {
        if (s === h && socketAlive) byHolder = true
        else other = s
      }
    }
    if (byHolder && other < 0) {
      this.stats.accepted++
      if (--this.left[f] <= 0) {
        this.stats.completed++
        this.release(f)
      } else this.scheduleNext(f)
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
      w.violation("established-flow-accepted-twice", `packet accepted by its holder ${w.procs[h].name} and by ${w.procs[other].name}`, this.label(f, "data packet"))
      this.scheduleNext(f)
      return
    }
    if (other >= 0) {
      this.stats.resetsHandoff++
      w.violation("connection-reset", `${w.procs[other].name} (no socket) took a packet of a flow held by live ${w.procs[h].name}: reset`, this.label(f, "data packet"))
    } else {
      w.violation("established-flow-dropped", `no server took a packet of a flow held by live ${w.procs[h].name} (code ${w.tables[h][i]})`, this.label(f, "data packet"))
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
      if (udpPasses(w.tables[s][i], mine && fresh, !mine && holderUp && fresh)) {
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

  /** Flows server s holds per bucket (established TCP sockets, UDP flows past probation). */
  flowsPerBucket(s: number): Uint32Array {
    const out = this.counts
    out.fill(0)
    const sock = this.w.sockGen[s]
    for (let f = 0; f < this.top; f++) {
      const k = this.kind[f]
      if ((k === TCP && this.state[f] === 1) || (k === UDP && this.uCount[f] >= 2)) {
        if (this.holder[f] === s && this.sock[f] === sock) out[this.idx[f]]++
      }
    }
    return out
  }
}
