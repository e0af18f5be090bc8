/* base.proc: a process's start time names it while it lives; an ended process (a zombie not
 * yet reaped, or reaped) has none, so a recorded pid is never taken for a living owner. */
#include "testutil.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Wait (bounded) until pid is a zombie: its /proc stat says Z. */
static void wait_zombie(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	for (int i = 0; i < 5000; i++) {
		sb_buf b = SB_BUF_INIT;
		sb_err *err = sb_read_file(path, 4096, &b);
		const char *p = err ? NULL : strrchr(sb_buf_cstr(&b), ')');
		bool zombie = p && p[1] == ' ' && p[2] == 'Z';
		sb_err_free(err);
		sb_buf_deinit(&b);
		if (zombie)
			return;
		usleep(1000); /* polling: nothing signals a child's becoming a zombie but SIGCHLD,
		               * which the test must not consume (it would reap) */
	}
	fail_msg("child %d never became a zombie", (int)pid);
}

static void living_process_has_a_stable_start_time(void **state)
{
	(void)state;
	long long self = sb_proc_start_time(getpid());
	assert_true(self > 0);
	assert_true(sb_proc_start_time(getpid()) == self);
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char c;
		close(p[1]);
		(void)!read(p[0], &c, 1); /* lives until the parent closes the pipe */
		_exit(0);
	}
	close(p[0]);
	long long child = sb_proc_start_time(pid);
	assert_true(child >= self);
	assert_true(sb_proc_start_time(pid) == child);
	close(p[1]);
	wait_zombie(pid);
	assert_true(sb_proc_start_time(pid) == -1); /* ended, though not yet reaped */
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(sb_proc_start_time(pid) == -1);
}

static void no_such_process_has_none(void **state)
{
	(void)state;
	assert_true(sb_proc_start_time(0) == -1);
	assert_true(sb_proc_start_time(-5) == -1);
	assert_true(sb_proc_start_time(0x3fffffff) == -1); /* above any pid_max */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(living_process_has_a_stable_start_time),
	    cmocka_unit_test(no_such_process_has_none),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
