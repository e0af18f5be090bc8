/* The host end of the control channel: one connection per request to the listening socket
 * that sandbar-init holds (<lease>/run/ctl.sock, reached through an O_PATH descriptor of run/
 * so that long state-directory paths never hit the sun_path limit). */
#include "sandbox_int.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define CTL_TIMEOUT_S 30

sb_err *sb_ctl_call_keep(sb_sandbox *sb, const sbi_msg *req, const int *fds, int nfds,
                         sbi_msg *reply, int *keep, sbi_reader *keep_rd)
{
	return sb_ctl_call_fd(sb, req, fds, nfds, reply, keep, keep_rd, NULL);
}

sb_err *sb_ctl_call_fd(sb_sandbox *sb, const sbi_msg *req, const int *fds, int nfds, sbi_msg *reply,
                       int *keep, sbi_reader *keep_rd, int *reply_fd)
{
	if (reply_fd)
		*reply_fd = -1;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return sb_err_sys(errno, "socket for lease %s", sb->id);
	sb_err *err = NULL;
	sbi_reader rd;
	sbi_reader_init(&rd);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d/ctl.sock", sb->run_fd);
	struct timeval tv = {CTL_TIMEOUT_S, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	int rc;
	do
		rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
	while (rc < 0 && errno == EINTR);
	if (rc < 0) {
		if (errno == ECONNREFUSED || errno == ENOENT)
			err = sb_err_new(SB_E_STATE_LOST,
			                 "the sandbox of lease %s is gone (nobody listens on "
			                 "%s/ctl.sock)",
			                 sb->id, sb->run_dir);
		else
			err = sb_err_sys(errno, "connecting to sandbar-init of lease %s", sb->id);
		goto out;
	}
	if ((rc = sbi_send(fd, req, fds, nfds)) < 0) {
		err = rc == -EPIPE || rc == -ECONNRESET
		          ? sb_err_new(SB_E_STATE_LOST, "sandbar-init of lease %s hung up", sb->id)
		          : sb_err_sys(-rc, "sending a request to lease %s", sb->id);
		goto out;
	}
	for (;;) {
		int rfd = -1, nrfd = reply_fd ? 1 : 0;
		int got = sbi_reader_take(&rd, reply, reply_fd ? &rfd : NULL, &nrfd);
		if (got == 1 && reply_fd && nrfd == 1)
			*reply_fd = rfd;
		if (got == 1)
			break;
		if (got < 0) {
			err = sb_err_new(SB_E_PROTOCOL,
			                 "malformed reply from sandbar-init of lease %s", sb->id);
			goto out;
		}
		long n = sbi_reader_fill(&rd, fd);
		if (n == 0 || n == -ECONNRESET) {
			/* a live init that hangs up has refused the connection (too many open) */
			bool alive = sb->info.init_pid > 0 &&
			             sb_proc_start_time(sb->info.init_pid) == sb->init_start;
			err = alive
			          ? sb_err_new(SB_E_BUSY,
			                       "sandbar-init of lease %s refused the request (too "
			                       "many open connections); try again",
			                       sb->id)
			          : sb_err_new(SB_E_STATE_LOST,
			                       "sandbar-init of lease %s closed the connection",
			                       sb->id);
			goto out;
		}
		if (n == -EAGAIN) {
			err = sb_err_new(SB_E_TIMEOUT,
			                 "sandbar-init of lease %s did not answer within %d s",
			                 sb->id, CTL_TIMEOUT_S);
			goto out;
		}
		if (n < 0) {
			err = sb_err_sys((int)-n, "reading from sandbar-init of lease %s", sb->id);
			goto out;
		}
	}
out:
	if (!err && keep) {
		/* later messages may already be buffered behind the reply: they go along */
		*keep = fd;
		*keep_rd = rd;
		return NULL;
	}
	sbi_reader_deinit(&rd);
	close(fd);
	return err;
}

sb_err *sb_ctl_call(sb_sandbox *sb, const sbi_msg *req, const int *fds, int nfds, sbi_msg *reply)
{
	return sb_ctl_call_keep(sb, req, fds, nfds, reply, NULL, NULL);
}

sb_err *sb_ctl_reply_err(sb_sandbox *sb, const sbi_msg *reply, const char *what)
{
	const char *ok = sbi_msg_get(reply, "ok");
	if (ok && strcmp(ok, "1") == 0)
		return NULL;
	const char *msg = sbi_msg_get(reply, "msg");
	long long e = 0;
	sbi_msg_geti(reply, "errno", 0, 4095, &e);
	sb_errcode code = e == ESRCH || e == ENOENT ? SB_E_NOTFOUND
	                  : e == EEXIST             ? SB_E_EXISTS
	                  : e == EINVAL             ? SB_E_INVAL
	                                            : SB_E_IO;
	sb_err *err = sb_err_new(code, "%s in lease %s: %s", what, sb->id,
	                         msg ? msg : "sandbar-init refused");
	err->sys_errno = (int)e;
	return err;
}

sb_err *sb_ctl_listen(sb_sandbox *sb, const char *name, int port, const char *what, int *keep,
                      sbi_reader *keep_rd, int *port_out)
{
	sbi_msg req, reply;
	sbi_msg_init(&req);
	sbi_msg_init(&reply);
	sbi_msg_add(&req, "op", "listen");
	sbi_msg_add(&req, "name", name);
	sbi_msg_addi(&req, "port", port);
	sb_err *err = sb_ctl_call_keep(sb, &req, NULL, 0, &reply, keep, keep_rd);
	if (!err)
		err = sb_ctl_reply_err(sb, &reply, what);
	long long p = 0;
	if (!err && sbi_msg_geti(&reply, "port", 1, 65535, &p) < 0)
		err =
		    sb_err_new(SB_E_PROTOCOL, "sandbar-init of lease %s answered no port", sb->id);
	sbi_msg_deinit(&req);
	sbi_msg_deinit(&reply);
	if (!err)
		*port_out = (int)p;
	return err;
}

sb_fwd_end sb_ctl_forward_loop(int attach, sbi_reader *rd, int stop_fd,
                               bool (*on_conn)(void *ud, const sbi_msg *m, int fd), void *ud)
{
	for (;;) {
		for (;;) {
			sbi_msg m;
			sbi_msg_init(&m);
			int fds[SBI_MAX_FDS], nfds = SBI_MAX_FDS;
			int got = sbi_reader_take(rd, &m, fds, &nfds);
			if (got <= 0) {
				sbi_msg_deinit(&m);
				if (got < 0)
					return SB_FWD_CLOSED;
				break;
			}
			const char *op = sbi_msg_get(&m, "op");
			int first = 0;
			bool more = true;
			if (op && strcmp(op, "conn") == 0 && nfds >= 1) {
				more = on_conn(ud, &m, fds[0]);
				first = 1;
			}
			for (int i = first; i < nfds; i++)
				close(fds[i]);
			sbi_msg_deinit(&m);
			if (!more)
				return SB_FWD_YIELDED;
		}
		struct pollfd p[2] = {{attach, POLLIN, 0}, {stop_fd, POLLIN, 0}};
		int rc = poll(p, 2, -1);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0 || p[1].revents)
			return SB_FWD_STOPPED;
		long n = sbi_reader_fill(rd, attach);
		if (n == -EAGAIN || n == -EINTR)
			continue;
		if (n <= 0)
			return SB_FWD_CLOSED;
	}
}
