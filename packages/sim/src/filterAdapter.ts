/**
 * The filter decision as the simulator uses it: the branches of the XDP filter's model
 * (packages/filter-xdp/src/model.ts `decide`) for a TCP or UDP packet of a VIP rule,
 * specialised to what the simulator knows of a flow so a packet costs a few compares.
 * `filterAdapter.test.ts` checks these verdicts against the model branch for branch;
 * swapping in another filter means changing this one file.
 */
import { LocalBucket } from "@vipfarm/domain"

/**
 * Whether a server's filter passes a TCP packet. `code`: the server's LocalBucket code for
 * the packet's bucket; `pureSyn`: SYN without ACK; `socketHere`: the server's kernel holds an
 * established socket for the 4-tuple. Fencing is checked by the caller.
 */
export const tcpPasses = (code: number, pureSyn: boolean, socketHere: boolean): boolean => {
  switch (code) {
    case LocalBucket.OWNED:
      return true
    case LocalBucket.MOVING_OUT:
      return !pureSyn && socketHere
    case LocalBucket.MOVING_IN_WAIT:
    case LocalBucket.MOVING_IN:
      return pureSyn || socketHere
    default:
      return false
  }
}

/**
 * Whether a server's filter passes a UDP packet (unfragmented). `establishedHere`: the
 * flow is in this server's `udp_flows` map (seen twice) and fresh (within udpIdleMs);
 * `foreignHeld`: the flow is in this server's `udp_foreign` map (held by the previous owner).
 * A passed packet in an OWNED or MOVING_IN bucket is recorded in the server's flow map.
 */
export const udpPasses = (code: number, establishedHere: boolean, foreignHeld: boolean): boolean => {
  switch (code) {
    case LocalBucket.OWNED:
      return true
    case LocalBucket.MOVING_OUT:
      return establishedHere
    case LocalBucket.MOVING_IN:
      return !foreignHeld
    default:
      return false
  }
}

/** Whether a code takes new flows (a SYN, an unknown UDP flow). */
export const claimsNew = (code: number): boolean =>
  code === LocalBucket.OWNED || code === LocalBucket.MOVING_IN || code === LocalBucket.MOVING_IN_WAIT
