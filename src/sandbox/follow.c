/* The one follower of an exec's output (see sb_sandbox_exec_follow in sandbox.h): reads the
 * spool from byte offsets, so a follower started late, after a disconnect or after a restart
 * gets exactly what it has not seen; inotify wakes it, and polling takes over when the host has
 * no inotify instance left (fs.inotify.max_user_instances, 128 by default, one per follower). */
#include "sandbox_int.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#define FOLLOW_CHUNK (256u * 1024u)
#define POLL_FALLBACK_MS 25

static bool wait_exhausted(const sb_err *err)
{
	static atomic_bool warned;
	bool out = err->code == SB_E_IO && (err->sys_errno == EMFILE || err->sys_errno == ENFILE ||
	                                    err->sys_errno == ENOSPC);
	if (out && !atomic_exchange(&warned, true))
		sb_warn("%s; following exec output by polling (raise "
		        "fs.inotify.max_user_instances or RLIMIT_NOFILE)",
		        err->msg);
	return out;
}

/* Hand what is available after the cursor to fn; *got_any says whether anything was. */
static sb_err *deliver(sb_sandbox_exec *x, sb_exec_cursor *c, size_t max_bytes,
                       sb_exec_output_fn fn, void *ud, bool *got_any)
{
	char *buf = sb_xmalloc(FOLLOW_CHUNK);
	size_t budget = max_bytes ? max_bytes : SIZE_MAX;
	sb_err *err = NULL;
	*got_any = false;
	for (int s = SB_STREAM_STDOUT; s <= SB_STREAM_STDERR && budget; s++) {
		if (!(c->streams & (1u << s)))
			continue;
		while (budget) {
			size_t want = budget < FOLLOW_CHUNK ? budget : FOLLOW_CHUNK;
			size_t got = 0;
			err = sb_sandbox_exec_read(x, (sb_stream)s, c->off[s], buf, want, &got);
			if (err)
				goto out;
			if (got == 0)
				break;
			err = fn(ud, (sb_stream)s, c->off[s], buf, got);
			c->off[s] += got;
			budget -= got;
			*got_any = true;
			if (err)
				goto out;
		}
	}
out:
	free(buf);
	return err;
}

sb_err *sb_sandbox_exec_follow(sb_sandbox_exec *x, sb_exec_cursor *c, size_t max_bytes,
                               int64_t max_wait_ms, sb_exec_output_fn fn, void *ud, bool *finished,
                               sb_sandbox_exec_status *st_out)
{
	*finished = false;
	sb_sandbox_exec_status st;
	int64_t deadline = sb_mono_ms() + (max_wait_ms > 0 ? max_wait_ms : 0);
	sb_err *err = NULL;
	for (bool first = true;; first = false) {
		if (!first) {
			int64_t left = deadline - sb_mono_ms();
			if ((err = sb_sandbox_exec_wait(x, left > 0 ? left : 0, NULL))) {
				if (!wait_exhausted(err))
					return err;
				sb_err_free(err);
				err = NULL;
				sb_sleep_ms(left < POLL_FALLBACK_MS ? (left > 0 ? left : 0)
				                                    : POLL_FALLBACK_MS);
			}
		}
		/* Status first: if it says finished, everything spooled before it is in the
		 * files, so an empty read afterwards really is the end. */
		if ((err = sb_sandbox_exec_status_of(x, &st)))
			return err;
		bool got = false;
		if ((err = deliver(x, c, max_bytes, fn, ud, &got)))
			return err;
		if (!got && !st.running)
			*finished = true;
		/* Wake-ups may be spurious (the first wait only sets up the watch): go on
		 * waiting until something came, the exec ended or the time is up. */
		if (got || *finished || sb_mono_ms() >= deadline)
			break;
	}
	if (st_out)
		*st_out = st;
	return NULL;
}
