/**
 * Configuration the filter is driven with: the same shapes for the kernel loader
 * (src/loader.ts) and the TypeScript model (src/model.ts).
 */
import type { AffinityName } from "@vipfarm/domain"

/** IP protocol numbers a rule can name. */
export const Proto = { tcp: 6, udp: 17 } as const

/** One port rule of a VIP: first matching rule (protocol + destination port) wins. */
export interface VipRule {
  /** 6 (TCP) or 17 (UDP). */
  readonly proto: 6 | 17
  /** How the client identity is hashed. */
  readonly affinity: AffinityName
  /** Bucket table 0..15. */
  readonly table: number
  /** Inclusive destination port range, 0..65535 is a catch-all. */
  readonly portLo: number
  readonly portHi: number
}

/** A VIP and its rules (at most 16). `words`: 1 (IPv4) or 4 (IPv6) big-endian words. */
export interface VipEntry {
  readonly words: ReadonlyArray<number>
  readonly rules: ReadonlyArray<VipRule>
}

/** The filter's scalar configuration (`vf_state.cfg` in the program's .bss). */
export interface FilterConfig {
  /** The farm's hash seed (farmSeed in @vipfarm/domain). */
  readonly seed: number
  /** Virtual MAC answered in ARP/ND (never a frame source), 6 bytes. */
  readonly vmac: Uint8Array
  /** The interface's own MAC: Ethernet source of answers, rewrite target of vmac frames. */
  readonly ifmac: Uint8Array
  /** CLOCK_MONOTONIC ns at which the server fences itself (0 = fenced). */
  readonly deadlineNs: bigint
  /** Answer ARP / ND for the VIPs (config.flags bit 0). */
  readonly answerNeighbours: boolean
  /** A UDP flow is kept by a bucket's previous owner while seen within this many ms. */
  readonly udpIdleMs: number
}

/** A flow's 5-tuple as the packet carries it (client → VIP); UDP unless told. */
export interface FlowTuple {
  readonly family: 4 | 6
  readonly src: ReadonlyArray<number>
  readonly dst: ReadonlyArray<number>
  readonly sport: number
  readonly dport: number
}

/** Parse "aa:bb:cc:dd:ee:ff" into 6 bytes. */
export const macBytes = (mac: string): Uint8Array => {
  const parts = mac.split(/[:-]/)
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) throw new Error(`not a MAC: ${mac}`)
  return Uint8Array.from(parts.map((p) => parseInt(p, 16)))
}

/** Format 6 bytes as "aa:bb:cc:dd:ee:ff". */
export const macText = (mac: Uint8Array): string =>
  Array.from(mac.subarray(0, 6), (b) => b.toString(16).padStart(2, "0")).join(":")
