// SPDX-License-Identifier: GPL-2.0
/* vipfarm XDP farm filter.
 *
 * Every server of a farm receives every frame for the VIPs; this program keeps
 * only this server's share: it hashes the client identity (packages/domain/src/hash.ts)
 * into one of 1024 buckets of a bucket table and looks up what this server does
 * with that bucket (packages/domain/src/localView.ts). It also answers ARP and
 * IPv6 neighbour solicitations for the VIPs with the farm's virtual MAC.
 *
 * The TypeScript model src/model.ts implements exactly the same decision; the
 * differential test compares both on random packets. Keep them in step. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "vipfarm.h"
#include "hash.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_ARP 0x0806
#define ETH_P_8021Q 0x8100
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_ICMP 1
#define IPPROTO_ICMPV6 58
#define TCP_LISTEN_STATE 10
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10

char LICENSE[] SEC("license") = "GPL";

/* Configuration, VIP sets and bucket tables (.bss): written by the loader through its mmap
 * of the section, read here without a map lookup. */
struct vf_state vf_state;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 131072);
	__type(key, struct vf_flow_key);
	__type(value, __u64);
} udp_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct vf_flow_key);
	__type(value, __u64);
} udp_probation SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 131072);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct vf_flow_key);
	__type(value, __u64);
} udp_foreign SEC(".maps");

/* IPv4 flows: the same three maps with the 12-byte key (struct vf_flow4_key). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 131072);
	__type(key, struct vf_flow4_key);
	__type(value, __u64);
} udp_flows4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct vf_flow4_key);
	__type(value, __u64);
} udp_probation4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 131072);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct vf_flow4_key);
	__type(value, __u64);
} udp_foreign4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VF_REASONS);
	__type(key, __u32);
	__type(value, struct vf_counter);
} verdicts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VF_MAX_TABLES * VF_BUCKETS / VF_COUNTER_CHUNK);
	__type(key, __u32);
	__type(value, struct vf_bucket_chunk);
} bucket_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2 * VF_MAX_VIPS);
	__type(key, __u32);
	__type(value, struct vf_vip_counters);
} vip_counters SEC(".maps");

/* This CPU's packet counter of bucket `idx` (table * VF_BUCKETS + bucket), or NULL. */
static __always_inline __u64 *bucket_counter(__u32 idx)
{
	__u32 chunk = idx / VF_COUNTER_CHUNK;
	struct vf_bucket_chunk *c = bpf_map_lookup_elem(&bucket_counters, &chunk);

	return c ? &c->packets[idx & (VF_COUNTER_CHUNK - 1)] : NULL;
}

/* This CPU's counters of the VIP whose slot has index `idx` (non-zero), or NULL. */
static __always_inline struct vf_vip_counters *vip_counter(__u32 idx)
{
	__u32 key = (idx - 1) & (2 * VF_MAX_VIPS - 1);

	return bpf_map_lookup_elem(&vip_counters, &key);
}

#include "wire.h"

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* The active VIP set (flipped by the loader after it has filled the other one). */
static __always_inline struct vf_vip_set *vip_set(void)
{
	return &vf_state.sets[*(volatile __u32 *)&vf_state.active & 1];
}

/* The rules of slot index `idx` (non-zero). */
static __always_inline struct vf_vip *vip_rules(struct vf_vip_set *set, __u32 idx)
{
	return &set->rules[(idx - 1) & (2 * VF_MAX_VIPS - 1)];
}

/* Slot of an IPv4 VIP (address in wire order), or NULL. */
static __always_inline struct vf_vip4_slot *vip4_slot(struct vf_vip_set *set, __u32 addr)
{
	__u32 h = (addr * set->mul4) >> VF_VIP_SHIFT;

#pragma unroll
	for (int i = 0; i < VF_VIP_PROBES; i++) {
		struct vf_vip4_slot *s = &set->v4[(h + i) & (VF_VIP_SLOTS - 1)];

		if (likely(s->idx == 0))
			return NULL;
		if (s->addr == addr)
			return s;
	}
	return NULL;
}

/* Rules of an IPv4 VIP, or NULL; `*idx` gets its slot index (unless `idx` is NULL). */
static __always_inline struct vf_vip *vip4_find(struct vf_vip_set *set, __u32 addr, __u32 *idx)
{
	struct vf_vip4_slot *s = vip4_slot(set, addr);

	if (!s)
		return NULL;
	if (idx)
		*idx = s->idx;
	return vip_rules(set, s->idx);
}

