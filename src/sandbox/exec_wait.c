/* Waiting for an exec to change (exec.c): the wake pipe init writes a byte to on output and at
 * the exit (execs started by this process), else an inotify watch on its spool directory; a
 * sandbox that died is noticed while waiting (sb_exec_check_alive). */
#include "exec_int.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

static sb_err *ensure_watch(sb_sandbox_exec *x, bool *created)
{
	*created = false;
	if (x->ino >= 0)
		return NULL;
	char *dir = sb_strfmt("%s/%s", x->sb->spool_dir, x->id);
	x->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	sb_err *err = NULL;
	if (x->ino < 0 ||
	    inotify_add_watch(x->ino, dir, IN_MODIFY | IN_MOVED_TO | IN_CREATE | IN_DELETE_SELF) <
	        0)
		err = sb_err_sys(errno, "watching %s", dir);
	free(dir);
	if (err)
		sb_close(&x->ino);
	else
		*created = true;
	return err;
}

int sb_sandbox_exec_fd(sb_sandbox_exec *x)
{
	if (x->wake >= 0)
		return x->wake;
	bool created;
	sb_err *err = ensure_watch(x, &created);
	if (err) {
		sb_warn("%s", err->msg);
		sb_err_free(err);
		return -1;
	}
	return x->ino;
}

/* Does one inotify event matter to readers: output grew or the status record was replaced
 * (the temp file init writes before renaming does not). */
static bool event_relevant(const struct inotify_event *ev)
{
	if (ev->mask & (IN_DELETE_SELF | IN_IGNORED | IN_Q_OVERFLOW))
		return true;
	if (ev->len == 0)
		return false;
	if (ev->mask & IN_MOVED_TO)
		return strcmp(ev->name, "status.json") == 0;
	if (ev->mask & IN_CREATE)
		return false; /* the first byte follows as IN_MODIFY */
	return strcmp(ev->name, "stdout") == 0 || strcmp(ev->name, "stderr") == 0;
}

static bool drain_events(int ino)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool any = false;
	for (;;) {
		ssize_t n = read(ino, buf, sizeof buf);
		if (n <= 0)
			return any;
		for (ssize_t off = 0; off < n;) {
			const struct inotify_event *ev = (const void *)(buf + off);
			any |= event_relevant(ev);
			off += (ssize_t)(sizeof *ev + ev->len);
		}
	}
}

/* Empty the wake pipe; at its end of file (init is gone) force a liveness check. */
static bool drain_wake(sb_sandbox_exec *x)
{
	char buf[256];
	bool any = false;
	for (;;) {
		ssize_t n = read(x->wake, buf, sizeof buf);
		if (n > 0) {
			any = true;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0) {
			sb_close(&x->wake);
			x->alive_checked_ms = 0;
			any = true;
		}
		return any;
	}
}

sb_err *sb_sandbox_exec_wait(sb_sandbox_exec *x, int64_t timeout_ms, bool *changed)
{
	if (changed)
		*changed = false;
	int fd = x->wake;
	if (fd < 0) {
		bool created = false;
		sb_err *werr = ensure_watch(x, &created);
		if (werr && werr->sys_errno == ENOENT) {
			/* No spool directory: init makes it on first need, or the sandbox died
			 * before it could. Tell the two apart, then poll briefly (the caller
			 * re-reads after any wake-up, spurious ones included). */
			sb_err_free(werr);
			x->alive_checked_ms = 0;
			sb_err *lost = sb_exec_check_alive(x);
			if (lost)
				return lost;
			sb_sleep_ms(timeout_ms >= 0 && timeout_ms < 25 ? timeout_ms : 25);
			if (changed)
				*changed = true;
			return NULL;
		}
		if (werr)
			return werr;
		if (created) {
			if (changed)
				*changed = true;
			return NULL;
		}
		fd = x->ino;
	}
	int64_t deadline = timeout_ms < 0 ? -1 : sb_mono_ms() + timeout_ms;
	for (;;) {
		int64_t left = deadline < 0 ? -1 : deadline - sb_mono_ms();
		if (deadline >= 0 && left < 0)
			left = 0;
		struct pollfd p = {fd, POLLIN, 0};
		int rc = poll(&p, 1, left > INT32_MAX ? INT32_MAX : (int)left);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			return sb_err_sys(errno, "waiting for exec %s", x->id);
		if (rc == 0)
			return NULL;
		bool any = fd == x->wake ? drain_wake(x) : drain_events(x->ino);
		if (any) {
			if (changed)
				*changed = true;
			return NULL;
		}
	}
}
