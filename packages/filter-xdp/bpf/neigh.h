/* Liveness fencing and ARP / IPv6 neighbour answers with the virtual MAC.
 * Included by vipfarm.bpf.c after its maps, count() and vip_pass(). */
#ifndef VIPFARM_NEIGH_H
#define VIPFARM_NEIGH_H

/* Fenced iff bpf_ktime_get_ns() >= deadline.
 *
 * The precise clock costs ~20 ns in a VM (kvm-clock), the coarse one (last tick, never
 * ahead of the precise one, at most VF_COARSE_SLACK_NS behind it) ~2 ns; most packets
 * read neither. `vf_state.guard` holds a deadline for which the `fence_timer` is pending
 * to fire VF_COARSE_SLACK_NS before it; while it equals the current deadline the packet
 * is not fenced, with no clock read. Only the timer's callback writes `guard` (callbacks
 * of one timer never overlap): it reads the deadline d and the precise clock t and either
 * sets guard = d and re-arms itself for d - slack, or (too close) sets guard = 0. Any
 * packet that finds guard != deadline (the loader moved the deadline, or it is near)
 * decides with the clocks as before: the coarse clock far from the deadline (and then asks
 * the timer to run now, so that it takes up the new deadline), the precise one within the
 * slack. Other starts of the timer only ever make it fire earlier. The guard relies on the
 * timer firing less than VF_COARSE_SLACK_NS late, as the coarse clock on lagging less. */
#ifndef BPF_F_TIMER_ABS
#define BPF_F_TIMER_ABS 1 /* Linux 6.7; Debian's uapi headers predate it */
#endif

static int fence_timer_cb(void *map, __u32 *key, struct vf_fence_timer *v)
{
	__u64 d = *(const volatile __u64 *)&vf_state.cfg.deadline_ns;
	__u64 t = bpf_ktime_get_ns();

	if (t + VF_COARSE_SLACK_NS < d) {
		*(volatile __u64 *)&vf_state.guard = d;
		bpf_timer_start(&v->timer, d - VF_COARSE_SLACK_NS, BPF_F_TIMER_ABS);
	} else {
		*(volatile __u64 *)&vf_state.guard = 0;
	}
	return 0;
}

/* Not fenced, known without a clock read (see above). */
static __always_inline int guarded(const struct vf_config *cfg)
{
	__u64 deadline = *(const volatile __u64 *)&cfg->deadline_ns;
	__u64 guard = *(const volatile __u64 *)&vf_state.guard;

	return guard == deadline && guard != 0;
}

static __noinline int fenced_by_clock(const struct vf_config *cfg, __u64 *now)
{
	__u64 deadline = *(const volatile __u64 *)&cfg->deadline_ns; /* read once */
	__u64 t = bpf_ktime_get_coarse_ns();

	if (t + VF_COARSE_SLACK_NS < deadline) {
		__u32 zero = 0;
		struct vf_fence_timer *v = bpf_map_lookup_elem(&fence_timer, &zero);

		if (v) { /* run the callback now: it takes up this deadline */
			bpf_timer_init(&v->timer, &fence_timer, 1 /* CLOCK_MONOTONIC */); 
			bpf_timer_set_callback(&v->timer, fence_timer_cb);
			bpf_timer_start(&v->timer, 0, 0);
		}
		*now = t;
		return 0;
	}
	t = bpf_ktime_get_ns();
	*now = t;
	return t >= deadline;
}

/* `*now` gets the time used for UDP flow ages (the coarse clock, or the precise one near
 * the deadline). */
static __always_inline int fenced(const struct vf_config *cfg, __u64 *now)
{
	if (likely(guarded(cfg))) {
		*now = bpf_ktime_get_coarse_ns();
		return 0;
	}
	return fenced_by_clock(cfg, now);
}

/* ---------------------------------------------------------------- ARP / ND */

