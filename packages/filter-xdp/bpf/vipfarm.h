/* vipfarm XDP filter: constants and map layouts shared with the loader
 * (packages/filter-xdp/src/verdict.ts and src/loader.ts mirror every value here).
 * Bucket codes come from packages/domain/src/localView.ts, affinity codes from
 * packages/domain/src/hash.ts. */
#ifndef VIPFARM_H
#define VIPFARM_H

#include <linux/types.h>

#define VF_BUCKETS 1024
#define VF_MAX_TABLES 16
#define VF_MAX_RULES 16
#define VF_MAX_EXT_HEADERS 6
#define VF_UDP_REFRESH_NS 1000000ULL /* udp_flows last-seen is rewritten at most once per ms */

#define VF_COARSE_SLACK_NS 50000000ULL /* max lag of bpf_ktime_get_coarse_ns trusted */
#define VF_FLAG_ANSWER_NEIGH 1u /* config.flags bit0: answer ARP / ND for the VIPs */

/* LocalBucket (localView.ts) */
enum vf_bucket {
	VF_FOREIGN = 0,
	VF_OWNED = 1,
	VF_MOVING_OUT = 2,
	VF_MOVING_IN_WAIT = 3,
	VF_MOVING_IN = 4,
};

/* Affinity (hash.ts); an unknown code hashes as client-ip */
enum vf_affinity {
	VF_AFF_CLIENT_IP = 0,
	VF_AFF_CLIENT_IP_PORT = 1,
	VF_AFF_CLIENT_NETWORK = 2,
	VF_AFF_SYMMETRIC_PAIR = 3,
	VF_AFF_PER_PACKET = 4,
};

/* Verdict reasons: index of the `verdicts` map. Identical to src/verdict.ts. */
enum vf_reason {
	VF_PASS_NOT_VIP = 0,            /* not ARP/IP, not for a VIP, or unreadable destination */
	VF_PASS_NEIGH = 1,              /* ARP / ND concerning a VIP, not answered: passed untouched */
	VF_TX_ARP_REPLY = 2,
	VF_TX_ND_ADVERT = 3,
	VF_DROP_FENCED = 4,             /* liveness deadline passed (or never set) */
	VF_DROP_MALFORMED = 5,
	VF_PASS_ICMP_ERROR = 6,
	VF_DROP_NO_RULE = 7,
	VF_DROP_FOREIGN = 8,
	VF_PASS_OWNED = 9,
	VF_DROP_MOVING_OUT_SYN = 10,    /* new TCP flow in a bucket leaving us */
	VF_PASS_MOVING_OUT_TCP = 11,    /* we hold a socket */
	VF_DROP_MOVING_OUT_TCP = 12,    /* no socket (or only a listener) */
	VF_PASS_MOVING_OUT_UDP = 13,    /* fresh flow in udp_flows */
	VF_DROP_MOVING_OUT_UDP = 14,
	VF_PASS_MOVING_OUT_FRAG = 15,   /* fragments stay with the previous owner */
	VF_DROP_MOVING_OUT_ICMP = 16,   /* echo is stateless: the new owner answers */
	VF_PASS_MOVING_IN_SYN = 17,
	VF_PASS_MOVING_IN_TCP = 18,     /* established socket here */
	VF_DROP_MOVING_IN_TCP = 19,
	VF_DROP_MOVING_IN_WAIT_UDP = 20,
	VF_PASS_MOVING_IN_UDP = 21,     /* not a flow of the previous owner */
	VF_DROP_MOVING_IN_UDP = 22,     /* in udp_foreign */
	VF_DROP_MOVING_IN_FRAG = 23,
	VF_PASS_MOVING_IN_ICMP = 24,
	VF_REASONS = 25,
};

/* config: ARRAY[1] */
struct vf_config {
	__u32 seed;
	__u8 vmac[6];
	__u8 ifmac[6];
	__u64 deadline_ns;  /* bpf_ktime_get_ns() >= deadline_ns: fenced (0 = fenced) */
	__u32 flags;
	__u32 udp_idle_ms;
};

/* vips: HASH key. IPv4 address in addr[0]; addresses in wire order. */
struct vf_vip_key {
	__u8 family; /* 4 | 6 */
	__u8 pad[3];
	__u32 addr[4];
};

struct vf_rule {
	__u8 proto;    /* 6 tcp, 17 udp */
	__u8 affinity; /* enum vf_affinity */
	__u8 table;    /* 0..15 */
	__u8 pad;
	__u16 port_lo; /* destination port range, host order, inclusive */
	__u16 port_hi;
};

struct vf_vip {
	__u32 count;
	struct vf_rule rules[VF_MAX_RULES];
};

/* udp_flows / udp_probation / udp_foreign key: a packet's own 5-tuple (client → VIP).
 * Addresses in wire order (IPv4 in [0]), ports in host order. Value: __u64 ns. */
struct vf_flow_key {
	__u8 family;
	__u8 proto;
	__u16 pad;
	__u16 sport;
	__u16 dport;
	__u32 src[4];
	__u32 dst[4];
};

struct vf_counter {
	__u64 packets;
	__u64 bytes;
};

#endif
