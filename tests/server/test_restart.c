/* Daemon restarts: SIGKILL during a streaming exec, restart on the same state directory,
 * reattach by offset: the full output and the exit code arrive. SIGTERM drains and exits 0
 * leaving the sandbox running; the restarted daemon re-adopts the lease (and its tombstones:
 * a destroyed acquisition stays destroyed). */
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "srvtest.h"

static char *seq_text(int from, int to)
{
	sb_buf b = SB_BUF_INIT;
	for (int i = from; i <= to; i++)
		sb_buf_appendf(&b, "%d\n", i);
	return sb_buf_steal(&b, NULL);
}

static void collect(sbt_event *ev, size_t n, uint64_t *next, sb_buf *out, json_t **end)
{
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(ev[i].type, "end")) {
			*end = json_incref(ev[i].data);
			return;
		}
		if (strcmp(ev[i].type, "stdout") != 0)
			continue;
		assert_int_equal(
		    (uint64_t)json_integer_value(json_object_get(ev[i].data, "offset")), *next);
		const char *b64 = json_string_value(json_object_get(ev[i].data, "data_b64"));
		sb_buf dec = SB_BUF_INIT;
		SB_ASSERT_OK(sb_b64_decode(b64, strlen(b64), &dec));
		sb_buf_append(out, dec.data, dec.len);
		*next += dec.len;
		sb_buf_deinit(&dec);
	}
}

/* Start a daemon on a fresh state directory; the calling test cannot run where sandboxes
 * cannot be created on this host (a macro so sbt_skip names the test). */
#define start_or_skip(d)                                                                           \
	do {                                                                                       \
		sbt_daemon_start((d), NULL);                                                       \
		if (!sbt_sandbox_ok(d)) {                                                          \
			sbt_daemon_stop(d);                                                        \
			sbt_skip(SBT_NO_SANDBOX);                                                  \
		}                                                                                  \
	} while (0)

/* Wait until a command line containing needle shows in the lease's process list. */
static void wait_for_process(sbt_daemon *d, const char *lease, const char *needle)
{
	char *p = sb_strfmt("/v1/leases/%s/processes", lease);
	bool running = false;
	for (int i = 0; i < 500 && !running; i++) {
		long s;
		json_t *j = sbt_call(d, "GET", p, NULL, &s);
		char *txt = json_dumps(j, 0);
		running = txt && strstr(txt, needle) != NULL;
		free(txt);
		json_decref(j);
		if (!running)
			usleep(10000); /* poll interval: nothing notifies this condition */
	}
	free(p);
	assert_true(running);
}

