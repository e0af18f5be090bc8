/* The local runner with real processes: exit codes, signals, timeouts, escaped grandchildren,
 * output tails, stdin, streaming order and back-pressure, callback errors, cancellation, spawn
 * errors and the environment. */
#include "rt.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

static sb_runner *runner;

static int setup(void **state)
{
	(void)state;
	runner = sb_local_runner_new(NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sb_runner_free(runner);
	return 0;
}

static void exit_code_is(const char *script, int code)
{
	sb_exec_result res;
	rt_sh(runner, script, &res);
	assert_true(res.has_exit_code);
	assert_int_equal(res.exit_code, code);
	assert_string_equal(res.signal, "");
	assert_false(res.timed_out);
	assert_int_equal(sb_exec_result_ok(&res), code == 0);
	assert_true(res.pid > 0);
	assert_true(res.started_at[0] != '\0' && res.finished_at[0] != '\0');
	assert_true(res.duration_ms >= 0);
	sb_exec_result_deinit(&res);
}

static void exit_codes_0_1_255_are_reported(void **state)
{
	(void)state;
	exit_code_is("exit 0", 0);
	exit_code_is("exit 1", 1);
	exit_code_is("exit 255", 255);
}

static void death_by_signal_has_a_name_and_no_exit_code(void **state)
{
	(void)state;
	sb_exec_result res;
	rt_sh(runner, "kill -SEGV $$", &res);
	assert_false(res.has_exit_code);
	assert_string_equal(res.signal, "SIGSEGV");
	assert_false(res.timed_out);
	assert_false(sb_exec_result_ok(&res));
	sb_exec_result_deinit(&res);
}

static void stdout_and_stderr_are_captured_separately(void **state)
{
	(void)state;
	sb_exec_result res;
	rt_sh(runner, "printf out; printf err >&2", &res);
	assert_string_equal(sb_buf_cstr(&res.out), "out");
	assert_string_equal(sb_buf_cstr(&res.err), "err");
	assert_false(res.out_truncated);
	assert_false(res.err_truncated);
	sb_exec_result_deinit(&res);
}

static void timeout_kills_a_command_that_ignores_sigterm(void **state)
{
	(void)state;
	sb_exec_request req = {
	    .argv = RT_ARGV("sh", "-c", "trap '' TERM; echo ready; sleep 30; echo survived"),
	    .timeout_ms = 200,
	    .grace_ms = 1,
	};
	sb_exec_result res;
	sb_exec_result_init(&res);
	SB_ASSERT_OK(sb_runner_execute(runner, &req, NULL, NULL, &res));
	assert_true(res.timed_out);
	assert_false(res.has_exit_code);
	assert_string_equal(res.signal, "SIGKILL");
	assert_string_equal(sb_buf_cstr(&res.out), "ready\n");
	assert_false(sb_exec_result_ok(&res));
	/* The grace period is raised to 1000 ms: SIGKILL came no earlier than that. */
	assert_true(res.duration_ms >= 1200);
	sb_exec_result_deinit(&res);
}

static void timeout_terminates_a_cooperative_command(void **state)
{
	(void)state;
	sb_exec_request req = {.argv = RT_ARGV("sleep", "30"), .timeout_ms = 100};
	sb_exec_result res;
	sb_exec_result_init(&res);
	SB_ASSERT_OK(sb_runner_execute(runner, &req, NULL, NULL, &res));
	assert_true(res.timed_out);
	assert_string_equal(res.signal, "SIGTERM");
	sb_exec_result_deinit(&res);
}

static void kill_pid_from_output(const char *out)
{
	const char *p = strstr(out, "gc=");
	assert_non_null(p);
	int pid = atoi(p + 3);
	assert_true(pid > 1);
	assert_int_equal(kill(pid, SIGKILL), 0);
}

/* The grandchild leaves the group (setsid) and keeps stdout and stderr open for 300 s. */
static void escaped_grandchild_does_not_hang_a_finished_command(void **state)
{
	(void)state;
	sb_exec_result res;
	rt_sh(runner, "setsid sleep 300 & echo gc=$!; exit 3", &res);
	assert_true(res.has_exit_code);
	assert_int_equal(res.exit_code, 3);
	kill_pid_from_output(sb_buf_cstr(&res.out));
	sb_exec_result_deinit(&res);
}

static void escaped_grandchild_does_not_hang_a_timed_out_command(void **state)
{
	(void)state;
	sb_exec_request req = {
	    .argv = RT_ARGV("sh", "-c", "setsid sleep 300 & echo gc=$!; trap '' TERM; sleep 300"),
	    .timeout_ms = 100,
	};
	sb_exec_result res;
	sb_exec_result_init(&res);
	SB_ASSERT_OK(sb_runner_execute(runner, &req, NULL, NULL, &res));
	assert_true(res.timed_out);
	assert_string_equal(res.signal, "SIGKILL");
	kill_pid_from_output(sb_buf_cstr(&res.out));
	sb_exec_result_deinit(&res);
}

/* 20 MiB of output; a 3-byte character straddles the start of the last 4 MiB, so the kept tail
 * starts after it and is otherwise byte-exact. Both streams, and the stream callback gets all. */
static void tail_keeps_last_4mib_exactly_and_cuts_at_a_code_point(void **state)
{
	(void)state;
	const size_t total = 20u << 20, cap = SB_OUTPUT_CAP_DEFAULT;
	char *data = sb_xmalloc(total);
	for (size_t i = 0; i < total; i++)
		data[i] = (char)('a' + (i * 7 + i / 4099) % 26);
	/* "€" = e2 82 ac: its first byte is the last dropped one. */
	size_t at = total - cap - 1;
	memcpy(data + at, "\xe2\x82\xac", 3);
	char *path = rt_tmpfile(data, total);
	char *script = sb_strfmt("cat %s; cat %s >&2", path, path);

	rt_capture cap_seen;
	rt_capture_init(&cap_seen);
	sb_exec_callbacks cb = rt_capture_callbacks(&cap_seen);
	sb_exec_request req = {.argv = RT_ARGV("sh", "-c", script)};
	sb_exec_result res;
	sb_exec_result_init(&res);
	SB_ASSERT_OK(sb_runner_execute(runner, &req, &cb, NULL, &res));
	assert_int_equal(res.exit_code, 0);
	assert_true(res.out_truncated);
	assert_true(res.err_truncated);
	assert_int_equal(res.out.len, cap - 2);
	assert_int_equal(res.err.len, cap - 2);
	assert_memory_equal(res.out.data, data + total - cap + 2, cap - 2);
	assert_memory_equal(res.err.data, data + total - cap + 2, cap - 2);
	assert_int_equal(cap_seen.out.len, total);
	assert_int_equal(cap_seen.err.len, total);
	assert_memory_equal(cap_seen.out.data, data, total);
	assert_memory_equal(cap_seen.err.data, data, total);

	rt_capture_deinit(&cap_seen);
	sb_exec_result_deinit(&res);
	unlink(path);
	free(path);
	free(script);
	free(data);
}

static void output_cap_is_per_request(void **state)
{
	(void)state;
	sb_exec_request req = {.argv = RT_ARGV("sh", "-c", "printf 0123456789"), .output_cap = 4};
	sb_exec_result res;
	sb_exec_result_init(&res);
	SB_ASSERT_OK(sb_runner_execute(runner, &req, NULL, NULL, &res));
	assert_string_equal(sb_buf_cstr(&res.out), "6789");
	assert_true(res.out_truncated);
	sb_exec_result_deinit(&res);
}

static void binary_stdin_round_trips_all_256_byte_values(void **state)
{
	(void)state;
	unsigned char in[256 * 4];
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(i % 256);
	sb_exec_request req = {
	    .argv = RT_ARGV("cat"), .has_stdin = true, .stdin_data = in, .stdin_len = sizeof(in)};
	sb_exec_result res;
	sb_exec_result_init(&res);
	SB_ASSERT_OK(sb_runner_execute(runner, &req, NULL, NULL, &res));
	assert_int_equal(res.exit_code, 0);
	assert_int_equal(res.out.len, sizeof(in));
	assert_memory_equal(res.out.data, in, sizeof(in));
	sb_exec_result_deinit(&res);
}

static void absent_stdin_is_dev_null_and_empty_stdin_is_a_closed_pipe(void **state)
{
	(void)state;
	char *const argv[] = {"sh", "-c", "readlink /proc/$$/fd/0; wc -c", NULL};
	sb_exec_request req = {.argv = argv};
	sb_exec_result res;
	sb_exec_result_init(&res);
	SB_ASSERT_OK(sb_runner_execute(runner, &req, NULL, NULL, &res));
	assert_string_equal(sb_buf_cstr(&res.out), "/dev/null\n0\n");
	sb_exec_result_deinit(&res);

	req.has_stdin = true; /* stdin_data NULL, stdin_len 0: closed at once */
	sb_exec_result_init(&res);
	SB_ASSERT_OK(sb_runner_execute(runner, &req, NULL, NULL, &res));
	assert_true(sb_str_has_prefix(sb_buf_cstr(&res.out), "pipe:["));
	assert_true(sb_str_has_suffix(sb_buf_cstr(&res.out), "]\n0\n"));
	sb_exec_result_deinit(&res);
}

typedef struct counter {
	uint64_t bytes;
	sb_sha256 *sha;
} counter;

static sb_err *count_output(void *ud, sb_stream stream, const char *data, size_t len)
{
	counter *c = ud;
	assert_int_equal(stream, SB_STREAM_STDOUT);
	c->bytes += len;
	sb_sha256_update(c->sha, data, len);
	return NULL;
}

static void hundred_mib_through_cat_does_not_deadlock(void **state)
{
	(void)state;
	const size_t n = 100u << 20;
	char *in = sb_xmalloc(n);
	for (size_t i = 0; i < n; i++)
		in[i] = (char)('A' + (i / 61) % 26);
	unsigned char want[SB_SHA256_LEN], got[SB_SHA256_LEN];
	sb_sha256_once(in, n, want);
	counter c = {.sha = sb_sha256_new()};
	sb_exec_callbacks cb = {.on_output = count_output, .ud = &c};
	sb_exec_request req = {
	    .argv = RT_ARGV("cat"), .has_stdin = true, .stdin_data = in, .stdin_len = n};
	sb_exec_result res;
	sb_exec_result_init(&res);
	SB_ASSERT_OK(sb_runner_execute(runner, &req, &cb, NULL, &res));
	assert_int_equal(res.exit_code, 0);
	assert_int_equal(c.bytes, n);
	sb_sha256_final(c.sha, got);
	assert_memory_equal(got, want, SB_SHA256_LEN);
	assert_true(res.out_truncated);
	assert_int_equal(res.out.len, SB_OUTPUT_CAP_DEFAULT);
	assert_memory_equal(res.out.data, in + n - SB_OUTPUT_CAP_DEFAULT, SB_OUTPUT_CAP_DEFAULT);
	sb_sha256_free(c.sha);
	sb_exec_result_deinit(&res);
	free(in);
}

static void command_closing_stdin_early_does_not_raise_sigpipe(void **state)
{
	(void)state;
	const size_t n = 8u << 20;
	char *in = sb_xcalloc(1, n);
	sb_exec_request req = {.argv = RT_ARGV("sh", "-c", "exec 0<&-; echo closed"),
	                       .has_stdin = true,
	                       .stdin_data = in,
	                       .stdin_len = n};
	sb_exec_result res;
	sb_exec_result_init(&res);
	/* Were SIGPIPE delivered, this test process would die here. */
	SB_ASSERT_OK(sb_runner_execute(runner, &req, NULL, NULL, &res));
	assert_int_equal(res.exit_code, 0);
	sigset_t pending;
	sigpending(&pending);
	assert_false(sigismember(&pending, SIGPIPE));
	sb_exec_result_deinit(&res);
	free(in);
}

static sb_err *write_to_broken_pipe(void *ud, sb_stream stream, const char *data, size_t len)
{
	(void)stream;
	int *fds = ud;
	errno = 0;
	ssize_t n = write(fds[1], data, len);
	assert_true(n < 0 && errno == EPIPE);
	return NULL;
}

static void callback_writing_to_a_broken_pipe_does_not_kill_the_process(void **state)
{
	(void)state;
	int fds[2];
	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	close(fds[0]);
	sb_exec_callbacks cb = {.on_output = write_to_broken_pipe, .ud = fds};
	sb_exec_result res;
	sb_exec_result_init(&res);
	sb_exec_request req = {.argv = RT_ARGV("echo", "hi")};
	SB_ASSERT_OK(sb_runner_execute(runner, &req, &cb, NULL, &res));
	assert_int_equal(res.exit_code, 0);
	sb_exec_result_deinit(&res);
	close(fds[1]);
}

/* ---- on_output order and back-pressure */

#define BP_LINES 4000
#define BP_LINE_LEN 1008 /* 1000 pad + space + 6 digits + newline */

typedef struct bp_state {
	sb_buf out, err;
	const char *progress_path;
	bool probed;
	size_t delivered_at_probe;
	long written_at_probe;
	size_t calls;
} bp_state;

static sb_err *bp_output(void *ud, sb_stream stream, const char *data, size_t len)
{
	bp_state *s = ud;
	sb_buf_append(stream == SB_STREAM_STDOUT ? &s->out : &s->err, data, len);
	if (!s->probed && stream == SB_STREAM_STDOUT) {
		/* Stall like a slow consumer, long enough for a runner that reads ahead to swallow
		 * megabytes; then see how far the child got. */
		sb_sleep_ms(300);
		size_t n = 0;
		char *text = NULL;
		sb_buf b = SB_BUF_INIT;
		sb_err *err = sb_read_file(s->progress_path, 64, &b);
		if (!err)
			text = sb_buf_steal(&b, &n);
		sb_err_free(err);
		s->written_at_probe = text ? atol(text) : 0;
		free(text);
		s->delivered_at_probe = s->out.len;
		s->probed = true;
	}
	if (++s->calls % 64 == 0)
		sb_sleep_ms(1); /* not synchronisation: the slow consumer the test is about */
	return NULL;
}

static void on_output_keeps_order_and_applies_back_pressure(void **state)
{
	(void)state;
	char *dir = rt_tmpdir();
	char *progress = sb_strfmt("%s/progress", dir);
	char *script =
	    sb_strfmt("pad=$(printf '%%1000s' '' | tr ' ' x); i=0; while [ $i -lt %d ]; do "
	              "printf '%%s %%06d\\n' \"$pad\" $i; "
	              "if [ $((i %% 100)) -eq 0 ]; then printf 'e%%06d\\n' $i >&2; fi; "
	              "i=$((i+1)); echo $i > %s; done",
	              BP_LINES, progress);
	bp_state s = {.progress_path = progress};
	sb_buf_init(&s.out);
	sb_buf_init(&s.err);
	sb_exec_callbacks cb = {.on_output = bp_output, .ud = &s};
	sb_exec_request req = {.argv = RT_ARGV("sh", "-c", script)};
	sb_exec_result res;
	sb_exec_result_init(&res);
	SB_ASSERT_OK(sb_runner_execute(runner, &req, &cb, NULL, &res));
	assert_int_equal(res.exit_code, 0);

	/* Nothing lost, nothing reordered, per stream. */
	sb_buf want = SB_BUF_INIT, want_err = SB_BUF_INIT;
	char pad[1001];
	memset(pad, 'x', 1000);
	pad[1000] = '\0';
	for (int i = 0; i < BP_LINES; i++) {
		sb_buf_appendf(&want, "%s %06d\n", pad, i);
		if (i % 100 == 0)
			sb_buf_appendf(&want_err, "e%06d\n", i);
	}
	assert_int_equal(s.out.len, want.len);
	assert_memory_equal(s.out.data, want.data, want.len);
	assert_string_equal(sb_buf_cstr(&s.err), sb_buf_cstr(&want_err));
	assert_memory_equal(res.out.data, want.data, want.len);

	/* Back-pressure: while the first callback stalled, the child could only have written what
	 * was delivered plus what fits in the pipe (64 KiB by default) and one line in flight. A
	 * runner that kept reading would have let it write (nearly) all 4 MB. */
	assert_true(s.probed);
	print_message("delivered %zu bytes, child had written %ld lines when probed\n",
	              s.delivered_at_probe, s.written_at_probe);
	assert_true((size_t)s.written_at_probe * BP_LINE_LEN <=
	            s.delivered_at_probe + (256u << 10));

	sb_buf_deinit(&want);
	sb_buf_deinit(&want_err);
	sb_buf_deinit(&s.out);
	sb_buf_deinit(&s.err);
	sb_exec_result_deinit(&res);
	free(script);
	free(progress);
	rt_rmdir(dir);
}

/* ---- callbacks and cancellation */

static sb_err *fail_output(void *ud, sb_stream stream, const char *data, size_t len)
{
	(void)stream;
	(void)data;
	(void)len;
	(*(int *)ud)++;
	return sb_err_new(SB_E_INVAL, "consumer gave up");
}

static void callback_error_cancels_the_command_and_is_returned(void **state)
{
	(void)state;
	int calls = 0;
	sb_exec_callbacks cb = {.on_output = fail_output, .ud = &calls};
	sb_exec_request req = {.argv = RT_ARGV("sh", "-c", "echo hi; exec sleep 30")};
	sb_exec_result res;
	sb_exec_result_init(&res);
	sb_err *err = sb_runner_execute(runner, &req, &cb, NULL, &res);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_INVAL);
	assert_string_equal(err->msg, "consumer gave up");
	assert_int_equal(calls, 1);
	assert_string_equal(res.signal, "SIGTERM");
	sb_err_free(err);
	sb_exec_result_deinit(&res);

	/* A command that ignores SIGTERM is killed after the grace period. */
	calls = 0;
	sb_exec_request stubborn = {.argv = RT_ARGV("sh", "-c", "trap '' TERM; echo hi; sleep 30")};
	sb_exec_result_init(&res);
	err = sb_runner_execute(runner, &stubborn, &cb, NULL, &res);
	assert_non_null(err);
	assert_string_equal(err->msg, "consumer gave up");
	assert_int_equal(calls, 1);
	assert_string_equal(res.signal, "SIGKILL");
	assert_false(res.timed_out);
	sb_err_free(err);
	sb_exec_result_deinit(&res);
}

