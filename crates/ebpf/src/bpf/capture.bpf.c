// SPDX-License-Identifier: GPL-2.0
//
// Flow capture: one event per TCP connection attempt and per UDP flow, with its outcome,
// attributed by network namespace inode. Hooks (no kprobes, no fentry, no tracefs):
//   tp_btf/inet_sock_set_state  TCP attempts (SYN_SENT) and their end (ESTABLISHED/CLOSE),
//                               accepted connections (SYN_RECV -> ESTABLISHED)
//   tp_btf/tcp_receive_reset    marks an attempt as refused
//   tp_btf/kfree_skb            marks attempts and UDP flows whose packets were dropped
//   tp_btf/icmp_send            ICMP port unreachable for a UDP flow: refused
//   cgroup_skb ingress/egress   UDP flows (first packet, reply)
// Only final outcomes go through the ring buffer; per-connection state stays in LRU maps.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

#define AF_INET 2
#define AF_INET6 10
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define PROTO_TCP 6
#define PROTO_UDP 17

enum outcome {
	OUTCOME_ESTABLISHED = 1,
	OUTCOME_REFUSED = 2,
	OUTCOME_DROPPED = 3,
	OUTCOME_REPLIED = 4,
	OUTCOME_UNANSWERED = 5,
};

// Address pair as seen on the wire (IPv4 in the first 4 bytes), family 4 or 6.
struct tuple {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u8 family;
	__u8 proto;
	__u16 pad;
};

// Event layout shared with src/event.rs (72 bytes, little endian on the host).
struct flow_event {
	__u64 netns;
	__u64 ts_ns;
	__u64 drop_netns;
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u8 family;
	__u8 proto;
	__u8 outcome;
	__u8 initiated_here;
	__u32 drop_reason;
	__u32 pad;
};

struct tcp_conn {
	__u64 netns;
	__u64 ts_ns;
	__u64 drop_netns;
	__u32 drop_reason;
	__u8 rst;
	__u8 pad[3];
};

struct drop_info {
	__u64 netns;
	__u64 ts_ns;
	__u32 reason;
	__u32 pad;
};

// UDP flow key: one flow per netns and local/remote pair (shared with src/lib.rs).
struct udp_key {
	__u64 netns;
	__u8 laddr[16];
	__u8 raddr[16];
	__u16 lport;
	__u16 rport;
	__u8 family;
	__u8 pad[3];
};

// UDP flow state (shared with src/lib.rs).
struct udp_flow {
	__u64 first_ns;
	__u64 last_ns;
	__u64 drop_netns;
	__u32 drop_reason;
	__u8 initiated_here;
	__u8 reported; // an outcome was already sent (replied or refused)
	__u8 pad[2];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

// In-flight TCP attempts by socket address.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct tcp_conn);
} tcp_conns SEC(".maps");

// TCP packets dropped without an owning socket (e.g. a SYN freed in the peer netns),
// by wire tuple; consulted when an attempt closes.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct tuple);
	__type(value, struct drop_info);
} tcp_drops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct udp_key);
	__type(value, struct udp_flow);
} udp_flows SEC(".maps");

// Initiator netns of locally opened UDP flows, by wire tuple of the first packet: lets a
// drop or an ICMP error seen in another netns find the flow.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct tuple);
	__type(value, __u64);
} udp_origin SEC(".maps");

static __always_inline void count_lost(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&lost, &zero);
	if (n)
		*n += 1;
}

static __always_inline struct flow_event *reserve_event(void)
{
	struct flow_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return NULL;
	}
	__builtin_memset(e, 0, sizeof(*e));
	return e;
}