/* SIGTERM drains the daemon: it exits 0. */
static void sigterm_drains(sbt_daemon *d)
{
	int st = sbt_daemon_signal(d, SIGTERM);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void sigkill_during_stream_then_reattach_gets_everything(void **state)
{
	(void)state;
	sbt_daemon d;
	start_or_skip(&d);
	char *lease = sbt_acquire(&d, "restart-kill");
	char *t = sb_strfmt("/v1/leases/%s/exec", lease);
	sbt_req rq = {.method = "POST",
	              .target = t,
	              .body = "{\"script\":\"seq 1 10000; sleep 1; seq 10001 20000; sleep 0.5; seq "
	                      "20001 30000; exit 7\"}",
	              .accept = "text/event-stream",
	              .abort_after = 30000};
	sbt_resp r;
	sbt_http(&d, &rq, &r);
	sbt_event *ev;
	size_t n = sbt_sse_parse(r.body.data, r.body.len, &ev, NULL);
	sbt_resp_deinit(&r);
	assert_true(n >= 1);
	assert_string_equal(ev[0].type, "start");
	char *xid = sb_xstrdup(sbt_jstr(ev[0].data, "exec_id"));
	uint64_t next = 0;
	sb_buf out = SB_BUF_INIT;
	json_t *end = NULL;
	collect(ev, n, &next, &out, &end);
	sbt_events_free(ev, n);
	assert_null(end);

	/* The daemon dies without any chance to clean up, while the command still runs. */
	int st = sbt_daemon_signal(&d, SIGKILL);
	assert_true(WIFSIGNALED(st));
	sbt_daemon_restart(&d);

	char *o = sb_strfmt("/v1/leases/%s/execs/%s/output?stream=stdout&offset=%llu&follow=1",
	                    lease, xid, (unsigned long long)next);
	sbt_req rr = {.method = "GET", .target = o, .accept = "text/event-stream"};
	assert_int_equal(sbt_http(&d, &rr, &r), 200);
	n = sbt_sse_parse(r.body.data, r.body.len, &ev, NULL);
	sbt_resp_deinit(&r);
	collect(ev, n, &next, &out, &end);
	sbt_events_free(ev, n);
	assert_non_null(end);
	assert_int_equal(json_integer_value(json_object_get(end, "exit_code")), 7);
	char *want = seq_text(1, 30000);
	assert_int_equal(out.len, strlen(want));
	assert_memory_equal(out.data, want, out.len);

	/* The lease itself is still usable. */
	long s;
	json_t *j = sbt_call(&d, "POST", t, "{\"argv\":[\"echo\",\"alive\"]}", &s);
	assert_int_equal(s, 200);
	assert_string_equal(sbt_jstr(j, "stdout"), "alive\n");
	json_decref(j);

	json_decref(end);
	free(want);
	free(o);
	sb_buf_deinit(&out);
	free(xid);
	free(t);
	free(lease);
	sbt_daemon_stop(&d);
}

static void sigterm_leaves_sandboxes_and_restart_readopts(void **state)
{
	(void)state;
	sbt_daemon d;
	start_or_skip(&d);
	char *keep = sbt_acquire(&d, "restart-keep");
	char *gone = sbt_acquire(&d, "restart-gone");
	long s;
	/* Something in the sandbox's /tmp shows that it is the same sandbox afterwards. */
	char *x = sb_strfmt("/v1/leases/%s/exec", keep);
	json_t *j = sbt_call(&d, "POST", x, "{\"script\":\"echo mark > /tmp/mark\"}", &s);
	assert_int_equal(s, 200);
	json_decref(j);
	char *g = sb_strfmt("/v1/leases/%s", gone);
	j = sbt_call(&d, "DELETE", g, NULL, &s);
	assert_int_equal(s, 200);
	json_decref(j);

	sigterm_drains(&d);
	char *log = sbt_read(d.dir, "daemon.log", NULL);
	assert_non_null(strstr(log, "sandboxes keep running"));
	free(log);
	sbt_daemon_restart(&d);

	char *k = sb_strfmt("/v1/leases/%s", keep);
	j = sbt_call(&d, "GET", k, NULL, &s);
	assert_int_equal(s, 200);
	assert_string_equal(sbt_jstr(j, "state"), "active");
	json_decref(j);
	j = sbt_call(&d, "POST", x, "{\"argv\":[\"cat\",\"/tmp/mark\"]}", &s);
	assert_int_equal(s, 200);
	assert_string_equal(sbt_jstr(j, "stdout"), "mark\n");
	json_decref(j);
	/* Replaying the kept acquisition returns the same lease. */
	j = sbt_call(&d, "POST", "/v1/leases",
	             "{\"acquisition_id\":\"restart-keep\",\"ttl_s\":600}", &s);
	assert_int_equal(s, 200);
	assert_string_equal(sbt_jstr(j, "id"), keep);
	json_decref(j);
	/* The tombstone survived. */
	j = sbt_call(&d, "POST", "/v1/leases",
	             "{\"acquisition_id\":\"restart-gone\",\"ttl_s\":600}", &s);
	assert_int_equal(s, 409);
	json_decref(j);
	j = sbt_call(&d, "GET", g, NULL, &s);
	assert_string_equal(sbt_jstr(j, "state"), "destroyed");
	json_decref(j);
	free(k);
	free(g);
	free(x);
	free(keep);
	free(gone);
	sbt_daemon_stop(&d);
}

typedef struct bg_exec {
	sbt_daemon *d;
	sbt_req rq;
	sbt_resp r;
} bg_exec;

static void *bg_exec_main(void *arg)
{
	bg_exec *b = arg;
	sbt_http(b->d, &b->rq, &b->r);
	return NULL;
}

/* POST body (answered as accept, NULL = JSON) to the lease's exec route on a thread, wait until
 * its command (needle) runs, SIGTERM the daemon (it must drain and exit 0) and hand back the
 * answer the interrupted request got. */
static void sigterm_during_exec(sbt_daemon *d, const char *lease, const char *body,
                                const char *accept, const char *needle, sbt_resp *out)
{
	char *t = sb_strfmt("/v1/leases/%s/exec", lease);
	bg_exec b = {.d = d, .rq = {.method = "POST", .target = t, .body = body, .accept = accept}};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, bg_exec_main, &b), 0);
	wait_for_process(d, lease, needle);
	sigterm_drains(d);
	pthread_join(th, NULL);
	*out = b.r;
	free(t);
}