typedef struct spawn_probe {
	int pending_in, pending_out;
	bool fail;
} spawn_probe;

static int pipe_pending(int pid, int fd)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, fd);
	int f = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	assert_true(f >= 0);
	int n = -1;
	assert_int_equal(ioctl(f, FIONREAD, &n), 0);
	close(f);
	return n;
}

static sb_err *probe_spawn(void *ud, int pid, const char *started_at)
{
	spawn_probe *p = ud;
	assert_true(pid > 0);
	assert_true(strlen(started_at) >= 20);
	/* Give a runner that wrote stdin early the time to show it: cat would have echoed. This
	 * waits for something that must NOT happen, so no event can end the wait early. */
	sb_sleep_ms(100);
	p->pending_in = pipe_pending(pid, 0);
	p->pending_out = pipe_pending(pid, 1);
	return p->fail ? sb_err_new(SB_E_CONFLICT, "spawn refused") : NULL;
}

static void on_spawn_runs_before_stdin_is_written(void **state)
{
	(void)state;
	spawn_probe p = {0};
	sb_exec_callbacks cb = {.on_spawn = probe_spawn, .ud = &p};
	sb_exec_request req = {
	    .argv = RT_ARGV("cat"), .has_stdin = true, .stdin_data = "hello", .stdin_len = 5};
	sb_exec_result res;
	sb_exec_result_init(&res);
	SB_ASSERT_OK(sb_runner_execute(runner, &req, &cb, NULL, &res));
	assert_int_equal(p.pending_in, 0);
	assert_int_equal(p.pending_out, 0);
	assert_string_equal(sb_buf_cstr(&res.out), "hello");
	sb_exec_result_deinit(&res);

	/* An on_spawn error cancels: stdin is never written, and the error comes back. */
	p.fail = true;
	sb_exec_result_init(&res);
	sb_err *err = sb_runner_execute(runner, &req, &cb, NULL, &res);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_CONFLICT);
	assert_string_equal(sb_buf_cstr(&res.out), "");
	sb_err_free(err);
	sb_exec_result_deinit(&res);
}

