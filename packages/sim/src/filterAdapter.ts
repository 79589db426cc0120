/**
 * The filter decision as the simulator uses it: the branches of the XDP filter's model
 * (packages/filter-xdp/src/model.ts `decide`) for a TCP or UDP packet of a VIP rule,
 * specialised to what the simulator knows of a flow so a packet costs a few compares.
 * `filterAdapter.test.ts` checks these verdicts against the model branch for branch;
 * swapping in another filter means changing this one file.
 */
import { LocalBucket } from "@vipfarm/domain"

/** TCP flag bits (the header's flags byte). */
export const FIN = 0x01
export const SYN = 0x02
export const RST = 0x04
export const PSH = 0x08
export const ACK = 0x10

/** A pure SYN (SYN without ACK): a new connection, whatever else is set (as the filter tests it). */
export const isPureSyn = (flags: number): boolean => (flags & (SYN | ACK)) === SYN

/**
 * Whether a server's filter passes a TCP packet. `code`: the server's LocalBucket code for
 * the packet's bucket; `flags`: the TCP flags byte (SYN, the handshake's ACK, data, FIN, the
 * final ACK, RST); `socketHere`: the server's kernel holds a socket for the 4-tuple other
 * than a listener (SYN_RECV, ESTABLISHED, CLOSE_WAIT, LAST_ACK: what the filter's socket
 * lookup finds). Only a pure SYN is a new flow; every other packet, FIN and RST included,
 * follows the socket. Fencing is checked by the caller.
 */
export const tcpPasses = (code: number, flags: number, socketHere: boolean): boolean => {
  switch (code) {
    case LocalBucket.OWNED:
      return true
    case LocalBucket.MOVING_OUT:
      return !isPureSyn(flags) && socketHere
    case LocalBucket.MOVING_IN_WAIT:
    case LocalBucket.MOVING_IN:
      return isPureSyn(flags) || socketHere
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
