/* sandbar-init: the supervisor that runs as PID 1 in every sandbox (DESIGN.md §5).
 *
 * It is started by bubblewrap with pre-opened descriptors: a listening control socket (bound
 * on the host in <lease>/run/, a directory the sandbox does not mount), the lease's spool
 * directory, the compiled seccomp filter, and a pipe on which it reports readiness. It makes
 * itself non-dumpable so that sandboxed processes (same uid) cannot reach those descriptors
 * through /proc/1, then serves requests (ping, exec, signal, ps) and reaps every child.
 */
#include "init.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <linux/seccomp.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 16384 /* each running exec started with notify keeps one */
#define SECCOMP_MAX_BYTES (64u * 1024u)

typedef struct client {
	int fd;
	sbi_reader rd;
} client;

static client *clients;
static int nclients, clients_cap;

int64_t sbi_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sbi_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sbi_log(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof buf - 2)
		n = (int)sizeof buf - 2;
	buf[n++] = '\n';
	(void)!write(2, "sandbar-init: ", 14);
	(void)!write(2, buf, (size_t)n);
}

static int parse_fd_arg(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);
	return (*end || v < 0 || v > 1 << 20) ? -1 : (int)v;
}

static int load_seccomp(sbi_state *st, int fd)
{
	size_t cap = SECCOMP_MAX_BYTES, len = 0;
	char *buf = malloc(cap);
	if (!buf)
		return -1;
	for (;;) {
		ssize_t n = pread(fd, buf + len, cap - len, (off_t)len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == cap) {
			free(buf);
			errno = EFBIG;
			return -1;
		}
	}
	if (len == 0 || len % sizeof(struct sock_filter) != 0) {
		free(buf);
		errno = EINVAL;
		return -1;
	}
	st->seccomp.len = (unsigned short)(len / sizeof(struct sock_filter));
	st->seccomp.filter = (struct sock_filter *)(void *)buf;
	return 0;
}

static void client_drop(int i)
{
	sbi_forward_detach(clients[i].fd);
	close(clients[i].fd);
	sbi_reader_deinit(&clients[i].rd);
	clients[i] = clients[--nclients];
}