static void sigterm_ends_open_streams_without_end_and_exits_cleanly(void **state)
{
	(void)state;
	sbt_daemon d;
	start_or_skip(&d);
	char *lease = sbt_acquire(&d, "restart-drain");
	sbt_resp br;
	sigterm_during_exec(&d, lease, "{\"script\":\"echo first; sleep 3; echo second\"}",
	                    "text/event-stream", "sleep 3", &br);
	sbt_event *ev;
	size_t n = sbt_sse_parse(br.body.data, br.body.len, &ev, NULL);
	assert_true(n >= 1);
	assert_string_equal(ev[0].type, "start");
	char *xid = sb_xstrdup(json_string_value(json_object_get(ev[0].data, "exec_id")));
	for (size_t i = 0; i < n; i++)
		assert_string_not_equal(ev[i].type, "end"); /* interrupted, never "success" */
	sbt_events_free(ev, n);
	sbt_resp_deinit(&br);

	/* The command kept running; after a restart its end is there. */
	sbt_daemon_restart(&d);
	char *o = sb_strfmt("/v1/leases/%s/execs/%s/output?stream=stdout", lease, xid);
	sbt_req rq = {.method = "GET", .target = o, .accept = "text/event-stream"};
	sbt_resp r;
	assert_int_equal(sbt_http(&d, &rq, &r), 200);
	n = sbt_sse_parse(r.body.data, r.body.len, &ev, NULL);
	uint64_t next = 0;
	sb_buf out = SB_BUF_INIT;
	json_t *end = NULL;
	collect(ev, n, &next, &out, &end);
	assert_non_null(end);
	assert_int_equal(json_integer_value(json_object_get(end, "exit_code")), 0);
	assert_string_equal(sb_buf_cstr(&out), "first\nsecond\n");
	json_decref(end);
	sb_buf_deinit(&out);
	sbt_events_free(ev, n);
	sbt_resp_deinit(&r);
	free(o);
	free(xid);
	free(lease);
	sbt_daemon_stop(&d);
}

static void sigterm_answers_a_waiting_json_exec_with_503(void **state)
{
	(void)state;
	sbt_daemon d;
	start_or_skip(&d);
	char *lease = sbt_acquire(&d, "restart-json");
	sbt_resp br;
	sigterm_during_exec(&d, lease, "{\"script\":\"sleep 2; echo done\"}", NULL, "sleep 2", &br);
	assert_int_equal(br.status, 503);
	assert_string_equal(sbt_jstr(br.json, "error"), "shutting_down");
	char *xid = sb_xstrdup(sbt_jstr(json_object_get(br.json, "details"), "exec_id"));
	sbt_resp_deinit(&br);

	sbt_daemon_restart(&d);
	char *o = sb_strfmt("/v1/leases/%s/execs/%s/output?stream=stdout&follow=1", lease, xid);
	sbt_req rq = {.method = "GET", .target = o};
	sbt_resp r;
	assert_int_equal(sbt_http(&d, &rq, &r), 200);
	assert_string_equal(sb_buf_cstr(&r.body), "done\n");
	sbt_resp_deinit(&r);
	free(o);
	free(xid);
	free(lease);
	sbt_daemon_stop(&d);
}

