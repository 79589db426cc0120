/**
 * Load the vipfarm XDP filter with libbpf (through koffi), drive its maps, run it on
 * frames (BPF_PROG_TEST_RUN) and attach it to an interface.
 *
 * Plain synchronous functions (`loadFilter` and the `FilterHandle` methods) for tests
 * and tools, and the `XdpFilter` Effect service whose layer always detaches and closes.
 */
import { fileURLToPath } from "node:url"
import { Context, Data, Effect, Layer } from "effect"
import koffi from "koffi"
import { MAX_TABLES, BUCKETS } from "./internal/constants.ts"
import { lastErrno, libbpf, type LibBpf } from "./internal/libbpf.ts"
import {
  BUCKET_COUNTER_SIZE, COUNTER_CHUNK, decodeFlow4Key, decodeFlowKey, encodeConfig, encodeFlow4Key, encodeFlowKey,
  encodeVipSet, FLOW4_KEY_SIZE, FLOW_KEY_SIZE, STATE_ACTIVE, STATE_BUCKETS, STATE_CFG, STATE_SETS, STATE_SIZE,
  uniqueVips, VIP_COUNTERS_SIZE, VIP_SET_SIZE, vipKey, vipSetAddresses
} from "./encode.ts"
import { macText, type FilterConfig, type FlowTuple, type VipEntry } from "./types.ts"
import { REASONS, reasonNames, type ReasonName } from "./verdict.ts"
import { VipIndex, type VipIndexPlan } from "./vipIndex.ts"

/** A libbpf or kernel call failed; `op` names it, `errno`/`message` say why. */
export class BpfError extends Data.TaggedError("BpfError")<{
  readonly op: string
  readonly errno: number
  readonly message: string
}> {}

/** The committed filter object. */
export const FILTER_OBJECT = fileURLToPath(new URL("../bpf/vipfarm.bpf.o", import.meta.url))
/** The benchmark floor object (XDP_DROP everything). */
export const FLOOR_OBJECT = fileURLToPath(new URL("../bpf/floor.bpf.o", import.meta.url))

/**
 * A program that passes every frame (`vipfarm_pass`). A lab attaches it to the bridge-side
 * peer of a veth so that XDP_TX from the filter in native mode reaches the peer (veth drops
 * native XDP_TX frames unless the peer has an XDP program); see {@link attachPass}.
 */
export const PASS_OBJECT = fileURLToPath(new URL("../bpf/pass.bpf.o", import.meta.url))

/** XDP attach modes. */
export type XdpMode = "drv" | "skb"
const XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0
const XDP_FLAGS_SKB_MODE = 1 << 1
const XDP_FLAGS_DRV_MODE = 1 << 2
const XDP_FLAGS_REPLACE = 1 << 4
const MAX_FRAME = 4096
const OPTS_SIZE = 80

/** An XDP program found attached to an interface. */
export interface AttachedProgram {
  readonly id: number
  /** The program's name (up to 15 characters; empty when unknown). */
  readonly name: string
  readonly mode: XdpMode
  /** A vipfarm filter's farm values (from its `vf_state`); null for any other program. */
  readonly farm: { readonly seed: number; readonly vmac: string } | null
}

/** Options of {@link FilterHandle.attachWith}. */
export interface AttachOptions {
  /** Whether a program found on the interface may be replaced (default: never). */
  readonly mayReplace?: (found: AttachedProgram) => boolean
}

/** What an attach did. */
export interface AttachOutcome {
  readonly mode: XdpMode
  /** The program replaced (the daemon's own), or null. */
  readonly replaced: AttachedProgram | null
}

/** The interface already runs an XDP program that is not the daemon's own: nothing was changed. */
export class XdpAttachRefused extends Data.TaggedError("XdpAttachRefused")<{
  readonly ifname: string
  readonly id: number
  readonly name: string
  readonly mode: XdpMode
  readonly message: string
}> {}

/** Result of one BPF_PROG_TEST_RUN. */
export interface TestRunResult {
  /** XDP action code (0 aborted, 1 drop, 2 pass, 3 tx). */
  readonly retval: number
  /** The frame after the program (possibly rewritten or resized). */
  readonly dataOut: Uint8Array
  /** Average run time per repetition, ns (kernel-measured). */
  readonly durationNs: number
}

