/* sandbar-init killed while a command runs (an OOM kill of the wrong process, an operator's
 * kill -9): whoever waits for that command must learn that its result is lost, never get a
 * success, and the lease must answer sandbox_state_lost from then on. Checked on the sandbox
 * API, on the sandbox runner and through a live daemon.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sbx.h"
#include "srvtest.h"

#include <sandbar/runner.h>

static void kill_and_reap_wait(int pid)
{
	assert_int_equal(kill(pid, SIGKILL), 0);
	/* init is not our child (the sandbox is detached): wait for it to go */
	for (int i = 0; i < 1000 && kill(pid, 0) == 0; i++)
		usleep(10000);
}

static int init_pid_of(sb_sandbox *sb)
{
	sb_sandbox_info info;
	sb_sandbox_get_info(sb, &info);
	assert_true(info.init_pid > 1);
	return info.init_pid;
}

static void running_exec_reports_state_lost(void **state)
{
	(void)state;
	char *st_dir = sbx_state_dir();
	sb_sandbox *sb = sbx_create(st_dir, "initkill", NULL);
	char *argv[] = {"sh", "-c", "echo started; exec sleep 60", NULL};
	sb_sandbox_exec_req req = {.argv = argv};
	sb_sandbox_exec *x = NULL;
	SB_ASSERT_OK(sb_sandbox_exec_start(sb, &req, &x));
	kill_and_reap_wait(init_pid_of(sb));
	/* the status turns into STATE_LOST, never a finished-with-exit-0 */
	sb_err *err = NULL;
	for (int i = 0; i < 200; i++) {
		sb_sandbox_exec_status st;
		err = sb_sandbox_exec_status_of(x, &st);
		if (err)
			break;
		assert_true(st.running); /* a dead sandbox must not look like a finished command */
		sb_err *w = sb_sandbox_exec_wait(x, 100, NULL);
		if (w) {
			err = w;
			break;
		}
	}
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_STATE_LOST);
	sb_err_free(err);
	sb_sandbox_exec_free(x);
	assert_false(sb_sandbox_alive(sb));
	/* a new command is refused with the same code */
	err = sb_sandbox_exec_start(sb, &req, &x);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_STATE_LOST);
	sb_err_free(err);
	SB_ASSERT_OK(sb_sandbox_destroy(sb));
	sbx_state_free(st_dir);
}

typedef struct runner_call {
	sb_runner *run;
	sb_err *err;
	sb_exec_result res;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool spawned;
} runner_call;

static sb_err *on_spawn(void *ud, int pid, const char *at)
{
	(void)pid;
	(void)at;
	runner_call *c = ud;
	pthread_mutex_lock(&c->mu);
	c->spawned = true;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

static void *runner_main(void *arg)
{
	runner_call *c = arg;
	char *argv[] = {"sleep", "60", NULL};
	sb_exec_request req = {.argv = argv};
	sb_exec_callbacks cb = {.on_spawn = on_spawn, .ud = c};
	c->err = sb_runner_execute(c->run, &req, &cb, NULL, &c->res);
	on_spawn(c, 0, NULL); /* release the waiter if the spawn never happened */
	return NULL;
}

static void runner_execute_is_not_a_success_when_init_dies(void **state)
{
	(void)state;
	char *st_dir = sbx_state_dir();
	sb_sandbox *sb = sbx_create(st_dir, "initkill-run", NULL);
	int init = init_pid_of(sb);
	runner_call c = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	sb_exec_result_init(&c.res);
	SB_ASSERT_OK(sb_sandbox_runner_new(sb, NULL, &c.run));
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, runner_main, &c), 0);
	pthread_mutex_lock(&c.mu);
	while (!c.spawned)
		pthread_cond_wait(&c.cv, &c.mu);
	pthread_mutex_unlock(&c.mu);
	kill_and_reap_wait(init);
	pthread_join(t, NULL);
	/* either an error or a result that carries the loss; never ok */
	if (c.err) {
		print_message("execute: %s\n", c.err->msg);
		assert_int_equal(c.err->code, SB_E_STATE_LOST);
		sb_err_free(c.err);
	} else {
		print_message("execute: transport error %s: %s\n",
		              c.res.transport_error_code ? c.res.transport_error_code : "(none)",
		              c.res.transport_error_msg ? c.res.transport_error_msg : "");
		assert_false(sb_exec_result_ok(&c.res));
		assert_non_null(c.res.transport_error_code);
	}
	sb_exec_result_deinit(&c.res);
	sb_runner_free(c.run);
	SB_ASSERT_OK(sb_sandbox_destroy(sb));
	sbx_state_free(st_dir);
}

/* ---- through the daemon */

typedef struct http_call {
	sbt_daemon *d;
	const char *target;
	const char *body;
	const char *accept;
	sbt_resp resp;
} http_call;

static void *http_main(void *arg)
{
	http_call *h = arg;
	sbt_req rq = {.method = "POST", .target = h->target, .body = h->body, .accept = h->accept};
	sbt_http(h->d, &rq, &h->resp);
	return NULL;
}

