/**
 * The model applied to whole frames: decision plus the bytes the filter leaves
 * (ARP reply / neighbour advertisement built in place, virtual MAC rewritten).
 */
import { countedVip, decide, newDecision, parsePacket, type ModelEnv, type ModelFlows, type ModelTables } from "./model.ts"
import { Reason, type Action, type ReasonCode } from "./verdict.ts"

/** Outcome of {@link decideFrame}. */
export interface FrameDecision {
  readonly action: Action
  readonly reason: ReasonCode
  /** Bucket table and bucket, when the decision computed one. */
  readonly table?: number
  readonly bucket?: number
  /** The VIP whose counters count the frame (a VIP verdict), by its address words. */
  readonly vip?: ReadonlyArray<number>
  /** The frame after the filter (same bytes for drops). */
  readonly frame: Uint8Array
}

const sameMac = (b: Uint8Array, o: number, mac: Uint8Array): boolean => {
  for (let i = 0; i < 6; i++) if (b[o + i] !== mac[i]) return false
  return true
}

/** Sum of 16-bit big-endian words of a byte range. */
const sum16 = (b: Uint8Array, o: number, n: number): number => {
  let s = 0
  for (let i = 0; i < n; i += 2) s += (b[o + i] << 8) | b[o + i + 1]
  return s
}

/** ARP request → reply in place (same length). */
const arpReply = (f: Uint8Array, l3: number, t: ModelTables): void => {
  const sha = f.slice(l3 + 8, l3 + 14)
  const spa = f.slice(l3 + 14, l3 + 18)
  const tpa = f.slice(l3 + 24, l3 + 28)
  f.copyWithin(0, 6, 12)
  f.set(t.ifmac, 6)
  f[l3 + 6] = 0
  f[l3 + 7] = 2
  f.set(sha, l3 + 18)
  f.set(spa, l3 + 24)
  f.set(t.vmac, l3 + 8)
  f.set(tpa, l3 + 14)
}

/** Neighbour solicitation → solicited advertisement of the target with the virtual MAC. */
const ndAdvert = (inFrame: Uint8Array, l3: number, t: ModelTables): Uint8Array => {
  const f = new Uint8Array(l3 + 40 + 32)
  f.set(inFrame.subarray(0, Math.min(inFrame.length, f.length)))
  const peerMac = inFrame.slice(6, 12)
  const peer = inFrame.slice(l3 + 8, l3 + 24)
  const target = inFrame.slice(l3 + 48, l3 + 64)
  f.set(peerMac, 0)
  f.set(t.ifmac, 6)
  const dv = new DataView(f.buffer)
  dv.setUint32(l3, 0x60000000)
  dv.setUint16(l3 + 4, 32)
  f[l3 + 6] = 58
  f[l3 + 7] = 255
  f.set(target, l3 + 8)
  f.set(peer, l3 + 24)
  const m = l3 + 40
  f.fill(0, m, m + 32)
  f[m] = 136
  dv.setUint32(m + 4, 0x60000000)
  f.set(target, m + 8)
  f[m + 24] = 2
  f[m + 25] = 1
  f.set(t.vmac, m + 26)
  let s = sum16(f, l3 + 8, 32) + 32 + 58 + sum16(f, m, 32)
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16)
  dv.setUint16(m + 2, ~s & 0xffff)
  return f
}

/** Run the model on a frame: decision, updated flows, and the output frame (a copy). */
export const decideFrame = (bytes: Uint8Array, t: ModelTables, flows: ModelFlows, env: ModelEnv): FrameDecision => {
  const p = parsePacket(bytes)
  const d = decide(p, t, flows, env, newDecision())
  let frame: Uint8Array = bytes.slice()
  if (d.reason === Reason.TX_ARP_REPLY) arpReply(frame, p.l3, t)
  else if (d.reason === Reason.TX_ND_ADVERT) frame = ndAdvert(bytes, p.l3, t)
  else if (d.action === "pass" && d.reason !== Reason.PASS_NOT_VIP && d.reason !== Reason.PASS_NEIGH && sameMac(frame, 0, t.vmac)) {
    frame.set(t.ifmac, 0)
  }
  const vip = countedVip(p, d)
  return {
    action: d.action,
    reason: d.reason,
    ...(d.bucket >= 0 ? { table: d.table, bucket: d.bucket } : {}),
    ...(vip !== null ? { vip } : {}),
    frame
  }
}
