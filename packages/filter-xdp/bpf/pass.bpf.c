// SPDX-License-Identifier: GPL-2.0
/* XDP_PASS everything. Attached to the bridge-side peer of a lab veth so that XDP_TX
 * from the farm filter in native mode is delivered: veth drops a native XDP_TX frame
 * unless the peer device has an XDP program (see /work/shared/ANCHORS.md). Real NICs
 * need nothing of the kind. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int vipfarm_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}
