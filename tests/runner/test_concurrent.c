/* Many executions at once on one local runner: 100 commands from 4 threads, each with its own
 * stdin and output, none seeing another's pipes, and no descriptor left behind. */
#include "rt.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 4
#define PER_THREAD 25

static sb_runner *runner;

typedef struct worker {
	int id;
	int ok;
	char failure[256];
} worker;

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	int n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void *work(void *arg)
{
	worker *w = arg;
	for (int i = 0; i < PER_THREAD; i++) {
		char tag[32];
		snprintf(tag, sizeof(tag), "t%d-c%d", w->id, i);
		char *input = sb_strfmt("stdin of %s\n", tag);
		/* The child lists its own descriptors too: only 0 1 2 may be open. */
		char *const argv[] = {
		    "sh",
		    "-c",
		    "echo \"$1\"; cat; echo \"$1\" >&2; ls /proc/self/fd | tr '\\n' ' '",
		    "sh",
		    tag,
		    NULL};
		sb_exec_request req = {.argv = argv,
		                       .has_stdin = true,
		                       .stdin_data = input,
		                       .stdin_len = strlen(input)};
		sb_exec_result res;
		sb_exec_result_init(&res);
		sb_err *err = sb_runner_execute(runner, &req, NULL, NULL, &res);
		char *want_out = sb_strfmt("%s\n%s0 1 2 3 ", tag, input);
		char *want_err = sb_strfmt("%s\n", tag);
		if (err)
			snprintf(w->failure, sizeof(w->failure), "%s: %s", tag, err->msg);
		else if (!sb_exec_result_ok(&res) || strcmp(sb_buf_cstr(&res.out), want_out) != 0 ||
		         strcmp(sb_buf_cstr(&res.err), want_err) != 0)
			snprintf(w->failure, sizeof(w->failure), "%s: exit %d out [%s] err [%s]",
			         tag, res.exit_code, sb_buf_cstr(&res.out), sb_buf_cstr(&res.err));
		else
			w->ok++;
		sb_err_free(err);
		sb_exec_result_deinit(&res);
		free(want_out);
		free(want_err);
		free(input);
	}
	return NULL;
}

static void hundred_commands_from_four_threads(void **state)
{
	(void)state;
	runner = sb_local_runner_new(NULL);
	int fds_before = count_fds();
	pthread_t t[THREADS];
	worker w[THREADS];
	for (int i = 0; i < THREADS; i++) {
		w[i] = (worker){.id = i};
		assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
	}
	int total = 0;
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		if (w[i].failure[0])
			print_error("%s\n", w[i].failure);
		total += w[i].ok;
	}
	assert_int_equal(total, THREADS * PER_THREAD);
	assert_int_equal(count_fds(), fds_before);
	sb_runner_free(runner);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(hundred_commands_from_four_threads),
	};
	return cmocka_run_group_tests_name("runner.concurrent", tests, NULL, NULL);
}
