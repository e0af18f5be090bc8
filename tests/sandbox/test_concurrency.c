/* One lease used from many threads at once: concurrent starts, streams and waits, each exec
 * getting exactly its own output and exit code. */
#include "sbx.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#define THREADS 8
#define EXECS_PER_THREAD 12

static sb_sandbox *sb;

typedef struct worker {
	int index;
	int failures;
	char what[256];
} worker;

static void *work(void *arg)
{
	worker *w = arg;
	for (int i = 0; i < EXECS_PER_THREAD; i++) {
		char script[128], want[64];
		int code = (w->index * EXECS_PER_THREAD + i) % 200;
		snprintf(script, sizeof script, "seq 1 %d | tail -n 1; exit %d", 1000 + code, code);
		snprintf(want, sizeof want, "%d\n", 1000 + code);
		char *argv[] = {"sh", "-c", script, NULL};
		sb_sandbox_exec_req req = {.argv = argv};
		sb_sandbox_exec *x = NULL;
		sb_err *err = sb_sandbox_exec_start(sb, &req, &x);
		sb_sandbox_exec_status st = {0};
		sb_buf out = SB_BUF_INIT;
		while (!err) {
			if ((err = sb_sandbox_exec_status_of(x, &st)))
				break;
			char buf[4096];
			size_t got = 0;
			do {
				if ((err = sb_sandbox_exec_read(x, SB_STREAM_STDOUT, out.len, buf,
				                                sizeof buf, &got)))
					break;
				sb_buf_append(&out, buf, got);
			} while (got);
			if (err || !st.running)
				break;
			err = sb_sandbox_exec_wait(x, 1000, NULL);
		}
		if (err) {
			snprintf(w->what, sizeof w->what, "%s", err->msg);
			sb_err_free(err);
			w->failures++;
		} else if (!st.has_exit_code || st.exit_code != code ||
		           strcmp(sb_buf_cstr(&out), want) != 0) {
			snprintf(w->what, sizeof w->what, "exec %d: code %d output %s", i,
			         st.exit_code, sb_buf_cstr(&out));
			w->failures++;
		}
		sb_buf_deinit(&out);
		sb_sandbox_exec_free(x);
	}
	return NULL;
}

static void many_threads_share_one_lease(void **s)
{
	(void)s;
	char *state = sbx_state_dir();
	sb = sbx_create(state, "conc", NULL);
	pthread_t th[THREADS];
	worker w[THREADS];
	for (int i = 0; i < THREADS; i++) {
		memset(&w[i], 0, sizeof w[i]);
		w[i].index = i;
		assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		if (w[i].failures)
			print_error("thread %d: %d failures, last: %s\n", i, w[i].failures,
			            w[i].what);
		assert_int_equal(w[i].failures, 0);
	}
	char **ids = NULL;
	SB_ASSERT_OK(sb_sandbox_exec_list(sb, &ids));
	assert_int_equal(sb_strv_len(ids), THREADS * EXECS_PER_THREAD);
	sb_strv_free(ids);
	SB_ASSERT_OK(sb_sandbox_destroy(sb));
	sbx_state_free(state);
}

static void hundreds_of_execs_run_at_once(void **s)
{
	(void)s;
	enum { N = 300 };
	char *state = sbx_state_dir();
	sb = sbx_create(state, "many", NULL);
	static sb_sandbox_exec *x[N];
	char *argv[] = {"sleep", "60", NULL};
	for (int i = 0; i < N; i++) {
		sb_sandbox_exec_req req = {.argv = argv};
		SB_ASSERT_OK(sb_sandbox_exec_start(sb, &req, &x[i]));
	}
	sb_sandbox_process *p = NULL;
	size_t n = 0;
	SB_ASSERT_OK(sb_sandbox_list_processes(sb, &p, &n));
	assert_int_equal(n, N);
	sb_sandbox_processes_free(p, n);
	for (int i = 0; i < N; i++)
		SB_ASSERT_OK(sb_sandbox_exec_signal(sb, sb_sandbox_exec_id(x[i]), SIGTERM));
	for (int i = 0; i < N; i++) {
		sbx_result r = {0};
		sbx_follow(x[i], &r);
		assert_int_equal(r.st.signal, SIGTERM);
		sbx_result_free(&r);
		sb_sandbox_exec_free(x[i]);
	}
	SB_ASSERT_OK(sb_sandbox_destroy(sb));
	sbx_state_free(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(many_threads_share_one_lease),
	    cmocka_unit_test(hundreds_of_execs_run_at_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