typedef struct cancel_ctx {
	sb_cancel *cancel;
	int ready[2];
} cancel_ctx;

static sb_err *signal_ready(void *ud, sb_stream stream, const char *data, size_t len)
{
	(void)stream;
	(void)data;
	(void)len;
	cancel_ctx *c = ud;
	assert_int_equal(write(c->ready[1], "x", 1), 1);
	return NULL;
}

static void *canceller(void *arg)
{
	cancel_ctx *c = arg;
	char x;
	if (read(c->ready[0], &x, 1) == 1)
		sb_cancel_trigger(c->cancel);
	return NULL;
}

static void cancel_from_another_thread_stops_the_command(void **state)
{
	(void)state;
	cancel_ctx c = {.cancel = sb_cancel_new()};
	assert_int_equal(pipe2(c.ready, O_CLOEXEC), 0);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, canceller, &c), 0);
	sb_exec_callbacks cb = {.on_output = signal_ready, .ud = &c};
	sb_exec_request req = {.argv = RT_ARGV("sh", "-c", "echo started; exec sleep 30")};
	sb_exec_result res;
	sb_exec_result_init(&res);
	sb_err *err = sb_runner_execute(runner, &req, &cb, c.cancel, &res);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_CANCELED);
	assert_string_equal(res.signal, "SIGTERM");
	assert_false(res.timed_out);
	sb_err_free(err);
	sb_exec_result_deinit(&res);

	/* Already cancelled: nothing starts. */
	sb_exec_result_init(&res);
	err = sb_runner_execute(runner, &req, NULL, c.cancel, &res);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_CANCELED);
	assert_int_equal(res.pid, 0);
	sb_err_free(err);
	sb_exec_result_deinit(&res);
	close(c.ready[0]);
	close(c.ready[1]);
	sb_cancel_free(c.cancel);
}