static __always_inline __u64 sock_netns(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

static __always_inline bool is_v4_mapped(const __u8 *a)
{
	__u32 w0, w1, w2;
	__builtin_memcpy(&w0, a, 4);
	__builtin_memcpy(&w1, a + 4, 4);
	__builtin_memcpy(&w2, a + 8, 4);
	return w0 == 0 && w1 == 0 && w2 == bpf_htonl(0xffff);
}

// Local -> remote tuple of a socket; v4-mapped IPv6 becomes IPv4 so it matches packets.
static __always_inline int sock_tuple(const struct sock *sk, struct tuple *t)
{
	__builtin_memset(t, 0, sizeof(*t));
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	t->proto = PROTO_TCP;
	// inet_sport, not skc_num: inet_put_port() clears skc_num before the CLOSE event.
	t->sport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	t->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET) {
		__be32 s4 = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__be32 d4 = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		t->family = 4;
		__builtin_memcpy(t->saddr, &s4, 4);
		__builtin_memcpy(t->daddr, &d4, 4);
		return 0;
	}
	if (family != AF_INET6)
		return -1;
	__u8 s[16], d[16];
	bpf_core_read(s, sizeof(s), &sk->__sk_common.skc_v6_rcv_saddr);
	bpf_core_read(d, sizeof(d), &sk->__sk_common.skc_v6_daddr);
	if (is_v4_mapped(d)) {
		t->family = 4;
		__builtin_memcpy(t->saddr, s + 12, 4);
		__builtin_memcpy(t->daddr, d + 12, 4);
	} else {
		t->family = 6;
		__builtin_memcpy(t->saddr, s, 16);
		__builtin_memcpy(t->daddr, d, 16);
	}
	return 0;
}

static __always_inline void reverse(const struct tuple *t, struct tuple *r)
{
	__builtin_memset(r, 0, sizeof(*r));
	__builtin_memcpy(r->saddr, t->daddr, 16);
	__builtin_memcpy(r->daddr, t->saddr, 16);
	r->sport = t->dport;
	r->dport = t->sport;
	r->family = t->family;
	r->proto = t->proto;
}

