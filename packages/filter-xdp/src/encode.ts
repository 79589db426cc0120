/**
 * Binary layouts of the filter's maps (bpf/vipfarm.h), little-endian host.
 * Addresses are stored in wire order, ports in host order.
 */
import { Affinity } from "@vipfarm/domain"
import type { FilterConfig, FlowTuple, VipEntry } from "./types.ts"

/** sizeof(struct vf_config). */
export const CONFIG_SIZE = 32
/** Size of the VIP key the loader used to store (family byte, 3 pad, 4 address words); kept for callers. */
export const VIP_KEY_SIZE = 20
/** sizeof(struct vf_vip). */
export const VIP_VALUE_SIZE = 4 + 16 * 8
/** sizeof(struct vf_flow_key). */
export const FLOW_KEY_SIZE = 40
/** Maximum rules per VIP. */
export const MAX_RULES = 16

const putWords = (dv: DataView, off: number, words: ReadonlyArray<number>): void => {
  for (let i = 0; i < words.length; i++) dv.setUint32(off + 4 * i, words[i] >>> 0, false)
}

/** struct vf_config. */
export const encodeConfig = (c: FilterConfig): Uint8Array => {
  const b = new Uint8Array(CONFIG_SIZE)
  const dv = new DataView(b.buffer)
  dv.setUint32(0, c.seed >>> 0, true)
  b.set(c.vmac.subarray(0, 6), 4)
  b.set(c.ifmac.subarray(0, 6), 10)
  dv.setBigUint64(16, c.deadlineNs, true)
  dv.setUint32(24, c.answerNeighbours ? 1 : 0, true)
  dv.setUint32(28, c.udpIdleMs >>> 0, true)
  return b
}

/** struct vf_vip_key of an address (1 or 4 words). */
export const encodeVipKey = (words: ReadonlyArray<number>): Uint8Array => {
  const b = new Uint8Array(VIP_KEY_SIZE)
  b[0] = words.length === 1 ? 4 : 6
  putWords(new DataView(b.buffer), 4, words)
  return b
}

/** Address words of a vf_vip_key. */
export const decodeVipKey = (b: Uint8Array): Array<number> => {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength)
  const n = b[0] === 4 ? 1 : 4
  return Array.from({ length: n }, (_, i) => dv.getUint32(4 + 4 * i, false))
}

/** struct vf_vip (rule list; throws on more than 16 rules or bad fields). */
export const encodeVipValue = (v: VipEntry): Uint8Array => {
  if (v.rules.length > MAX_RULES) throw new Error(`at most ${MAX_RULES} rules per VIP, got ${v.rules.length}`)
  const b = new Uint8Array(VIP_VALUE_SIZE)
  const dv = new DataView(b.buffer)
  dv.setUint32(0, v.rules.length, true)
  v.rules.forEach((r, i) => {
    const o = 4 + 8 * i
    if (r.table < 0 || r.table > 15) throw new Error(`rule table out of range: ${r.table}`)
    b[o] = r.proto
    b[o + 1] = Affinity[r.affinity]
    b[o + 2] = r.table
    dv.setUint16(o + 4, r.portLo, true)
    dv.setUint16(o + 6, r.portHi, true)
  })
  return b
}

/** struct vf_flow_key of a UDP 5-tuple. */
export const encodeFlowKey = (t: FlowTuple, proto = 17): Uint8Array => {
  const b = new Uint8Array(FLOW_KEY_SIZE)
  const dv = new DataView(b.buffer)
  b[0] = t.family
  b[1] = proto
  dv.setUint16(4, t.sport, true)
  dv.setUint16(6, t.dport, true)
  putWords(dv, 8, t.src)
  putWords(dv, 24, t.dst)
  return b
}

/** sizeof(struct vf_flow4_key): the key of the IPv4 flow maps (udp_flows4, ...). */
export const FLOW4_KEY_SIZE = 12

/** struct vf_flow4_key of an IPv4 UDP 5-tuple (src, dst in wire order; ports in host order). */
export const encodeFlow4Key = (t: FlowTuple): Uint8Array => {
  if (t.family !== 4) throw new Error("encodeFlow4Key: an IPv4 flow")
  const b = new Uint8Array(FLOW4_KEY_SIZE)
  const dv = new DataView(b.buffer)
  dv.setUint32(0, t.src[0] >>> 0, false)
  dv.setUint32(4, t.dst[0] >>> 0, false)
  dv.setUint16(8, t.sport, true)
  dv.setUint16(10, t.dport, true)
  return b
}

/** The 5-tuple of a vf_flow4_key. */
export const decodeFlow4Key = (b: Uint8Array): FlowTuple => {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength)
  return { family: 4, src: [dv.getUint32(0, false)], dst: [dv.getUint32(4, false)], sport: dv.getUint16(8, true), dport: dv.getUint16(10, true) }
}

