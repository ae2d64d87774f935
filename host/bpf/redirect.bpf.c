/* The eBPF bridge: every frame that arrives on a device leaves on its peer, so a tap and a
 * veth are joined with no Linux bridge between them. One object serves one direction: the
 * loader sets `peer_ifindex` before loading and attaches a copy to each of the two devices.
 *
 * Built by host/build.rs with `clang -target bpf`. Self-contained (no kernel or libbpf
 * headers): the program only needs the helper's number and two return codes. */

typedef unsigned int u32;
typedef unsigned long long u64;

#define SEC(name) __attribute__((section(name), used))

/* BPF_FUNC_redirect in the kernel's helper list. */
static long (*bpf_redirect)(u32 ifindex, u64 flags) = (void *)23;

/* The device frames leave on. Read-only data: the loader writes it into the object before
 * loading, and the verifier sees a constant. */
volatile const u32 peer_ifindex = 0;

/* tc ingress, direct action: bpf_redirect returns TC_ACT_REDIRECT (or TC_ACT_SHOT when the
 * flags are bad), which is the verdict. */
SEC("classifier")
int vmp_redirect_tc(void *skb)
{
	return bpf_redirect(peer_ifindex, 0);
}

/* Generic XDP: bpf_redirect returns XDP_REDIRECT (or XDP_ABORTED). */
SEC("xdp")
int vmp_redirect_xdp(void *ctx)
{
	return bpf_redirect(peer_ifindex, 0);
}

char _license[] SEC("license") = "Dual MIT/GPL";
