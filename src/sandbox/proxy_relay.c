/* The egress proxy's byte mover (proxy.c): reads and writes over a plain socket or a TLS
 * session, and the relay between a client and its upstream, with splice() for the bulk of a
 * transfer when neither side is TLS, and half-close kept in both directions. */
#include "proxy_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define IDLE_TIMEOUT_MS (30 * 60 * 1000) /* a relay with no byte either way for this long ends */
#define RELAY_BUF (1024u * 1024u)        /* a bulk pipe: one splice pair moves up to this */
#define COPY_BUF (16u * 1024u)           /* a direction's first bytes are copied through this */
#define TLS_BUF (256u * 1024u)           /* the TLS copy loop's buffer */

/* ---- I/O over a socket or a TLS session */

/* >0 bytes, 0 EOF, -1 error, -2 nothing yet (TLS records that carried no data) */
ssize_t sbpx_io_read(sbpx_io *o, void *buf, size_t len)
{
	if (!o->ssl) {
		ssize_t n;
		do
			n = read(o->fd, buf, len);
		while (n < 0 && errno == EINTR);
		return n < 0 ? -1 : n;
	}
	int n = SSL_read(o->ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len));
	if (n > 0)
		return n;
	int e = SSL_get_error(o->ssl, n);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return -2;
	if (e == SSL_ERROR_ZERO_RETURN)
		return 0;
	ERR_clear_error();
	return e == SSL_ERROR_SYSCALL && n == 0 ? 0 : -1;
}

bool sbpx_io_write(sbpx_io *o, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t n;
		if (o->ssl) {
			int k = SSL_write(o->ssl, p, (int)(len > (1u << 30) ? (1u << 30) : len));
			if (k <= 0) {
				ERR_clear_error();
				return false;
			}
			n = k;
		} else {
			n = send(o->fd, p, len, MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return false;
		}
		p += n;
		len -= (size_t)n;
	}
	return true;
}

bool sbpx_io_pending(sbpx_io *o)
{
	return o->ssl && SSL_pending(o->ssl) > 0;
}

/* ---- relay */

/* One direction of a plain relay. Its first bytes are copied through a small buffer; only a
 * direction that fills that buffer (a bulk transfer) gets a pipe and moves by splice() (no copy
 * through user space): a small request never pays for the pipes' creation and teardown. */
typedef struct direction {
	int from, to;
	int pipe[2];
	bool grown; /* the pipe starts at the kernel's default and is grown (once) on first use */
} direction;

/* Move what `from` has to `to`: bytes moved, 0 at EOF, -1 on error. */
static ssize_t move_once(direction *d)
{
	if (d->pipe[0] < 0) {
		char buf[COPY_BUF];
		ssize_t n;
		do
			n = read(d->from, buf, sizeof buf);
		while (n < 0 && errno == EINTR);
		if (n <= 0)
			return n;
		sbpx_io o = {d->to, NULL};
		if (!sbpx_io_write(&o, buf, (size_t)n))
			return -1;
		if ((size_t)n == sizeof buf && pipe2(d->pipe, O_CLOEXEC) < 0)
			d->pipe[0] = d->pipe[1] = -1; /* no pipe: copying goes on */
		return n;
	}
	ssize_t n;
	do
		n = splice(d->from, NULL, d->pipe[1], NULL, RELAY_BUF, SPLICE_F_MOVE);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return n;
	ssize_t left = n;
	while (left > 0) {
		ssize_t w = splice(d->pipe[0], NULL, d->to, NULL, (size_t)left, SPLICE_F_MOVE);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		left -= w;
	}
	if (!d->grown) {
		d->grown = true;
		(void)fcntl(d->pipe[1], F_SETPIPE_SZ,
		            RELAY_BUF); /* the default works too, slower */
	}
	return n;
}

static void direction_end(direction *d)
{
	if (d->pipe[0] >= 0) {
		close(d->pipe[0]);
		close(d->pipe[1]);
	}
}

/* Both sides plain sockets: copy, then splice once bulk. */
static void relay_plain(sbpx_io *a, sbpx_io *b, uint64_t *up, uint64_t *down)
{
	direction da = {a->fd, b->fd, {-1, -1}, false}, db = {b->fd, a->fd, {-1, -1}, false};
	bool a_open = true;
	for (;;) {
		struct pollfd pf[2] = {{a_open ? a->fd : -1, POLLIN, 0}, {b->fd, POLLIN, 0}};
		int rc = poll(pf, 2, IDLE_TIMEOUT_MS);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			break;
		if (pf[0].revents) {
			ssize_t n = move_once(&da);
			if (n > 0) {
				*up += (uint64_t)n;
			} else {
				a_open = false;
				shutdown(b->fd, SHUT_WR);
				if (n < 0)
					break;
			}
		}
		if (pf[1].revents) {
			ssize_t n = move_once(&db);
			if (n <= 0)
				break; /* the upstream is done: nothing more comes back */
			*down += (uint64_t)n;
		}
	}
	direction_end(&da);
	direction_end(&db);
}

void sbpx_relay(sbpx_io *a, sbpx_io *b, const char *pre, size_t prelen, uint64_t *up_out,
                uint64_t *down_out)
{
	char *buf = NULL;
	uint64_t up = 0, down = 0;
	if (prelen) {
		if (!sbpx_io_write(b, pre, prelen))
			goto out;
		up += prelen;
	}
	if (!a->ssl && !b->ssl) {
		relay_plain(a, b, &up, &down);
		goto out;
	}
	if (!(buf = malloc(TLS_BUF))) /* only the copy loop needs one */
		abort();
	bool a_open = true, b_open = true;
	while (a_open || b_open) {
		/* a side that has ended does not end the other direction (half close) */
		bool ready_a = a_open && sbpx_io_pending(a), ready_b = b_open && sbpx_io_pending(b);
		if (!ready_a && !ready_b) {
			struct pollfd pf[2] = {{a_open ? a->fd : -1, POLLIN, 0},
			                       {b_open ? b->fd : -1, POLLIN, 0}};
			int rc = poll(pf, 2, IDLE_TIMEOUT_MS);
			if (rc < 0 && errno == EINTR)
				continue;
			if (rc <= 0)
				break;
			ready_a = pf[0].revents != 0;
			ready_b = pf[1].revents != 0;
		}
		if (ready_a) {
			ssize_t n = sbpx_io_read(a, buf, TLS_BUF);
			if (n > 0) {
				if (!sbpx_io_write(b, buf, (size_t)n))
					break;
				up += (uint64_t)n;
			} else if (n != -2) {
				a_open = false;
				if (b->ssl)
					SSL_shutdown(b->ssl);
				else
					shutdown(b->fd, SHUT_WR);
				if (n < 0)
					break;
			}
		}
		if (ready_b) {
			ssize_t n = sbpx_io_read(b, buf, TLS_BUF);
			if (n > 0) {
				if (!sbpx_io_write(a, buf, (size_t)n))
					break;
				down += (uint64_t)n;
			} else if (n != -2) {
				/* the upstream is done: nothing more comes back */
				break;
			}
		}
	}
out:
	free(buf);
	*up_out = up;
	*down_out = down;
}
