/* server.tty_exec: interactive execs through a real daemon (docs/api.md, "Interactive execs").
 * A tty exec gets a terminal with the size and TERM asked for, sees a resize (POST .../resize)
 * as SIGWINCH with the new size, reads lines typed with POST .../stdin, passes raw bytes
 * through byte-exact once the command put its terminal in raw mode, and gets SIGINT from a
 * typed Ctrl-C. A stdin_stream exec takes a few MiB in several POSTs byte-exact and sees EOF
 * at ?eof=1. Input to an exec without an open stdin is 404; a resize of a pipe exec is 400.
 * Both kinds of input survive a daemon SIGKILL and restart. */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "srvtest.h"

static sbt_daemon D;
static char *L; /* lease id */
static bool OK;

static int setup(void **state)
{
	(void)state;
	sbt_daemon_opts o = {.keepalive_ms = 300};
	sbt_group_start(&D, &o);
	OK = sbt_sandbox_ok(&D);
	if (OK)
		L = sbt_acquire(&D, "tty-exec-tests");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(L);
	sbt_group_stop(&D);
	return 0;
}

/* Start an exec (body names its exec_id) and leave it running: the SSE reply is dropped after
 * its first bytes, which does not stop the command. */
static void start_exec(const char *body)
{
	char *t = sb_strfmt("/v1/leases/%s/exec", L);
	sbt_req rq = {.method = "POST",
	              .target = t,
	              .body = body,
	              .accept = "text/event-stream",
	              .abort_after = 1};
	sbt_resp out;
	long st = sbt_http(&D, &rq, &out);
	if (st != 200) {
		print_error("starting %s: %ld %.*s\n", body, st, (int)out.body.len,
		            out.body.data ? out.body.data : "");
		fail();
	}
	sbt_resp_deinit(&out);
	free(t);
}

static char *stdout_now(const char *xid)
{
	char *t = sb_strfmt("/v1/leases/%s/execs/%s/output?stream=stdout", L, xid);
	sbt_req rq = {.method = "GET", .target = t};
	sbt_resp out;
	assert_int_equal(sbt_http(&D, &rq, &out), 200);
	sb_buf_append(&out.body, "", 1);
	char *s = sb_buf_steal(&out.body, NULL);
	sbt_resp_deinit(&out);
	free(t);
	return s;
}

static void wait_stdout(const char *xid, const char *needle)
{
	for (int i = 0; i < 1200; i++) {
		char *s = stdout_now(xid);
		bool found = strstr(s, needle) != NULL;
		if (found || i == 1199) {
			if (!found)
				print_error("exec %s never printed \"%s\"; its stdout:\n%s\n", xid,
				            needle, s);
			free(s);
			assert_true(found);
			return;
		}
		free(s);
		usleep(50 * 1000);
	}
}

static long post_stdin(const char *xid, const void *data, size_t len, bool eof, json_t **reply)
{
	char *t = sb_strfmt("/v1/leases/%s/execs/%s/stdin%s", L, xid, eof ? "?eof=1" : "");
	sbt_req rq = {.method = "POST", .target = t, .body = len ? data : "", .body_len = len};
	sbt_resp out;
	long st = sbt_http(&D, &rq, &out);
	if (reply) {
		*reply = out.json;
		out.json = NULL;
	}
	sbt_resp_deinit(&out);
	free(t);
	return st;
}

static long post_resize(const char *xid, const char *body)
{
	char *t = sb_strfmt("/v1/leases/%s/execs/%s/resize", L, xid);
	long st = 0;
	json_t *j = sbt_call(&D, "POST", t, body, &st);
	json_decref(j);
	free(t);
	return st;
}

/* The exec's final status (waits for its end). */
static json_t *wait_end(const char *xid)
{
	char *t = sb_strfmt("/v1/leases/%s/execs/%s", L, xid);
	for (int i = 0; i < 1200; i++) {
		long st = 0;
		json_t *j = sbt_call(&D, "GET", t, NULL, &st);
		assert_int_equal(st, 200);
		if (!json_is_true(json_object_get(j, "running"))) {
			free(t);
			return j;
		}
		json_decref(j);
		usleep(50 * 1000);
	}
	free(t);
	fail_msg("exec %s did not end", xid);
	return NULL;
}

