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

#define VF_COARSE_SLACK_NS 50000000ULL /* max lag of bpf_ktime_get_coarse_ns (and of jiffies) trusted */
/* Longest jiffy: CONFIG_HZ >= 100, the smallest choice of kernel/Kconfig.hz, which x86-64 and
 * arm64 use (the filter already needs one of them for its unaligned packet loads). */
#define VF_TICK_MAX_NS 10000000ULL
#define VF_FENCE_CPUS 1024 /* CPUs with a fence memo; a CPU above decides with the clocks only */
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

#define VF_MAX_VIPS 256    /* VIPs per family */
#define VF_VIP_SLOTS 1024  /* open-addressing slots per family (load <= 1/4) */
#define VF_VIP_SHIFT 22    /* 32 - log2(VF_VIP_SLOTS) */
#define VF_VIP_PROBES 8    /* the loader places every VIP within this many slots of its home */

/* config: the `cfg` member of the global `vf_state` (.bss, mmapped by the loader) */
struct vf_config {
	__u32 seed;
	__u8 vmac[6];
	__u8 ifmac[6];
	__u64 deadline_ns;  /* bpf_ktime_get_ns() >= deadline_ns: fenced (0 = fenced) */
	__u32 flags;
	__u32 udp_idle_ms;
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

/* The VIP set: per family an open-addressing table (linear probing, at most
 * VF_VIP_PROBES slots from home = (fold(addr) * mul) >> VF_VIP_SHIFT, an empty slot ends
 * the search) whose slot points at the VIP's rules. Addresses in wire order (the u32 the
 * program loads; IPv6 folds its four words with xor). `idx` 0 = empty, else rules[idx - 1];
 * `fast`: see VF_FAST_RULE. */
struct vf_vip4_slot {
	__u32 addr;
	__u32 idx;
	__u16 fast[2]; /* VF_FAST_RULE of TCP [0] and UDP [1], or 0 */
};

struct vf_vip6_slot {
	__u32 addr[4];
	__u32 idx;
	__u16 fast[2];
};

/* A slot's fast rule of a protocol: when the VIP's first rule of that protocol covers every
 * port, every unfragmented packet of it matches that rule: VF_FAST_RULE | table << 8 |
 * affinity saves the fast path the rule list. 0: look the rules up. */
#define VF_FAST_RULE 0x8000

struct vf_vip_set {
	__u32 mul4; /* odd multipliers chosen by the loader */
	__u32 mul6;
	struct vf_vip4_slot v4[VF_VIP_SLOTS];
	struct vf_vip6_slot v6[VF_VIP_SLOTS];
	struct vf_vip rules[2 * VF_MAX_VIPS];
};

/* Fence memo of one CPU, written by the program only (fence_remember in bpf/neigh.h): a
 * precise clock read found the time at least VF_COARSE_SLACK_NS + k jiffies of the
 * longest tick before `deadline`; so while the configured deadline is still `deadline` and
 * bpf_jiffies64() < `until`, the time is before it. */
struct vf_fence {
	__u64 deadline;
	__u64 until; /* jiffies; 0 = no memo */
	__u64 pad[2];
};

/* All mutable scalar state: one global in .bss that the loader mmaps. VIP sets are
 * double-buffered: the loader fills sets[!active], then flips `active`. `buckets` holds
 * the 16 bucket tables (LocalBucket codes, table * VF_BUCKETS + bucket), written in place by
 * the loader (one byte per bucket: a packet sees a bucket's old code or its new one). */
struct vf_state {
	struct vf_config cfg;
	__u32 active; /* 0 | 1 */
	__u32 pad;
	struct vf_vip_set sets[2];
	__u8 buckets[VF_MAX_TABLES * VF_BUCKETS];
	struct vf_fence fence[VF_FENCE_CPUS];
};

/* udp_flows / udp_probation / udp_foreign key (IPv6 flows): a packet's own 5-tuple (client → VIP).
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

/* The same maps for IPv4 flows (udp_flows4, udp_probation4, udp_foreign4): a 12-byte key
 * (family and protocol implied) hashes and compares in a third of the time of the 40-byte
 * one. Addresses in wire order, ports in host order. */
struct vf_flow4_key {
	__u32 src;
	__u32 dst;
	__u16 sport;
	__u16 dport;
};

struct vf_counter {
	__u64 packets;
	__u64 bytes;
};

/* bucket_counters (per CPU; bucket index table * VF_BUCKETS + bucket, in chunks of
 * VF_COUNTER_CHUNK buckets per map entry so that the loader reads them with a few large
 * copies instead of 16384 small ones): every packet hashed into the bucket, whatever its
 * verdict, is counted once here (packets only: the bytes are in vip_counters). */
#define VF_COUNTER_CHUNK 2048 /* buckets per bucket_counters entry (16 KB; per-CPU values <= 32 KB) */

struct vf_bucket_chunk {
	__u64 packets[VF_COUNTER_CHUNK];
};

/* vip_counters (per CPU; key: the VIP's rules index, its slot's idx - 1: IPv4 VIPs
 * 0..VF_MAX_VIPS-1, IPv6 VIPs VF_MAX_VIPS..2*VF_MAX_VIPS-1; the loader keeps a VIP's index
 * while the VIP stays configured): packets and bytes of every packet addressed to the VIP
 * that gets a VIP verdict (VF_DROP_FENCED and above), by reason. Such a packet is counted
 * here and not in `verdicts`, which counts the rest (VF_PASS_NOT_VIP .. VF_TX_ND_ADVERT):
 * the loader sums verdicts + every VIP index for the per-reason totals. */
struct vf_vip_counters {
	struct vf_counter r[VF_REASONS];
};

#endif