/* ---- spawn errors */

static void missing_command_error_names_cwd_and_path(void **state)
{
	(void)state;
	sb_exec_request req = {.argv = RT_ARGV("sb-no-such-command"),
	                       .cwd = "/tmp",
	                       .env = RT_ARGV("PATH=/nonexistent/bin:/usr/bin")};
	sb_exec_result res;
	sb_exec_result_init(&res);
	sb_err *err = sb_runner_execute(runner, &req, NULL, NULL, &res);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_SPAWN);
	assert_string_equal(err->msg, "failed to start \"sb-no-such-command\" in \"/tmp\": command "
	                              "not found in PATH (/nonexistent/bin:/usr/bin); verify the "
	                              "command, the working directory and PATH");
	assert_int_equal(res.pid, 0);
	sb_err_free(err);
	sb_exec_result_deinit(&res);
}

static void missing_cwd_is_a_spawn_error(void **state)
{
	(void)state;
	sb_exec_request req = {.argv = RT_ARGV("true"), .cwd = "/nonexistent/sb-dir"};
	sb_exec_result res;
	sb_exec_result_init(&res);
	sb_err *err = sb_runner_execute(runner, &req, NULL, NULL, &res);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_SPAWN);
	assert_string_equal(err->msg, "failed to start \"true\" in \"/nonexistent/sb-dir\": the "
	                              "working directory does not exist");
	sb_err_free(err);
	sb_exec_result_deinit(&res);
}

