/* Framing and field encoding of the host <-> sandbar-init control protocol (see proto.h).
 * Plain libc only: this file is compiled into both libsandbar and the static sandbar-init. */
#include "proto.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void sbi_msg_init(sbi_msg *m)
{
	m->data = NULL;
	m->len = m->cap = 0;
}

void sbi_msg_deinit(sbi_msg *m)
{
	free(m->data);
	sbi_msg_init(m);
}

void sbi_msg_clear(sbi_msg *m)
{
	m->len = 0;
}

int sbi_msg_add(sbi_msg *m, const char *key, const char *value)
{
	size_t kl = strlen(key) + 1, vl = strlen(value) + 1;
	if (kl + vl > SBI_FRAME_MAX - m->len)
		return -1;
	if (m->len + kl + vl > m->cap) {
		size_t cap = m->cap ? m->cap : 256;
		while (cap < m->len + kl + vl)
			cap *= 2;
		char *p = realloc(m->data, cap);
		if (!p)
			return -1;
		m->data = p;
		m->cap = cap;
	}
	memcpy(m->data + m->len, key, kl);
	memcpy(m->data + m->len + kl, value, vl);
	m->len += kl + vl;
	return 0;
}

int sbi_msg_addi(sbi_msg *m, const char *key, long long value)
{
	char num[32];
	snprintf(num, sizeof num, "%lld", value);
	return sbi_msg_add(m, key, num);
}

int sbi_msg_adopt(sbi_msg *m, char *data, size_t len)
{
	size_t nul = 0;
	for (size_t i = 0; i < len; i++)
		nul += data[i] == '\0';
	if (len > 0 && (data[len - 1] != '\0' || nul % 2 != 0))
		return -1;
	free(m->data);
	m->data = data;
	m->len = m->cap = len;
	return 0;
}

bool sbi_msg_next(const sbi_msg *m, size_t *pos, const char **key, const char **value)
{
	if (*pos >= m->len)
		return false;
	*key = m->data + *pos;
	*pos += strlen(*key) + 1;
	*value = m->data + *pos;
	*pos += strlen(*value) + 1;
	return true;
}

const char *sbi_msg_get(const sbi_msg *m, const char *key)
{
	size_t pos = 0;
	const char *k, *v;
	while (sbi_msg_next(m, &pos, &k, &v))
		if (strcmp(k, key) == 0)
			return v;
	return NULL;
}

int sbi_msg_geti(const sbi_msg *m, const char *key, long long min, long long max, long long *out)
{
	const char *v = sbi_msg_get(m, key);
	if (!v || !*v)
		return -1;
	char *end;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	if (errno || *end || n < min || n > max)
		return -1;
	*out = n;
	return 0;
}

size_t sbi_msg_count(const sbi_msg *m, const char *key)
{
	size_t pos = 0, n = 0;
	const char *k, *v;
	while (sbi_msg_next(m, &pos, &k, &v))
		n += strcmp(k, key) == 0;
	return n;
}

int sbi_send(int sock, const sbi_msg *m, const int *fds, int nfds)
{
	unsigned char hdr[4];
	uint32_t len = (uint32_t)m->len;
	for (int i = 0; i < 4; i++)
		hdr[i] = (unsigned char)(len >> (8 * i));
	struct iovec iov[2] = {{hdr, 4}, {m->data, m->len}};
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * SBI_MAX_FDS)];
	} ctl;
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = m->len ? 2 : 1};
	if (nfds > 0) {
		if (nfds > SBI_MAX_FDS)
			return -EINVAL;
		memset(&ctl, 0, sizeof ctl);
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	size_t total = 4 + m->len, sent = 0;
	while (sent < total) {
		ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		sent += (size_t)n;
		/* fds went with the first chunk; advance the iovecs past what was sent */
		mh.msg_control = NULL;
		mh.msg_controllen = 0;
		size_t skip = (size_t)n;
		while (mh.msg_iovlen > 0 && skip >= mh.msg_iov[0].iov_len) {
			skip -= mh.msg_iov[0].iov_len;
			mh.msg_iov++;
			mh.msg_iovlen--;
		}
		if (mh.msg_iovlen > 0) {
			mh.msg_iov[0].iov_base = (char *)mh.msg_iov[0].iov_base + skip;
			mh.msg_iov[0].iov_len -= skip;
		}
	}
	return 0;
}