static void tty_exec_size_resize_typing_raw_bytes_and_ctrl_c(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	start_exec("{\"exec_id\":\"tty-a\",\"tty\":{\"rows\":30,\"cols\":90,\"term\":"
	           "\"xterm-256color\"},\"script\":\""
	           "tty; stty size; echo term=$TERM; "
	           "trap 'echo winch $(stty size)' WINCH; echo ready-1; "
	           "until read line; do :; done; echo got=$line; "
	           "stty raw -echo; echo ready-2; head -c 65536 > raw.bin; stty sane; "
	           "echo raw-done; exec sleep 60\"}");
	wait_stdout("tty-a", "ready-1");
	char *out = stdout_now("tty-a");
	assert_non_null(strstr(out, "/dev/pts/"));
	assert_non_null(strstr(out, "30 90"));
	assert_non_null(strstr(out, "term=xterm-256color"));
	free(out);

	assert_int_equal(post_resize("tty-a", "{\"rows\":40,\"cols\":120}"), 200);
	wait_stdout("tty-a", "winch 40 120");

	json_t *r = NULL;
	assert_int_equal(post_stdin("tty-a", "hello\n", 6, false, &r), 200);
	assert_int_equal(json_integer_value(json_object_get(r, "written")), 6);
	json_decref(r);
	wait_stdout("tty-a", "got=hello");

	/* raw mode: every byte value arrives as sent (in two requests, in order) */
	wait_stdout("tty-a", "ready-2");
	size_t n = 65536;
	unsigned char *raw = sb_xmalloc(n);
	for (size_t i = 0; i < n; i++)
		raw[i] = (unsigned char)(i * 7 + i / 256);
	assert_int_equal(post_stdin("tty-a", raw, n / 2, false, NULL), 200);
	assert_int_equal(post_stdin("tty-a", raw + n / 2, n - n / 2, false, NULL), 200);
	wait_stdout("tty-a", "raw-done");
	char *ft = sb_strfmt("/v1/leases/%s/files/raw.bin", L);
	sbt_req rq = {.method = "GET", .target = ft};
	sbt_resp fr;
	assert_int_equal(sbt_http(&D, &rq, &fr), 200);
	assert_int_equal(fr.body.len, n);
	assert_memory_equal(fr.body.data, raw, n);
	sbt_resp_deinit(&fr);
	free(ft);
	free(raw);

	/* Ctrl-C is a byte: the command's own terminal turns it into SIGINT */
	assert_int_equal(post_stdin("tty-a", "\003", 1, false, NULL), 200);
	json_t *end = wait_end("tty-a");
	assert_string_equal(sbt_jstr(end, "signal"), "SIGINT");
	json_decref(end);
	/* its input is gone with it */
	assert_int_equal(post_stdin("tty-a", "x", 1, false, NULL), 404);
}

static void stdin_stream_takes_mibs_byte_exact(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	start_exec("{\"exec_id\":\"pipe-a\",\"stdin_stream\":true,\"script\":\"cat > in.bin; "
	           "echo eof-seen; wc -c < in.bin\"}");
	size_t n = 3u << 20, part = 1u << 20;
	char *data = sb_xmalloc(n);
	sbt_fill_random(data, n, 1414);
	uint64_t total = 0;
	for (size_t off = 0; off < n; off += part) {
		json_t *r = NULL;
		bool last = off + part >= n;
		assert_int_equal(post_stdin("pipe-a", data + off, part, last, &r), 200);
		total += (uint64_t)json_integer_value(json_object_get(r, "written"));
		assert_true(json_is_boolean(json_object_get(r, "closed")));
		assert_int_equal(json_is_true(json_object_get(r, "closed")), last);
		json_decref(r);
	}
	assert_int_equal(total, n);
	json_t *end = wait_end("pipe-a");
	assert_int_equal(json_integer_value(json_object_get(end, "exit_code")), 0);
	json_decref(end);
	char *out = stdout_now("pipe-a");
	assert_non_null(strstr(out, "eof-seen"));
	assert_non_null(strstr(out, "3145728"));
	free(out);
	char *ft = sb_strfmt("/v1/leases/%s/files/in.bin", L);
	sbt_req rq = {.method = "GET", .target = ft};
	sbt_resp fr;
	assert_int_equal(sbt_http(&D, &rq, &fr), 200);
	assert_int_equal(fr.body.len, n);
	assert_memory_equal(fr.body.data, data, n);
	sbt_resp_deinit(&fr);
	free(ft);
	free(data);
}

