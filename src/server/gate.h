/* The daemon's front door: accepts connections and holds them, without a thread each, until a
 * complete request head has arrived; only then, and only while libmicrohttpd has room for them
 * (below max_connections), are they handed to it (a thread per connection, so handlers may
 * block). The one connection policy (DESIGN §9.13): a global cap on
 * connections waiting for their request, a per-peer cap on them (uid on a unix socket, address
 * on TCP) where a new connection evicts the peer's oldest waiting one, a deadline for the
 * request head, and room for every new client: when the gate is full, the oldest waiting
 * connection goes. Idle or trickling clients therefore cost a descriptor, never a thread, and
 * can never keep another client out.
 */
#ifndef SB_SERVER_GATE_H
#define SB_SERVER_GATE_H

#include <sandbar/base.h>

struct MHD_Daemon;
typedef struct sbs_gate sbs_gate;

typedef struct sbs_gate_limits {
	unsigned max_waiting;          /* connections without a complete request head */
	unsigned max_waiting_per_peer; /* of those, from one peer */
	int64_t header_timeout_ms;     /* to send a complete request head */
	size_t max_header_bytes;       /* request line + headers; 431 beyond */
	bool tls;                      /* hand over at the first byte: the head is encrypted */
	/* libmicrohttpd's MHD_OPTION_CONNECTION_LIMIT. It closes a connection handed to it at that
	 * limit without an answer, and counts a finished one until its own thread has reaped it,
	 * so a complete request is held here until it has room. 0: handed over at once. */
	unsigned max_connections;
} sbs_gate_limits;

typedef struct sbs_gate_stats {
	uint64_t waiting;   /* now */
	uint64_t held;      /* now: complete, until libmicrohttpd has room (max_connections) */
	uint64_t accepted;  /* handed to libmicrohttpd */
	uint64_t evicted;   /* closed to make room (global or per-peer cap) */
	uint64_t timed_out; /* closed at the header deadline */
	uint64_t too_large; /* answered 431 */
} sbs_gate_stats;

/* Serve listen_fd (taken over: closed by sbs_gate_stop) into d, which must have been started with
 * MHD_USE_NO_LISTEN_SOCKET and MHD_USE_ITC. */
sb_err *sbs_gate_start(int listen_fd, struct MHD_Daemon *d, const sbs_gate_limits *lim,
                       sbs_gate **out);
/* Stop accepting: the listening socket and every waiting connection are closed. */
void sbs_gate_stop(sbs_gate *g);
void sbs_gate_stats_get(sbs_gate *g, sbs_gate_stats *out);

#endif
