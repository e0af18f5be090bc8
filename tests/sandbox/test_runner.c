/* The sandbox runner: runner.h on a real lease (streaming, stdin, timeouts, cancellation) and
 * its native file transfer straight through the host-side workspace, confined to it. */
#include "sbx.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sandbar/runner.h>

static char *state;
static sb_sandbox *sb;
static sb_runner *run;

static int setup(void **s)
{
	(void)s;
	state = sbx_state_dir();
	sb = sbx_create(state, "runner", NULL);
	SB_ASSERT_OK(sb_sandbox_runner_new(sb, NULL, &run));
	return 0;
}

static int teardown(void **s)
{
	(void)s;
	sb_runner_free(run);
	SB_ASSERT_OK(sb_sandbox_destroy(sb));
	sbx_state_free(state);
	return 0;
}

typedef struct seen {
	int pid;
	uint64_t stdin_done;
	sb_buf out, err;
	int chunks;
	int fail_after; /* return an error after this many chunks (0 = never) */
} seen;

static sb_err *on_spawn(void *ud, int pid, const char *started_at)
{
	seen *s = ud;
	s->pid = pid;
	assert_true(strlen(started_at) > 10);
	return NULL;
}

static sb_err *on_output(void *ud, sb_stream stream, const char *data, size_t len)
{
	seen *s = ud;
	sb_buf_append(stream == SB_STREAM_STDOUT ? &s->out : &s->err, data, len);
	if (s->fail_after && ++s->chunks >= s->fail_after)
		return sb_err_new(SB_E_CANCELED, "enough");
	return NULL;
}

static void stdin_progress(void *ud, uint64_t done, uint64_t total)
{
	seen *s = ud;
	assert_true(done > s->stdin_done && done <= total);
	s->stdin_done = done;
}

static void runner_reports_caps(void **s)
{
	(void)s;
	assert_string_equal(sb_runner_name(run), "sandbox");
	unsigned caps = sb_runner_caps(run);
	assert_true(caps & SB_RUNNER_CAP_STDIN);
	assert_true(caps & SB_RUNNER_CAP_STDIN_PROGRESS);
	assert_true(caps & SB_RUNNER_CAP_FILE_TRANSFER);
}

static void execute_streams_output_and_stdin(void **s)
{
	(void)s;
	size_t len = 1u << 20;
	char *data = sb_xmalloc(len);
	sbt_fill_random(data, len, 7);
	char *argv[] = {"sh", "-c", "echo start >&2; sha256sum; seq 1 20000; echo end >&2", NULL};
	sb_exec_request req = {
	    .argv = argv, .has_stdin = true, .stdin_data = data, .stdin_len = len};
	seen sn = {0};
	sb_exec_callbacks cb = {.on_spawn = on_spawn,
	                        .on_output = on_output,
	                        .ud = &sn,
	                        .on_stdin_progress = stdin_progress};
	sb_exec_result res;
	sb_exec_result_init(&res);
	SB_ASSERT_OK(sb_runner_execute(run, &req, &cb, NULL, &res));
	assert_true(sb_exec_result_ok(&res));
	assert_true(sn.pid > 1);
	assert_int_equal(sn.stdin_done, len);
	assert_int_equal(res.pid, sn.pid);
	char hex[SB_SHA256_HEX_LEN];
	sb_sha256_hex(data, len, hex);
	assert_true(sb_str_has_prefix(sb_buf_cstr(&res.out), hex));
	assert_true(sb_str_has_suffix(sb_buf_cstr(&res.out), "\n19999\n20000\n"));
	assert_string_equal(sb_buf_cstr(&res.err), "start\nend\n");
	/* the callbacks saw exactly what the result holds */
	assert_int_equal(sn.out.len, res.out.len);
	assert_memory_equal(sn.out.data, res.out.data, res.out.len);
	assert_string_equal(sb_buf_cstr(&sn.err), "start\nend\n");
	assert_true(res.started_at[0] && res.finished_at[0]);
	sb_exec_result_deinit(&res);
	sb_buf_deinit(&sn.out);
	sb_buf_deinit(&sn.err);
	free(data);
}

static void execute_keeps_the_last_output_cap_bytes(void **s)
{
	(void)s;
	char *argv[] = {"seq", "1", "100000", NULL};
	sb_exec_request req = {.argv = argv, .output_cap = 16};
	sb_exec_result res;
	sb_exec_result_init(&res);
	SB_ASSERT_OK(sb_runner_execute(run, &req, NULL, NULL, &res));
	assert_true(res.out_truncated);
	assert_string_equal(sb_buf_cstr(&res.out), "98\n99999\n100000\n");
	sb_exec_result_deinit(&res);
}

