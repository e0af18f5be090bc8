/* The egress proxy's byte mover (proxy.c): reads and writes over a plain socket or a TLS
 * session, and the relay between a client and its upstream, with splice() when neither side
 * is TLS and half-close kept in both directions. */
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
#define RELAY_BUF (256u * 1024u)

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

/* Move what one side has to the other through a pipe (no copy through user space): bytes moved,
 * 0 at EOF, -1 on error. */
static ssize_t splice_once(int from, int to, int pipefd[2])
{
	ssize_t n;
	do
		n = splice(from, NULL, pipefd[1], NULL, RELAY_BUF, SPLICE_F_MOVE);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return n;
	ssize_t left = n;
	while (left > 0) {
		ssize_t w = splice(pipefd[0], NULL, to, NULL, (size_t)left, SPLICE_F_MOVE);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		left -= w;
	}
	return n;
}

/* Both sides plain sockets: splice. False when this kernel cannot (then the copy loop runs). */
static bool relay_splice(sbpx_io *a, sbpx_io *b, uint64_t *up, uint64_t *down)
{
	int pa[2], pb[2];
	if (pipe2(pa, O_CLOEXEC) < 0)
		return false;
	if (pipe2(pb, O_CLOEXEC) < 0) {
		close(pa[0]);
		close(pa[1]);
		return false;
	}
	/* pipes start at the kernel's default (64 KiB); a bulk download's grows once it has
	 * moved that much: a small request does not pay for pages it never uses */
	bool grown = false;
	bool a_open = true;
	for (;;) {
		struct pollfd pf[2] = {{a_open ? a->fd : -1, POLLIN, 0}, {b->fd, POLLIN, 0}};
		int rc = poll(pf, 2, IDLE_TIMEOUT_MS);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			break;
		if (pf[0].revents) {
			ssize_t n = splice_once(a->fd, b->fd, pa);
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
			ssize_t n = splice_once(b->fd, a->fd, pb);
			if (n <= 0)
				break; /* the upstream is done: nothing more comes back */
			*down += (uint64_t)n;
			if (!grown && *down >= 65536) {
				fcntl(pb[1], F_SETPIPE_SZ, RELAY_BUF);
				grown = true;
			}
		}
	}
	close(pa[0]);
	close(pa[1]);
	close(pb[0]);
	close(pb[1]);
	return true;
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
	if (!a->ssl && !b->ssl && relay_splice(a, b, &up, &down))
		goto out;
	if (!(buf = malloc(RELAY_BUF))) /* only the copy loop needs one */
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
			ssize_t n = sbpx_io_read(a, buf, RELAY_BUF);
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
			ssize_t n = sbpx_io_read(b, buf, RELAY_BUF);
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
