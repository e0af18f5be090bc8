/* Execs over HTTP on a real lease: complete JSON results (output, exit code, stdin, env, cwd,
 * timeouts, spawn errors), SSE streams (start, offsets, keepalive comments, end), a stream
 * dropped mid-way and reattached by offset and by Last-Event-ID with every byte exactly once,
 * raw output reads, status, signals, and the fence that refuses a destroy while an exec runs. */
#include <string.h>
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
		L = sbt_acquire(&D, "exec-tests");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(L);
	sbt_group_stop(&D);
	return 0;
}

static json_t *exec_json(const char *body, long *st)
{
	char *t = sb_strfmt("/v1/leases/%s/exec", L);
	json_t *j = sbt_call(&D, "POST", t, body, st);
	free(t);
	return j;
}

static void json_exec_returns_output_exit_code_and_reads_stdin(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	long st;
	/* "hello\n" in base64 */
	json_t *j =
	    exec_json("{\"script\":\"cat; echo err >&2; exit 3\",\"stdin\":\"aGVsbG8K\"}", &st);
	assert_int_equal(st, 200);
	assert_string_equal(sbt_jstr(j, "stdout"), "hello\n");
	assert_string_equal(sbt_jstr(j, "stderr"), "err\n");
	assert_string_equal(sbt_jstr(j, "stdout_b64"), "aGVsbG8K");
	assert_int_equal(json_integer_value(json_object_get(j, "exit_code")), 3);
	assert_true(json_is_false(json_object_get(j, "timed_out")));
	assert_true(json_is_null(json_object_get(j, "signal")));
	assert_true(json_is_false(json_object_get(j, "truncated")));
	assert_non_null(sbt_jstr(j, "exec_id"));
	json_decref(j);
}

static void json_exec_applies_env_and_cwd(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	long st;
	json_t *j = exec_json("{\"argv\":[\"sh\",\"-c\",\"echo $FOO; pwd\"],\"env\":{\"FOO\":\"b a "
	                      "r\"},\"cwd\":\"/tmp\"}",
	                      &st);
	assert_int_equal(st, 200);
	assert_string_equal(sbt_jstr(j, "stdout"), "b a r\n/tmp\n");
	assert_int_equal(json_integer_value(json_object_get(j, "exit_code")), 0);
	json_decref(j);
}

static void json_exec_times_out(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	long st;
	json_t *j = exec_json("{\"argv\":[\"sleep\",\"30\"],\"timeout_ms\":300}", &st);
	assert_int_equal(st, 200);
	assert_true(json_is_true(json_object_get(j, "timed_out")));
	assert_true(json_is_null(json_object_get(j, "exit_code")));
	assert_non_null(sbt_jstr(j, "signal"));
	json_decref(j);
}

static void missing_program_is_a_spawn_error(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	long st;
	json_t *j = exec_json("{\"argv\":[\"/no/such/program\"]}", &st);
	assert_int_equal(st, 400);
	assert_string_equal(sbt_jstr(j, "error"), "spawn_failed");
	json_decref(j);
}

/* Run an SSE request; returns the events (caller frees). */
static size_t sse(const char *method, const char *target, const char *body, const char *lei,
                  size_t abort_after, sbt_event **ev, size_t *keepalives, long *status)
{
	char *h = lei ? sb_strfmt("Last-Event-ID: %s", lei) : NULL;
	const char *hdrs[] = {h, NULL};
	sbt_req rq = {.method = method,
	              .target = target,
	              .body = body,
	              .accept = "text/event-stream",
	              .abort_after = abort_after,
	              .headers = h ? hdrs : NULL};
	sbt_resp r;
	*status = sbt_http(&D, &rq, &r);
	size_t n = sbt_sse_parse(r.body.data ? r.body.data : "", r.body.len, ev, keepalives);
	sbt_resp_deinit(&r);
	free(h);
	return n;
}

/* Append the decoded data of stdout events to out, checking offsets are contiguous from
 * *next. Returns the index of the "end" event or n. */
static size_t collect_stdout(sbt_event *ev, size_t n, uint64_t *next, sb_buf *out)
{
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(ev[i].type, "end"))
			return i;
		if (strcmp(ev[i].type, "stdout") != 0)
			continue;
		uint64_t off = (uint64_t)json_integer_value(json_object_get(ev[i].data, "offset"));
		assert_int_equal(off, *next);
		sb_buf dec = SB_BUF_INIT;
		const char *b64 = json_string_value(json_object_get(ev[i].data, "data_b64"));
		SB_ASSERT_OK(sb_b64_decode(b64, strlen(b64), &dec));
		sb_buf_append(out, dec.data, dec.len);
		*next += dec.len;
		sb_buf_deinit(&dec);
	}
	return n;
}