static void input_errors(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	/* no open stdin: a plain exec */
	start_exec("{\"exec_id\":\"plain-a\",\"script\":\"sleep 30\"}");
	assert_int_equal(post_stdin("plain-a", "x", 1, false, NULL), 404);
	/* a pipe has no window */
	start_exec("{\"exec_id\":\"pipe-b\",\"stdin_stream\":true,\"script\":\"cat\"}");
	assert_int_equal(post_resize("pipe-b", "{\"rows\":10,\"cols\":10}"), 400);
	assert_int_equal(post_resize("pipe-b", "{\"rows\":0,\"cols\":10}"), 400);
	assert_int_equal(post_stdin("pipe-b", "", 0, true, NULL), 200);
	json_t *end = wait_end("pipe-b");
	assert_int_equal(json_integer_value(json_object_get(end, "exit_code")), 0);
	json_decref(end);
	/* bad tty fields and mixed stdin forms */
	char *t = sb_strfmt("/v1/leases/%s/exec", L);
	long st = 0;
	json_decref(sbt_call(&D, "POST", t, "{\"argv\":[\"true\"],\"tty\":{\"rows\":0}}", &st));
	assert_int_equal(st, 400);
	json_decref(
	    sbt_call(&D, "POST", t, "{\"argv\":[\"true\"],\"tty\":{\"term\":\"a b\"}}", &st));
	assert_int_equal(st, 400);
	json_decref(
	    sbt_call(&D, "POST", t, "{\"argv\":[\"true\"],\"tty\":true,\"stdin\":\"eA==\"}", &st));
	assert_int_equal(st, 400);
	free(t);
	char *sig = sb_strfmt("/v1/leases/%s/execs/plain-a/signal", L);
	json_decref(sbt_call(&D, "POST", sig, "{\"signal\":\"KILL\"}", &st));
	assert_int_equal(st, 200);
	free(sig);
	json_decref(wait_end("plain-a"));
}

/* A daemon SIGKILLed while commands wait for input: after the restart, the pipe's and the
 * terminal's input are taken again from sandbar-init, the bytes arrive in order, EOF still
 * reaches the pipe's command, and input after EOF is refused. */
static void input_survives_a_daemon_restart(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	start_exec("{\"exec_id\":\"pipe-r\",\"stdin_stream\":true,\"script\":\"cat; "
	           "echo; echo eof-seen\"}");
	start_exec("{\"exec_id\":\"tty-r\",\"tty\":true,\"script\":\"read x; echo "
	           "got:$x\"}");
	assert_int_equal(post_stdin("pipe-r", "before-", 7, false, NULL), 200);
	wait_stdout("pipe-r", "before-");
	int st = sbt_daemon_signal(&D, SIGKILL);
	assert_true(WIFSIGNALED(st));
	sbt_daemon_restart(&D);
	assert_int_equal(post_stdin("tty-r", "typed\r", 6, false, NULL), 200);
	wait_stdout("tty-r", "got:typed");
	assert_int_equal(post_stdin("pipe-r", "after", 5, true, NULL), 200);
	json_t *end = wait_end("pipe-r");
	assert_int_equal(json_integer_value(json_object_get(end, "exit_code")), 0);
	json_decref(end);
	char *out = stdout_now("pipe-r");
	assert_string_equal(out, "before-after\neof-seen\n");
	free(out);
	assert_int_equal(post_stdin("pipe-r", "late", 4, false, NULL), 404);
	json_decref(wait_end("tty-r"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(tty_exec_size_resize_typing_raw_bytes_and_ctrl_c),
	    cmocka_unit_test(stdin_stream_takes_mibs_byte_exact),
	    cmocka_unit_test(input_errors),
	    cmocka_unit_test(input_survives_a_daemon_restart),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