void sbi_reader_init(sbi_reader *r)
{
	memset(r, 0, sizeof *r);
}

void sbi_reader_deinit(sbi_reader *r)
{
	for (int i = 0; i < r->nfds; i++)
		close(r->fds[i]);
	free(r->buf);
	sbi_reader_init(r);
}

static void reader_keep_fds(sbi_reader *r, struct msghdr *mh, size_t at)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
			if (r->nfds < SBI_MAX_FDS) {
				r->fd_at[r->nfds] = at;
				r->fds[r->nfds++] = fd;
			} else
				close(fd);
		}
	}
}

long sbi_reader_fill(sbi_reader *r, int sock)
{
	/* Read no further than the end of the frame being received: the kernel hands the fds of
	 * a sendmsg over with the first bytes read of it, and may join the bytes of several
	 * sendmsgs in one read, so a read that stays inside one frame is what ties fds to their
	 * frame (and a reply to the fd-carrying message behind it cannot take its fds). */
	size_t off = 0, want;
	for (;;) {
		if (r->len - off < 4) {
			want = 4 - (r->len - off);
			break;
		}
		uint32_t fl = 0;
		for (int i = 0; i < 4; i++)
			fl |= (uint32_t)(unsigned char)r->buf[off + i] << (8 * i);
		if (fl > SBI_FRAME_MAX)
			return -EPROTO;
		if (4 + (size_t)fl > r->len - off) {
			want = 4 + (size_t)fl - (r->len - off);
			break;
		}
		off += 4 + (size_t)fl;
	}
	if (r->cap - r->len < want) {
		size_t cap = r->cap ? r->cap : 4096;
		while (cap - r->len < want)
			cap *= 2;
		char *p = realloc(r->buf, cap);
		if (!p)
			return -ENOMEM;
		r->buf = p;
		r->cap = cap;
	}
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * SBI_MAX_FDS)];
	} ctl;
	struct iovec iov = {r->buf + r->len, want};
	struct msghdr mh = {.msg_iov = &iov,
	                    .msg_iovlen = 1,
	                    .msg_control = ctl.buf,
	                    .msg_controllen = sizeof ctl.buf};
	ssize_t n;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	reader_keep_fds(r, &mh, r->len);
	r->len += (size_t)n;
	return (long)n;
}

int sbi_reader_take(sbi_reader *r, sbi_msg *m, int *fds, int *nfds)
{
	if (r->len < 4)
		return 0;
	uint32_t fl = 0;
	for (int i = 0; i < 4; i++)
		fl |= (uint32_t)(unsigned char)r->buf[i] << (8 * i);
	if (fl > SBI_FRAME_MAX)
		return -1;
	if (r->len < 4 + (size_t)fl)
		return 0;
	char *data = malloc(fl ? fl : 1);
	if (!data)
		return -1;
	memcpy(data, r->buf + 4, fl);
	memmove(r->buf, r->buf + 4 + fl, r->len - 4 - fl);
	r->len -= 4 + (size_t)fl;
	/* the fds sent with this frame; a later frame's (read in the same recvmsg) stay */
	int cap = nfds ? *nfds : 0, got = 0, kept = 0;
	for (int i = 0; i < r->nfds; i++) {
		if (r->fd_at[i] >= 4 + (size_t)fl) {
			r->fd_at[kept] = r->fd_at[i] - (4 + (size_t)fl);
			r->fds[kept++] = r->fds[i];
		} else if (got < cap) {
			fds[got++] = r->fds[i];
		} else {
			close(r->fds[i]);
		}
	}
	r->nfds = kept;
	if (nfds)
		*nfds = got;
	if (sbi_msg_adopt(m, data, fl) < 0) {
		free(data);
		for (int i = 0; i < got; i++)
			close(fds[i]);
		if (nfds)
			*nfds = 0;
		return -1;
	}
	return 1;
}

bool sbi_id_valid(const char *s)
{
	size_t n = 0;
	for (; s[n]; n++) {
		char c = s[n];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return false;
		if (n >= 64)
			return false;
	}
	return n > 0;
}
