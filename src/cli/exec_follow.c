/* Output following for `sandbar exec` and `sandbar logs` (see exec_follow.h). Reads the spool
 * through the sandbox API, so it works the same for an exec started a second ago and for one
 * that finished before a restart. */
#include "exec_follow.h"

#include "cli.h"

#include <stdlib.h>

#define CHUNK (64 * 1024)

/* Copies everything available from *off onwards; returns whether anything was copied. */
static sb_err *drain(sb_sandbox_exec *x, sb_stream stream, int fd, uint64_t *off, char *buf,
		     bool *moved)
{
	for (;;) {
		size_t got = 0;
		sb_err *err = sb_sandbox_exec_read(x, stream, *off, buf, CHUNK, &got);
		if (err)
			return err;
		if (got == 0)
			return NULL;
		/* A closed terminal must not stop the follow loop from finishing cleanly. */
		sb_err_free(sb_write_all(fd, buf, got));
		*off += got;
		*moved = true;
	}
}

sb_err *cli_exec_follow(sb_sandbox_exec *x, unsigned streams, uint64_t out_offset,
			uint64_t err_offset, bool follow, sb_sandbox_exec_status *st)
{
	char *buf = sb_xmalloc(CHUNK);
	sb_err *err = NULL;
	for (;;) {
		/* Status first: output written before the exec finished is then surely in the
		 * spool when we drain below, so nothing is missed on the last round. */
		err = sb_sandbox_exec_status_of(x, st);
		if (err)
			break;
		bool moved = false;
		if (streams & 1)
			err = drain(x, SB_STREAM_STDOUT, 1, &out_offset, buf, &moved);
		if (!err && (streams & 2))
			err = drain(x, SB_STREAM_STDERR, 2, &err_offset, buf, &moved);
		if (err || !follow || !st->running)
			break;
		if (!moved)
			err = sb_sandbox_exec_wait(x, 1000, NULL);
		if (err)
			break;
	}
	free(buf);
	return err;
}