/* Not inlined: keeps the IPv4 fast path's registers free. */
static __noinline int answer_arp(struct xdp_md *ctx, __u32 l3off, __u64 len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct eth_h *eth = data;
	struct arp_h *arp = data + l3off;
	struct vf_config *cfg = &vf_state.cfg;
	__u32 spa, tpa;
	__u64 now;

	if ((void *)(arp + 1) > data_end)
		return count(VF_PASS_NOT_VIP, len, XDP_PASS);
	if (arp->htype != bpf_htons(1) || arp->ptype != bpf_htons(ETH_P_IP) || arp->hlen != 6 ||
	    arp->plen != 4)
		return count(VF_PASS_NOT_VIP, len, XDP_PASS);
	__builtin_memcpy(&tpa, arp->tpa, 4);
	if (!vip4_find(vip_set(), tpa))
		return count(VF_PASS_NOT_VIP, len, XDP_PASS);
	if (fenced(cfg, &now))
		return count(VF_PASS_NEIGH, len, XDP_PASS);
	__builtin_memcpy(&spa, arp->spa, 4);
	if (!(cfg->flags & VF_FLAG_ANSWER_NEIGH) || arp->op != bpf_htons(1) || spa == 0 || spa == tpa)
		return count(VF_PASS_NEIGH, len, XDP_PASS);

	__builtin_memcpy(eth->dst, eth->src, 6);
	__builtin_memcpy(eth->src, cfg->ifmac, 6);
	arp->op = bpf_htons(2);
	__builtin_memcpy(arp->tha, arp->sha, 6);
	__builtin_memcpy(arp->tpa, &spa, 4);
	__builtin_memcpy(arp->sha, cfg->vmac, 6);
	__builtin_memcpy(arp->spa, &tpa, 4);
	return count(VF_TX_ARP_REPLY, len, XDP_TX);
}

static __always_inline __u32 sum16_words(const __u32 *w, int n)
{
	__u32 s = 0;

#pragma unroll
	for (int i = 0; i < n; i++) {
		__u32 v = bpf_ntohl(w[i]);
		s += (v >> 16) + (v & 0xffff);
	}
	return s;
}

/* Turn a neighbour solicitation (no extension headers, l3 at `l3off`) for `target`
 * into a solicited neighbour advertisement from the VIP with the virtual MAC. */
static __always_inline int answer_ns(struct xdp_md *ctx, __u32 l3off, __u64 len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ip6_h *ip6 = data + l3off;
	struct ns_h *ns = (void *)(ip6 + 1);
	struct vf_config *cfg = &vf_state.cfg;
	__u32 target[4], peer[4];
	__u8 peer_mac[6];
	struct eth_h *eth;
	__u32 sum;
	__u64 now;
	int delta;

	if ((void *)(ns + 1) > data_end)
		return count(VF_PASS_NOT_VIP, len, XDP_PASS);
	if (fenced(cfg, &now) || !(cfg->flags & VF_FLAG_ANSWER_NEIGH))
		return count(VF_PASS_NEIGH, len, XDP_PASS);
	if ((ip6->saddr[0] | ip6->saddr[1] | ip6->saddr[2] | ip6->saddr[3]) == 0)
		return count(VF_PASS_NEIGH, len, XDP_PASS); /* DAD probe: not answered */
	__builtin_memcpy(target, ns->target, 16);
	__builtin_memcpy(peer, ip6->saddr, 16);
	__builtin_memcpy(peer_mac, ((struct eth_h *)data)->src, 6);

	delta = (int)(l3off + sizeof(struct ip6_h) + 32) - (int)(data_end - data);
	if (delta != 0 && bpf_xdp_adjust_tail(ctx, delta))
		return count(VF_PASS_NEIGH, len, XDP_PASS);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (l3off > 18)
		return count(VF_PASS_NEIGH, len, XDP_PASS);
	eth = data;
	ip6 = data + l3off;
	ns = (void *)(ip6 + 1);
	if ((void *)ns + 32 > data_end)
		return count(VF_PASS_NEIGH, len, XDP_PASS);

	__builtin_memcpy(eth->dst, peer_mac, 6);
	__builtin_memcpy(eth->src, cfg->ifmac, 6);
	ip6->vtcfl = bpf_htonl(0x60000000);
	ip6->plen = bpf_htons(32);
	ip6->nexthdr = IPPROTO_ICMPV6;
	ip6->hlim = 255;
	__builtin_memcpy(ip6->saddr, target, 16);
	__builtin_memcpy(ip6->daddr, peer, 16);
	ns->type = 136;
	ns->code = 0;
	ns->flags = bpf_htonl(0x60000000); /* Solicited | Override */
	__builtin_memcpy(ns->target, target, 16);
	{
		__u8 *opt = (void *)(ns + 1);
		opt[0] = 2; /* target link-layer address */
		opt[1] = 1;
		__builtin_memcpy(opt + 2, cfg->vmac, 6);
	}
	sum = 2 * sum16_words(target, 4) + sum16_words(peer, 4) + 32 + IPPROTO_ICMPV6 + (136 << 8) +
	      0x6000 + 0x0201;
	sum += ((__u32)cfg->vmac[0] << 8 | cfg->vmac[1]) + ((__u32)cfg->vmac[2] << 8 | cfg->vmac[3]) +
	       ((__u32)cfg->vmac[4] << 8 | cfg->vmac[5]);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	ns->csum = bpf_htons((__u16)~sum);
	return count(VF_TX_ND_ADVERT, len, XDP_TX);
}

#endif
