/* The front door (gate.h): one thread per listening socket with an epoll set of the listening
 * socket, a stop eventfd and every connection still waiting for its request head.
 *
 * A waiting connection is watched edge-triggered and its bytes are only peeked (MSG_PEEK), so
 * libmicrohttpd later reads the request from the start. Waiting connections form one list in
 * accept order, which is also deadline order: the head is the oldest, the first to time out or
 * to be evicted. Per-peer counts live in a small hash table keyed by the peer's name.
 *
 * A connection whose head is complete while libmicrohttpd is at its connection limit moves to
 * a second list, the held ones, in the order their heads completed; nothing tells the gate when
 * libmicrohttpd has room again, so it looks every HOLD_POLL_MS while any is held.
 */
#include "gate.h"

#include <microhttpd.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <unistd.h>

#define PEER_BUCKETS 1024
#define PEER_NAME_MAX 64
/* How often the gate asks libmicrohttpd for room while it holds complete connections. */
#define HOLD_POLL_MS 5
/* A connection handed over is counted by libmicrohttpd only once its own thread has taken it
 * from its queue: until this long after the last hand-over, the gate counts those itself. */
#define HANDOVER_SETTLE_MS 10

typedef struct peer {
	struct peer *next;
	char name[PEER_NAME_MAX];
	unsigned waiting; /* > 0 while in the table */
} peer;

typedef struct waiter {
	struct waiter *prev, *next; /* accept order (held: the order their heads completed) */
	int fd;
	int64_t deadline_ms;
	peer *p; /* NULL once held: a held connection no longer counts against its peer */
	struct sockaddr_storage addr;
	socklen_t addrlen;
} waiter;

struct sbs_gate {
	sbs_gate_limits lim;
	struct MHD_Daemon *d;
	int listen_fd, ep, stop_fd;
	pthread_t thread;
	waiter *oldest, *newest; /* waiting for their request head; nwaiting of them */
	unsigned nwaiting;
	waiter *held_oldest, *held_newest; /* complete, until libmicrohttpd has room; nheld */
	unsigned nheld;
	unsigned handed_recent;   /* hand-overs libmicrohttpd may not have counted yet */
	int64_t last_handover_ms; /* handed_recent is reset HANDOVER_SETTLE_MS after it */
	peer *peers[PEER_BUCKETS];
	char *peek; /* max_header_bytes + 1 */
	atomic_uint_fast64_t waiting, held, accepted, evicted, timed_out, too_large;
};

/* ------------------------------------------------------------------ peers */

static size_t peer_hash(const char *s)
{
	size_t h = 5381;
	for (; *s; s++)
		h = h * 33 + (unsigned char)*s;
	return h % PEER_BUCKETS;
}

static peer *peer_ref(sbs_gate *g, const char *name)
{
	peer **b = &g->peers[peer_hash(name)];
	for (peer *p = *b; p; p = p->next)
		if (strcmp(p->name, name) == 0)
			return p;
	peer *p = sb_xcalloc(1, sizeof *p);
	snprintf(p->name, sizeof p->name, "%s", name);
	p->next = *b;
	*b = p;
	return p;
}

static void peer_drop(sbs_gate *g, peer *p)
{
	assert(p->waiting > 0);
	if (--p->waiting)
		return;
	for (peer **q = &g->peers[peer_hash(p->name)]; *q; q = &(*q)->next) {
		if (*q == p) {
			*q = p->next;
			free(p);
			return;
		}
	}
	assert(false && "a waiting peer is always in the table");
}

/* uid of a unix-socket peer, the address of a TCP one. */
static void peer_name(int fd, const struct sockaddr_storage *a, char out[PEER_NAME_MAX])
{
	if (a->ss_family == AF_INET || a->ss_family == AF_INET6) {
		char ip[INET6_ADDRSTRLEN] = "?";
		const void *src = a->ss_family == AF_INET
		                      ? (const void *)&((const struct sockaddr_in *)a)->sin_addr
		                      : (const void *)&((const struct sockaddr_in6 *)a)->sin6_addr;
		inet_ntop(a->ss_family, src, ip, sizeof ip);
		snprintf(out, PEER_NAME_MAX, "ip:%s", ip);
		return;
	}
	struct ucred cred;
	socklen_t len = sizeof cred;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
		snprintf(out, PEER_NAME_MAX, "uid:%u", (unsigned)cred.uid);
	else
		snprintf(out, PEER_NAME_MAX, "unix:?");
}

