/* Sandboxes outlive the process that created them: after a SIGKILL of the creator, a new
 * process re-adopts the sandbox, reads every byte of a streaming command and its exit code,
 * and finds the results of commands that finished while nobody was attached. Dead sandboxes
 * are reported as lost. */
#include "sbx.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char stream_script[] =
    "i=0; while [ $i -lt 60 ]; do seq $((i*1000)) $((i*1000+3000)); i=$((i+1)); "
    "sleep 0.02; done; echo done >&2; exit 7";

/* The creator: a child process that creates the lease, starts the commands, reports ready,
 * and then is killed mid-stream. */
static void creator(const char *state, int ready_fd)
{
	sb_sandbox_config cfg;
	sbx_config(&cfg, state);
	sb_sandbox *sb = NULL;
	sb_err *err = sb_sandbox_create(&cfg, "rec", NULL, &sb);
	char *long_argv[] = {"sh", "-c", (char *)stream_script, NULL};
	char *short_argv[] = {"sh", "-c", "sleep 0.3; echo late; exit 3", NULL};
	sb_sandbox_exec_req lr = {.argv = long_argv, .exec_id = "long"};
	sb_sandbox_exec_req sr = {.argv = short_argv, .exec_id = "short"};
	sb_sandbox_exec *x1 = NULL, *x2 = NULL;
	if (!err)
		err = sb_sandbox_exec_start(sb, &lr, &x1);
	if (!err)
		err = sb_sandbox_exec_start(sb, &sr, &x2);
	if (err) {
		fprintf(stderr, "creator: %s\n", err->msg);
		_exit(1);
	}
	(void)!write(ready_fd, "R", 1);
	for (;;) {
		/* stream like a daemon would, until killed */
		char buf[4096];
		size_t got = 0;
		static uint64_t off;
		sb_err_free(sb_sandbox_exec_read(x1, SB_STREAM_STDOUT, off, buf, sizeof buf, &got));
		off += got;
		sb_err_free(sb_sandbox_exec_wait(x1, 100, NULL));
	}
}

static void expected_sha(char out[SB_SHA256_HEX_LEN])
{
	char *cmd = sb_strfmt("sh -c '%s' 2>/dev/null | sha256sum", stream_script);
	FILE *f = popen(cmd, "r");
	free(cmd);
	assert_non_null(f);
	char line[128] = "";
	assert_non_null(fgets(line, sizeof line, f));
	pclose(f);
	memcpy(out, line, 64);
	out[64] = '\0';
}

static void recovers_streaming_exec_after_creator_is_killed(void **s)
{
	(void)s;
	char *state = sbx_state_dir();
	char want[SB_SHA256_HEX_LEN];
	expected_sha(want);
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		close(p[0]);
		creator(state, p[1]);
	}
	close(p[1]);
	char c = 0;
	assert_int_equal(read(p[0], &c, 1), 1);
	close(p[0]);
	/* kill the creator mid-stream: once some output exists, long before the end */
	char *out_path = sb_strfmt("%s/leases/rec/spool/long/stdout", state);
	struct stat st;
	for (int i = 0; i < 500 && (stat(out_path, &st) < 0 || st.st_size == 0); i++)
		sb_sleep_ms(5);
	assert_true(st.st_size > 0);
	free(out_path);
	assert_int_equal(kill(child, SIGKILL), 0);
	int ws = 0;
	assert_int_equal(waitpid(child, &ws, 0), child);
	assert_true(WIFSIGNALED(ws));

	/* a new process (this one) re-adopts the lease from the state directory */
	sb_sandbox_config cfg;
	sbx_config(&cfg, state);
	char **ids = NULL;
	SB_ASSERT_OK(sb_sandbox_list(&cfg, &ids));
	assert_int_equal(sb_strv_len(ids), 1);
	assert_string_equal(ids[0], "rec");
	sb_strv_free(ids);
	sb_sandbox *sb = NULL;
	SB_ASSERT_OK(sb_sandbox_open(&cfg, "rec", &sb));
	sb_sandbox_exec *x = NULL;
	SB_ASSERT_OK(sb_sandbox_exec_attach(sb, "long", &x));
	sbx_result r = {0};
	sbx_follow(x, &r);
	assert_true(r.st.has_exit_code);
	assert_int_equal(r.st.exit_code, 7);
	assert_string_equal(sb_buf_cstr(&r.err), "done\n");
	char got[SB_SHA256_HEX_LEN];
	sb_sha256_hex(r.out.data, r.out.len, got);
	assert_string_equal(got, want);
	/* reading resumes from any offset */
	char buf[100];
	size_t n = 0;
	SB_ASSERT_OK(sb_sandbox_exec_read(x, SB_STREAM_STDOUT, r.out.len - 100, buf, 100, &n));
	assert_int_equal(n, 100);
	assert_memory_equal(buf, r.out.data + r.out.len - 100, 100);
	sbx_result_free(&r);
	sb_sandbox_exec_free(x);

	/* the short command finished while nobody was attached: its result was kept */
	sb_sandbox_exec_status es;
	SB_ASSERT_OK(sb_sandbox_exec_status_by_id(sb, "short", &es));
	assert_false(es.running);
	assert_true(es.has_exit_code);
	assert_int_equal(es.exit_code, 3);
	assert_int_equal(es.stdout_size, 5);
	SB_ASSERT_OK(sb_sandbox_destroy(sb));
	SB_ASSERT_OK(sb_sandbox_list(&cfg, &ids));
	assert_int_equal(sb_strv_len(ids), 0);
	sb_strv_free(ids);
	sbx_state_free(state);
}