/** Packets and bytes per verdict reason, summed over CPUs. */
export type VerdictCounters = Record<ReasonName, { packets: bigint; bytes: bigint }>

/**
 * One configured VIP's counters, summed over CPUs: packets and bytes of the packets
 * addressed to it, per verdict reason (the VIP verdicts, DROP_FENCED and above; the other
 * reasons stay 0: ARP / ND and non-VIP frames are counted in the totals only). Counted
 * since the VIP was configured on this filter.
 */
export interface VipCounters {
  /** The VIP's address words (1 for IPv4, 4 for IPv6). */
  readonly words: ReadonlyArray<number>
  readonly counters: VerdictCounters
}

/** The UDP flow maps (each one map per family: `udp_flows4` and `udp_flows`, ...). */
type FlowMap = "udp_flows" | "udp_probation" | "udp_foreign"

/** A UDP flow held in `udp_flows` / `udp_probation` with its last-seen time. */
export interface FlowEntry {
  readonly tuple: FlowTuple
  readonly lastSeenNs: bigint
}

const fail = (lib: LibBpf, op: string, rc: number): never => {
  const errno = rc < 0 ? -rc : lastErrno()
  throw new BpfError({ op, errno, message: `${op}: ${lib.strerror(errno)} (errno ${errno})` })
}

const check = (lib: LibBpf, op: string, rc: number): void => {
  if (rc < 0) fail(lib, op, rc)
}

/** Options of {@link loadFilter}. */
export interface LoadOptions {
  /** Object file (default: the committed bpf/vipfarm.bpf.o). */
  readonly objectPath?: string
  /** Program name (default: vipfarm_xdp). */
  readonly program?: string
}

/** A loaded filter object: its program and maps. Call `close()` when done. */
export class FilterHandle {
  private readonly maps = new Map<string, number>()
  private readonly opts: { ptr: unknown; view: Uint8Array }
  private readonly dataIn: { ptr: unknown; view: Uint8Array }
  private readonly dataOut: { ptr: unknown; view: Uint8Array }
  private readonly attached = new Map<number, number>()
  private closed = false
  private progId: number | undefined
  private unmap: (() => void) | undefined
  private mmapped: { bytes: Uint8Array; words: Uint32Array; deadline: BigUint64Array } | undefined
  /** Rules index of each configured VIP (its `vip_counters` entry). */
  private readonly vipIndex = new VipIndex()
  /** Address words of the VIP holding each index now. */
  private vipWords = new Map<number, ReadonlyArray<number>>()
  /** Indices a VIP has held on this object (their counters may be non-zero). */
  private readonly vipUsed = new Set<number>()
  /** Counts an index already had when its current VIP got it (absent: zero). */
  private readonly vipBase = new Map<number, Array<bigint>>()
  /** Number of possible CPUs (per-CPU map width). */
  readonly cpus: number

  /** @internal use {@link loadFilter}. */
  constructor(private readonly lib: LibBpf, private readonly obj: unknown, /** Program fd. */ readonly progFd: number) {
    this.cpus = lib.numPossibleCpus()
    this.opts = lib.alloc(OPTS_SIZE)
    this.dataIn = lib.alloc(MAX_FRAME)
    this.dataOut = lib.alloc(MAX_FRAME)
  }

  /** File descriptor of a map of the object, by name. */
  mapFd(name: string): number {
    let fd = this.maps.get(name)
    if (fd === undefined) {
      const map = this.lib.findMap(this.obj, name)
      if (!map) throw new BpfError({ op: `find map ${name}`, errno: 2, message: `map ${name} not in object` })
      fd = this.lib.mapFd(map)
      check(this.lib, `map fd ${name}`, fd)
      this.maps.set(name, fd)
    }
    return fd
  }

  private update(map: string, key: Uint8Array, value: Uint8Array): void {
    check(this.lib, `update ${map}`, this.lib.mapUpdate(this.mapFd(map), key, value, 0))
  }

  /** All keys of a hash map. */
  keys(map: string, keySize: number): Array<Uint8Array> {
    const fd = this.mapFd(map)
    const out: Array<Uint8Array> = []
    let prev: Uint8Array | null = null
    for (;;) {
      const next = new Uint8Array(keySize)
      const rc = this.lib.mapNextKey(fd, prev, next)
      if (rc === -2) return out
      check(this.lib, `next key ${map}`, rc)
      out.push(next)
      prev = next
    }
  }