static void handle(sbi_state *st, int cfd, sbi_msg *req, int *fds, int nfds)
{
	sbi_msg reply;
	sbi_msg_init(&reply);
	const char *op = sbi_msg_get(req, "op");
	int used = 0,
	    reply_fd = -1; /* reply_fd: an exec's input (tty master), sent with the reply */
	bool attached = false;
	if (op && (strcmp(op, "mark") == 0 || strcmp(op, "release") == 0)) {
		/* forwarded connections' bookkeeping: no reply, the host does not wait */
		if (strcmp(op, "mark") == 0)
			sbi_forward_mark(req);
		else
			sbi_forward_release(req);
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		sbi_msg_deinit(&reply);
		return;
	}
	if (!op) {
		sbi_msg_add(&reply, "ok", "0");
		sbi_msg_add(&reply, "msg", "request without op");
	} else if (strcmp(op, "ping") == 0) {
		sbi_msg_add(&reply, "ok", "1");
		sbi_msg_addi(&reply, "pid", getpid());
	} else if (strcmp(op, "exec") == 0) {
		/* fds in order: the stdin pipe (stdin=pipe), a copy of its write end to hold
		 * (hold=1), then the wake pipe (wake=1) */
		const char *in = sbi_msg_get(req, "stdin"), *wake = sbi_msg_get(req, "wake");
		const char *hold = sbi_msg_get(req, "hold");
		int stdin_fd = -1, held_fd = -1, wake_fd = -1;
		if (in && strcmp(in, "pipe") == 0 && used < nfds)
			stdin_fd = fds[used++];
		if (stdin_fd >= 0 && hold && strcmp(hold, "1") == 0 && used < nfds)
			held_fd = fds[used++];
		if (wake && strcmp(wake, "1") == 0 && used < nfds)
			wake_fd = fds[used++];
		const char *notify = sbi_msg_get(req, "notify");
		int nfd = notify && strcmp(notify, "1") == 0 ? fcntl(cfd, F_DUPFD_CLOEXEC, 3) : -1;
		sbi_exec_start(st, req, stdin_fd, held_fd, nfd, wake_fd, &reply, &reply_fd);
	} else if (strcmp(op, "signal") == 0) {
		const char *id = sbi_msg_get(req, "id");
		long long sig = 0;
		sbi_exec *x = id ? sbi_exec_find(st, id) : NULL;
		if (sbi_msg_geti(req, "sig", 1, 64, &sig) < 0) {
			sbi_msg_add(&reply, "ok", "0");
			sbi_msg_add(&reply, "msg", "invalid signal number");
		} else if (!x || kill(-x->pid, (int)sig) < 0) {
			/* after its leader exits, an exec's process group may live on (background
			 * children holding its output): it can still be signalled */
			sbi_msg_add(&reply, "ok", "0");
			sbi_msg_addi(&reply, "errno", ESRCH);
			sbi_msg_add(&reply, "msg", "no process of this exec is running");
		} else {
			sbi_msg_add(&reply, "ok", "1");
		}
	} else if (strcmp(op, "watch") == 0) {
		/* a reader attaching to a running exec: wake-ups on fds[0], the exit message on
		 * this connection; the reply carries the state at this moment */
		const char *id = sbi_msg_get(req, "id");
		sbi_exec *x = id ? sbi_exec_find(st, id) : NULL;
		if (!x) {
			sbi_msg_add(&reply, "ok", "0");
			sbi_msg_addi(&reply, "errno", ENOENT);
			sbi_msg_add(&reply, "msg", "not tracked by sandbar-init");
		} else {
			int nfd = fcntl(cfd, F_DUPFD_CLOEXEC, 3);
			bool watching = sbi_exec_watch(x, nfd, nfds > 0 ? fds[0] : -1);
			used = nfds > 0 ? 1 : 0;
			sbi_msg_add(&reply, "ok", "1");
			sbi_msg_addi(&reply, "watching", watching);
			sbi_exec_describe(x, &reply);
		}
	} else if (strcmp(op, "list") == 0) {
		/* the execs init tracks: some may have no spool directory yet */
		sbi_msg_add(&reply, "ok", "1");
		for (sbi_exec *x = st->execs; x; x = x->next)
			sbi_msg_add(&reply, "id", x->id);
	} else if (strcmp(op, "status") == 0) {
		/* from memory while init still tracks the exec; the host falls back to the
		 * record on disk otherwise */
		const char *id = sbi_msg_get(req, "id");
		sbi_exec *x = id ? sbi_exec_find(st, id) : NULL;
		if (x) {
			sbi_msg_add(&reply, "ok", "1");
			sbi_exec_describe(x, &reply);
		} else {
			sbi_msg_add(&reply, "ok", "0");
			sbi_msg_addi(&reply, "errno", ENOENT);
			sbi_msg_add(&reply, "msg", "not tracked by sandbar-init");
		}
	} else if (strcmp(op, "ps") == 0) {
		sbi_ps(st, &reply);
	} else if (strcmp(op, "input") == 0) {
		sbi_input_request(st, req, &reply, &reply_fd);
	} else if (strcmp(op, "listen") == 0) {
		sbi_forward_listen(cfd, req, &reply, &attached);
	} else {
		sbi_msg_add(&reply, "ok", "0");
		sbi_msg_add(&reply, "msg", "unknown op");
	}
	for (int i = used; i < nfds; i++)
		close(fds[i]);
	int rc = sbi_send(cfd, &reply, reply_fd >= 0 ? &reply_fd : NULL, reply_fd >= 0 ? 1 : 0);
	if (reply_fd >= 0)
		close(reply_fd);
	if (rc < 0 && rc != -EPIPE)
		sbi_log("reply to host: %s", strerror(-rc));
	if (attached && rc >= 0)
		sbi_forward_attached(cfd);
	sbi_msg_deinit(&reply);
}

static void client_readable(sbi_state *st, int i)
{
	long n = sbi_reader_fill(&clients[i].rd, clients[i].fd);
	if (n == -EAGAIN || n == -EINTR)
		return;
	if (n <= 0) {
		client_drop(i);
		return;
	}
	for (;;) {
		sbi_msg req;
		sbi_msg_init(&req);
		int fds[SBI_MAX_FDS], nfds = SBI_MAX_FDS;
		int r = sbi_reader_take(&clients[i].rd, &req, fds, &nfds);
		if (r == 0)
			return;
		if (r < 0) {
			sbi_log("malformed request from host; closing the connection");
			client_drop(i);
			return;
		}
		handle(st, clients[i].fd, &req, fds, nfds);
		sbi_msg_deinit(&req);
	}
}