/** The 5-tuple of a vf_flow_key. */
export const decodeFlowKey = (b: Uint8Array): FlowTuple => {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength)
  const family = b[0] === 4 ? 4 : 6
  const n = family === 4 ? 1 : 4
  const words = (off: number) => Array.from({ length: n }, (_, i) => dv.getUint32(off + 4 * i, false))
  return { family, sport: dv.getUint16(4, true), dport: dv.getUint16(6, true), src: words(8), dst: words(24) }
}

/* ------------------------------------------------------------------ global state (.bss) */

/** VIPs per family (VF_MAX_VIPS). */
export const MAX_VIPS = 256
/** Open-addressing slots per family (VF_VIP_SLOTS), home slot = (fold * mul) >>> VIP_SHIFT. */
export const VIP_SLOTS = 1024
const VIP_SHIFT = 22
/** A VIP sits at most this many slots from its home (VF_VIP_PROBES). */
export const VIP_PROBES = 8
const V4_SLOT = 12
const V6_SLOT = 24
/** VF_FAST_RULE: a slot's fast rule of a protocol is valid. */
const FAST_RULE = 0x8000
const SET_V4 = 8
const SET_V6 = SET_V4 + VIP_SLOTS * V4_SLOT
const SET_RULES = SET_V6 + VIP_SLOTS * V6_SLOT
/** sizeof(struct vf_vip_set). */
export const VIP_SET_SIZE = SET_RULES + 2 * MAX_VIPS * VIP_VALUE_SIZE
/** CPUs with a fence memo (VF_FENCE_CPUS) and sizeof(struct vf_fence). */
const FENCE_CPUS = 1024
const FENCE_SIZE = 32
/** Offsets in struct vf_state: cfg, active, sets[0], buckets, fence; and sizeof(struct vf_state). */
export const STATE_CFG = 0
export const STATE_ACTIVE = 32
export const STATE_SETS = 40
export const STATE_BUCKETS = STATE_SETS + 2 * VIP_SET_SIZE
export const STATE_FENCE = STATE_BUCKETS + 16 * 1024
export const STATE_SIZE = STATE_FENCE + FENCE_CPUS * FENCE_SIZE

/** Bytes of one bucket's packet counter in `bucket_counters` (a __u64). */
export const BUCKET_COUNTER_SIZE = 8
/** Buckets per `bucket_counters` entry (VF_COUNTER_CHUNK). */
export const COUNTER_CHUNK = 2048
/** sizeof(struct vf_vip_counters): packets and bytes per verdict reason (VF_REASONS of them). */
export const VIP_COUNTERS_SIZE = 25 * 16

const bswap32 = (w: number): number =>
  (((w & 0xff) << 24) | ((w & 0xff00) << 8) | ((w >>> 8) & 0xff00) | (w >>> 24)) >>> 0

/** The u32 a little-endian host loads from an address word stored in wire order. */
const wireWord = (w: number): number => bswap32(w >>> 0)

/** Home slot of an address (1 or 4 big-endian words) under multiplier `mul` (mirror of vip4_find/vip6_find). */
export const vipHome = (words: ReadonlyArray<number>, mul: number): number => {
  const fold = words.length === 1 ? wireWord(words[0]) : (wireWord(words[0]) ^ wireWord(words[1]) ^ wireWord(words[2]) ^ wireWord(words[3])) >>> 0
  return Math.imul(fold, mul) >>> VIP_SHIFT
}

const GOLDEN = 0x9e3779b1

/** Place addresses by linear probing; the multiplier whose every address is within VIP_PROBES of home. */
const placeAll = (addrs: ReadonlyArray<ReadonlyArray<number>>): { mul: number; slots: Int32Array } => {
  let mul = GOLDEN
  for (let attempt = 0; attempt < 1000; attempt++) {
    const slots = new Int32Array(VIP_SLOTS).fill(-1)
    let ok = true
    for (let i = 0; i < addrs.length && ok; i++) {
      const home = vipHome(addrs[i], mul)
      ok = false
      for (let d = 0; d < VIP_PROBES; d++) {
        const s = (home + d) & (VIP_SLOTS - 1)
        if (slots[s] < 0) {
          slots[s] = i
          ok = true
          break
        }
      }
    }
    if (ok) return { mul, slots }
    mul = ((Math.imul(mul, 1664525) + 1013904223) | 1) >>> 0
  }
  throw new Error("cannot place the VIPs in the lookup table")
}

/**
 * The slot's fast rule of a protocol (VF_FAST_RULE | table << 8 | affinity): when the VIP's
 * first rule of `proto` covers every port, every unfragmented packet of `proto` matches it.
 * 0 otherwise (the program then walks the rules).
 */
export const fastRule = (v: VipEntry, proto: number): number => {
  const r = v.rules.find((x) => x.proto === proto)
  if (!r || r.portLo !== 0 || r.portHi !== 65535) return 0
  return FAST_RULE | ((r.table & 15) << 8) | (Affinity[r.affinity] & 0xff)
}

/** Map key of a VIP address (1 or 4 words): the words as unsigned decimals joined by commas. */
export const vipKey = (words: ReadonlyArray<number>): string => words.map((w) => w >>> 0).join(",")