static char *seq_text(int from, int to)
{
	sb_buf b = SB_BUF_INIT;
	for (int i = from; i <= to; i++)
		sb_buf_appendf(&b, "%d\n", i);
	return sb_buf_steal(&b, NULL);
}

static void sse_exec_streams_start_output_keepalive_end(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	char *t = sb_strfmt("/v1/leases/%s/exec", L);
	sbt_event *ev;
	size_t ka = 0;
	long st;
	size_t n = sse("POST", t, "{\"script\":\"seq 1 3; sleep 1; seq 4 6; echo e >&2\"}", NULL, 0,
	               &ev, &ka, &st);
	assert_int_equal(st, 200);
	assert_true(n >= 3);
	assert_string_equal(ev[0].type, "start");
	assert_non_null(sbt_jstr(ev[0].data, "exec_id"));
	assert_true(json_integer_value(json_object_get(ev[0].data, "pid")) > 0);
	uint64_t next = 0;
	sb_buf out = SB_BUF_INIT;
	size_t end = collect_stdout(ev, n, &next, &out);
	assert_true(end == n - 1);
	assert_string_equal(sb_buf_cstr(&out), "1\n2\n3\n4\n5\n6\n");
	json_t *e = ev[end].data;
	assert_int_equal(json_integer_value(json_object_get(e, "exit_code")), 0);
	assert_true(json_is_null(json_object_get(e, "signal")));
	assert_true(json_is_false(json_object_get(e, "timed_out")));
	assert_true(json_is_false(json_object_get(e, "truncated")));
	bool saw_stderr = false;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(ev[i].type, "stderr"))
			saw_stderr = true;
	assert_true(saw_stderr);
	/* keepalive every 300 ms here; the command was silent for a second */
	assert_true(ka >= 1);
	sb_buf_deinit(&out);
	sbt_events_free(ev, n);
	free(t);
}

static void dropped_stream_reattaches_by_offset_and_last_event_id(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	char *t = sb_strfmt("/v1/leases/%s/exec", L);
	sbt_event *ev;
	size_t ka;
	long st;
	/* 1..60000 in three bursts, so the drop lands while it still runs. */
	const char *body = "{\"script\":\"seq 1 20000; sleep 0.3; seq 20001 40000; sleep 0.3; seq "
	                   "40001 60000\"}";
	size_t n = sse("POST", t, body, NULL, 200000, &ev, &ka, &st);
	assert_int_equal(st, 200);
	assert_string_equal(ev[0].type, "start");
	char *xid = sb_xstrdup(sbt_jstr(ev[0].data, "exec_id"));
	uint64_t next = 0;
	sb_buf out = SB_BUF_INIT;
	size_t end = collect_stdout(ev, n, &next, &out);
	assert_true(end == n); /* dropped: no end event */
	assert_true(next > 0);
	char *lei = NULL;
	for (size_t i = 0; i < n; i++)
		if (ev[i].id) {
			free(lei);
			lei = sb_xstrdup(ev[i].id);
		}
	sbt_events_free(ev, n);
	uint64_t mark = next;
	size_t mark_len = out.len;

	/* Reattach by offset: the rest of stdout, exactly once, then end. */
	char *o = sb_strfmt("/v1/leases/%s/execs/%s/output?stream=stdout&offset=%llu&follow=1", L,
	                    xid, (unsigned long long)next);
	n = sse("GET", o, NULL, NULL, 0, &ev, &ka, &st);
	assert_int_equal(st, 200);
	end = collect_stdout(ev, n, &next, &out);
	assert_true(end < n);
	assert_int_equal(json_integer_value(json_object_get(ev[end].data, "exit_code")), 0);
	char *want = seq_text(1, 60000);
	assert_int_equal(out.len, strlen(want));
	assert_memory_equal(out.data, want, out.len);
	sbt_events_free(ev, n);

	/* Reattach by Last-Event-ID ("<stdout>,<stderr>" offsets): same bytes from the mark. */
	assert_non_null(lei);
	char *o2 = sb_strfmt("/v1/leases/%s/execs/%s/output", L, xid);
	n = sse("GET", o2, NULL, lei, 0, &ev, &ka, &st);
	assert_int_equal(st, 200);
	uint64_t next2 = mark;
	sb_buf rest = SB_BUF_INIT;
	end = collect_stdout(ev, n, &next2, &rest);
	assert_true(end < n);
	assert_int_equal(mark_len + rest.len, strlen(want));
	assert_memory_equal(rest.data, want + mark_len, rest.len);
	sbt_events_free(ev, n);

	/* Raw bytes of one stream from an offset. */
	char *o3 = sb_strfmt("/v1/leases/%s/execs/%s/output?stream=stdout&offset=6", L, xid);
	sbt_req rq = {.method = "GET", .target = o3};
	sbt_resp r;
	assert_int_equal(sbt_http(&D, &rq, &r), 200);
	assert_int_equal(r.body.len, strlen(want) - 6);
	assert_memory_equal(r.body.data, want + 6, r.body.len);
	sbt_resp_deinit(&r);

	/* Status. */
	char *s = sb_strfmt("/v1/leases/%s/execs/%s", L, xid);
	json_t *j = sbt_call(&D, "GET", s, NULL, &st);
	assert_int_equal(st, 200);
	assert_true(json_is_false(json_object_get(j, "running")));
	assert_int_equal(json_integer_value(json_object_get(j, "stdout_bytes")), strlen(want));
	json_decref(j);

	free(s);
	free(o3);
	free(o2);
	free(o);
	free(want);
	free(lei);
	sb_buf_deinit(&rest);
	sb_buf_deinit(&out);
	free(xid);
	free(t);
}