  /**
   * The program's global `vf_state` (.bss) as libbpf mmapped it: the program reads it
   * without a map lookup, the loader writes it in place (no system call).
   */
  private state(): { bytes: Uint8Array; words: Uint32Array; deadline: BigUint64Array } {
    if (this.closed) throw new BpfError({ op: "state", errno: 9, message: "filter closed" })
    if (this.mmapped) return this.mmapped
    const map = this.lib.findMap(this.obj, ".bss")
    const size = map ? this.lib.mapValueSize(map) : 0
    if (!map || size !== STATE_SIZE) {
      throw new BpfError({ op: "mmap .bss", errno: 22, message: `no vf_state of ${STATE_SIZE} bytes in .bss (${size})` })
    }
    // The kernel's copy (libbpf 1.1 keeps a private image unless a skeleton remaps it).
    const length = Math.ceil(STATE_SIZE / 4096) * 4096
    const ptr = this.lib.mmapShared(this.lib.mapFd(map), length)
    if (!ptr) fail(this.lib, "mmap .bss", -lastErrno())
    this.unmap = () => this.lib.munmap(ptr, length)
    const buf = this.lib.view(ptr, STATE_SIZE)
    this.mmapped = {
      bytes: new Uint8Array(buf), words: new Uint32Array(buf, 0, STATE_SETS / 4), deadline: new BigUint64Array(buf, STATE_CFG + 16, 1)
    }
    return this.mmapped
  }

  /** Write the scalar configuration (seed, MACs, liveness deadline, flags, UDP idle). */
  setConfig(c: FilterConfig): void {
    const st = this.state()
    const b = encodeConfig(c)
    // Everything but the deadline, then the deadline in one 64-bit store.
    st.bytes.set(b.subarray(0, 16), STATE_CFG)
    st.bytes.set(b.subarray(24, 32), STATE_CFG + 24)
    Atomics.store(st.deadline, 0, c.deadlineNs)
  }

  /** Move only the liveness deadline (CLOCK_MONOTONIC ns); the rest of the config stays. */
  setDeadline(c: FilterConfig, deadlineNs: bigint): void {
    this.setConfig({ ...c, deadlineNs })
  }

  /**
   * Replace the VIP set: VIPs not listed are removed. The new set is written into the
   * inactive half of the double buffer, then made active with one store, so a packet
   * sees either the old set or the new one. At most 256 VIPs per family.
   */
  setVips(vips: ReadonlyArray<VipEntry>): void {
    let set: Uint8Array
    let plan: VipIndexPlan
    let unique: Array<VipEntry>
    try {
      unique = [...uniqueVips(vips).values()]
      plan = this.vipIndex.plan(unique.map((v) => v.words))
      set = encodeVipSet(unique, plan.indexOf)
    } catch (e) {
      throw new BpfError({ op: "setVips", errno: 7, message: String(e instanceof Error ? e.message : e) })
    }
    const st = this.state()
    // An index that served a removed VIP keeps its counts: the new VIP counts from there.
    for (const i of plan.added) {
      if (this.vipUsed.has(i)) this.vipBase.set(i, this.vipRaw(i))
      else this.vipBase.delete(i)
    }
    const next = (Atomics.load(st.words, STATE_ACTIVE / 4) & 1) ^ 1
    st.bytes.set(set, STATE_SETS + next * VIP_SET_SIZE)
    Atomics.store(st.words, STATE_ACTIVE / 4, next)
    plan.commit()
    this.vipWords = new Map(unique.map((v) => [plan.indexOf.get(vipKey(v.words))!, v.words]))
    for (const i of plan.added) this.vipUsed.add(i)
  }

  /** The configured VIP addresses (words). */
  vipAddresses(): Array<Array<number>> {
    const st = this.state()
    const off = STATE_SETS + (Atomics.load(st.words, STATE_ACTIVE / 4) & 1) * VIP_SET_SIZE
    return vipSetAddresses(st.bytes.subarray(off, off + VIP_SET_SIZE))
  }

  /**
   * Write all 16 bucket tables: `codes[table * 1024 + bucket]` is a LocalBucket code. The
   * tables live in the program's `vf_state` (.bss) and are written in place, one byte per
   * bucket: a packet sees each bucket's old code or its new one.
   */
  setBuckets(codes: Uint8Array): void {
    const n = MAX_TABLES * BUCKETS
    if (codes.length !== n) throw new Error(`setBuckets wants ${n} codes, got ${codes.length}`)
    this.state().bytes.set(codes, STATE_BUCKETS)
  }

