/**
 * Verdict reasons of the XDP filter: the index of the `verdicts` counter map.
 * Identical to `enum vf_reason` in bpf/vipfarm.h (a test checks the header).
 */

/** Reason codes, one per branch of the decision. */
export const Reason = {
  /** Not ARP/IPv4/IPv6, not for a VIP, or truncated before the destination: passed untouched. */
  PASS_NOT_VIP: 0,
  /** ARP / neighbour discovery concerning a VIP that is not answered: passed untouched. */
  PASS_NEIGH: 1,
  /** ARP request for a VIP turned into a reply with the virtual MAC. */
  TX_ARP_REPLY: 2,
  /** Neighbour solicitation for a VIP turned into an advertisement with the virtual MAC. */
  TX_ND_ADVERT: 3,
  /** The liveness deadline has passed (or was never set): all VIP traffic dropped. */
  DROP_FENCED: 4,
  /** VIP packet whose IP or L4 header is truncated or invalid. */
  DROP_MALFORMED: 5,
  /** ICMP error (v4 3/11/12, v6 1-4): passed on every server. */
  PASS_ICMP_ERROR: 6,
  /** No rule for the protocol/port, or a protocol the filter does not serve. */
  DROP_NO_RULE: 7,
  /** Another server owns the bucket. */
  DROP_FOREIGN: 8,
  /** This server owns the bucket. */
  PASS_OWNED: 9,
  /** New TCP flow (SYN without ACK) in a bucket moving away: the new owner takes it. */
  DROP_MOVING_OUT_SYN: 10,
  /** Moving away, but this server holds a socket for the flow. */
  PASS_MOVING_OUT_TCP: 11,
  /** Moving away, no socket here (or only a listener). */
  DROP_MOVING_OUT_TCP: 12,
  /** Moving away, a fresh flow of ours in `udp_flows`. */
  PASS_MOVING_OUT_UDP: 13,
  /** Moving away, not a (fresh) flow of ours. */
  DROP_MOVING_OUT_UDP: 14,
  /** Fragments stay with the previous owner while a bucket moves. */
  PASS_MOVING_OUT_FRAG: 15,
  /** ICMP echo is stateless: the new owner answers it. */
  DROP_MOVING_OUT_ICMP: 16,
  /** New TCP flow in a bucket moving here. */
  PASS_MOVING_IN_SYN: 17,
  /** Moving here, and this server already holds a socket for the flow. */
  PASS_MOVING_IN_TCP: 18,
  /** Moving here, TCP packet of a flow the previous owner holds. */
  DROP_MOVING_IN_TCP: 19,
  /** Moving here, foreign UDP flows not installed yet: no UDP. */
  DROP_MOVING_IN_WAIT_UDP: 20,
  /** Moving here, UDP flow not held by the previous owner. */
  PASS_MOVING_IN_UDP: 21,
  /** Moving here, UDP flow held by the previous owner (`udp_foreign`). */
  DROP_MOVING_IN_UDP: 22,
  /** Fragments stay with the previous owner while a bucket moves. */
  DROP_MOVING_IN_FRAG: 23,
  /** ICMP echo in a bucket moving here. */
  PASS_MOVING_IN_ICMP: 24
} as const

/** Name of a verdict reason. */
export type ReasonName = keyof typeof Reason

/** A verdict reason code. */
export type ReasonCode = (typeof Reason)[ReasonName]

/** Number of reason codes (size of the `verdicts` map). */
export const REASONS = 25

/** Reason names indexed by code. */
export const reasonNames: ReadonlyArray<ReasonName> = (Object.keys(Reason) as Array<ReasonName>).sort(
  (a, b) => Reason[a] - Reason[b]
)

/** XDP return codes used by the filter. */
export const XdpAction = { ABORTED: 0, DROP: 1, PASS: 2, TX: 3 } as const

/** What the filter does with a frame. */
export type Action = "pass" | "drop" | "tx"

/** The action a reason implies (every reason has exactly one action). */
export const actionOfReason = (reason: ReasonCode): Action => {
  const name = reasonNames[reason]
  return name.startsWith("PASS") ? "pass" : name.startsWith("TX") ? "tx" : "drop"
}

/** XDP return code of an action. */
export const xdpCodeOfAction = (a: Action): number =>
  a === "pass" ? XdpAction.PASS : a === "tx" ? XdpAction.TX : XdpAction.DROP