/* Slot of an IPv6 VIP (four words in wire order), or NULL. */
static __always_inline struct vf_vip6_slot *vip6_slot(struct vf_vip_set *set, const __u32 *a)
{
	__u32 h = ((a[0] ^ a[1] ^ a[2] ^ a[3]) * set->mul6) >> VF_VIP_SHIFT;

#pragma unroll
	for (int i = 0; i < VF_VIP_PROBES; i++) {
		struct vf_vip6_slot *s = &set->v6[(h + i) & (VF_VIP_SLOTS - 1)];

		if (likely(s->idx == 0))
			return NULL;
		if (s->addr[0] == a[0] && s->addr[1] == a[1] && s->addr[2] == a[2] && s->addr[3] == a[3])
			return s;
	}
	return NULL;
}

/* Rules of an IPv6 VIP, or NULL; `*idx` gets its slot index (unless `idx` is NULL). */
static __always_inline struct vf_vip *vip6_find(struct vf_vip_set *set, const __u32 *a, __u32 *idx)
{
	struct vf_vip6_slot *s = vip6_slot(set, a);

	if (!s)
		return NULL;
	if (idx)
		*idx = s->idx;
	return vip_rules(set, s->idx);
}

/* What the decision needs to know of a VIP packet (mirrors `Parsed` in src/model.ts). */
struct pkt {
	__u32 src[4]; /* wire order */
	__u32 dst[4];
	__u32 packet_id;
	__u16 sport; /* host order */
	__u16 dport;
	__u8 family;
	__u8 proto;
	__u8 frag;
	__u8 malformed;
	__u8 tcp_flags;
	__u8 icmp_type;
	__u8 ext; /* IPv6 extension headers seen */
	__u8 l4_len_ok;
};

static __always_inline int count(__u32 reason, __u64 len, int action)
{
	struct vf_counter *c = bpf_map_lookup_elem(&verdicts, &reason);

	if (c) {
		c->packets++;
		c->bytes += len;
	}
	return action;
}

/* Count a VIP verdict in the VIP's counters `vc` (from vip_counter). */
static __always_inline int vcount(struct vf_vip_counters *vc, __u32 reason, __u64 len, int action)
{
	if (vc) {
		struct vf_counter *c = &vc->r[reason < VF_REASONS ? reason : 0];

		c->packets++;
		c->bytes += len;
	}
	return action;
}

static __always_inline int vip_pass(struct eth_h *eth, struct vf_config *cfg, struct vf_vip_counters *vc,
				    __u32 reason, __u64 len)
{
	/* A frame for the virtual MAC is PACKET_OTHERHOST to the kernel: make it ours. */
	if (*(__u32 *)eth->dst == *(__u32 *)cfg->vmac &&
	    *(__u16 *)(eth->dst + 4) == *(__u16 *)(cfg->vmac + 4))
		__builtin_memcpy(eth->dst, cfg->ifmac, 6);
	return vcount(vc, reason, len, XDP_PASS);
}

#include "neigh.h"

/* ---------------------------------------------------------------- hashing */

static __always_inline int lex_less6(const __u32 *a, const __u32 *b)
{
#pragma unroll
	for (int i = 0; i < 4; i++) {
		__u32 x = bpf_ntohl(a[i]), y = bpf_ntohl(b[i]);
		if (x != y)
			return x < y;
	}
	return 0;
}

static __always_inline __u32 bucket_of(const struct pkt *p, __u32 affinity, __u32 seed)
{
	__u32 k[8];
	__u32 n;

	if (p->family == 4) {
		__u32 s = bpf_ntohl(p->src[0]), d = bpf_ntohl(p->dst[0]);

		k[0] = s;
		n = 1;
		switch (affinity) {
		case VF_AFF_CLIENT_IP_PORT:
			if (!p->frag) {
				k[1] = p->sport;
				n = 2;
			}
			break;
		case VF_AFF_CLIENT_NETWORK:
			k[0] = s & 0xffffff00;
			break;
		case VF_AFF_SYMMETRIC_PAIR:
			if (d < s) {
				k[0] = d;
				k[1] = s;
			} else {
				k[1] = d;
			}
			n = 2;
			break;
		case VF_AFF_PER_PACKET:
			if (p->frag) {
				k[1] = p->packet_id;
				n = 2;
			} else {
				k[1] = p->sport;
				k[2] = p->packet_id;
				n = 3;
			}
			break;
		}
	} else {
#pragma unroll
		for (int i = 0; i < 4; i++)
			k[i] = bpf_ntohl(p->src[i]);
		n = 4;
		switch (affinity) {
		case VF_AFF_CLIENT_IP_PORT:
			if (!p->frag) {
				k[4] = p->sport;
				n = 5;
			}
			break;
		case VF_AFF_CLIENT_NETWORK:
			k[1] &= 0xffff0000;
			n = 2;
			break;
		case VF_AFF_SYMMETRIC_PAIR:
			if (lex_less6(p->dst, p->src)) {
#pragma unroll
				for (int i = 0; i < 4; i++) {
					k[4 + i] = k[i];
					k[i] = bpf_ntohl(p->dst[i]);
				}
			} else {
#pragma unroll
				for (int i = 0; i < 4; i++)
					k[4 + i] = bpf_ntohl(p->dst[i]);
			}
			n = 8;
			break;
		case VF_AFF_PER_PACKET:
			if (p->frag) {
				k[4] = p->packet_id;
				n = 5;
			} else {
				k[4] = p->sport;
				k[5] = p->packet_id;
				n = 6;
			}
			break;
		}
	}
	return vf_bucket_of_hash(vf_jhash2_n(k, n, seed));
}

