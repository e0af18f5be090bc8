/* Helpers for the cli tests: each test gets a private root (0755, so the sandbox user can reach
 * the state directory under it), a workspace and a state directory, and drives the real
 * `sandbar` binary as a subprocess with its stdout and stderr captured in files.
 *
 * Every cli test runs in the one fixture CLIT_TEST gives it (clit_setup/clit_teardown): the
 * teardown also runs after a failed assertion, stops every sandbar the test started and did not
 * wait for (a `sandbar serve` included), destroys the leases in every state directory under the
 * root, and only then removes the root. A test process that dies outright takes its children
 * with it (PR_SET_PDEATHSIG). */
#ifndef SB_CLITEST_H
#define SB_CLITEST_H

#include <sys/types.h>

#include "testutil.h"

typedef struct clit {
	char *root;  /* private temp dir, removed by clit_fini */
	char *state; /* root/state: SANDBAR_STATE_DIR of every run */
	char *ws;    /* root/ws: an empty workspace */
	char *bin;   /* the sandbar binary */
	unsigned seq;
	pid_t live[16]; /* started and not yet waited for: stopped by clit_fini */
} clit;

typedef struct clit_res {
	int code; /* exit code; -N when sandbar itself died of signal N */
	char *out, *err;
} clit_res;

/* Argument and environment lists: NULL-terminated. env entries are "K=V" (set) or "K" (unset),
 * applied after the defaults (SANDBAR_STATE_DIR=state, SANDBAR_CONFIG=<missing file>, other
 * SANDBAR_* unset). */
#define CLIT_V(...) ((const char *const[]){__VA_ARGS__, NULL})

void clit_init(clit *t);
/* Stops the processes still live, destroys every lease left in any state directory under the
 * root (t->state and the ones a test made, a daemon's included), removes the root. */
void clit_fini(clit *t);
/* The cmocka fixture every cli test uses: *state is the test's clit. */
int clit_setup(void **state);
int clit_teardown(void **state);
#define CLIT_TEST(f) cmocka_unit_test_setup_teardown(f, clit_setup, clit_teardown)
/* Record / forget a child the test started by other means (a pty): clit_fini stops it. */
void clit_track(clit *t, pid_t pid);
void clit_untrack(clit *t, pid_t pid);
/* Send sig to a started process, wait for it (at most 30 s, then KILL) and forget it; returns
 * its wait status. */
int clit_stop(clit *t, pid_t pid, int sig);
/* Destroys every lease in state_dir (for daemons' state directories too). */
void clit_destroy_leases(clit *t, const char *state_dir);

/* Run sandbar with args (without argv[0]) and wait for it. */
int clit_run(clit *t, clit_res *r, const char *const *env, const char *const *args);
/* The same with input as its standard input (instead of /dev/null). */
int clit_run_stdin(clit *t, clit_res *r, const char *input, const char *const *env,
                   const char *const *args);
void clit_res_free(clit_res *r);

/* Start sandbar without waiting; stdout/stderr go to the returned paths (malloc'd). */
typedef struct clit_proc {
	pid_t pid;
	char *out_path, *err_path;
} clit_proc;
void clit_start(clit *t, clit_proc *p, const char *const *env, const char *const *args);
/* Wait (at most 60 s, then KILL and fail) and collect; frees the paths. */
int clit_finish(clit *t, clit_proc *p, clit_res *r);
/* Poll (at most 30 s) until the file at path contains needle; fails the test otherwise. */
void clit_wait_for(const char *path, const char *needle);
/* Poll (at most 30 s) until the glob pattern matches exactly one path; returns it. */
char *clit_wait_glob(const char *pattern);

/* `sandbar lease acquire` (must succeed): the new lease's id, malloc'd. */
char *clit_acquire(clit *t);
/* Lease id's object in `sandbar lease list --json` (a new reference), or NULL when unlisted. */
json_t *clit_find_lease(clit *t, const char *id);

/* Parse text as one JSON object (fails the test when it is not). */
json_t *clit_json(const char *text);
/* Whether the JSON array of strings arr holds exactly the given strings, in any order. */
bool clit_json_set_eq(json_t *arr, const char *const *want);

/* Extract the first token after marker in text (up to whitespace or a quote); malloc'd. */
char *clit_word_after(const char *text, const char *marker);

#endif
