/* The exec service: start a command in a lease, follow its output from any byte offset (live or
 * after a daemon restart, from sandbar-init's spool), collect a complete result, signal it.
 * Route layers decide the framing (native SSE with offsets, the bridge's plain chunks, JSON).
 */
#ifndef SB_SERVER_EXECS_H
#define SB_SERVER_EXECS_H

#include <sandbar/runner.h>
#include <sandbar/sandbox.h>

#include "leases.h"
#include "metrics.h"
#include "sb_json.h"

#define SBS_EXEC_MAX_ARGS 4096
#define SBS_EXEC_MAX_ENV 1024

/* What to run. Owned strings; free with sbs_exec_spec_deinit. */
typedef struct sbs_exec_spec {
	char **argv; /* argv, or {"sh", "-c", script} */
	char *cwd;   /* in-sandbox path, NULL = workspace */
	char **env;  /* "K=V" */
	bool clear_env;
	bool has_stdin;
	sb_buf stdin_data;
	/* kept open for POST .../stdin (exec_input.h) instead of stdin_data */
	bool stdin_stream;
	bool tty;                    /* a terminal (implies stdin_stream) */
	unsigned tty_rows, tty_cols; /* 0 = 24 x 80 */
	char *tty_term;              /* NULL = xterm */
	int64_t timeout_ms;
	char *exec_id; /* NULL = generated */
} sbs_exec_spec;       /* = {0} is an empty spec */

void sbs_exec_spec_deinit(sbs_exec_spec *s);
/* The native body: {"argv":[..]} or {"script":"..."}, "cwd", "env":{K:V}, "clear_env",
 * "stdin" (base64), "stdin_stream", "tty", "timeout_ms", "exec_id". SB_E_INVAL naming the
 * field. */
sb_err *sbs_exec_spec_from_json(const json_t *body, sbs_exec_spec *out);

typedef struct sbs_execs sbs_execs;
typedef struct sbs_exec sbs_exec;

sbs_execs *sbs_execs_new(sbs_metrics *m);
void sbs_execs_free(sbs_execs *xs);

/* Start spec in the lease (under a fence, so a destroy cannot cut in between); stdin is written
 * and closed before returning. SB_E_SPAWN when the command could not start. */
sb_err *sbs_execs_start(sbs_execs *xs, sbs_lease *l, const sbs_exec_spec *spec, sbs_exec **out);
/* Attach to an exec of the lease by id (running or finished, also after a restart). */
sb_err *sbs_execs_attach(sbs_execs *xs, sbs_lease *l, const char *exec_id, sbs_exec **out);
const char *sbs_exec_id(const sbs_exec *x);
sb_err *sbs_exec_status(sbs_exec *x, sb_sandbox_exec_status *st);
void sbs_exec_free(sbs_exec *x);
/* Same, but on the service's janitor thread: for connection threads, which should not wait for
 * the handle's teardown (an inotify close can take milliseconds) before their next request. */
void sbs_exec_release(sbs_exec *x);
/* The reply has read everything it will send from the exec's spool: a destroy need no longer
 * wait for this handle (the rest of the reply may still be on its way). Idempotent. */
void sbs_exec_spool_read(sbs_exec *x);

/* Read positions per stream; streams is a mask of (1 << SB_STREAM_STDOUT | 1 << SB_STREAM_STDERR).
 */
/* The sandbox layer's follower cursor and output callback (sb_sandbox_exec_follow). */
typedef sb_exec_cursor sbs_exec_cursor;
typedef sb_exec_output_fn sbs_output_fn;

/* Hand the output after the cursor to fn (at most max_bytes in this call, stdout before stderr
 * for what is available), advancing the cursor; when nothing is available, wait up to
 * max_wait_ms for more. *finished is set once the exec has ended and every byte of the selected
 * streams was delivered; st (optional) receives the latest status. */
sb_err *sbs_exec_pump(sbs_exec *x, sbs_exec_cursor *c, size_t max_bytes, int64_t max_wait_ms,
                      sbs_output_fn fn, void *ud, bool *finished, sb_sandbox_exec_status *st);

/* Read up to max bytes of a stream's spool at offset (fewer, or 0, at what is spooled so far). */
sb_err *sbs_exec_read(sbs_exec *x, sb_stream s, uint64_t offset, void *buf, size_t max,
                      size_t *got);
/* Wait for the exec to end, without reading its output; st receives the final status.
 * cancel may be NULL; SB_E_CANCELED when it is set first. */
sb_err *sbs_exec_wait_end(sbs_exec *x, sb_cancel *cancel, sb_sandbox_exec_status *st);

/* Wait for the end and gather the result (the last cap bytes per stream). cancel may be NULL. */
sb_err *sbs_exec_collect(sbs_exec *x, size_t cap, sb_cancel *cancel, sb_exec_result *res,
                         sb_sandbox_exec_status *st);

/* {"exec_id","running","exit_code","signal","timed_out","pid","started_at","finished_at",
 *  "stdout_bytes","stderr_bytes"} */
json_t *sbs_exec_status_json(const sb_sandbox_exec_status *st);
/* Every exec of lease l with a readable status (one whose record went away meanwhile is
 * left out), as a JSON array of sbs_exec_status_json objects. */
sb_err *sbs_execs_list_json(sbs_lease *l, json_t **out);

/* Reaper tick: forget started execs that finished (keeps the running gauge right). */
void sbs_execs_tick(sbs_execs *xs, sbs_leases *ls);

/* The open stdins of execs started with stdin_stream or tty (exec_input.h). */
struct sbs_exec_inputs *sbs_execs_inputs(sbs_execs *xs);

sb_err *sbs_execs_signal(sbs_execs *xs, sbs_lease *l, const char *exec_id, int signo);

#endif