/* ------------------------------------------------------------------ waiting connections */

static void unlink_waiter(sbs_gate *g, waiter *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		g->oldest = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		g->newest = w->prev;
	assert(g->nwaiting > 0);
	g->nwaiting--;
	atomic_store(&g->waiting, g->nwaiting);
	epoll_ctl(g->ep, EPOLL_CTL_DEL, w->fd, NULL);
	peer_drop(g, w->p);
}

static void close_waiter(sbs_gate *g, waiter *w)
{
	unlink_waiter(g, w);
	close(w->fd);
	free(w);
}

static void evict_oldest_of(sbs_gate *g, peer *p)
{
	for (waiter *w = g->oldest; w; w = w->next) {
		if (!p || w->p == p) {
			atomic_fetch_add(&g->evicted, 1);
			close_waiter(g, w);
			return;
		}
	}
}

static void admit(sbs_gate *g, int fd, const struct sockaddr_storage *a, socklen_t alen)
{
	char name[PEER_NAME_MAX];
	peer_name(fd, a, name);
	peer *p = peer_ref(g, name);
	/* Counted before anything is evicted: evicting the peer's last other connection would
	 * otherwise free p under us. */
	p->waiting++;
	if (p->waiting > g->lim.max_waiting_per_peer)
		evict_oldest_of(g, p);
	if (g->nwaiting >= g->lim.max_waiting)
		evict_oldest_of(g, NULL);
	waiter *w = sb_xcalloc(1, sizeof *w);
	w->fd = fd;
	w->deadline_ms = sb_mono_ms() + g->lim.header_timeout_ms;
	w->p = p;
	w->addr = *a;
	w->addrlen = alen;
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = w};
	if (epoll_ctl(g->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
		sb_warn("gate: watching a new connection: %s", strerror(errno));
		peer_drop(g, p);
		close(fd);
		free(w);
		return;
	}
	w->prev = g->newest;
	if (g->newest)
		g->newest->next = w;
	else
		g->oldest = w;
	g->newest = w;
	g->nwaiting++;
	atomic_store(&g->waiting, g->nwaiting);
}

static void accept_all(sbs_gate *g)
{
	for (;;) {
		struct sockaddr_storage a;
		socklen_t alen = sizeof a;
		memset(&a, 0, sizeof a);
		int fd = accept4(g->listen_fd, (struct sockaddr *)&a, &alen,
		                 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE) {
				/* Out of descriptors: the oldest waiting connection makes room. */
				if (g->oldest) {
					atomic_fetch_add(&g->evicted, 1);
					close_waiter(g, g->oldest);
					continue;
				}
				sb_warn("gate: accepting: %s", strerror(errno));
			}
			return; /* EAGAIN: all taken */
		}
		admit(g, fd, &a, alen);
	}
}