static void execute_times_out_and_reports_it(void **s)
{
	(void)s;
	char *argv[] = {"sleep", "100", NULL};
	sb_exec_request req = {.argv = argv, .timeout_ms = 200};
	sb_exec_result res;
	sb_exec_result_init(&res);
	SB_ASSERT_OK(sb_runner_execute(run, &req, NULL, NULL, &res));
	assert_true(res.timed_out);
	assert_false(res.has_exit_code);
	assert_string_equal(res.signal, "SIGTERM");
	assert_false(sb_exec_result_ok(&res));
	sb_exec_result_deinit(&res);
}

static void execute_spawn_failure_is_an_error(void **s)
{
	(void)s;
	char *argv[] = {"definitely-not-installed", NULL};
	sb_exec_request req = {.argv = argv};
	sb_exec_result res;
	sb_exec_result_init(&res);
	sb_err *err = sb_runner_execute(run, &req, NULL, NULL, &res);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_SPAWN);
	sb_err_free(err);
	sb_exec_result_deinit(&res);
}

static void callback_error_cancels_the_command(void **s)
{
	(void)s;
	char *argv[] = {"sh", "-c", "while :; do echo line; done", NULL};
	sb_exec_request req = {.argv = argv};
	seen sn = {.fail_after = 2};
	sb_exec_callbacks cb = {.on_output = on_output, .ud = &sn};
	sb_exec_result res;
	sb_exec_result_init(&res);
	sb_err *err = sb_runner_execute(run, &req, &cb, NULL, &res);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_CANCELED);
	sb_err_free(err);
	sb_exec_result_deinit(&res);
	sb_buf_deinit(&sn.out);
	sb_buf_deinit(&sn.err);
	/* the command is gone */
	sb_sandbox_process *p = NULL;
	size_t n = 1;
	for (int i = 0; i < 200 && n > 0; i++) {
		SB_ASSERT_OK(sb_sandbox_list_processes(sb, &p, &n));
		sb_sandbox_processes_free(p, n);
		if (n)
			sb_sleep_ms(10); /* poll interval: nothing notifies this condition */
	}
	assert_int_equal(n, 0);
}