static void non_executable_file_is_a_spawn_error(void **state)
{
	(void)state;
	char *path = rt_tmpfile("#!/bin/sh\n", 10); /* mode 0600 */
	sb_exec_request req = {.argv = RT_ARGV(path), .cwd = "/"};
	sb_exec_result res;
	sb_exec_result_init(&res);
	sb_err *err = sb_runner_execute(runner, &req, NULL, NULL, &res);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_SPAWN);
	char *want = sb_strfmt("failed to start \"%s\" in \"/\": Permission denied", path);
	assert_string_equal(err->msg, want);
	free(want);
	sb_err_free(err);
	sb_exec_result_deinit(&res);
	unlink(path);
	free(path);
}

/* ---- working directory and environment */

static void cwd_request_and_runner_default(void **state)
{
	(void)state;
	char *dir = rt_tmpdir();
	char *sub = sb_strfmt("%s/sub dir", dir);
	assert_int_equal(mkdir(sub, 0755), 0);
	sb_local_runner_opts opts = {.default_cwd = dir};
	sb_runner *r = sb_local_runner_new(&opts);
	sb_exec_result res;

	rt_sh(r, "pwd", &res);
	char *want = sb_strfmt("%s\n", dir);
	assert_string_equal(sb_buf_cstr(&res.out), want);
	free(want);
	sb_exec_result_deinit(&res);

	sb_exec_request req = {.argv = RT_ARGV("pwd"), .cwd = "sub dir"};
	sb_exec_result_init(&res);
	SB_ASSERT_OK(sb_runner_execute(r, &req, NULL, NULL, &res));
	want = sb_strfmt("%s\n", sub);
	assert_string_equal(sb_buf_cstr(&res.out), want);
	free(want);
	sb_exec_result_deinit(&res);

	sb_runner_free(r);
	free(sub);
	rt_rmdir(dir);
}