  /** Set one bucket's code. */
  setBucket(table: number, bucket: number, code: number): void {
    this.state().bytes[STATE_BUCKETS + table * BUCKETS + bucket] = code
  }

  /**
   * The two maps behind a flow map name: IPv4 flows live in `<name>4` (12-byte key), IPv6
   * flows in `<name>` (40-byte key).
   */
  private flowMaps(map: FlowMap): Array<{ name: string; size: number; family: 4 | 6; encode: (t: FlowTuple) => Uint8Array; decode: (k: Uint8Array) => FlowTuple }> {
    return [
      { name: `${map}4`, size: FLOW4_KEY_SIZE, family: 4, encode: encodeFlow4Key, decode: decodeFlow4Key },
      { name: map, size: FLOW_KEY_SIZE, family: 6, encode: (t) => encodeFlowKey(t), decode: decodeFlowKey }
    ]
  }

  private flowMap(map: FlowMap, t: FlowTuple) {
    return this.flowMaps(map)[t.family === 4 ? 0 : 1]
  }

  /** Replace `udp_foreign`: the UDP flows the bucket's previous owner holds. */
  setForeignFlows(flows: ReadonlyArray<FlowTuple>): void {
    const value = new Uint8Array(8)
    for (const m of this.flowMaps("udp_foreign")) {
      const fd = this.mapFd(m.name)
      const mine = flows.filter((f) => (f.family === 4) === (m.family === 4))
      const want = new Set(mine.map((f) => Buffer.from(m.encode(f)).toString("hex")))
      for (const k of this.keys(m.name, m.size)) {
        if (!want.has(Buffer.from(k).toString("hex"))) this.lib.mapDelete(fd, k)
      }
      for (const f of mine) this.update(m.name, m.encode(f), value)
    }
  }

  /** Flows of `udp_flows` (established) or `udp_probation` (seen once), IPv4 then IPv6. */
  readFlows(map: "udp_flows" | "udp_probation"): Array<FlowEntry> {
    const value = new Uint8Array(8)
    const out: Array<FlowEntry> = []
    for (const m of this.flowMaps(map)) {
      const fd = this.mapFd(m.name)
      for (const k of this.keys(m.name, m.size)) {
        if (this.lib.mapLookup(fd, k, value) < 0) continue
        out.push({ tuple: m.decode(k), lastSeenNs: new DataView(value.buffer).getBigUint64(0, true) })
      }
    }
    return out
  }

  /** Insert a flow into `udp_flows` (or `udp_probation`) with a last-seen time. */
  putFlow(map: "udp_flows" | "udp_probation", tuple: FlowTuple, lastSeenNs: bigint): void {
    const v = new Uint8Array(8)
    new DataView(v.buffer).setBigUint64(0, lastSeenNs, true)
    const m = this.flowMap(map, tuple)
    this.update(m.name, m.encode(tuple), v)
  }

  /** Empty a hash map (flows of both families, or the VIPs). */
  clear(map: FlowMap | "vips"): void {
    if (map === "vips") return this.setVips([])
    for (const m of this.flowMaps(map)) {
      const fd = this.mapFd(m.name)
      for (const k of this.keys(m.name, m.size)) this.lib.mapDelete(fd, k)
    }
  }

  private percpu(map: string, index: number, width: number): Array<bigint> {
    const stride = Math.ceil(width / 8) * 8
    const buf = new Uint8Array(stride * this.cpus)
    check(this.lib, `lookup ${map}`, this.lib.mapLookup(this.mapFd(map), new Uint8Array(new Uint32Array([index]).buffer), buf))
    const dv = new DataView(buf.buffer)
    const sums = Array<bigint>(width / 8).fill(0n)
    for (let c = 0; c < this.cpus; c++) {
      for (let w = 0; w < width / 8; w++) sums[w] += dv.getBigUint64(c * stride + w * 8, true)
    }
    return sums
  }

