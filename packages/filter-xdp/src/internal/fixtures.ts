/** Shared fixtures of the filter's tests and benchmark (not part of the public API). */
import { addressWords, farmSeed } from "@vipfarm/domain"
import type { FilterConfig, VipEntry } from "../types.ts"

/** True when the kernel tests can run (BPF needs root). */
export const isRoot = (): boolean => typeof process.getuid === "function" && process.getuid() === 0

/** Print why kernel tests are skipped. */
export const skipReason = (file: string): void => {
  if (!isRoot()) console.log(`${file}: skipped: loading BPF programs needs root (uid ${process.getuid?.()})`)
}

/** The test farm's virtual MAC. */
export const VMAC = Uint8Array.of(0x02, 0xfa, 0x8e, 0xcf, 0x2a, 0x8f)
/** The test interface's own MAC. */
export const IFMAC = Uint8Array.of(0x02, 0x00, 0x00, 0x00, 0x00, 0xaa)
/** Test VIPs and clients (address words). */
export const VIP4 = addressWords("198.18.0.1")
export const VIP4B = addressWords("198.18.0.2")
export const VIP6 = addressWords("2001:db8::1")
export const CLIENT4 = addressWords("203.0.113.7")
export const CLIENT6 = addressWords("2001:db8:1::7")
/** The test farm's hash seed. */
export const SEED = farmSeed("vipfarm-test")
/** A deadline far in the future (never fenced during a test). */
export const FAR_FUTURE = 1n << 62n

/** The filter configuration used by the tests (never fenced, ARP/ND answered, UDP idle 1 s). */
export const baseConfig = (over: Partial<FilterConfig> = {}): FilterConfig => ({
  seed: SEED, vmac: VMAC, ifmac: IFMAC, deadlineNs: FAR_FUTURE, answerNeighbours: true, udpIdleMs: 1000, ...over
})

/** Catch-all TCP and UDP rules on table 0 with client-ip affinity. */
export const catchAll = (words: ReadonlyArray<number>): VipEntry => ({
  words,
  rules: [
    { proto: 6, affinity: "client-ip", table: 0, portLo: 0, portHi: 65535 },
    { proto: 17, affinity: "client-ip", table: 0, portLo: 0, portHi: 65535 }
  ]
})

/** CLOCK_MONOTONIC now in ns (the clock of bpf_ktime_get_ns). */
export const monoNow = (): bigint => process.hrtime.bigint()