// Emits a TCP outcome. `t` is local -> remote; `initiated` says the local side connected.
static __always_inline void emit_tcp(const struct tuple *t, __u64 netns, __u64 ts, bool initiated,
				     __u8 outcome, __u32 reason, __u64 drop_netns)
{
	struct flow_event *e = reserve_event();
	if (!e)
		return;
	e->netns = netns;
	e->ts_ns = ts;
	e->family = t->family;
	e->proto = PROTO_TCP;
	e->outcome = outcome;
	e->initiated_here = initiated;
	e->drop_reason = reason;
	e->drop_netns = drop_netns;
	if (initiated) {
		__builtin_memcpy(e->saddr, t->saddr, 16);
		__builtin_memcpy(e->daddr, t->daddr, 16);
		e->sport = t->sport;
		e->dport = t->dport;
	} else {
		__builtin_memcpy(e->saddr, t->daddr, 16);
		__builtin_memcpy(e->daddr, t->saddr, 16);
		e->sport = t->dport;
		e->dport = t->sport;
	}
	bpf_ringbuf_submit(e, 0);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(on_set_state, const struct sock *sk, const int oldstate, const int newstate)
{
	if (BPF_CORE_READ(sk, sk_protocol) != PROTO_TCP)
		return 0;
	__u64 key = (__u64)sk;

	if (newstate == TCP_SYN_SENT) {
		struct tcp_conn c = {};
		c.netns = sock_netns(sk);
		c.ts_ns = bpf_ktime_get_ns();
		bpf_map_update_elem(&tcp_conns, &key, &c, BPF_ANY);
		return 0;
	}

	struct tuple t;
	if (oldstate == TCP_SYN_RECV && newstate == TCP_ESTABLISHED) {
		// An accepted connection: the remote side initiated it.
		if (sock_tuple(sk, &t) == 0)
			emit_tcp(&t, sock_netns(sk), bpf_ktime_get_ns(), false,
				 OUTCOME_ESTABLISHED, 0, 0);
		return 0;
	}
	if (oldstate != TCP_SYN_SENT)
		return 0;

	struct tcp_conn *c = bpf_map_lookup_elem(&tcp_conns, &key);
	__u64 netns = c ? c->netns : sock_netns(sk);
	__u64 ts = c ? c->ts_ns : bpf_ktime_get_ns();
	if (sock_tuple(sk, &t) != 0)
		goto out;

	if (newstate == TCP_ESTABLISHED) {
		emit_tcp(&t, netns, ts, true, OUTCOME_ESTABLISHED, 0, 0);
	} else if (newstate == TCP_CLOSE) {
		__u8 outcome = OUTCOME_UNANSWERED;
		__u32 reason = 0;
		__u64 drop_netns = 0;
		if (c && c->rst) {
			outcome = OUTCOME_REFUSED;
		} else if (c && c->drop_reason) {
			outcome = OUTCOME_DROPPED;
			reason = c->drop_reason;
			drop_netns = c->drop_netns;
		} else {
			// A SYN dropped on the way out, or the SYN-ACK dropped on the way back,
			// since this attempt started (older entries are from an earlier use of
			// the same 4-tuple).
			struct drop_info *d = bpf_map_lookup_elem(&tcp_drops, &t);
			struct tuple r;
			if (!d || d->ts_ns < ts) {
				reverse(&t, &r);
				d = bpf_map_lookup_elem(&tcp_drops, &r);
			}
			if (d && d->ts_ns >= ts) {
				outcome = OUTCOME_DROPPED;
				reason = d->reason;
				drop_netns = d->netns;
			}
		}
		emit_tcp(&t, netns, ts, true, outcome, reason, drop_netns);
		if (outcome == OUTCOME_DROPPED) {
			struct tuple r;
			reverse(&t, &r);
			bpf_map_delete_elem(&tcp_drops, &t);
			bpf_map_delete_elem(&tcp_drops, &r);
		}
	} else {
		return 0; // e.g. simultaneous open (SYN_SENT -> SYN_RECV): keep waiting
	}
out:
	if (c)
		bpf_map_delete_elem(&tcp_conns, &key);
	return 0;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(on_receive_reset, struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct tcp_conn *c = bpf_map_lookup_elem(&tcp_conns, &key);
	if (c)
		c->rst = 1;
	return 0;
}

// IPv4/IPv6 + TCP/UDP header of a kernel skb into `t` (wire orientation).
// Returns the transport offset from skb->head, or 0 when not TCP/UDP.
static __always_inline __u32 skb_tuple(const struct sk_buff *skb, struct tuple *t)
{
	__builtin_memset(t, 0, sizeof(*t));
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	if (nh == (__u16)~0U)
		return 0;
	__u8 vihl;
	if (bpf_probe_read_kernel(&vihl, 1, head + nh))
		return 0;
	__u32 l4;
	if ((vihl >> 4) == 4) {
		struct iphdr ip;
		if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh))
			return 0;
		if (ip.frag_off & bpf_htons(0x1fff))
			return 0;
		t->family = 4;
		t->proto = ip.protocol;
		__builtin_memcpy(t->saddr, &ip.saddr, 4);
		__builtin_memcpy(t->daddr, &ip.daddr, 4);
		l4 = nh + (vihl & 0xf) * 4;
	} else if ((vihl >> 4) == 6) {
		struct ipv6hdr ip6;
		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), head + nh))
			return 0;
		t->family = 6;
		t->proto = ip6.nexthdr; // extension headers are not followed
		__builtin_memcpy(t->saddr, &ip6.saddr, 16);
		__builtin_memcpy(t->daddr, &ip6.daddr, 16);
		l4 = nh + sizeof(ip6);
	} else {
		return 0;
	}
	if (t->proto != PROTO_TCP && t->proto != PROTO_UDP)
		return 0;
	__be16 ports[2];
	if (bpf_probe_read_kernel(ports, sizeof(ports), head + l4))
		return 0;
	t->sport = bpf_ntohs(ports[0]);
	t->dport = bpf_ntohs(ports[1]);
	return l4;
}