static void accept_clients(int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			return; /* EAGAIN: the listening socket is non-blocking */
		if (nclients == clients_cap) {
			int cap = clients_cap ? clients_cap * 2 : 64;
			client *grown = cap <= MAX_CLIENTS
			                    ? realloc(clients, (size_t)cap * sizeof *grown)
			                    : NULL;
			if (!grown) {
				sbi_log("refusing a host connection: %d open already", nclients);
				close(fd);
				continue;
			}
			clients = grown;
			clients_cap = cap;
		}
		struct timeval tv = {2, 0};
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
		clients[nclients].fd = fd;
		sbi_reader_init(&clients[nclients].rd);
		nclients++;
	}
}

/* The creator watch (--owner-fd): a socket whose other end only the creating process holds.
 * 'D' means it let go on purpose (a kept lease); end of file without it means it died. Then the
 * sandbox has no owner: every process is stopped (TERM, KILL after a grace) and init exits,
 * which ends the sandbox. The workspace lives on the host and stays, with the lease (§9.6). */
#define OWNER_GRACE_MS 2000

static void owner_died(void)
{
	sbi_log("the process that created this sandbox is gone: stopping every process; the "
	        "workspace is kept");
	kill(-1, SIGTERM);
	int64_t until = sbi_mono_ms() + OWNER_GRACE_MS;
	while (sbi_mono_ms() < until) {
		pid_t p = waitpid(-1, NULL, WNOHANG);
		if (p < 0 && errno == ECHILD)
			break;
		if (p <= 0)
			usleep(20000);
	}
	kill(-1, SIGKILL);
	_exit(0);
}

static int owner_readable(int fd)
{
	char c[16];
	ssize_t n;
	do
		n = read(fd, c, sizeof c);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return fd;
	if (n > 0 && memchr(c, 'D', (size_t)n)) {
		close(fd); /* released: the sandbox now lives on its own (a kept lease) */
		return -1;
	}
	if (n > 0)
		return fd;
	owner_died();
	return -1;
}

static void usage_exit(const char *why)
{
	sbi_log("%s (usage: sandbar-init --ctl-fd N --spool-fd N --seccomp-fd N [--ready-fd N] "
	        "[--oom-fd N] [--owner-fd N] [--nofile N] [--nproc N] [--spool-max N]); this "
	        "program is started "
	        "by sandbar",
	        why);
	_exit(2);
}

