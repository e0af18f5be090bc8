/* Helpers for the runner tests: argv literals, running a request with its output captured
 * through the callbacks, and scratch files. */
#ifndef SB_RUNNER_RT_H
#define SB_RUNNER_RT_H

#include "testutil.h"

#include <sandbar/runner.h>

/* A NULL-terminated argv literal. */
#define RT_ARGV(...) ((char *const[]){__VA_ARGS__, NULL})

/* Everything the callbacks saw. */
typedef struct rt_capture {
	sb_buf out, err; /* every byte streamed, per stream */
	size_t chunks;
	int spawn_pid;
	int spawn_calls;
	char started_at[SB_ISO8601_LEN];
} rt_capture;

void rt_capture_init(rt_capture *c);
void rt_capture_deinit(rt_capture *c);
/* Callbacks that fill a capture (ud = the capture). */
sb_exec_callbacks rt_capture_callbacks(rt_capture *c);

/* Run argv with no stdin and default limits; the result must be initialised by the caller. */
sb_err *rt_run(sb_runner *r, char *const *argv, sb_exec_result *res);
/* Run `sh -c script` and assert it ran; returns the result (caller deinits). */
void rt_sh(sb_runner *r, const char *script, sb_exec_result *res);

/* A scratch file under /tmp holding the bytes; malloc'd path (unlink and free it). */
char *rt_tmpfile(const void *p, size_t n);
/* A scratch directory under /tmp; malloc'd path (remove with rt_rmdir). */
char *rt_tmpdir(void);
void rt_rmdir(char *dir);

#endif