static void replayed_nonce_is_refused_after_a_restart_too(void **state)
{
	(void)state;
	sbt_daemon d;
	sbt_daemon_start(&d, NULL);
	sbt_req rq = {.method = "GET",
	              .target = "/v1/leases",
	              .auth = SBT_AUTH_HMAC,
	              .nonce = "restart-nonce-0123456789"};
	sbt_resp r;
	assert_int_equal(sbt_http(&d, &rq, &r), 200);
	sbt_resp_deinit(&r);
	int st = sbt_daemon_signal(&d, SIGKILL); /* no chance to save anything at exit */
	assert_true(WIFSIGNALED(st));
	sbt_daemon_restart(&d);
	assert_int_equal(sbt_http(&d, &rq, &r), 401);
	assert_non_null(strstr(json_string_value(json_object_get(r.json, "message")), "nonce"));
	sbt_resp_deinit(&r);
	rq.nonce = "restart-nonce-fresh-0123456789";
	assert_int_equal(sbt_http(&d, &rq, &r), 200);
	sbt_resp_deinit(&r);
	sbt_daemon_stop(&d);
}

static void dead_sandbox_is_marked_lost_and_its_output_stays_readable(void **state)
{
	(void)state;
	sbt_daemon d;
	start_or_skip(&d);
	char *lease = sbt_acquire(&d, "restart-lost");
	char *x = sb_strfmt("/v1/leases/%s/exec", lease);
	long s;
	json_t *j = sbt_call(&d, "POST", x, "{\"script\":\"echo before\"}", &s);
	assert_int_equal(s, 200);
	char *xid = sb_xstrdup(json_string_value(json_object_get(j, "exec_id")));
	json_decref(j);
	int st = sbt_daemon_signal(&d, SIGTERM);
	assert_true(WIFEXITED(st));

	/* The sandbox dies while no daemon watches (a crash, an OOM kill, a reboot). */
	char *rel = sb_strfmt("leases/%s/lease.json", lease);
	char *lj = sbt_read(d.state_dir, rel, NULL);
	assert_non_null(lj);
	json_t *info = json_loads(lj, 0, NULL);
	int pid = (int)json_integer_value(json_object_get(info, "init_pid"));
	assert_true(pid > 1);
	assert_int_equal(kill(pid, SIGKILL), 0);
	for (int i = 0; i < 500 && kill(pid, 0) == 0; i++)
		usleep(10000); /* poll interval: nothing notifies this condition */
	json_decref(info);
	free(lj);
	free(rel);

	sbt_daemon_restart(&d);
	char *g = sb_strfmt("/v1/leases/%s", lease);
	j = sbt_call(&d, "GET", g, NULL, &s);
	assert_int_equal(s, 200);
	assert_string_equal(sbt_jstr(j, "state"), "lost");
	json_decref(j);
	j = sbt_call(&d, "POST", x, "{\"argv\":[\"true\"]}", &s);
	assert_int_equal(s, 409);
	assert_string_equal(sbt_jstr(j, "error"), "sandbox_state_lost");
	json_decref(j);
	char *o = sb_strfmt("/v1/leases/%s/execs/%s/output?stream=stdout", lease, xid);
	sbt_req rq = {.method = "GET", .target = o};
	sbt_resp r;
	assert_int_equal(sbt_http(&d, &rq, &r), 200);
	assert_string_equal(sb_buf_cstr(&r.body), "before\n");
	sbt_resp_deinit(&r);
	/* A lost lease can still be destroyed (cleaned up). */
	j = sbt_call(&d, "DELETE", g, NULL, &s);
	assert_int_equal(s, 200);
	json_decref(j);
	free(o);
	free(g);
	free(xid);
	free(x);
	free(lease);
	sbt_daemon_stop(&d);
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_ALL);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(sigkill_during_stream_then_reattach_gets_everything),
	    cmocka_unit_test(sigterm_leaves_sandboxes_and_restart_readopts),
	    cmocka_unit_test(sigterm_ends_open_streams_without_end_and_exits_cleanly),
	    cmocka_unit_test(dead_sandbox_is_marked_lost_and_its_output_stays_readable),
	    cmocka_unit_test(sigterm_answers_a_waiting_json_exec_with_503),
	    cmocka_unit_test(replayed_nonce_is_refused_after_a_restart_too),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