  /** Visit every CPU's copy of every `bucket_counters` chunk (or of the `chunks` listed). */
  private eachChunk(visit: (chunk: number, words: Uint32Array, cpuBase: number) => void, chunks?: ReadonlyArray<number>): void {
    const fd = this.mapFd("bucket_counters")
    const chunkWords = (COUNTER_CHUNK * BUCKET_COUNTER_SIZE) / 4
    const words = new Uint32Array(chunkWords * this.cpus)
    const bytes = new Uint8Array(words.buffer)
    const key = new Uint32Array(1)
    const keyBytes = new Uint8Array(key.buffer)
    for (const chunk of chunks ?? Array.from({ length: (MAX_TABLES * BUCKETS) / COUNTER_CHUNK }, (_, i) => i)) {
      key[0] = chunk
      check(this.lib, "lookup bucket_counters", this.lib.mapLookup(fd, keyBytes, bytes))
      for (let c = 0; c < this.cpus; c++) visit(chunk, words, c * chunkWords)
    }
  }

  /** `vip_counters[index]` summed over CPUs: packets, bytes of each reason in turn. */
  private vipRaw(index: number): Array<bigint> {
    return this.percpu("vip_counters", index, VIP_COUNTERS_SIZE)
  }

  private static reasons(raw: ReadonlyArray<bigint>, base?: ReadonlyArray<bigint>): VerdictCounters {
    const out = {} as VerdictCounters
    for (let r = 0; r < REASONS; r++) {
      out[reasonNames[r]] = { packets: raw[2 * r] - (base?.[2 * r] ?? 0n), bytes: raw[2 * r + 1] - (base?.[2 * r + 1] ?? 0n) }
    }
    return out
  }

  /**
   * Per-verdict packet and byte counters, summed over CPUs: the `verdicts` map (frames not
   * for a VIP, ARP / ND) plus every VIP index's counters (VIP verdicts), removed VIPs' included.
   */
  readCounters(): VerdictCounters {
    const raw = Array<bigint>(2 * REASONS).fill(0n)
    for (let r = 0; r < REASONS; r++) {
      const [packets, bytes] = this.percpu("verdicts", r, 16)
      raw[2 * r] += packets
      raw[2 * r + 1] += bytes
    }
    for (const i of this.vipUsed) this.vipRaw(i).forEach((v, w) => (raw[w] += v))
    return FilterHandle.reasons(raw)
  }

  /** Each configured VIP's packets and bytes per verdict reason since it was configured, summed over CPUs. */
  readVipCounters(): Array<VipCounters> {
    return [...this.vipWords].map(([i, words]) => ({ words, counters: FilterHandle.reasons(this.vipRaw(i), this.vipBase.get(i)) }))
  }

  /** Packets of each bucket index table*1024+bucket in `chunks` (all), every verdict, over CPUs. */
  private bucketPackets(chunks?: ReadonlyArray<number>): Float64Array {
    const out = new Float64Array(MAX_TABLES * BUCKETS)
    const W = BUCKET_COUNTER_SIZE / 4
    this.eachChunk((chunk, words, base) => {
      const first = chunk * COUNTER_CHUNK
      for (let k = 0; k < COUNTER_CHUNK; k++) {
        const o = base + k * W
        out[first + k] += words[o + 1] * 4294967296 + words[o]
      }
    }, chunks)
    return out
  }

  /** Packets counted for one table*1024+bucket index (every verdict), summed over CPUs. */
  readBucketCounter(index: number): number {
    return this.bucketPackets([Math.floor(index / COUNTER_CHUNK)])[index]
  }

  /** Packets counted per (table*1024+bucket), every verdict, summed over CPUs (16384 entries). */
  readBucketCounters(): Float64Array {
    return this.bucketPackets()
  }

  /** Run the program once (or `repeat` times) on a frame with BPF_PROG_TEST_RUN. */
  testRun(frame: Uint8Array, repeat = 1): TestRunResult {
    if (frame.length < 14 || frame.length > MAX_FRAME - 256) {
      throw new BpfError({ op: "test run", errno: 22, message: `frame length ${frame.length} outside 14..${MAX_FRAME - 256}` })
    }
    this.dataIn.view.set(frame)
    const dv = new DataView(this.opts.view.buffer, this.opts.view.byteOffset, OPTS_SIZE)
    this.opts.view.fill(0)
    dv.setBigUint64(0, BigInt(OPTS_SIZE), true)
    dv.setBigUint64(8, addressOf(this.dataIn.ptr), true)
    dv.setBigUint64(16, addressOf(this.dataOut.ptr), true)
    dv.setUint32(24, frame.length, true)
    dv.setUint32(28, MAX_FRAME, true)
    dv.setInt32(60, repeat, true)
    check(this.lib, "bpf_prog_test_run_opts", this.lib.progTestRun(this.progFd, this.opts.ptr))
    const outLen = dv.getUint32(28, true)
    return {
      retval: dv.getUint32(56, true),
      dataOut: this.dataOut.view.slice(0, outLen),
      durationNs: dv.getUint32(64, true)
    }
  }