static void relative_cwd_without_default_is_against_the_process_cwd(void **state)
{
	(void)state;
	char *dir = rt_tmpdir();
	char *sub = sb_strfmt("%s/bin dir", dir);
	assert_int_equal(mkdir(sub, 0755), 0);
	char *tool = sb_strfmt("%s/tool", sub);
	char *tmp = rt_tmpfile("#!/bin/sh\npwd\n", 14);
	assert_int_equal(rename(tmp, tool), 0);
	assert_int_equal(chmod(tool, 0755), 0);
	char *here = getcwd(NULL, 0);
	assert_int_equal(chdir(dir), 0);
	/* A relative PATH entry is looked up in the command's cwd, as execvp in the child would. */
	sb_exec_request req = {.argv = RT_ARGV("tool"), .cwd = "bin dir", .env = RT_ARGV("PATH=.")};
	sb_exec_result res;
	sb_exec_result_init(&res);
	SB_ASSERT_OK(sb_runner_execute(runner, &req, NULL, NULL, &res));
	char *want = sb_strfmt("%s\n", sub);
	assert_string_equal(sb_buf_cstr(&res.out), want);
	sb_exec_result_deinit(&res);
	assert_int_equal(chdir(here), 0);
	free(want);
	free(here);
	free(tmp);
	free(tool);
	free(sub);
	rt_rmdir(dir);
}

