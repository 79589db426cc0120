/**
 * Binary layouts of the filter's maps (bpf/vipfarm.h), little-endian host.
 * Addresses are stored in wire order, ports in host order.
 */
import { Affinity } from "@vipfarm/domain"
import type { FilterConfig, FlowTuple, VipEntry } from "./types.ts"

/** sizeof(struct vf_config). */
export const CONFIG_SIZE = 32
/** sizeof(struct vf_vip_key). */
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

/** The 5-tuple of a vf_flow_key. */
export const decodeFlowKey = (b: Uint8Array): FlowTuple => {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength)
  const family = b[0] === 4 ? 4 : 6
  const n = family === 4 ? 1 : 4
  const words = (off: number) => Array.from({ length: n }, (_, i) => dv.getUint32(off + 4 * i, false))
  return { family, sport: dv.getUint16(4, true), dport: dv.getUint16(6, true), src: words(8), dst: words(24) }
}
