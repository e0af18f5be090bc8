/* Shared fixtures of the runtime tests: the real runners the suite runs through (local, and
 * prefix `sh -c` so the shell path is exercised), a recording wrapper that counts calls, stdin
 * and stdout of any runner (and can hide capabilities or add environment), sinks that collect
 * lines, and tree comparison helpers.
 */
#ifndef SB_TEST_RUNTIME_HARNESS_H
#define SB_TEST_RUNTIME_HARNESS_H

#include "testutil.h"

#include <sandbar/runner.h>
#include <sandbar/runtime.h>

typedef enum rth_kind {
	RTH_LOCAL,
	RTH_PREFIX, /* prefix {"sh", "-c"}, prefix_is_shell */
} rth_kind;

/* The runner kind the current group runs through (set by rth_run_both). */
extern rth_kind rth_current;
/* Whether this run restores incrementally (SANDBAR_SYNC=incremental or checksum: the sync.runtime_*
 * registrations), where a restore lists the remote tree and fetches a selection with stdin. */
bool rth_incremental(void);
/* Whether a native runner with SB_RUNNER_CAP_DELTA syncs incrementally: unless SANDBAR_SYNC=full
 * (the default, auto, is incremental there). */
bool rth_incremental_native(void);

/* A real runner of the current kind. file_transfer only applies to the local runner. */
sb_runner *rth_runner(bool file_transfer);
const char *rth_kind_name(rth_kind k);

typedef struct rth_call {
	char *script; /* argv[2] of `sh -c <script>`, or "sync_in <dir>" / "sync_out <dir>" */
	char *cwd;
	bool has_stdin;
	size_t stdin_len;
	size_t stdout_len;
} rth_call;

typedef struct rth_rec rth_rec;

/* Wrap inner (ownership taken): caps are inner's minus caps_clear. */
sb_runner *rth_rec_new(sb_runner *inner, unsigned caps_clear, rth_rec **out);
size_t rth_rec_count(rth_rec *r);
const rth_call *rth_rec_call(rth_rec *r, size_t i);
void rth_rec_reset(rth_rec *r);
/* Add one "KEY=VALUE" to every request. */
void rth_rec_add_env(rth_rec *r, const char *kv);
size_t rth_rec_count_containing(rth_rec *r, const char *needle);
size_t rth_rec_count_stdin(rth_rec *r);
size_t rth_rec_max_stdin(rth_rec *r);
size_t rth_rec_max_stdout(rth_rec *r);

/* Collected sink output. */
typedef struct rth_lines {
	char **lines;  /* progress lines */
	char **status; /* "phase|message" */
} rth_lines;

sb_runtime_progress_sink rth_progress_sink(rth_lines *l);
sb_runtime_status_sink rth_status_sink(rth_lines *l);
void rth_lines_free(rth_lines *l);
size_t rth_strv_count_containing(char **v, const char *needle);
size_t rth_strv_count_equal(char **v, const char *s);

/* Byte-exact comparison of two trees (names, kinds, permission bits, contents, link targets),
 * skipping the top-level names in skip (NULL-terminated, may be NULL). */
void rth_assert_trees_equal(const char *a, const char *b, const char *const *skip);
bool rth_exists(const char *dir, const char *rel);
void rth_assert_file(const char *dir, const char *rel, const char *content);

/* A prepare/restore scenario: a local workspace directory, a "remote" base directory holding
 * the remote workspace ws = base/ws, a directory outside both (for escape checks), a runner of
 * the current kind (wrapped in a recorder when record is set) and, once prepared, the runtime. */
typedef struct rth_env {
	char *local, *base, *ws, *outside;
	sb_runner *runner;
	rth_rec *rec; /* NULL unless recorded */
	sb_runtime *rt;
} rth_env;

/* Prepare a runtime with the defaults (adapter "claude") from local into the remote ws. */
sb_runtime *rth_prepare(sb_runner *runner, const char *local, const char *ws);

void rth_env_init(rth_env *e, bool record);
/* Prepare the runtime (adapter "claude") from local into ws. */
void rth_env_prepare(rth_env *e);
/* Free the runtime and runner, remove the directories. */
void rth_env_free(rth_env *e);

/* Run the group once per runner kind. */
int rth_run_both(const char *name, const struct CMUnitTest *tests, size_t n);

#endif