typedef struct stdin_progress {
	uint64_t last, total;
	int calls;
	bool monotonic;
} stdin_progress;

static void note_stdin_progress(void *ud, uint64_t done, uint64_t total)
{
	stdin_progress *p = ud;
	if (done < p->last)
		p->monotonic = false;
	p->last = done;
	p->total = total;
	p->calls++;
}

static void stdin_progress_is_reported_as_it_is_written(void **state)
{
	(void)state;
	const size_t n = 8u << 20;
	char *in = sb_xcalloc(1, n);
	stdin_progress p = {.monotonic = true};
	sb_exec_callbacks cb = {.on_stdin_progress = note_stdin_progress, .ud = &p};
	sb_exec_request req = {
	    .argv = RT_ARGV("wc", "-c"), .has_stdin = true, .stdin_data = in, .stdin_len = n};
	sb_exec_result res;
	sb_exec_result_init(&res);
	SB_ASSERT_OK(sb_runner_execute(runner, &req, &cb, NULL, &res));
	assert_string_equal(sb_buf_cstr(&res.out), "8388608\n");
	assert_true(p.monotonic);
	assert_true(p.calls > 1); /* a pipe takes 64 KiB at a time, not 8 MiB at once */
	assert_int_equal(p.last, n);
	assert_int_equal(p.total, n);
	sb_exec_result_deinit(&res);
	free(in);
}

static void environment_drops_nesting_guards_and_applies_additions(void **state)
{
	(void)state;
	setenv("CLAUDECODE", "1", 1);
	setenv("CLAUDE_CODE_ENTRYPOINT", "cli", 1);
	setenv("SB_RT_INHERITED", "kept", 1);
	setenv("SB_RT_OVERRIDDEN", "old", 1);
	sb_exec_request req = {
	    .argv = RT_ARGV("sh", "-c",
	                    "echo \"${CLAUDECODE-unset}|${CLAUDE_CODE_ENTRYPOINT-unset}|"
	                    "$SB_RT_INHERITED|$SB_RT_OVERRIDDEN|$SB_RT_NEW\""),
	    .env = RT_ARGV("SB_RT_OVERRIDDEN=first", "SB_RT_NEW=a b=c", "SB_RT_OVERRIDDEN=new"),
	};
	sb_exec_result res;
	sb_exec_result_init(&res);
	SB_ASSERT_OK(sb_runner_execute(runner, &req, NULL, NULL, &res));
	assert_string_equal(sb_buf_cstr(&res.out), "unset|unset|kept|new|a b=c\n");
	sb_exec_result_deinit(&res);
	unsetenv("CLAUDECODE");
	unsetenv("CLAUDE_CODE_ENTRYPOINT");
}

