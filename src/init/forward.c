/* The in-sandbox forwarder (DESIGN.md §9.14): loopback TCP listeners inside the sandbox whose
 * connections go to the host over the control channel, for the callback bridge and the egress
 * proxy alike. init parses none of their bytes.
 *
 * The host opens a connection, sends {op:listen, name, port}; init binds 127.0.0.1:port (0 =
 * any free port) once per name, answers the port, and from then on that connection is the
 * forward's attachment: every accepted connection travels to it as {op:conn, name, id, handed,
 * state} with the socket itself (SCM_RIGHTS). init keeps its own copy of each socket until the
 * host sends {op:release, name, id}, and the state the host last set with {op:mark, name, id,
 * state}; so when the host dies mid-request the client's connection stays open, and the next
 * attachment gets it back with what the previous one had done (e.g. "sent" upstream).
 * Without an attachment nothing is accepted: connections wait in the kernel's backlog.
 */
#include "init.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FWD_MAX 8         /* forwards per sandbox (callback, proxy, ...) */
#define FWD_HELD_MAX 1024 /* connections held per forward; beyond, accepting pauses */
#define FWD_NAME_MAX 32
#define FWD_STATE_MAX 16

typedef struct fwd_conn {
	unsigned long long id;
	int fd;
	bool handed;               /* given to an attachment at least once */
	char state[FWD_STATE_MAX]; /* the host's last mark, "" until then */
} fwd_conn;

typedef struct fwd {
	char name[FWD_NAME_MAX];
	int port;
	int lfd;    /* listening socket on 127.0.0.1 */
	int attach; /* the host connection (owned by main.c's client table), -1 = none */
	fwd_conn *conns;
	size_t nconns;
	unsigned long long next_id;
} fwd;

static fwd fwds[FWD_MAX];
static int nfwds;

static fwd *fwd_find(const char *name)
{
	for (int i = 0; i < nfwds; i++)
		if (strcmp(fwds[i].name, name) == 0)
			return &fwds[i];
	return NULL;
}

static bool name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n >= FWD_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

/* Send one held connection to the attachment; on failure the attachment is given up (the host
 * will attach again) and the connection stays held. */
static void send_conn(fwd *f, fwd_conn *c)
{
	sbi_msg m;
	sbi_msg_init(&m);
	sbi_msg_add(&m, "op", "conn");
	sbi_msg_add(&m, "name", f->name);
	sbi_msg_addi(&m, "id", (long long)c->id);
	sbi_msg_addi(&m, "handed", c->handed);
	sbi_msg_add(&m, "state", c->state);
	int rc = sbi_send(f->attach, &m, &c->fd, 1);
	sbi_msg_deinit(&m);
	if (rc < 0) {
		sbi_log("forward %s: handing a connection to the host: %s", f->name, strerror(-rc));
		f->attach = -1;
		return;
	}
	c->handed = true;
}

void sbi_forward_listen(int cfd, const sbi_msg *req, sbi_msg *reply, bool *attached)
{
	const char *name = sbi_msg_get(req, "name");
	long long port = 0;
	*attached = false;
	if (!name || !name_valid(name) || sbi_msg_geti(req, "port", 0, 65535, &port) < 0) {
		sbi_msg_add(reply, "ok", "0");
		sbi_msg_addi(reply, "errno", EINVAL);
		sbi_msg_add(reply, "msg",
		            "listen needs name ([a-z0-9-]{1,31}) and port (0..65535)");
		return;
	}
	fwd *f = fwd_find(name);
	if (!f) {
		if (nfwds == FWD_MAX) {
			sbi_msg_add(reply, "ok", "0");
			sbi_msg_add(reply, "msg", "too many forwards in this sandbox");
			return;
		}
		int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		socklen_t sl = sizeof sa;
		if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
		    listen(lfd, 512) < 0 || getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0) {
			int e = errno;
			if (lfd >= 0)
				close(lfd);
			sbi_msg_add(reply, "ok", "0");
			sbi_msg_addi(reply, "errno", e);
			char msg[128];
			snprintf(msg, sizeof msg, "binding 127.0.0.1:%lld in the sandbox: %s", port,
			         strerror(e));
			sbi_msg_add(reply, "msg", msg);
			return;
		}
		f = &fwds[nfwds++];
		memset(f, 0, sizeof *f);
		snprintf(f->name, sizeof f->name, "%s", name);
		f->lfd = lfd;
		f->port = ntohs(sa.sin_port);
		f->attach = -1;
		f->next_id = 1;
	} else if (port != 0 && port != f->port) {
		sbi_msg_add(reply, "ok", "0");
		sbi_msg_addi(reply, "errno", EEXIST);
		sbi_msg_add(reply, "msg", "this forward listens on another port already");
		return;
	}
	/* a new attachment replaces the old one (a restarted host) */
	f->attach = cfd;
	*attached = true;
	sbi_msg_add(reply, "ok", "1");
	sbi_msg_addi(reply, "port", f->port);
	sbi_msg_addi(reply, "held", (long long)f->nconns);
}