static int daemon_init_pid(sbt_daemon *d, const char *lease)
{
	char *rel = sb_strfmt("leases/%s/lease.json", lease);
	char *lj = sbt_read(d->state_dir, rel, NULL);
	assert_non_null(lj);
	json_t *info = json_loads(lj, 0, NULL);
	int pid = (int)json_integer_value(json_object_get(info, "init_pid"));
	json_decref(info);
	free(lj);
	free(rel);
	assert_true(pid > 1);
	return pid;
}

/* Wait until the lease shows a process running `sleep`. */
static void wait_for_sleep(sbt_daemon *d, const char *lease)
{
	char *p = sb_strfmt("/v1/leases/%s/processes", lease);
	for (int i = 0; i < 500; i++) {
		long s;
		json_t *j = sbt_call(d, "GET", p, NULL, &s);
		char *dump = j ? json_dumps(j, 0) : NULL;
		bool seen = dump && strstr(dump, "sleep");
		free(dump);
		json_decref(j);
		if (seen) {
			free(p);
			return;
		}
		usleep(10000);
	}
	fail_msg("the command never showed up in %s", p);
}

static void daemon_exec_reports_loss_and_lease_answers_state_lost(void **state)
{
	(void)state;
	sbt_daemon d;
	sbt_daemon_start(&d, NULL);
	if (!sbt_sandbox_ok(&d)) {
		sbt_daemon_stop(&d);
		skip();
	}
	char *lease = sbt_acquire(&d, "fault-initkill");
	char *x = sb_strfmt("/v1/leases/%s/exec", lease);
	http_call json = {.d = &d, .target = x, .body = "{\"argv\":[\"sleep\",\"60\"]}"};
	http_call sse = {.d = &d,
	                 .target = x,
	                 .body = "{\"script\":\"echo hi; exec sleep 61\"}",
	                 .accept = "text/event-stream"};
	pthread_t tj, ts;
	assert_int_equal(pthread_create(&tj, NULL, http_main, &json), 0);
	assert_int_equal(pthread_create(&ts, NULL, http_main, &sse), 0);
	wait_for_sleep(&d, lease);
	/* both commands are running (two sleeps) before init goes */
	char *p = sb_strfmt("/v1/leases/%s/processes", lease);
	for (int i = 0; i < 500; i++) {
		long s;
		json_t *j = sbt_call(&d, "GET", p, NULL, &s);
		size_t n = json_array_size(json_object_get(j, "processes"));
		json_decref(j);
		if (n >= 2)
			break;
		usleep(10000);
	}
	free(p);
	kill_and_reap_wait(daemon_init_pid(&d, lease));
	pthread_join(tj, NULL);
	pthread_join(ts, NULL);

	/* the waiting JSON exec: not a 200 success */
	print_message("JSON exec after init died: %ld %s\n", json.resp.status,
	              sb_buf_cstr(&json.resp.body));
	if (json.resp.status == 200) {
		json_t *e = json.resp.json;
		assert_false(json_is_integer(json_object_get(e, "exit_code")) &&
		             json_integer_value(json_object_get(e, "exit_code")) == 0);
		assert_non_null(json_object_get(e, "error"));
	} else {
		assert_int_equal(json.resp.status, 409);
		assert_string_equal(json_string_value(json_object_get(json.resp.json, "error")),
		                    "sandbox_state_lost");
	}
	/* the stream: never an `end`; an `error` event naming the loss, or closed without end */
	sbt_event *ev = NULL;
	size_t nev = sbt_sse_parse(sse.resp.body.data ? sse.resp.body.data : "", sse.resp.body.len,
	                           &ev, NULL);
	bool ended = false, lost = false;
	for (size_t i = 0; i < nev; i++) {
		if (!strcmp(ev[i].type, "end"))
			ended = true;
		if (!strcmp(ev[i].type, "error")) {
			const char *code = json_string_value(json_object_get(ev[i].data, "error"));
			lost = code && strcmp(code, "sandbox_state_lost") == 0;
		}
	}
	print_message("SSE exec after init died: %zu events, end=%d, state_lost=%d\n", nev, ended,
	              lost);
	assert_false(ended);
	assert_true(lost);
	sbt_events_free(ev, nev);

	/* every later exec: 409 sandbox_state_lost; the lease reads as lost */
	long s;
	json_t *j = sbt_call(&d, "POST", x, "{\"argv\":[\"true\"]}", &s);
	assert_int_equal(s, 409);
	assert_string_equal(json_string_value(json_object_get(j, "error")), "sandbox_state_lost");
	json_decref(j);
	char *g = sb_strfmt("/v1/leases/%s", lease);
	j = sbt_call(&d, "GET", g, NULL, &s);
	assert_int_equal(s, 200);
	assert_string_equal(json_string_value(json_object_get(j, "state")), "lost");
	json_decref(j);

	sbt_resp_deinit(&json.resp);
	sbt_resp_deinit(&sse.resp);
	free(g);
	free(x);
	free(lease);
	sbt_daemon_stop(&d);
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_ALL);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(running_exec_reports_state_lost),
	    cmocka_unit_test(runner_execute_is_not_a_success_when_init_dies),
	    cmocka_unit_test(daemon_exec_reports_loss_and_lease_answers_state_lost),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
