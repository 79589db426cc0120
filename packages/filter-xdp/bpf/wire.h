/* Wire headers of the frames the filter parses (only the fields used). */
#ifndef VIPFARM_WIRE_H
#define VIPFARM_WIRE_H

#include <linux/types.h>

/* Wire headers (only the fields used). Not packed: every field sits at its natural
 * offset, so the compiler emits 2/4-byte loads instead of byte loads. The headers are only
 * 2-byte aligned in the frame (IP after a 14-byte Ethernet header); the verifier allows
 * unaligned packet access on architectures with efficient unaligned access (x86-64, arm64). */
struct eth_h {
	__u8 dst[6];
	__u8 src[6];
	__be16 proto;
};

struct arp_h {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 op;
	__u8 sha[6];
	__u8 spa[4];
	__u8 tha[6];
	__u8 tpa[4];
};

struct ip4_h {
	__u8 vihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag;
	__u8 ttl;
	__u8 proto;
	__be16 csum;
	__u32 saddr;
	__u32 daddr;
};

struct ip6_h {
	__be32 vtcfl;
	__be16 plen;
	__u8 nexthdr;
	__u8 hlim;
	__u32 saddr[4];
	__u32 daddr[4];
};

struct ns_h {
	__u8 type;
	__u8 code;
	__be16 csum;
	__be32 flags;
	__u32 target[4];
};

#endif