static void running_exec_fences_destroy_until_signalled(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	char *t = sb_strfmt("/v1/leases/%s/exec", L);
	sbt_event *ev;
	size_t ka;
	long st;
	/* Abort right after the start event; the command keeps running. */
	size_t n = sse("POST", t, "{\"argv\":[\"sleep\",\"60\"]}", NULL, 1, &ev, &ka, &st);
	assert_int_equal(st, 200);
	assert_true(n >= 1);
	char *xid = sb_xstrdup(sbt_jstr(ev[0].data, "exec_id"));
	sbt_events_free(ev, n);

	/* The running exec shows in the metrics. */
	sbt_req mq = {.method = "GET", .target = "/metrics"};
	sbt_resp mr;
	assert_int_equal(sbt_http(&D, &mq, &mr), 200);
	const char *run = strstr(sb_buf_cstr(&mr.body), "\nsandbar_execs_running ");
	assert_non_null(run);
	assert_true(atoi(run + strlen("\nsandbar_execs_running ")) >= 1);
	sbt_resp_deinit(&mr);

	char *d = sb_strfmt("/v1/leases/%s", L);
	json_t *j = sbt_call(&D, "DELETE", d, NULL, &st);
	assert_int_equal(st, 409);
	assert_string_equal(sbt_jstr(j, "error"), "lease_busy");
	json_t *busy = json_object_get(json_object_get(j, "details"), "busy");
	assert_true(json_array_size(busy) >= 1);
	json_decref(j);

	char *sg = sb_strfmt("/v1/leases/%s/execs/%s/signal", L, xid);
	j = sbt_call(&D, "POST", sg, "{\"signal\":\"KILL\"}", &st);
	assert_int_equal(st, 200);
	assert_string_equal(sbt_jstr(j, "signal"), "SIGKILL");
	json_decref(j);
	j = sbt_call(&D, "POST", sg, "{\"signal\":\"NOPE\"}", &st);
	assert_int_equal(st, 400);
	json_decref(j);

	char *s = sb_strfmt("/v1/leases/%s/execs/%s", L, xid);
	bool running = true;
	for (int i = 0; i < 500 && running; i++) {
		j = sbt_call(&D, "GET", s, NULL, &st);
		running = json_is_true(json_object_get(j, "running"));
		if (!running)
			assert_string_equal(sbt_jstr(j, "signal"), "SIGKILL");
		json_decref(j);
		if (running)
			usleep(10000); /* poll interval: nothing notifies this condition */
	}
	assert_false(running);

	char *ls = sb_strfmt("/v1/leases/%s/execs", L);
	j = sbt_call(&D, "GET", ls, NULL, &st);
	assert_int_equal(st, 200);
	assert_true(json_array_size(json_object_get(j, "execs")) >= 1);
	json_decref(j);
	free(ls);
	free(s);
	free(sg);
	free(d);
	free(xid);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(json_exec_returns_output_exit_code_and_reads_stdin),
	    cmocka_unit_test(json_exec_applies_env_and_cwd),
	    cmocka_unit_test(json_exec_times_out),
	    cmocka_unit_test(missing_program_is_a_spawn_error),
	    cmocka_unit_test(sse_exec_streams_start_output_keepalive_end),
	    cmocka_unit_test(dropped_stream_reattaches_by_offset_and_last_event_id),
	    cmocka_unit_test(running_exec_fences_destroy_until_signalled),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