static __always_inline void udp_local_key(struct udp_key *k, __u64 netns, const struct tuple *t)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->netns = netns;
	k->family = t->family;
	__builtin_memcpy(k->laddr, t->saddr, 16);
	__builtin_memcpy(k->raddr, t->daddr, 16);
	k->lport = t->sport;
	k->rport = t->dport;
}

// The locally initiated UDP flow a packet (either direction) belongs to, if any.
static __always_inline struct udp_flow *udp_flow_of(const struct tuple *t)
{
	struct udp_key k;
	struct tuple r;
	__u64 *netns = bpf_map_lookup_elem(&udp_origin, t);
	if (netns) {
		udp_local_key(&k, *netns, t);
		return bpf_map_lookup_elem(&udp_flows, &k);
	}
	reverse(t, &r);
	netns = bpf_map_lookup_elem(&udp_origin, &r);
	if (netns) {
		udp_local_key(&k, *netns, &r);
		return bpf_map_lookup_elem(&udp_flows, &k);
	}
	return NULL;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(on_kfree_skb, struct sk_buff *skb, void *location, enum skb_drop_reason reason,
	     struct sock *rx_sk)
{
	if (reason <= bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_NOT_SPECIFIED))
		return 0;
	struct tuple t;
	__u32 l4 = skb_tuple(skb, &t);
	if (!l4)
		return 0;

	struct net_device *dev = BPF_CORE_READ(skb, dev);
	struct sock *sk = BPF_CORE_READ(skb, sk);
	__u64 netns = 0;
	if (dev)
		netns = BPF_CORE_READ(dev, nd_net.net, ns.inum);
	else if (sk)
		netns = sock_netns(sk);

	if (t.proto == PROTO_UDP) {
		struct udp_flow *f = udp_flow_of(&t);
		if (f && !f->drop_reason) {
			f->drop_reason = reason;
			f->drop_netns = netns;
		}
		return 0;
	}

	// A packet still owned by the connecting socket (e.g. nftables OUTPUT).
	if (sk) {
		__u64 key = (__u64)sk;
		struct tcp_conn *c = bpf_map_lookup_elem(&tcp_conns, &key);
		if (c) {
			c->drop_reason = reason;
			c->drop_netns = netns;
			return 0;
		}
	}
	// Without an owning attempt, only handshake packets (SYN, SYN-ACK) matter.
	__u8 flags = 0;
	if (bpf_probe_read_kernel(&flags, 1, BPF_CORE_READ(skb, head) + l4 + 13) || !(flags & 0x02))
		return 0;
	struct drop_info d = { .netns = netns, .ts_ns = bpf_ktime_get_ns(), .reason = reason };
	bpf_map_update_elem(&tcp_drops, &t, &d, BPF_ANY);
	return 0;
}

