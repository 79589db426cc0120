/* Liveness fencing and ARP / IPv6 neighbour answers with the virtual MAC.
 * Included by vipfarm.bpf.c after its maps, count() and vip_pass(). */
#ifndef VIPFARM_NEIGH_H
#define VIPFARM_NEIGH_H

/* Fenced iff bpf_ktime_get_ns() >= deadline. The precise clock costs ~20 ns in a VM
 * (kvm-clock), so far from the deadline the coarse clock (last tick, never ahead of the
 * precise one, at most VF_COARSE_SLACK_NS behind it) decides; within the slack of the
 * deadline the precise clock does. `*now` gets the time used for UDP flow ages.
 *
 * The fast paths do not call a clock at all: fence_clear() asks the CPU's fence memo
 * (struct vf_fence), which only the precise clock fills (fence_remember, from fenced()).
 * bpf_jiffies64() and bpf_get_smp_processor_id() are inlined by the verifier (two loads).
 * Why the memo is sound: jiffies are never early (tick_do_update_jiffies64 adds whole
 * ticks that have passed) and, like the coarse clock that the same tick updates, lag the
 * time by at most VF_COARSE_SLACK_NS; a jiffy lasts at most VF_TICK_MAX_NS (HZ >= 100). With
 * j0 read before the precise t0, a later time T with jiffies j satisfies
 * T <= t0 + VF_COARSE_SLACK_NS + (j - j0 + 1) * VF_TICK_MAX_NS; so `until` = j0 + k with
 * k = (deadline - t0 - VF_COARSE_SLACK_NS - 1) / VF_TICK_MAX_NS gives T < deadline for
 * every j < until. The memo holds for one deadline value only: any new deadline (a renewal,
 * or 0 to fence now) misses it until a clock read refills it.
 *
 * Only clocks are trusted here: whatever else could say "not fenced" (a flag cleared by a
 * BPF timer, for example) would have to keep working after the daemon that loaded the
 * program died, and a BPF timer does not (its map loses its last user reference and the
 * kernel cancels it), so fencing would fail open exactly when it matters. The memo is
 * derived from clock reads and expires by the clock (jiffies) alone. */
static __always_inline int fence_clear(const struct vf_config *cfg)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct vf_fence *f;

	if (cpu >= VF_FENCE_CPUS)
		return 0;
	f = &vf_state.fence[cpu];
	return f->deadline == *(const volatile __u64 *)&cfg->deadline_ns && bpf_jiffies64() < f->until;
}

/* Refill this CPU's fence memo for `deadline` if it is stale (not inlined: rare). */
static __noinline int fence_remember(__u64 deadline)
{
	__u32 cpu = bpf_get_smp_processor_id();
	volatile struct vf_fence *f;
	__u64 j, t;

	if (cpu >= VF_FENCE_CPUS)
		return 0;
	f = &vf_state.fence[cpu];
	j = bpf_jiffies64(); /* before the clock read */
	if (f->deadline == deadline && j < f->until)
		return 0;
	t = bpf_ktime_get_ns();
	if (t + VF_COARSE_SLACK_NS + VF_TICK_MAX_NS >= deadline)
		return 0; /* too close: the clocks decide every packet */
	f->until = 0;
	f->deadline = deadline;
	f->until = j + (deadline - t - VF_COARSE_SLACK_NS - 1) / VF_TICK_MAX_NS;
	return 0;
}

static __always_inline int fenced(const struct vf_config *cfg, __u64 *now)
{
	__u64 deadline = *(const volatile __u64 *)&cfg->deadline_ns; /* read once */
	__u64 t = bpf_ktime_get_coarse_ns();

	if (likely(t + VF_COARSE_SLACK_NS < deadline)) {
		*now = t;
		fence_remember(deadline);
		return 0;
	}
	t = bpf_ktime_get_ns();
	*now = t;
	return t >= deadline;
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
	if (!vip4_find(vip_set(), tpa, NULL))
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