void sbi_forward_attached(int cfd)
{
	for (int i = 0; i < nfwds; i++)
		if (fwds[i].attach == cfd)
			for (size_t k = 0; k < fwds[i].nconns && fwds[i].attach == cfd; k++)
				send_conn(&fwds[i], &fwds[i].conns[k]);
}

static fwd_conn *conn_find(const sbi_msg *req, fwd **fo, size_t *idx)
{
	const char *name = sbi_msg_get(req, "name");
	long long id = 0;
	fwd *f = name ? fwd_find(name) : NULL;
	if (!f || sbi_msg_geti(req, "id", 1, (long long)(~0ull >> 1), &id) < 0)
		return NULL;
	for (size_t k = 0; k < f->nconns; k++)
		if (f->conns[k].id == (unsigned long long)id) {
			*fo = f;
			*idx = k;
			return &f->conns[k];
		}
	return NULL;
}

void sbi_forward_mark(const sbi_msg *req)
{
	fwd *f;
	size_t k;
	fwd_conn *c = conn_find(req, &f, &k);
	const char *state = sbi_msg_get(req, "state");
	if (c && state)
		snprintf(c->state, sizeof c->state, "%s", state);
}

void sbi_forward_release(const sbi_msg *req)
{
	fwd *f;
	size_t k;
	fwd_conn *c = conn_find(req, &f, &k);
	if (!c)
		return;
	close(c->fd);
	f->conns[k] = f->conns[--f->nconns];
}

void sbi_forward_detach(int cfd)
{
	for (int i = 0; i < nfwds; i++)
		if (fwds[i].attach == cfd)
			fwds[i].attach = -1;
}

size_t sbi_forward_pollfds(struct pollfd *p)
{
	size_t n = 0;
	for (int i = 0; i < nfwds; i++) {
		bool want = fwds[i].attach >= 0 && fwds[i].nconns < FWD_HELD_MAX;
		p[n++] = (struct pollfd){want ? fwds[i].lfd : -1, POLLIN, 0};
	}
	return n;
}

size_t sbi_forward_count(void)
{
	return (size_t)nfwds;
}

void sbi_forward_ready(const struct pollfd *p)
{
	for (int i = 0; i < nfwds; i++) {
		fwd *f = &fwds[i];
		if (!p[i].revents || f->lfd != p[i].fd)
			continue;
		while (f->attach >= 0 && f->nconns < FWD_HELD_MAX) {
			int fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
			if (fd < 0)
				break; /* EAGAIN: the listener is non-blocking */
			if (f->nconns % 64 == 0) {
				fwd_conn *g = realloc(f->conns, (f->nconns + 64) * sizeof *g);
				if (!g) {
					close(fd);
					break;
				}
				f->conns = g;
			}
			fwd_conn *c = &f->conns[f->nconns++];
			memset(c, 0, sizeof *c);
			c->id = f->next_id++;
			c->fd = fd;
			send_conn(f, c);
		}
	}
}