/* ---------------------------------------------------------------- flow state */

/* 0: no socket, 1: listener only, 2: a socket of this flow (any other state). */
static __always_inline int tcp_socket(struct xdp_md *ctx, const struct pkt *p)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	__u32 state;

	if (p->family == 4) {
		t.ipv4.saddr = p->src[0];
		t.ipv4.daddr = p->dst[0];
		t.ipv4.sport = bpf_htons(p->sport);
		t.ipv4.dport = bpf_htons(p->dport);
		sk = bpf_skc_lookup_tcp(ctx, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	} else {
		__builtin_memcpy(t.ipv6.saddr, p->src, 16);
		__builtin_memcpy(t.ipv6.daddr, p->dst, 16);
		t.ipv6.sport = bpf_htons(p->sport);
		t.ipv6.dport = bpf_htons(p->dport);
		sk = bpf_skc_lookup_tcp(ctx, &t, sizeof(t.ipv6), BPF_F_CURRENT_NETNS, 0);
	}
	if (!sk)
		return 0;
	state = sk->state;
	bpf_sk_release(sk);
	return state == TCP_LISTEN_STATE ? 1 : 2;
}

/* A UDP flow's key: IPv4 flows live in the *4 maps (12-byte key), IPv6 flows in the others. */
struct flow_ref {
	struct vf_flow_key k6;
	struct vf_flow4_key k4;
	__u8 v4;
};

static __always_inline void flow_key(struct flow_ref *f, const struct pkt *p)
{
	f->v4 = p->family == 4;
	if (f->v4) {
		f->k4.src = p->src[0];
		f->k4.dst = p->dst[0];
		f->k4.sport = p->sport;
		f->k4.dport = p->dport;
		return;
	}
	f->k6.family = p->family;
	f->k6.proto = IPPROTO_UDP;
	f->k6.pad = 0;
	f->k6.sport = p->sport;
	f->k6.dport = p->dport;
	__builtin_memcpy(f->k6.src, p->src, 16);
	__builtin_memcpy(f->k6.dst, p->dst, 16);
}