int main(int argc, char **argv)
{
	sbi_state st = {
	    .spool_fd = -1, .oom_fd = -1, .nofile = 4096, .nproc = 4096, .spool_max = 1ull << 30};
	int ctl = -1, ready = -1, seccomp = -1, owner = -1;
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];
		if (strcmp(k, "--ctl-fd") == 0)
			ctl = parse_fd_arg(v);
		else if (strcmp(k, "--spool-fd") == 0)
			st.spool_fd = parse_fd_arg(v);
		else if (strcmp(k, "--ready-fd") == 0)
			ready = parse_fd_arg(v);
		else if (strcmp(k, "--seccomp-fd") == 0)
			seccomp = parse_fd_arg(v);
		else if (strcmp(k, "--oom-fd") == 0)
			st.oom_fd = parse_fd_arg(v);
		else if (strcmp(k, "--owner-fd") == 0)
			owner = parse_fd_arg(v);
		else if (strcmp(k, "--nofile") == 0)
			st.nofile = strtoull(v, NULL, 10);
		else if (strcmp(k, "--nproc") == 0)
			st.nproc = strtoull(v, NULL, 10);
		else if (strcmp(k, "--spool-max") == 0)
			st.spool_max = strtoull(v, NULL, 10);
		else
			usage_exit("unknown argument");
	}
	if (ctl < 0 || st.spool_fd < 0 || seccomp < 0)
		usage_exit("missing descriptors");
	/* Opened now: once we are non-dumpable, /proc/self is root's (see sbi_exec_start). */
	st.oom_adj_fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	/* Sandboxed commands run under our uid: being non-dumpable puts /proc/1/{fd,mem,environ}
	 * and ptrace out of their reach. Everything inherited must not leak into commands. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
		sbi_log("prctl(PR_SET_DUMPABLE): %s", strerror(errno));
		_exit(1);
	}
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
		for (int fd = 3; fd < 1024; fd++)
			fcntl(fd, F_SETFD, FD_CLOEXEC);
	}
	/* every running exec holds several descriptors here (pipes, spool files, connections):
	 * use all the hard limit allows */
	struct rlimit nof;
	if (getrlimit(RLIMIT_NOFILE, &nof) == 0 && nof.rlim_cur < nof.rlim_max) {
		nof.rlim_cur = nof.rlim_max;
		setrlimit(RLIMIT_NOFILE, &nof);
	}
	if (sbi_exec_setup(&st) < 0) {
		sbi_log("preparing command limits: %s", strerror(errno));
		_exit(1);
	}
	if (load_seccomp(&st, seccomp) < 0) {
		sbi_log("reading the seccomp filter: %s", strerror(errno));
		_exit(1);
	}
	close(seccomp);
	/* Installed on init itself: every command inherits it through clone without the kernel
	 * compiling it again. Nothing init does is denied by it. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &st.seccomp) < 0) {
		sbi_log("installing the seccomp filter: %s", strerror(errno));
		_exit(1);
	}
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	/* SIGPIPE blocked too (not ignored, which commands would inherit): a host that went away
	 * leaves the wake pipe and the exit message without a reader; the writes just fail.
	 * Commands start with an empty mask. */
	sigaddset(&mask, SIGPIPE);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	if (sfd < 0 || fcntl(ctl, F_SETFL, O_NONBLOCK) < 0 ||
	    (owner >= 0 && fcntl(owner, F_SETFL, O_NONBLOCK) < 0)) {
		sbi_log("setting up the event loop: %s", strerror(errno));
		_exit(1);
	}
	int records = sbi_records_start();
	if (records < 0) {
		sbi_log("starting the record writer: %s", strerror(errno));
		_exit(1);
	}
	if (ready >= 0) {
		(void)!write(ready, "R", 1);
		close(ready);
	}
	struct pollfd *pfds = NULL;
	size_t pcap = 0;
	for (;;) {
		size_t n = 0, want = 4 + (size_t)nclients + sbi_forward_count();
		for (sbi_exec *x = st.execs; x; x = x->next)
			want += 2;
		if (want > pcap) {
			pcap = want * 2;
			pfds = realloc(pfds, pcap * sizeof *pfds);
			if (!pfds) {
				sbi_log("out of memory");
				_exit(1);
			}
		}
		pfds[n++] = (struct pollfd){ctl, POLLIN, 0};
		pfds[n++] = (struct pollfd){sfd, POLLIN, 0};
		pfds[n++] = (struct pollfd){records, POLLIN, 0};
		for (int i = 0; i < nclients; i++)
			pfds[n++] = (struct pollfd){clients[i].fd, POLLIN, 0};
		for (sbi_exec *x = st.execs; x; x = x->next)
			for (int s = 0; s < 2; s++)
				pfds[n++] = (struct pollfd){x->pipe[s], POLLIN, 0};
		size_t fwd_at = n;
		n += sbi_forward_pollfds(pfds + n);
		size_t owner_at = n;
		if (owner >= 0)
			pfds[n++] = (struct pollfd){owner, POLLIN, 0};
		int timeout = sbi_exec_timeouts(&st);
		int rc = poll(pfds, (nfds_t)n, timeout);
		if (rc < 0 && errno != EINTR) {
			sbi_log("poll: %s", strerror(errno));
			usleep(10000);
			continue;
		}
		if (rc <= 0)
			continue;
		if (owner >= 0 && pfds[owner_at].revents)
			owner = owner_readable(owner);
		/* output first, so a reaped exec's status comes after all its bytes */
		size_t k = 3 + (size_t)nclients;
		for (sbi_exec *x = st.execs; x; x = x->next)
			for (int s = 0; s < 2; s++, k++)
				if (pfds[k].revents && x->pipe[s] == pfds[k].fd)
					sbi_exec_pump(&st, x, s);
		if (pfds[1].revents) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof si) > 0)
				;
			sbi_exec_reap(&st);
		}
		if (pfds[2].revents)
			sbi_records_reap();
		for (int i = nclients - 1; i >= 0; i--)
			if (pfds[3 + i].revents)
				client_readable(&st, i);
		if (pfds[0].revents)
			accept_clients(ctl);
		/* after the clients: a dropped attachment must not receive connections */
		sbi_forward_ready(pfds + fwd_at);
		sbi_exec_gc(&st);
	}
}