/* A tar of a fresh local tree in a temp file, positioned at 0. */
static int make_tar(const char *dir)
{
	char tmpl[] = "/tmp/sbx-tar-XXXXXX";
	int fd = mkstemp(tmpl);
	assert_true(fd >= 0);
	unlink(tmpl);
	SB_ASSERT_OK(sb_tar_create(dir, NULL, false, fd, NULL));
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

static void progress_count(void *ud, uint64_t done, uint64_t total)
{
	(void)total;
	*(uint64_t *)ud = done;
}

static void sync_in_and_out_move_trees_through_the_workspace(void **s)
{
	(void)s;
	char *src = sbt_mkdtemp("sbx-src");
	sbt_write_str(src, "a.txt", "alpha\n");
	sbt_write_str(src, "sub/b.txt", "beta\n");
	char big[200000];
	sbt_fill_random(big, sizeof big, 3);
	sbt_write(src, "sub/big.bin", big, sizeof big, 0755);
	/* something already there: replaced, except what is preserved */
	sbx_result r;
	sbx_sh(sb,
	       "mkdir -p /workspace/proj/.keep /workspace/proj/old && echo k > "
	       "/workspace/proj/.keep/k && echo o > /workspace/proj/old/o",
	       &r);
	sbx_result_free(&r);
	int fd = make_tar(src);
	char *keep[] = {".keep", NULL};
	uint64_t progressed = 0;
	SB_ASSERT_OK(
	    sb_runner_sync_in(run, "/workspace/proj", keep, fd, progress_count, &progressed));
	close(fd);
	assert_true(progressed > sizeof big);
	sbx_sh(sb,
	       "cd /workspace/proj && cat a.txt sub/b.txt .keep/k && ls && "
	       "sha256sum sub/big.bin && stat -c %a sub/big.bin && echo x >> a.txt",
	       &r);
	char hex[SB_SHA256_HEX_LEN];
	sb_sha256_hex(big, sizeof big, hex);
	char *want = sb_strfmt("alpha\nbeta\nk\na.txt\nsub\n%s  sub/big.bin\n755\n", hex);
	assert_string_equal(sb_buf_cstr(&r.out), want);
	free(want);
	sbx_result_free(&r);
	/* copies owned by the sandbox user, never links to the caller's files */
	char *host = sb_strfmt("%s/proj/sub/b.txt", sb_sandbox_workspace_dir(sb));
	char *orig = sb_strfmt("%s/sub/b.txt", src);
	struct stat hs, os;
	assert_int_equal(stat(host, &hs), 0);
	assert_int_equal(stat(orig, &os), 0);
	assert_int_equal(hs.st_nlink, 1);
	assert_true(hs.st_ino != os.st_ino);
	sb_sandbox_info info;
	sb_sandbox_get_info(sb, &info);
	assert_int_equal(hs.st_uid, (uid_t)info.host_uid);
	free(host);
	free(orig);

	/* and back out, with an exclude */
	char *dst = sbt_mkdtemp("sbx-dst");
	char tmpl[] = "/tmp/sbx-out-XXXXXX";
	int out = mkstemp(tmpl);
	unlink(tmpl);
	sb_excludes ex;
	sb_excludes_init(&ex);
	sb_excludes_add(&ex, ".keep");
	progressed = 0;
	SB_ASSERT_OK(
	    sb_runner_sync_out(run, "/workspace/proj", &ex, out, progress_count, &progressed));
	assert_true(progressed > 0);
	sb_excludes_deinit(&ex);
	assert_int_equal(lseek(out, 0, SEEK_SET), 0);
	SB_ASSERT_OK(sb_tar_extract(out, dst, NULL));
	close(out);
	char *a = sbt_read(dst, "a.txt", NULL);
	assert_string_equal(a, "alpha\nx\n");
	free(a);
	size_t blen = 0;
	char *b = sbt_read(dst, "sub/big.bin", &blen);
	assert_int_equal(blen, sizeof big);
	assert_memory_equal(b, big, sizeof big);
	free(b);
	assert_null(sbt_read(dst, ".keep/k", NULL));
	/* without a progress callback too */
	char tmpl2[] = "/tmp/sbx-out-XXXXXX";
	out = mkstemp(tmpl2);
	unlink(tmpl2);
	SB_ASSERT_OK(sb_runner_sync_out(run, "/workspace/proj/sub", NULL, out, NULL, NULL));
	assert_true(lseek(out, 0, SEEK_END) > (off_t)sizeof big);
	close(out);
	sbt_rmtree(dst);
	sbt_rmtree(src);
}

static void sync_paths_are_confined_to_the_workspace(void **s)
{
	(void)s;
	char *src = sbt_mkdtemp("sbx-src");
	sbt_write_str(src, "evil.txt", "x\n");
	/* sandboxed code plants symlinks pointing out of the workspace */
	sbx_result r;
	sbx_sh(sb,
	       "ln -sfn /etc /workspace/link && mkdir -p /workspace/d && "
	       "ln -sfn /root /workspace/d/up",
	       &r);
	sbx_result_free(&r);
	static const char *const bad[] = {
	    "/etc",    "/workspace/../etc", "/workspacex", "/workspace/link", "/workspace/d/up/x",
	    "relative"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int fd = make_tar(src);
		sb_err *err = sb_runner_sync_in(run, bad[i], NULL, fd, NULL, NULL);
		close(fd);
		if (!err)
			print_error("sync_in to %s was accepted\n", bad[i]);
		assert_non_null(err);
		assert_int_equal(err->code, SB_E_ESCAPE);
		sb_err_free(err);
		char tmpl[] = "/tmp/sbx-out-XXXXXX";
		int out = mkstemp(tmpl);
		unlink(tmpl);
		err = sb_runner_sync_out(run, bad[i], NULL, out, NULL, NULL);
		close(out);
		assert_non_null(err);
		assert_int_equal(err->code, SB_E_ESCAPE);
		sb_err_free(err);
	}
	/* nothing was written through the links */
	assert_int_not_equal(access("/etc/evil.txt", F_OK), 0);
	sbt_rmtree(src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(runner_reports_caps),
	    cmocka_unit_test(execute_streams_output_and_stdin),
	    cmocka_unit_test(execute_keeps_the_last_output_cap_bytes),
	    cmocka_unit_test(execute_times_out_and_reports_it),
	    cmocka_unit_test(execute_spawn_failure_is_an_error),
	    cmocka_unit_test(callback_error_cancels_the_command),
	    cmocka_unit_test(sync_in_and_out_move_trees_through_the_workspace),
	    cmocka_unit_test(sync_paths_are_confined_to_the_workspace),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