/* Look a flow up in `map` (udp_flows, udp_probation or udp_foreign) of its family. */
#define flow_lookup(f, map) \
	((f)->v4 ? bpf_map_lookup_elem(&map##4, &(f)->k4) : bpf_map_lookup_elem(&map, &(f)->k6))

/* An own UDP flow: refresh it, or promote it from probation on its second packet.
 * (One copy per family: `flows`, `probation` and `k` are of the same family.) */
#define RECORD_UDP(name, key_t, flows, probation)                                  \
	static __always_inline void name(const key_t *k, __u64 now)                 \
	{                                                                           \
		__u64 *last = bpf_map_lookup_elem(&flows, k);                       \
                                                                                    \
		if (last) {                                                         \
			if ((__s64)(now - *last) >= (__s64)VF_UDP_REFRESH_NS)       \
				*last = now;                                        \
			return;                                                     \
		}                                                                   \
		if (bpf_map_lookup_elem(&probation, k)) {                           \
			bpf_map_delete_elem(&probation, k);                         \
			bpf_map_update_elem(&flows, k, &now, BPF_ANY);              \
			return;                                                     \
		}                                                                   \
		bpf_map_update_elem(&probation, k, &now, BPF_ANY);                  \
	}
RECORD_UDP(record_udp4, struct vf_flow4_key, udp_flows4, udp_probation4)
RECORD_UDP(record_udp6, struct vf_flow_key, udp_flows, udp_probation)

static __always_inline void record_udp(const struct flow_ref *f, __u64 now)
{
	if (f->v4)
		record_udp4(&f->k4, now);
	else
		record_udp6(&f->k6, now);
}

/* ---------------------------------------------------------------- decision */

static __always_inline int decide(struct xdp_md *ctx, struct eth_h *eth, struct pkt *p,
				  struct vf_vip *vip, struct vf_vip_counters *vc, struct vf_config *cfg, __u64 now,
				  __u64 len)
{
	__u32 table = 0, affinity = VF_AFF_CLIENT_IP, idx, b;
	__u8 state;
	int icmp = p->proto == (p->family == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6);

	if (icmp && !p->frag) {
		__u8 t = p->icmp_type;

		if (p->family == 4 ? (t == 3 || t == 11 || t == 12) : (t >= 1 && t <= 4))
			return vip_pass(eth, cfg, vc, VF_PASS_ICMP_ERROR, len);
		if (t != (p->family == 4 ? 8 : 128))
			return vcount(vc, VF_DROP_NO_RULE, len, XDP_DROP);
	} else if (!icmp) {
		__u32 n = vip->count, i, found = 0;

		if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP)
			return vcount(vc, VF_DROP_NO_RULE, len, XDP_DROP);
#pragma unroll
		for (i = 0; i < VF_MAX_RULES; i++) {
			struct vf_rule *r = &vip->rules[i];

			if (i >= n)
				break;
			if (r->proto == p->proto &&
			    (p->frag || (p->dport >= r->port_lo && p->dport <= r->port_hi))) {
				table = r->table & (VF_MAX_TABLES - 1);
				affinity = r->affinity;
				found = 1;
				break;
			}
		}
		if (!found)
			return vcount(vc, VF_DROP_NO_RULE, len, XDP_DROP);
	}

	b = bucket_of(p, icmp ? VF_AFF_CLIENT_IP : affinity, cfg->seed);
	idx = (table * VF_BUCKETS + b) & (VF_MAX_TABLES * VF_BUCKETS - 1);
	state = *(volatile __u8 *)&vf_state.buckets[idx]; /* read once */
	{
		__u64 *bc = bucket_counter(idx);

		if (bc)
			*bc += 1;
	}

	switch (state) {
	case VF_OWNED:
		if (p->proto == IPPROTO_UDP && !p->frag) {
			struct flow_ref f;

			flow_key(&f, p);
			record_udp(&f, now);
		}
		return vip_pass(eth, cfg, vc, VF_PASS_OWNED, len);
	case VF_MOVING_OUT:
		if (p->frag)
			return vip_pass(eth, cfg, vc, VF_PASS_MOVING_OUT_FRAG, len);
		if (icmp)
			return vcount(vc, VF_DROP_MOVING_OUT_ICMP, len, XDP_DROP);
		if (p->proto == IPPROTO_TCP) {
			if ((p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN)
				return vcount(vc, VF_DROP_MOVING_OUT_SYN, len, XDP_DROP);
			if (tcp_socket(ctx, p) == 2)
				return vip_pass(eth, cfg, vc, VF_PASS_MOVING_OUT_TCP, len);
			return vcount(vc, VF_DROP_MOVING_OUT_TCP, len, XDP_DROP);
		} else {
			struct flow_ref f;
			__u64 *last;

			flow_key(&f, p);
			last = flow_lookup(&f, udp_flows);
			/* signed age: a last-seen stamped ahead of our clock counts as fresh */
			if (last && (__s64)(now - *last) < (__s64)((__u64)cfg->udp_idle_ms * 1000000ULL)) {
				if ((__s64)(now - *last) >= (__s64)VF_UDP_REFRESH_NS)
					*last = now;
				return vip_pass(eth, cfg, vc, VF_PASS_MOVING_OUT_UDP, len);
			}
			return vcount(vc, VF_DROP_MOVING_OUT_UDP, len, XDP_DROP);
		}
	case VF_MOVING_IN_WAIT:
	case VF_MOVING_IN:
		if (p->frag)
			return vcount(vc, VF_DROP_MOVING_IN_FRAG, len, XDP_DROP);
		if (icmp)
			return vip_pass(eth, cfg, vc, VF_PASS_MOVING_IN_ICMP, len);
		if (p->proto == IPPROTO_TCP) {
			if ((p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN)
				return vip_pass(eth, cfg, vc, VF_PASS_MOVING_IN_SYN, len);
			if (tcp_socket(ctx, p) == 2)
				return vip_pass(eth, cfg, vc, VF_PASS_MOVING_IN_TCP, len);
			return vcount(vc, VF_DROP_MOVING_IN_TCP, len, XDP_DROP);
		}
		if (state == VF_MOVING_IN_WAIT)
			return vcount(vc, VF_DROP_MOVING_IN_WAIT_UDP, len, XDP_DROP);
		{
			struct flow_ref f;

			flow_key(&f, p);
			if (flow_lookup(&f, udp_foreign))
				return vcount(vc, VF_DROP_MOVING_IN_UDP, len, XDP_DROP);
			record_udp(&f, now);
			return vip_pass(eth, cfg, vc, VF_PASS_MOVING_IN_UDP, len);
		}
	default: /* FOREIGN, and any unknown code: fail closed */
		return vcount(vc, VF_DROP_FOREIGN, len, XDP_DROP);
	}
}

/* Common tail of both IP families once the destination is known to be a VIP. */
static __always_inline int vip_packet(struct xdp_md *ctx, struct eth_h *eth, struct pkt *p,
				      struct vf_vip *vip, __u32 vidx, __u64 len)
{
	struct vf_config *cfg = &vf_state.cfg;
	struct vf_vip_counters *vc = vip_counter(vidx);
	__u64 now;

	if (fenced(cfg, &now))
		return vcount(vc, VF_DROP_FENCED, len, XDP_DROP);
	if (p->malformed)
		return vcount(vc, VF_DROP_MALFORMED, len, XDP_DROP);
	return decide(ctx, eth, p, vip, vc, cfg, now, len);
}

/* ---------------------------------------------------------------- L4 parse */

static __always_inline void parse_l4(struct pkt *p, void *l4, void *data_end)
{
	if (p->proto == IPPROTO_TCP) {
		__u8 *t = l4;
		__u32 doff;

		if ((void *)(t + 20) > data_end)
			goto bad;
		doff = (t[12] >> 4) * 4;
		if (doff < 20 || l4 + doff > data_end)
			goto bad;
		p->sport = bpf_ntohs(*(__be16 *)t);
		p->dport = bpf_ntohs(*(__be16 *)(t + 2));
		p->tcp_flags = t[13];
		if (p->family == 6)
			p->packet_id = bpf_ntohs(*(__be16 *)(t + 16));
	} else if (p->proto == IPPROTO_UDP) {
		__u8 *u = l4;

		if ((void *)(u + 8) > data_end)
			goto bad;
		p->sport = bpf_ntohs(*(__be16 *)u);
		p->dport = bpf_ntohs(*(__be16 *)(u + 2));
		if (p->family == 6)
			p->packet_id = bpf_ntohs(*(__be16 *)(u + 6));
	} else if (p->proto == (p->family == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6)) {
		__u8 *c = l4;

		if ((void *)(c + 8) > data_end)
			goto bad;
		p->icmp_type = c[0];
	}
	return;
bad:
	p->malformed = 1;
}

/* ---------------------------------------------------------------- IPv4 */

/* Offset of the IP header in a frame that vipfarm_xdp has read: 14, or 18 behind an 802.1Q tag. */
static __always_inline __u32 l3_offset(void *data, void *data_end)
{
	struct eth_h *eth = data;

	if ((void *)(eth + 1) > data_end)
		return sizeof(struct eth_h);
	return eth->proto == bpf_htons(ETH_P_8021Q) ? 18 : sizeof(struct eth_h);
}

/* Any IPv4 packet for a VIP: the general path (every verdict). Not inlined, and given only
 * the context (it finds the rest again), so that the fast path below keeps its registers. */
static __noinline int ipv4_general(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct eth_h *eth = data;
	__u64 len = data_end - data;
	__u32 l3off = l3_offset(data, data_end);
	struct ip4_h *ip = data + l3off;
	struct vf_vip *vip;
	struct pkt p = {};
	__u32 ihl, vidx = 0;

	if ((void *)(ip + 1) > data_end)
		return count(VF_PASS_NOT_VIP, len, XDP_PASS); /* checked by the caller */
	vip = vip4_find(vip_set(), ip->daddr, &vidx); /* again: the caller keeps fewer registers */
	if (!vip)
		return count(VF_PASS_NOT_VIP, len, XDP_PASS);
	p.family = 4;
	p.src[0] = ip->saddr;
	p.dst[0] = ip->daddr;
	p.proto = ip->proto;
	p.packet_id = bpf_ntohs(ip->id);
	p.frag = (ip->frag & bpf_htons(0x3fff)) != 0;
	ihl = (ip->vihl & 0x0f) * 4;
	if ((ip->vihl >> 4) != 4 || ihl < 20 || (void *)ip + ihl > data_end)
		p.malformed = 1;
	else if (!p.frag)
		parse_l4(&p, (void *)ip + ihl, data_end);
	return vip_packet(ctx, eth, &p, vip, vidx, len);
}

/* jhash2 of up to three words (unused ones 0), as vf_jhash2(k, n, seed) for n = 1..3. */
static __always_inline __u32 jhash3(__u32 k0, __u32 k1, __u32 k2, __u32 n, __u32 seed)
{
	__u32 a, b, c;

	a = b = c = VF_JHASH_INITVAL + (n << 2) + seed;
	a += k0;
	b += k1;
	c += k2;
	vf_jhash_final(a, b, c);
	return c;
}

/* Bucket of an unfragmented IPv4 packet (bucket_of for family 4, frag 0). */
static __always_inline __u32 bucket4(__u32 affinity, __u32 s, __u32 d, __u32 sport, __u32 id, __u32 seed)
{
	__u32 h;

	switch (affinity) {
	case VF_AFF_CLIENT_IP_PORT:
		h = jhash3(s, sport, 0, 2, seed);
		break;
	case VF_AFF_CLIENT_NETWORK:
		h = jhash3(s & 0xffffff00, 0, 0, 1, seed);
		break;
	case VF_AFF_SYMMETRIC_PAIR:
		h = d < s ? jhash3(d, s, 0, 2, seed) : jhash3(s, d, 0, 2, seed);
		break;
	case VF_AFF_PER_PACKET:
		h = jhash3(s, sport, id, 3, seed);
		break;
	default:
		h = jhash3(s, 0, 0, 1, seed);
	}
	return vf_bucket_of_hash(h);
}

/* ---------------------------------------------------------------- fast path
 * The common case (a plain IP header directly followed by TCP or UDP, no fragment, not near
 * the deadline, a rule found, bucket OWNED or FOREIGN) is decided in straight code with the
 * same verdict, counters and flow updates as the general path; anything else goes to the
 * general path before any side effect. */

/* A TCP header with a valid data offset, or a UDP header, fully present. */
static __always_inline int l4_plain(__u32 proto, __u8 *l4, void *data_end)
{
	if (proto == IPPROTO_TCP)
		return (void *)(l4 + 20) <= data_end && l4[12] >= 0x50 &&
		       (void *)(l4 + (l4[12] >> 4) * 4) <= data_end;
	if (proto == IPPROTO_UDP)
		return (void *)(l4 + 8) <= data_end;
	return 0;
}

/* First rule of the VIP for (proto, dport) of an unfragmented packet. */
static __always_inline int find_rule(struct vf_vip *vip, __u32 proto, __u32 dport, __u32 *table, __u32 *affinity)
{
	__u32 n = vip->count;

#pragma unroll
	for (__u32 i = 0; i < VF_MAX_RULES; i++) {
		struct vf_rule *r = &vip->rules[i];

		if (i >= n)
			break;
		if (r->proto == proto && dport >= r->port_lo && dport <= r->port_hi) {
			*table = r->table & (VF_MAX_TABLES - 1);
			*affinity = r->affinity;
			return 1;
		}
	}
	return 0;
}

/* State of bucket `idx` (read once). */
static __always_inline __u32 bucket_state(__u32 idx)
{
	return *(volatile __u8 *)&vf_state.buckets[idx & (VF_MAX_TABLES * VF_BUCKETS - 1)];
}

/* The rule of an unfragmented TCP or UDP packet of the VIP in slot index `idx` whose fast rule
 * of `proto` is `fast` (VF_FAST_RULE): from the slot if it has one, else from the rules. */
static __always_inline int slot_rule(struct vf_vip_set *set, __u32 idx, __u32 fast, __u32 proto, __u32 dport,
				     __u32 *table, __u32 *affinity)
{
	if (likely(fast & VF_FAST_RULE)) {
		*table = (fast >> 8) & (VF_MAX_TABLES - 1);
		*affinity = fast & 0xff;
		return 1;
	}
	return find_rule(vip_rules(set, idx), proto, dport, table, affinity);
}

/* The fast verdict of bucket `idx` in state `st` (OWNED, or FOREIGN / unknown: the caller
 * has sent the moving states to the general path): one counter entry for the bucket and
 * the verdict. `src`/`dst`: the addresses in the packet (1 word for family 4, 4 for 6). */
static __always_inline int fast_verdict(struct eth_h *eth, struct vf_config *cfg, __u32 idx, __u32 st,
					__u32 vidx, __u32 proto, __u8 family, const __u32 *src, const __u32 *dst,
					__u16 sport, __u16 dport, __u64 len)
{
	__u64 *bc = bucket_counter(idx);
	struct vf_vip_counters *vc = vip_counter(vidx);

	if (bc)
		*bc += 1;
	if (st == VF_OWNED) {
		if (vc) {
			vc->r[VF_PASS_OWNED].packets++;
			vc->r[VF_PASS_OWNED].bytes += len;
		}
		if (proto == IPPROTO_UDP) {
			if (family == 4) {
				struct vf_flow4_key k = { .src = src[0], .dst = dst[0], .sport = sport, .dport = dport };

				record_udp4(&k, bpf_ktime_get_coarse_ns());
			} else {
				struct vf_flow_key k = {
					.family = 6, .proto = IPPROTO_UDP, .sport = sport, .dport = dport,
				};

				__builtin_memcpy(k.src, src, 16);
				__builtin_memcpy(k.dst, dst, 16);
				record_udp6(&k, bpf_ktime_get_coarse_ns());
			}
		}
		/* A frame for the virtual MAC is PACKET_OTHERHOST to the kernel: make it ours. */
		if (*(__u32 *)eth->dst == *(__u32 *)cfg->vmac &&
		    *(__u16 *)(eth->dst + 4) == *(__u16 *)(cfg->vmac + 4))
			__builtin_memcpy(eth->dst, cfg->ifmac, 6);
		return XDP_PASS;
	}
	if (vc) {
		vc->r[VF_DROP_FOREIGN].packets++;
		vc->r[VF_DROP_FOREIGN].bytes += len;
	}
	return XDP_DROP;
}

/* OWNED, FOREIGN or an unknown code (decided as FOREIGN): the fast path decides it. */
static __always_inline int fast_state(__u32 st)
{
	return st == VF_OWNED || st == VF_FOREIGN || st > VF_MOVING_IN;
}

static __always_inline int ipv4(struct xdp_md *ctx, struct eth_h *eth, __u32 l3off, __u64 len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ip4_h *ip = data + l3off;
	struct vf_config *cfg = &vf_state.cfg;
	struct vf_vip_set *set = vip_set();
	struct vf_vip4_slot *slot;
	__u8 *l4 = (void *)(ip + 1);
	__u32 table = 0, affinity = 0, idx, proto, dport, sport, st;

	if ((void *)(ip + 1) > data_end)
		return count(VF_PASS_NOT_VIP, len, XDP_PASS);
	slot = vip4_slot(set, ip->daddr);
	if (!slot)
		return count(VF_PASS_NOT_VIP, len, XDP_PASS);
	proto = ip->proto;
	if (unlikely(ip->vihl != 0x45 || (ip->frag & bpf_htons(0x3fff)) || !l4_plain(proto, l4, data_end)))
		goto general;
	sport = bpf_ntohs(*(__be16 *)l4);
	dport = bpf_ntohs(*(__be16 *)(l4 + 2));
	if (!slot_rule(set, slot->idx, slot->fast[proto == IPPROTO_UDP], proto, dport, &table, &affinity)) {
		if (unlikely(!fence_clear(cfg)))
			goto general; /* the clocks decide: fenced comes first */
		return vcount(vip_counter(slot->idx), VF_DROP_NO_RULE, len, XDP_DROP);
	}
	idx = table * VF_BUCKETS +
	      bucket4(affinity, bpf_ntohl(ip->saddr), bpf_ntohl(ip->daddr), sport, bpf_ntohs(ip->id), cfg->seed);
	st = bucket_state(idx);
	/* a moving bucket, or no fence memo (near the deadline, a new deadline): general path */
	if (unlikely(!fast_state(st) || !fence_clear(cfg)))
		goto general;
	return fast_verdict(eth, cfg, idx, st, slot->idx, proto, 4, &ip->saddr, &ip->daddr, sport, dport, len);
general:
	return ipv4_general(ctx);
}

/* ---------------------------------------------------------------- IPv6 */

/* Any IPv6 frame: the general path (every verdict). Not inlined. */
static __noinline int ipv6_general(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct eth_h *eth = data;
	__u64 len = data_end - data;
	__u32 l3off = l3_offset(data, data_end);
	struct ip6_h *ip6 = data + l3off;
	struct vf_vip_set *set = vip_set();
	struct pkt p = {};
	struct vf_vip *vip;
	__u32 addr[4], vidx = 0;
	void *cur;
	__u8 nh;

	if ((void *)(ip6 + 1) > data_end)
		return count(VF_PASS_NOT_VIP, len, XDP_PASS);
	__builtin_memcpy(addr, ip6->daddr, 16);
	vip = vip6_find(set, addr, &vidx);
	if (!vip) {
		/* A solicitation for a VIP goes to its solicited-node multicast address. */
		struct ns_h *ns = (void *)(ip6 + 1);

		if (ip6->nexthdr != IPPROTO_ICMPV6 || (void *)(ns + 1) > data_end || ns->type != 135)
			return count(VF_PASS_NOT_VIP, len, XDP_PASS);
		__builtin_memcpy(addr, ns->target, 16);
		if (!vip6_find(set, addr, NULL))
			return count(VF_PASS_NOT_VIP, len, XDP_PASS);
		return answer_ns(ctx, l3off, len);
	}

	p.family = 6;
	__builtin_memcpy(p.src, ip6->saddr, 16);
	__builtin_memcpy(p.dst, ip6->daddr, 16);
	if ((bpf_ntohl(ip6->vtcfl) >> 28) != 6)
		p.malformed = 1;
	nh = ip6->nexthdr;
	cur = ip6 + 1;
#pragma unroll
	for (int i = 0; i < VF_MAX_EXT_HEADERS; i++) {
		__u8 *h = cur;

		if (nh != 0 && nh != 43 && nh != 60 && nh != 51 && nh != 44)
			break;
		if (nh == 44) {
			if ((void *)(h + 8) > data_end)
				goto bad;
			p.ext++;
			p.packet_id = bpf_ntohl(*(__be32 *)(h + 4));
			nh = h[0];
			cur = h + 8;
			/* offset or more-fragments set; an atomic fragment is parsed through */
			if (bpf_ntohs(*(__be16 *)(h + 2)) & 0xfff9) {
				p.frag = 1;
				goto l4;
			}
			continue;
		}
		if ((void *)(h + 2) > data_end)
			goto bad;
		p.ext++;
		cur = h + (nh == 51 ? ((__u32)h[1] + 2) * 4 : ((__u32)h[1] + 1) * 8);
		nh = h[0];
	}
	if (nh == 0 || nh == 43 || nh == 60 || nh == 51 || nh == 44)
		goto bad; /* chain longer than we follow */
l4:
	p.proto = nh;
	if (!p.frag && !p.malformed) {
		parse_l4(&p, cur, data_end);
		if (nh == IPPROTO_ICMPV6 && !p.malformed && p.icmp_type >= 133 && p.icmp_type <= 137) {
			/* Neighbour discovery concerning a VIP. */
			struct ns_h *ns = cur;

			if (p.icmp_type == 135 && p.ext == 0 && (void *)(ns + 1) <= data_end) {
				__builtin_memcpy(addr, ns->target, 16);
				if (vip6_find(set, addr, NULL))
					return answer_ns(ctx, l3off, len);
			}
			return count(VF_PASS_NEIGH, len, XDP_PASS);
		}
	}
	return vip_packet(ctx, eth, &p, vip, vidx, len);
bad:
	p.malformed = 1;
	p.proto = nh;
	return vip_packet(ctx, eth, &p, vip, vidx, len);
}

static __always_inline int ipv6(struct xdp_md *ctx, __u32 l3off, __u64 len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct eth_h *eth = data;
	struct ip6_h *ip6 = data + l3off;
	struct vf_config *cfg = &vf_state.cfg;
	struct vf_vip_set *set = vip_set();
	struct vf_vip6_slot *slot;
	__u8 *l4 = (void *)(ip6 + 1);
	__u32 table = 0, affinity = 0, idx, proto, addr[4], st;
	struct pkt p = {};

	if ((void *)(ip6 + 1) > data_end)
		return count(VF_PASS_NOT_VIP, len, XDP_PASS);
	__builtin_memcpy(addr, ip6->daddr, 16);
	slot = vip6_slot(set, addr);
	proto = ip6->nexthdr;
	if (!slot) {
		if (likely(proto != IPPROTO_ICMPV6))
			return count(VF_PASS_NOT_VIP, len, XDP_PASS);
		goto general; /* maybe a solicitation for a VIP */
	}
	if (unlikely((*(__u8 *)ip6 >> 4) != 6 || !l4_plain(proto, l4, data_end)))
		goto general;
	p.family = 6;
	p.proto = proto;
	p.sport = bpf_ntohs(*(__be16 *)l4);
	p.dport = bpf_ntohs(*(__be16 *)(l4 + 2));
	p.packet_id = bpf_ntohs(*(__be16 *)(l4 + (proto == IPPROTO_TCP ? 16 : 6)));
	__builtin_memcpy(p.src, ip6->saddr, 16);
	__builtin_memcpy(p.dst, addr, 16);
	if (!slot_rule(set, slot->idx, slot->fast[proto == IPPROTO_UDP], proto, p.dport, &table, &affinity)) {
		if (unlikely(!fence_clear(cfg)))
			goto general;
		return vcount(vip_counter(slot->idx), VF_DROP_NO_RULE, len, XDP_DROP);
	}
	idx = table * VF_BUCKETS + bucket_of(&p, affinity, cfg->seed);
	st = bucket_state(idx);
	if (unlikely(!fast_state(st) || !fence_clear(cfg)))
		goto general;
	return fast_verdict(eth, cfg, idx, st, slot->idx, proto, 6, p.src, p.dst, p.sport, p.dport, len);
general:
	return ipv6_general(ctx);
}

SEC("xdp")
int vipfarm_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct eth_h *eth = data;
	__u64 len = data_end - data;
	__u32 l3off = sizeof(struct eth_h);
	__be16 proto;

	if ((void *)(eth + 1) > data_end)
		return count(VF_PASS_NOT_VIP, len, XDP_PASS);
	proto = eth->proto;
	if (proto == bpf_htons(ETH_P_8021Q)) {
		if (data + 18 > data_end)
			return count(VF_PASS_NOT_VIP, len, XDP_PASS);
		proto = *(__be16 *)(data + 16);
		l3off = 18;
	}
	if (proto == bpf_htons(ETH_P_IP))
		return ipv4(ctx, eth, l3off, len);
	if (proto == bpf_htons(ETH_P_IPV6))
		return ipv6(ctx, l3off, len);
	if (proto == bpf_htons(ETH_P_ARP))
		return answer_arp(ctx, l3off, len);
	return count(VF_PASS_NOT_VIP, len, XDP_PASS);
}
