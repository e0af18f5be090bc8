/* sandbar-init: spooling an exec's output (exec.c starts the commands): the pipes' bytes go
 * to spool/<id>/stdout and stderr, created with the first byte. Past the spool limit, or
 * after a write failed (a full disk), the rest is read and dropped, never written after a
 * gap, and the exec says its output was cut. */
#include "init.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static const char *const stream_names[2] = {"stdout", "stderr"};

static bool ensure_file(const sbi_state *st, sbi_exec *x, int s)
{
	if (x->file[s] >= 0)
		return true;
	if (!sbi_exec_ensure_dir(st, x))
		return false;
	x->file[s] = openat(x->dirfd, stream_names[s], O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (x->file[s] < 0)
		sbi_log("exec %s: creating %s: %s", x->id, stream_names[s], strerror(errno));
	return x->file[s] >= 0;
}

/* A spool write failed (the disk is full, a quota): what the command writes from here on is
 * read and dropped, never written after a gap, and the exec says its output was cut. */
static void spool_failed(sbi_exec *x, int s, int err)
{
	if (!x->spool_failed[s])
		sbi_log("exec %s: spooling its %s: %s; the rest of it is dropped", x->id,
		        s ? "stderr" : "stdout", strerror(err));
	x->spool_failed[s] = true;
	x->truncated[s] = true;
}

static void spool_write(sbi_exec *x, int s, const char *buf, ssize_t n)
{
	ssize_t done = 0;
	while (done < n) {
		ssize_t w = pwrite(x->file[s], buf + done, (size_t)(n - done), x->off[s]);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			spool_failed(x, s, w < 0 ? errno : ENOSPC);
			return;
		}
		done += w;
		x->off[s] += w;
	}
}

/* Copy what the pipe holds into the spool file: splice (no copy through user space), falling
 * back to read+pwrite on file systems that refuse splice. Bounded per call so one chatty
 * command cannot starve the loop. */
/* Past the spool limit, output is read and dropped: the command must not block on a full
 * pipe, and the disk must not fill up. */
static ssize_t discard(sbi_exec *x, int s)
{
	char buf[65536];
	ssize_t n = read(x->pipe[s], buf, sizeof buf);
	if (n > 0)
		x->truncated[s] = true;
	return n;
}

void sbi_exec_pump(sbi_state *st, sbi_exec *x, int s)
{
	size_t budget = 8u << 20, moved = 0;
	while (x->pipe[s] >= 0 && budget > 0) {
		int avail = 0;
		if (ioctl(x->pipe[s], FIONREAD, &avail) < 0)
			avail = 0;
		ssize_t n;
		unsigned long long room = (unsigned long long)x->off[s] >= st->spool_max
		                              ? 0
		                              : st->spool_max - (unsigned long long)x->off[s];
		if (avail > 0 && (room == 0 || x->spool_failed[s])) {
			n = discard(x, s);
		} else if (avail == 0) {
			/* empty: end of file, or nothing yet (or a byte that raced in) */
			char c;
			n = read(x->pipe[s], &c, 1);
			if (n == 1 && (room == 0 || x->spool_failed[s])) {
				x->truncated[s] = true;
				continue;
			}
			if (n == 1 && ensure_file(st, x, s)) {
				spool_write(x, s, &c, 1);
				continue;
			}
			if (n == 1) {
				x->truncated[s] = true;
				continue;
			}
		} else if (!ensure_file(st, x, s)) {
			n = discard(x, s); /* nowhere to spool it: the command must not block */
		} else {
			size_t want =
			    (unsigned long long)avail < room ? (size_t)avail : (size_t)room;
			n = splice(x->pipe[s], NULL, x->file[s], &x->off[s], want,
			           SPLICE_F_NONBLOCK);
			if (n < 0 && errno == EINVAL) {
				char buf[65536];
				n = read(x->pipe[s], buf, want < sizeof buf ? want : sizeof buf);
				if (n > 0)
					spool_write(x, s, buf, n);
			} else if (n < 0 && errno != EINTR && errno != EAGAIN) {
				/* the file side failed (ENOSPC, EDQUOT, EFBIG, EIO): the pipe
				 * still holds the command's output, drop it from now on */
				spool_failed(x, s, errno);
				continue;
			}
		}
		if (n > 0) {
			budget = (size_t)n >= budget ? 0 : budget - (size_t)n;
			moved += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0 && errno != EIO) /* EIO: a terminal whose slave side is closed */
			sbi_log("exec %s: spooling: %s", x->id, strerror(errno));
		close(x->pipe[s]); /* EOF (or a broken pipe): no writer is left */
		x->pipe[s] = -1;
	}
	if (moved && !x->exited)
		sbi_exec_wake_watchers(x); /* after the exit, the exit path wakes them itself */
}
