/* Output following for `sandbar exec` and `sandbar logs` (see exec_follow.h), on the sandbox
 * layer's one follower: it reads the spool, so it works the same for an exec started a second
 * ago and for one that finished before a restart. */
#include "exec_follow.h"

#include "cli.h"

static sb_err *to_our_fds(void *ud, sb_stream stream, uint64_t offset, const char *data, size_t len)
{
	(void)ud;
	(void)offset;
	/* A closed terminal must not stop the follow loop from finishing cleanly. */
	sb_err_free(sb_write_all(stream == SB_STREAM_STDOUT ? 1 : 2, data, len));
	return NULL;
}

sb_err *cli_exec_follow(sb_sandbox_exec *x, unsigned streams, uint64_t out_offset,
                        uint64_t err_offset, bool follow, sb_sandbox_exec_status *st)
{
	sb_exec_cursor c = {.streams = ((streams & 1) ? 1u << SB_STREAM_STDOUT : 0) |
	                               ((streams & 2) ? 1u << SB_STREAM_STDERR : 0)};
	c.off[SB_STREAM_STDOUT] = out_offset;
	c.off[SB_STREAM_STDERR] = err_offset;
	for (;;) {
		bool finished = false;
		sb_err *err = sb_sandbox_exec_follow(x, &c, 0, follow ? 1000 : 0, to_our_fds, NULL,
		                                     &finished, st);
		if (err || finished || !follow)
			return err;
	}
}