static void dead_sandbox_is_reported_lost_and_keeps_results(void **s)
{
	(void)s;
	char *state = sbx_state_dir();
	sb_sandbox *sb = sbx_create(state, "dead", NULL);
	sbx_result r;
	char *argv[] = {"sh", "-c", "echo before; exit 5", NULL};
	sb_sandbox_exec_req req = {.argv = argv, .exec_id = "first"};
	sb_sandbox_exec *x = NULL;
	SB_ASSERT_OK(sb_sandbox_exec_start(sb, &req, &x));
	memset(&r, 0, sizeof r);
	sbx_follow(x, &r);
	sbx_result_free(&r);
	sb_sandbox_exec_free(x);
	/* init's writer thread puts the record on disk a moment after announcing the exit:
	 * what survives init's own death is what reached the disk */
	char *spool = sb_strfmt("%s/leases/dead/spool/first", state);
	char *rec = NULL;
	for (int i = 0; i < 400; i++) {
		free(rec);
		rec = sbt_read(spool, "status.json", NULL);
		if (rec && strstr(rec, "\"running\":false"))
			break;
		sb_sleep_ms(5);
	}
	assert_non_null(rec);
	assert_non_null(strstr(rec, "\"running\":false"));
	free(rec);
	free(spool);
	char *sleeper[] = {"sleep", "300", NULL};
	sb_sandbox_exec_req sreq = {.argv = sleeper, .exec_id = "sleeper"};
	SB_ASSERT_OK(sb_sandbox_exec_start(sb, &sreq, &x));

	sb_sandbox_info info;
	sb_sandbox_get_info(sb, &info);
	int pfd = (int)syscall(SYS_pidfd_open, info.init_pid, 0);
	assert_true(pfd >= 0);
	assert_int_equal(kill(info.init_pid, SIGKILL), 0);
	struct pollfd pp = {pfd, POLLIN, 0};
	assert_int_equal(poll(&pp, 1, 10000), 1);
	close(pfd);

	/* the running exec can never finish: readers hear so instead of waiting forever */
	sb_sandbox_exec_status es;
	sb_err *err = NULL;
	for (int i = 0; i < 50 && !err; i++) {
		err = sb_sandbox_exec_status_of(x, &es);
		if (!err)
			sb_sleep_ms(50);
	}
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_STATE_LOST);
	sb_err_free(err);
	sb_sandbox_exec_free(x);
	sb_sandbox_close(sb);

	sb_sandbox_config cfg;
	sbx_config(&cfg, state);
	err = sb_sandbox_open(&cfg, "dead", &sb);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_STATE_LOST);
	sb_err_free(err);
	err = sb_sandbox_open(&cfg, "never-created", &sb);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_NOTFOUND);
	sb_err_free(err);

	SB_ASSERT_OK(sb_sandbox_open_dead(&cfg, "dead", &sb));
	SB_ASSERT_OK(sb_sandbox_exec_status_by_id(sb, "first", &es));
	assert_true(es.has_exit_code);
	assert_int_equal(es.exit_code, 5);
	err = sb_sandbox_exec_start(sb, &req, &x);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_STATE_LOST);
	sb_err_free(err);
	char *lease_dir = sb_strfmt("%s/leases/dead", state);
	SB_ASSERT_OK(sb_sandbox_destroy(sb));
	assert_int_not_equal(access(lease_dir, F_OK), 0);
	free(lease_dir);
	sbx_state_free(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(recovers_streaming_exec_after_creator_is_killed),
	    cmocka_unit_test(dead_sandbox_is_reported_lost_and_keeps_results),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