/**
 * The VIPs of a list by {@link vipKey}, a later entry for the same address replacing an
 * earlier one; throws on a bad address or more than MAX_VIPS addresses of a family.
 */
export const uniqueVips = (vips: ReadonlyArray<VipEntry>): Map<string, VipEntry> => {
  const byKey = new Map<string, VipEntry>()
  for (const v of vips) {
    if (v.words.length !== 1 && v.words.length !== 4) throw new Error(`a VIP has 1 or 4 address words, got ${v.words.length}`)
    byKey.set(vipKey(v.words), v)
  }
  const n4 = [...byKey.values()].filter((v) => v.words.length === 1).length
  const n6 = byKey.size - n4
  if (n4 > MAX_VIPS || n6 > MAX_VIPS) throw new Error(`at most ${MAX_VIPS} VIPs per family, got ${n4} IPv4 and ${n6} IPv6`)
  return byKey
}

/**
 * struct vf_vip_set of a VIP list (a later entry for the same address replaces an earlier
 * one; throws on more than MAX_VIPS addresses of a family or a bad rule). `indexOf` gives
 * each VIP's rules index by {@link vipKey} (0..MAX_VIPS-1 for IPv4, MAX_VIPS..2*MAX_VIPS-1
 * for IPv6; the program counts the VIP's verdicts in `vip_counters` at that index); without
 * it the VIPs of a family are numbered in list order.
 */
export const encodeVipSet = (vips: ReadonlyArray<VipEntry>, indexOf?: ReadonlyMap<string, number>): Uint8Array => {
  const byKey = uniqueVips(vips)
  const v4 = [...byKey.values()].filter((v) => v.words.length === 1)
  const v6 = [...byKey.values()].filter((v) => v.words.length === 4)
  const taken = new Set<number>()
  const index = (v: VipEntry, i: number, ruleBase: number): number => {
    if (indexOf === undefined) return ruleBase + i
    const x = indexOf.get(vipKey(v.words))
    if (x === undefined || !Number.isInteger(x) || x < ruleBase || x >= ruleBase + MAX_VIPS || taken.has(x)) {
      throw new Error(`VIP ${vipKey(v.words)}: rules index ${x} missing, repeated or outside ${ruleBase}..${ruleBase + MAX_VIPS - 1}`)
    }
    taken.add(x)
    return x
  }
  const b = new Uint8Array(VIP_SET_SIZE)
  const dv = new DataView(b.buffer)
  const fill = (list: Array<VipEntry>, base: number, slotSize: number, ruleBase: number): number => {
    const { mul, slots } = placeAll(list.map((v) => v.words))
    const at = list.map((v, i) => index(v, i, ruleBase))
    slots.forEach((i, s) => {
      if (i < 0) return
      const o = base + s * slotSize
      putWords(dv, o, list[i].words)
      dv.setUint32(o + 4 * list[i].words.length, at[i] + 1, true)
      dv.setUint16(o + 4 * list[i].words.length + 4, fastRule(list[i], 6), true)
      dv.setUint16(o + 4 * list[i].words.length + 6, fastRule(list[i], 17), true)
      b.set(encodeVipValue(list[i]), SET_RULES + at[i] * VIP_VALUE_SIZE)
    })
    return mul
  }
  dv.setUint32(0, fill(v4, SET_V4, V4_SLOT, 0), true)
  dv.setUint32(4, fill(v6, SET_V6, V6_SLOT, MAX_VIPS), true)
  return b
}

/** Look an address up in an encoded vf_vip_set as the program does: its rules index, or -1. */
export const findVip = (set: Uint8Array, words: ReadonlyArray<number>): number => {
  const dv = new DataView(set.buffer, set.byteOffset, set.byteLength)
  const v4 = words.length === 1
  const home = vipHome(words, dv.getUint32(v4 ? 0 : 4, true))
  for (let d = 0; d < VIP_PROBES; d++) {
    const o = (v4 ? SET_V4 : SET_V6) + ((home + d) & (VIP_SLOTS - 1)) * (v4 ? V4_SLOT : V6_SLOT)
    const idx = dv.getUint32(o + (v4 ? 4 : 16), true)
    if (idx === 0) return -1
    if (words.every((w, i) => dv.getUint32(o + 4 * i, false) === w >>> 0)) return idx - 1
  }
  return -1
}

/** Addresses (words) of an encoded vf_vip_set. */
export const vipSetAddresses = (set: Uint8Array): Array<Array<number>> => {
  const dv = new DataView(set.buffer, set.byteOffset, set.byteLength)
  const out: Array<Array<number>> = []
  for (let s = 0; s < VIP_SLOTS; s++) {
    if (dv.getUint32(SET_V4 + s * V4_SLOT + 4, true)) out.push([dv.getUint32(SET_V4 + s * V4_SLOT, false)])
  }
  for (let s = 0; s < VIP_SLOTS; s++) {
    const o = SET_V6 + s * V6_SLOT
    if (dv.getUint32(o + 16, true)) out.push([0, 1, 2, 3].map((i) => dv.getUint32(o + 4 * i, false)))
  }
  return out
}