static void clear_env_passes_only_additions_and_a_path(void **state)
{
	(void)state;
	sb_exec_request req = {.argv = RT_ARGV("env"), .env = RT_ARGV("ONLY=1"), .clear_env = true};
	sb_exec_result res;
	sb_exec_result_init(&res);
	SB_ASSERT_OK(sb_runner_execute(runner, &req, NULL, NULL, &res));
	assert_string_equal(
	    sb_buf_cstr(&res.out),
	    "ONLY=1\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n");
	sb_exec_result_deinit(&res);
}

static void child_gets_only_stdio_and_its_own_process_group(void **state)
{
	(void)state;
	/* ls's own descriptors: stdio, plus the one it lists them with. No pipe end or other
	 * descriptor of this process leaks into the child. */
	sb_exec_result res;
	sb_exec_result_init(&res);
	SB_ASSERT_OK(rt_run(runner, RT_ARGV("ls", "/proc/self/fd"), &res));
	assert_string_equal(sb_buf_cstr(&res.out), "0\n1\n2\n3\n");
	sb_exec_result_deinit(&res);

	/* /proc/self/stat: "pid (comm) state ppid pgrp ...": the command leads its own group. */
	sb_exec_result_init(&res);
	SB_ASSERT_OK(rt_run(runner, RT_ARGV("cat", "/proc/self/stat"), &res));
	int pid = 0, ppid = 0, pgrp = 0;
	char st = 0;
	assert_int_equal(
	    sscanf(sb_buf_cstr(&res.out), "%d (cat) %c %d %d", &pid, &st, &ppid, &pgrp), 4);
	assert_int_equal(pid, res.pid);
	assert_int_equal(pgrp, pid);
	assert_int_equal(ppid, (int)getpid());
	sb_exec_result_deinit(&res);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(exit_codes_0_1_255_are_reported),
	    cmocka_unit_test(death_by_signal_has_a_name_and_no_exit_code),
	    cmocka_unit_test(stdout_and_stderr_are_captured_separately),
	    cmocka_unit_test(timeout_kills_a_command_that_ignores_sigterm),
	    cmocka_unit_test(timeout_terminates_a_cooperative_command),
	    cmocka_unit_test(escaped_grandchild_does_not_hang_a_finished_command),
	    cmocka_unit_test(escaped_grandchild_does_not_hang_a_timed_out_command),
	    cmocka_unit_test(tail_keeps_last_4mib_exactly_and_cuts_at_a_code_point),
	    cmocka_unit_test(output_cap_is_per_request),
	    cmocka_unit_test(binary_stdin_round_trips_all_256_byte_values),
	    cmocka_unit_test(absent_stdin_is_dev_null_and_empty_stdin_is_a_closed_pipe),
	    cmocka_unit_test(hundred_mib_through_cat_does_not_deadlock),
	    cmocka_unit_test(command_closing_stdin_early_does_not_raise_sigpipe),
	    cmocka_unit_test(callback_writing_to_a_broken_pipe_does_not_kill_the_process),
	    cmocka_unit_test(on_output_keeps_order_and_applies_back_pressure),
	    cmocka_unit_test(callback_error_cancels_the_command_and_is_returned),
	    cmocka_unit_test(on_spawn_runs_before_stdin_is_written),
	    cmocka_unit_test(cancel_from_another_thread_stops_the_command),
	    cmocka_unit_test(missing_command_error_names_cwd_and_path),
	    cmocka_unit_test(missing_cwd_is_a_spawn_error),
	    cmocka_unit_test(non_executable_file_is_a_spawn_error),
	    cmocka_unit_test(cwd_request_and_runner_default),
	    cmocka_unit_test(relative_cwd_without_default_is_against_the_process_cwd),
	    cmocka_unit_test(stdin_progress_is_reported_as_it_is_written),
	    cmocka_unit_test(environment_drops_nesting_guards_and_applies_additions),
	    cmocka_unit_test(clear_env_passes_only_additions_and_a_path),
	    cmocka_unit_test(child_gets_only_stdio_and_its_own_process_group),
	};
	return cmocka_run_group_tests_name("runner.local", tests, setup, teardown);
}