  /**
   * Attach to an interface: in `mode`, or native (driver) mode, else generic (skb) mode. A
   * program already on the interface (either mode) is never replaced unless
   * `options.mayReplace` accepts it: then it is replaced atomically (XDP_FLAGS_REPLACE with
   * its fd; one in the other mode is detached first, so a failed attach then leaves none).
   * Otherwise {@link XdpAttachRefused} names it and nothing changes. Returns the mode and the
   * program replaced.
   */
  attachWith(ifname: string, modes: ReadonlyArray<XdpMode>, options: AttachOptions = {}): AttachOutcome {
    const ifindex = ifIndex(this.lib, ifname)
    const found = attachedProgram(ifname)
    if (found !== null && !(options.mayReplace?.(found) ?? false)) {
      throw new XdpAttachRefused({
        ifname, id: found.id, name: found.name, mode: found.mode,
        message: `${ifname} already runs XDP program id ${found.id} (${found.name || "unnamed"}, ${found.mode} mode), not this daemon's: refusing to replace it (detach it first: ip link set dev ${ifname} ${found.mode === "drv" ? "xdpdrv" : "xdpgeneric"} off)`
      })
    }
    let oldFd = -1
    if (found !== null) {
      oldFd = this.lib.progFdById(found.id)
      if (oldFd < 0) fail(this.lib, `bpf_prog_get_fd_by_id ${found.id}`, oldFd)
    }
    try {
      let rc = 0
      let detached = false
      for (const m of modes) {
        if (found !== null && found.mode !== m && !detached) {
          // the kernel runs one mode at a time: the replaced program in the other mode goes first
          check(this.lib, `bpf_xdp_detach ${ifname} (program ${found.id})`, this.lib.xdpDetach(ifindex, modeFlag(found.mode) | XDP_FLAGS_REPLACE, xdpOpts(oldFd)))
          detached = true
        }
        const replace = found !== null && !detached
        const flags = modeFlag(m) | (replace ? XDP_FLAGS_REPLACE : XDP_FLAGS_UPDATE_IF_NOEXIST)
        rc = this.lib.xdpAttach(ifindex, this.progFd, flags, xdpOpts(replace ? oldFd : -1))
        if (rc === 0) {
          this.attached.set(ifindex, modeFlag(m))
          return { mode: m, replaced: found }
        }
        if (rc === -17 && !replace) {
          // EEXIST: a program came between the query and the attach
          const now = attachedProgram(ifname)
          throw new XdpAttachRefused({
            ifname, id: now?.id ?? 0, name: now?.name ?? "", mode: now?.mode ?? m,
            message: `${ifname} already runs XDP program id ${now?.id ?? "?"} (${now?.name || "unnamed"}): refusing to replace it`
          })
        }
      }
      return fail(this.lib, `bpf_xdp_attach ${ifname}`, rc)
    } finally {
      if (oldFd >= 0) this.lib.closeFd(oldFd)
    }
  }

  /** Attach to an interface (see {@link attachWith}): in `mode`, or native, else generic. Returns the mode. */
  attach(ifname: string, mode?: XdpMode, options: AttachOptions = {}): XdpMode {
    return this.attachWith(ifname, mode ? [mode] : ["drv", "skb"], options).mode
  }

  /** Detach from an interface this handle attached to (only this program: a replacement stays). */
  detach(ifname: string): void {
    const ifindex = ifIndex(this.lib, ifname)
    const flags = this.attached.get(ifindex) ?? XDP_FLAGS_SKB_MODE
    if (this.isOn(ifindex, flags)) check(this.lib, `bpf_xdp_detach ${ifname}`, this.lib.xdpDetach(ifindex, flags | XDP_FLAGS_REPLACE, xdpOpts(this.progFd)))
    this.attached.delete(ifindex)
  }