static bool head_complete(const char *p, size_t n)
{
	for (size_t i = 0; i + 1 < n; i++) {
		if (p[i] != '\n')
			continue;
		if (p[i + 1] == '\n' || (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n'))
			return true;
	}
	return false;
}

/* Whether libmicrohttpd would take one more connection now rather than close it unanswered. */
static bool mhd_has_room(sbs_gate *g)
{
	if (!g->lim.max_connections)
		return true;
	if (g->handed_recent && sb_mono_ms() - g->last_handover_ms >= HANDOVER_SETTLE_MS)
		g->handed_recent = 0;
	const union MHD_DaemonInfo *info =
	    MHD_get_daemon_info(g->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
	unsigned busy = info ? info->num_connections : 0;
	return busy + g->handed_recent < g->lim.max_connections;
}

/* w is unlinked from either list: libmicrohttpd's from here. */
static void give_to_mhd(sbs_gate *g, waiter *w)
{
	g->handed_recent++;
	g->last_handover_ms = sb_mono_ms();
	int fl = fcntl(w->fd, F_GETFL);
	if (fl >= 0)
		fcntl(w->fd, F_SETFL, fl & ~O_NONBLOCK);
	atomic_fetch_add(&g->accepted, 1);
	/* The socket is libmicrohttpd's from here, closed by it even on failure. */
	if (MHD_add_connection(g->d, w->fd, (const struct sockaddr *)&w->addr, w->addrlen) !=
	    MHD_YES)
		sb_debug("gate: libmicrohttpd refused a connection: %s", strerror(errno));
	free(w);
}

static void unlink_held(sbs_gate *g, waiter *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		g->held_oldest = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		g->held_newest = w->prev;
	assert(g->nheld > 0);
	g->nheld--;
	atomic_store(&g->held, g->nheld);
}

/* A complete head: to libmicrohttpd now if it has room and nothing held is older, else held. */
static void hand_over(sbs_gate *g, waiter *w)
{
	unlink_waiter(g, w);
	if (!g->held_oldest && mhd_has_room(g)) {
		give_to_mhd(g, w);
		return;
	}
	w->p = NULL;
	w->next = NULL;
	w->prev = g->held_newest;
	if (g->held_newest)
		g->held_newest->next = w;
	else
		g->held_oldest = w;
	g->held_newest = w;
	g->nheld++;
	atomic_store(&g->held, g->nheld);
}

static void hand_over_held(sbs_gate *g)
{
	while (g->held_oldest && mhd_has_room(g)) {
		waiter *w = g->held_oldest;
		unlink_held(g, w);
		give_to_mhd(g, w);
	}
}

static void on_readable(sbs_gate *g, waiter *w, uint32_t events)
{
	size_t cap = g->lim.max_header_bytes + 1;
	ssize_t n;
	do
		n = recv(w->fd, g->peek, cap, MSG_PEEK);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (n <= 0) { /* closed before sending a request, or reset */
		close_waiter(g, w);
		return;
	}
	if (g->lim.tls || head_complete(g->peek, (size_t)n)) {
		hand_over(g, w);
		return;
	}
	if ((events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && (size_t)n < cap) {
		/* The peer stopped sending before its head was complete: it never will be. (Its
		 * unread bytes keep the peek above from ever seeing the end, so without this a
		 * client that sends half a head and leaves would hold its slot until the header
		 * deadline.) */
		close_waiter(g, w);
		return;
	}
	if ((size_t)n >= cap) {
		/* The same error object as every other refusal (docs/api.md). */
		char body[200], reply[400];
		int blen = snprintf(body, sizeof body,
		                    "{\"error\":\"request_header_fields_too_large\",\"message\":"
		                    "\"the request line and headers exceed %zu bytes\"}\n",
		                    g->lim.max_header_bytes);
		int rlen = snprintf(reply, sizeof reply,
		                    "HTTP/1.1 431 Request Header Fields Too Large\r\n"
		                    "Content-Type: application/json\r\nConnection: close\r\n"
		                    "Content-Length: %d\r\n\r\n%s",
		                    blen, body);
		ssize_t sent = send(w->fd, reply, (size_t)rlen, MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)sent;
		atomic_fetch_add(&g->too_large, 1);
		close_waiter(g, w);
	}
}

static void expire(sbs_gate *g, int64_t now)
{
	while (g->oldest && g->oldest->deadline_ms <= now) {
		atomic_fetch_add(&g->timed_out, 1);
		close_waiter(g, g->oldest);
	}
}

static void *gate_main(void *arg)
{
	sbs_gate *g = arg;
	struct epoll_event evs[64];
	for (;;) {
		int64_t now = sb_mono_ms();
		expire(g, now);
		hand_over_held(g);
		int timeout = g->held_oldest ? HOLD_POLL_MS : 1000;
		if (g->oldest) {
			int64_t left = g->oldest->deadline_ms - now;
			timeout = left < timeout ? (int)(left > 0 ? left : 0) : timeout;
		}
		int n = epoll_wait(g->ep, evs, 64, timeout);
		if (n < 0 && errno != EINTR) {
			sb_warn("gate: epoll_wait: %s", strerror(errno));
			sb_sleep_ms(10);
		}
		/* New connections last: admitting one may evict a waiting connection whose event
		 * is further on in evs (freed, it must not be read). Reading one closes at most
		 * itself. */
		bool new_connections = false;
		for (int i = 0; i < n; i++) {
			void *ptr = evs[i].data.ptr;
			if (ptr == &g->stop_fd)
				return NULL;
			if (ptr == &g->listen_fd)
				new_connections = true;
			else
				on_readable(g, ptr, evs[i].events);
		}
		if (new_connections)
			accept_all(g);
	}
}

/* ------------------------------------------------------------------ start, stop */

sb_err *sbs_gate_start(int listen_fd, struct MHD_Daemon *d, const sbs_gate_limits *lim,
                       sbs_gate **out)
{
	assert(lim->max_waiting > 0 && lim->max_waiting_per_peer > 0);
	sbs_gate *g = sb_xcalloc(1, sizeof *g);
	g->lim = *lim;
	g->d = d;
	g->listen_fd = listen_fd;
	g->stop_fd = -1;
	g->peek = sb_xmalloc(lim->max_header_bytes + 1);
	sb_err *err = NULL;
	int fl = fcntl(listen_fd, F_GETFL);
	if (fl < 0 || fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK) < 0)
		err = sb_err_sys(errno, "making the listening socket non-blocking");
	if (!err && (g->ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		err = sb_err_sys(errno, "epoll_create1");
	if (!err && (g->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		err = sb_err_sys(errno, "eventfd");
	struct epoll_event ls = {.events = EPOLLIN, .data.ptr = &g->listen_fd};
	struct epoll_event st = {.events = EPOLLIN, .data.ptr = &g->stop_fd};
	if (!err && (epoll_ctl(g->ep, EPOLL_CTL_ADD, listen_fd, &ls) < 0 ||
	             epoll_ctl(g->ep, EPOLL_CTL_ADD, g->stop_fd, &st) < 0))
		err = sb_err_sys(errno, "epoll_ctl");
	if (!err) {
		int rc = pthread_create(&g->thread, NULL, gate_main, g);
		if (rc)
			err = sb_err_sys(rc, "starting the connection gate thread");
	}
	if (err) {
		if (g->ep >= 0)
			close(g->ep);
		if (g->stop_fd >= 0)
			close(g->stop_fd);
		free(g->peek);
		free(g);
		return err; /* listen_fd stays the caller's */
	}
	*out = g;
	return NULL;
}

void sbs_gate_stop(sbs_gate *g)
{
	if (!g)
		return;
	uint64_t one = 1;
	ssize_t n = write(g->stop_fd, &one, sizeof one);
	(void)n;
	pthread_join(g->thread, NULL);
	while (g->oldest)
		close_waiter(g, g->oldest);
	while (g->held_oldest) {
		waiter *w = g->held_oldest;
		unlink_held(g, w);
		close(w->fd);
		free(w);
	}
	for (size_t i = 0; i < PEER_BUCKETS; i++)
		assert(!g->peers[i]); /* every peer left with its last connection */
	close(g->listen_fd);
	close(g->ep);
	close(g->stop_fd);
	free(g->peek);
	free(g);
}

void sbs_gate_stats_get(sbs_gate *g, sbs_gate_stats *out)
{
	out->waiting = atomic_load(&g->waiting);
	out->held = atomic_load(&g->held);
	out->accepted = atomic_load(&g->accepted);
	out->evicted = atomic_load(&g->evicted);
	out->timed_out = atomic_load(&g->timed_out);
	out->too_large = atomic_load(&g->too_large);
}