SEC("tp_btf/icmp_send")
int BPF_PROG(on_icmp_send, const struct sk_buff *skb_in, int type, int code)
{
	if (type != 3 || code != 3) // destination unreachable / port unreachable
		return 0;
	struct tuple t;
	if (!skb_tuple(skb_in, &t) || t.proto != PROTO_UDP)
		return 0;
	__u64 *netns = bpf_map_lookup_elem(&udp_origin, &t);
	if (!netns)
		return 0;
	struct udp_key k;
	udp_local_key(&k, *netns, &t);
	struct udp_flow *f = bpf_map_lookup_elem(&udp_flows, &k);
	if (!f || f->reported)
		return 0;
	f->reported = 1;
	struct flow_event *e = reserve_event();
	if (!e)
		return 0;
	e->netns = k.netns;
	e->ts_ns = f->first_ns;
	e->family = t.family;
	e->proto = PROTO_UDP;
	e->outcome = OUTCOME_REFUSED;
	e->initiated_here = 1;
	__builtin_memcpy(e->saddr, t.saddr, 16);
	__builtin_memcpy(e->daddr, t.daddr, 16);
	e->sport = t.sport;
	e->dport = t.dport;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

// cgroup_skb: skb data starts at the IP header. Always lets the packet pass.
static __always_inline int udp_packet(struct __sk_buff *skb, bool egress)
{
	struct tuple t = {};
	__u8 vihl;
	if (bpf_skb_load_bytes(skb, 0, &vihl, 1))
		return 1;
	__u32 l4;
	if ((vihl >> 4) == 4) {
		struct iphdr ip;
		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
			return 1;
		if (ip.protocol != PROTO_UDP || (ip.frag_off & bpf_htons(0x1fff)))
			return 1;
		t.family = 4;
		__builtin_memcpy(t.saddr, &ip.saddr, 4);
		__builtin_memcpy(t.daddr, &ip.daddr, 4);
		l4 = (vihl & 0xf) * 4;
	} else if ((vihl >> 4) == 6) {
		struct ipv6hdr ip6;
		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
			return 1;
		if (ip6.nexthdr != PROTO_UDP)
			return 1;
		t.family = 6;
		__builtin_memcpy(t.saddr, &ip6.saddr, 16);
		__builtin_memcpy(t.daddr, &ip6.daddr, 16);
		l4 = sizeof(ip6);
	} else {
		return 1;
	}
	__be16 ports[2];
	if (bpf_skb_load_bytes(skb, l4, ports, sizeof(ports)))
		return 1;
	t.proto = PROTO_UDP;
	t.sport = bpf_ntohs(ports[0]);
	t.dport = bpf_ntohs(ports[1]);

	struct bpf_sock *bsk = skb->sk;
	if (!bsk)
		return 1;
	// The socket's netns inode: read through a read-only BTF cast of the socket.
	struct sock *sk = bpf_core_cast(bsk, struct sock);
	__u64 netns = sk->__sk_common.skc_net.net->ns.inum;

	struct tuple local; // local -> remote
	if (egress)
		__builtin_memcpy(&local, &t, sizeof(t));
	else
		reverse(&t, &local);
	struct udp_key k;
	udp_local_key(&k, netns, &local);

	__u64 now = bpf_ktime_get_ns();
	struct udp_flow *f = bpf_map_lookup_elem(&udp_flows, &k);
	if (!f) {
		struct udp_flow nf = {};
		nf.first_ns = now;
		nf.last_ns = now;
		nf.initiated_here = egress;
		bpf_map_update_elem(&udp_flows, &k, &nf, BPF_NOEXIST);
		if (egress)
			bpf_map_update_elem(&udp_origin, &t, &netns, BPF_ANY);
		return 1;
	}
	f->last_ns = now;
	if (f->reported || f->initiated_here == egress)
		return 1;
	f->reported = 1;
	struct flow_event *e = reserve_event();
	if (!e)
		return 1;
	e->netns = netns;
	e->ts_ns = f->first_ns;
	e->family = t.family;
	e->proto = PROTO_UDP;
	e->outcome = OUTCOME_REPLIED;
	e->initiated_here = f->initiated_here;
	// src is the initiator: the local side when we sent first, else the remote side.
	struct tuple src;
	if (f->initiated_here)
		__builtin_memcpy(&src, &local, sizeof(src));
	else
		reverse(&local, &src);
	__builtin_memcpy(e->saddr, src.saddr, 16);
	__builtin_memcpy(e->daddr, src.daddr, 16);
	e->sport = src.sport;
	e->dport = src.dport;
	bpf_ringbuf_submit(e, 0);
	return 1;
}

SEC("cgroup_skb/ingress")
int udp_ingress(struct __sk_buff *skb)
{
	return udp_packet(skb, false);
}

SEC("cgroup_skb/egress")
int udp_egress(struct __sk_buff *skb)
{
	return udp_packet(skb, true);
}