  /** Whether this program is the one attached in the mode `flags` names (not replaced since). */
  private isOn(ifindex: number, flags: number): boolean {
    const id = new Uint32Array(1)
    if (this.lib.xdpQueryId(ifindex, flags, id) < 0 || id[0] === 0) return false
    if (this.progId === undefined) {
      const info = this.lib.alloc(PROG_INFO_SIZE)
      info.view.fill(0)
      check(this.lib, "bpf_obj_get_info_by_fd", this.lib.objInfo(this.progFd, info.ptr, Uint32Array.of(PROG_INFO_SIZE)))
      this.progId = new DataView(info.view.buffer, info.view.byteOffset, PROG_INFO_SIZE).getUint32(4, true)
    }
    return id[0] === this.progId
  }

  /** Detach from every interface still attached, then free the object (idempotent). */
  close(): void {
    if (this.closed) return
    this.closed = true
    this.mmapped = undefined
    this.unmap?.()
    for (const [ifindex, flags] of this.attached) {
      // only this program: one that replaced it (a restarted daemon's) stays
      if (this.isOn(ifindex, flags)) this.lib.xdpDetach(ifindex, flags | XDP_FLAGS_REPLACE, xdpOpts(this.progFd))
    }
    this.attached.clear()
    this.lib.objectClose(this.obj)
  }
}

const addressOf = (ptr: unknown): bigint => koffi.address(ptr)

const modeFlag = (m: XdpMode): number => (m === "drv" ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE)

/** struct bpf_xdp_attach_opts { size_t sz; int old_prog_fd; } (16 bytes); null without an old program. */
const xdpOpts = (oldProgFd: number): Uint8Array | null => {
  if (oldProgFd < 0) return null
  const b = new Uint8Array(16)
  const dv = new DataView(b.buffer)
  dv.setBigUint64(0, 16n, true)
  dv.setInt32(8, oldProgFd, true)
  return b
}

const cString = (b: Uint8Array): string => {
  const end = b.indexOf(0)
  return Buffer.from(b.subarray(0, end < 0 ? b.length : end)).toString("latin1")
}

const PROG_INFO_SIZE = 96
const MAP_INFO_SIZE = 40
const MAX_PROG_MAPS = 64

/** The farm values (seed, virtual MAC) in a vipfarm program's `vf_state`, or null (not a vipfarm filter). */
const farmOfProgram = (lib: LibBpf, progFd: number): AttachedProgram["farm"] => {
  const info = lib.alloc(PROG_INFO_SIZE)
  const ids = lib.alloc(4 * MAX_PROG_MAPS)
  info.view.fill(0)
  const dv = new DataView(info.view.buffer, info.view.byteOffset, PROG_INFO_SIZE)
  dv.setUint32(52, MAX_PROG_MAPS, true)
  dv.setBigUint64(56, addressOf(ids.ptr), true)
  if (lib.objInfo(progFd, info.ptr, Uint32Array.of(PROG_INFO_SIZE)) < 0) return null
  const mapIds = new Uint32Array(ids.view.buffer, ids.view.byteOffset, Math.min(dv.getUint32(52, true), MAX_PROG_MAPS))
  for (const id of mapIds) {
    const fd = lib.mapFdById(id)
    if (fd < 0) continue
    try {
      const mi = lib.alloc(MAP_INFO_SIZE)
      mi.view.fill(0)
      if (lib.objInfo(fd, mi.ptr, Uint32Array.of(MAP_INFO_SIZE)) < 0) continue
      const mdv = new DataView(mi.view.buffer, mi.view.byteOffset, MAP_INFO_SIZE)
      if (!cString(mi.view.subarray(24, 40)).endsWith(".bss") || mdv.getUint32(12, true) !== STATE_SIZE) continue
      const state = new Uint8Array(STATE_SIZE)
      if (lib.mapLookup(fd, new Uint8Array(4), state) < 0) continue
      return {
        seed: new DataView(state.buffer).getUint32(STATE_CFG, true),
        vmac: macText(state.subarray(STATE_CFG + 4, STATE_CFG + 10))
      }
    } finally {
      lib.closeFd(fd)
    }
  }
  return null
}

/**
 * The XDP program attached to an interface (native or generic mode), with its name and, for
 * a vipfarm filter, the farm values in its state; null when none is attached.
 */
export const attachedProgram = (ifname: string): AttachedProgram | null => {
  const lib = libbpf()
  const ifindex = ifIndex(lib, ifname)
  const id = new Uint32Array(1)
  for (const mode of ["drv", "skb"] as const) {
    id[0] = 0
    check(lib, `bpf_xdp_query_id ${ifname}`, lib.xdpQueryId(ifindex, modeFlag(mode), id))
    if (id[0] === 0) continue
    const fd = lib.progFdById(id[0])
    if (fd < 0) return { id: id[0], name: "", mode, farm: null }
    try {
      const info = lib.alloc(PROG_INFO_SIZE)
      info.view.fill(0)
      const name = lib.objInfo(fd, info.ptr, Uint32Array.of(PROG_INFO_SIZE)) < 0 ? "" : cString(info.view.subarray(64, 80))
      return { id: id[0], name, mode, farm: name === "vipfarm_xdp" ? farmOfProgram(lib, fd) : null }
    } finally {
      lib.closeFd(fd)
    }
  }
  return null
}

/**
 * The predicate of {@link AttachOptions.mayReplace} for a farm's own program: a vipfarm
 * filter whose state holds this farm's seed and virtual MAC (a keep-serving restart's, or
 * one left by a killed daemon of the same farm). Any other program, another farm's
 * included, is not the daemon's to replace.
 */
export const ownFarmProgram = (seed: number, vmac: Uint8Array) => (p: AttachedProgram): boolean =>
  p.name === "vipfarm_xdp" && p.farm !== null && p.farm.seed === seed >>> 0 && p.farm.vmac === macText(vmac)

const ifIndex = (lib: LibBpf, ifname: string): number => {
  const i = lib.ifNameToIndex(ifname)
  if (!i) fail(lib, `if_nametoindex ${ifname}`, -lastErrno())
  return i
}

/** Open and load a filter object (verifier included) and find its program. */
export const loadFilter = (options: LoadOptions = {}): FilterHandle => {
  const lib = libbpf()
  const path = options.objectPath ?? FILTER_OBJECT
  const obj = lib.objectOpenFile(path, null)
  if (!obj) fail(lib, `bpf_object__open_file ${path}`, -lastErrno())
  const rc = lib.objectLoad(obj)
  if (rc < 0) {
    lib.objectClose(obj)
    fail(lib, `bpf_object__load ${path}`, rc)
  }
  const name = options.program ?? "vipfarm_xdp"
  const prog = lib.findProgram(obj, name)
  if (!prog) {
    lib.objectClose(obj)
    throw new BpfError({ op: `find program ${name}`, errno: 2, message: `program ${name} not in ${path}` })
  }
  return new FilterHandle(lib, obj, lib.programFd(prog))
}

/**
 * Load {@link PASS_OBJECT} and attach it to `ifname` (native mode unless `mode` says
 * otherwise). The returned handle detaches and frees on `close()`; a process that exits
 * without closing leaves the program attached until the interface goes away.
 */
export const attachPass = (ifname: string, mode: XdpMode = "drv"): FilterHandle => {
  const h = loadFilter({ objectPath: PASS_OBJECT, program: "vipfarm_pass" })
  try {
    h.attach(ifname, mode)
  } catch (e) {
    h.close()
    throw e
  }
  return h
}

/** Options of the {@link XdpFilter} layer. */
export interface XdpFilterOptions extends LoadOptions {
  /** Attach to this interface for the layer's lifetime. */
  readonly ifname?: string
  readonly mode?: XdpMode
}

/** The loaded (and optionally attached) filter as an Effect service. */
export class XdpFilter extends Context.Service<XdpFilter, FilterHandle>()("@vipfarm/filter-xdp/XdpFilter") {
  /** Load (and attach), releasing (detach + close) when the layer's scope closes. */
  static readonly layer = (options: XdpFilterOptions = {}): Layer.Layer<XdpFilter, BpfError> =>
    Layer.effect(XdpFilter, acquireFilter(options))
}

/** Scoped acquisition of a filter: load, attach if asked; detach and close on release. */
export const acquireFilter = (options: XdpFilterOptions = {}) =>
  Effect.acquireRelease(
    Effect.try({
      try: () => {
        const h = loadFilter(options)
        if (options.ifname) {
          try {
            h.attach(options.ifname, options.mode)
          } catch (e) {
            h.close()
            throw e
          }
        }
        return h
      },
      catch: (e) => (e instanceof BpfError ? e : new BpfError({ op: "load", errno: 0, message: String(e) }))
    }),
    (h) => Effect.sync(() => h.close())
  )
