/* Execs started while their lease is destroyed. ROUNDS leases; on each, EXECERS threads run
 * short JSON execs in a loop while the main thread destroys the lease, alternately with a plain
 * DELETE (retried while it answers 409 lease_busy) and with ?defer=1 (202, then destroyed when
 * the last exec ends). Acceptable answers for a racing exec: 200 with its output (it ran to its
 * end), 409 lease_busy (the lease waits to be destroyed), 404 not_found (destroyed). Never a
 * 5xx, a transport failure or a hang. Afterwards nothing is left and /metrics counts exactly
 * the execs that answered 200. SANDBAR_STRESS_EXEC_DESTROY_ROUNDS raises the count. */
#include <pthread.h>

#include "stress.h"

#define EXECERS 4
#define ROUNDS_DEFAULT 12

typedef struct execer {
	sbt_daemon *d;
	const char *lease;
	int ok, refused, failures;
	uint64_t json_bytes;
	char first_error[600];
} execer;

static void *run_execs(void *ud)
{
	execer *e = ud;
	char *t = sb_strfmt("/v1/leases/%s/exec", e->lease);
	for (;;) {
		sbt_req rq = {.method = "POST", .target = t, .body = "{\"script\":\"echo ran\"}"};
		sbt_resp r;
		long st = sbt_http(e->d, &rq, &r);
		const char *code = sbt_jstr(r.json, "error");
		bool done = false;
		if (st == 200 && sbt_jstr(r.json, "stdout") &&
		    strcmp(sbt_jstr(r.json, "stdout"), "ran\n") == 0) {
			e->ok++;
			e->json_bytes += r.body.len;
		} else if ((st == 409 && code && strcmp(code, "lease_busy") == 0) ||
		           (st == 404 && code && strcmp(code, "not_found") == 0)) {
			e->refused++;
			done = true;
		} else {
			e->failures++;
			if (!e->first_error[0])
				snprintf(e->first_error, sizeof e->first_error, "exec: HTTP %ld %s",
				         st, sb_buf_cstr(&r.body));
			done = true;
		}
		sbt_resp_deinit(&r);
		if (done)
			break;
	}
	free(t);
	return NULL;
}

static void destroy(sbt_daemon *d, const char *lease, bool defer)
{
	char *t = sb_strfmt("/v1/leases/%s%s", lease, defer ? "?defer=1" : "");
	long st = 0;
	for (int i = 0; i < 2000; i++) {
		json_t *j = sbt_call(d, "DELETE", t, NULL, &st);
		const char *code = sbt_jstr(j, "error");
		bool busy = st == 409 && code && strcmp(code, "lease_busy") == 0;
		assert_true(st == 200 || st == 202 || busy);
		json_decref(j);
		if (!busy)
			break;
	}
	free(t);
	assert_true(st == 200 || st == 202);
	/* a deferred destroy ends when the last exec does */
	char *g = sb_strfmt("/v1/leases/%s", lease);
	bool gone = false;
	for (int i = 0; i < 1500 && !gone; i++) {
		json_t *j = sbt_call(d, "GET", g, NULL, &st);
		gone = st == 200 && sbt_jstr(j, "state") &&
		       strcmp(sbt_jstr(j, "state"), "destroyed") == 0;
		json_decref(j);
		if (!gone)
			usleep(10000); /* polling: the lease route is the client's only view */
	}
	free(g);
	assert_true(gone);
}

static void exec_while_destroy_answers_cleanly(void **state)
{
	(void)state;
	curl_global_init(CURL_GLOBAL_ALL);
	sbt_daemon d;
	sbt_daemon_start(&d, NULL);
	assert_true(sbt_sandbox_ok(&d));
	int rounds = sbt_stress_count("SANDBAR_STRESS_EXEC_DESTROY_ROUNDS", ROUNDS_DEFAULT);
	char **ids = NULL;
	int ok = 0, refused = 0, failures = 0;
	uint64_t json_bytes = 0;
	for (int round = 0; round < rounds; round++) {
		char *aid = sb_strfmt("exec-destroy-%d", round);
		char *lease = sbt_acquire(&d, aid);
		free(aid);
		execer e[EXECERS];
		pthread_t th[EXECERS];
		for (int i = 0; i < EXECERS; i++) {
			e[i] = (execer){.d = &d, .lease = lease};
			assert_int_equal(pthread_create(&th[i], NULL, run_execs, &e[i]), 0);
		}
		/* let a few execs run first, then destroy under them */
		usleep(20000 * (useconds_t)(round % 4)); /* a varying head start, not a sync */
		destroy(&d, lease, round % 2 == 1);
		for (int i = 0; i < EXECERS; i++) {
			pthread_join(th[i], NULL);
			ok += e[i].ok;
			refused += e[i].refused;
			failures += e[i].failures;
			json_bytes += e[i].json_bytes;
			if (e[i].first_error[0])
				print_error("round %d: %s\n", round, e[i].first_error);
		}
		sb_strv_push(&ids, lease);
		free(lease);
	}
	print_message("%d rounds: %d execs ran, %d refused cleanly\n", rounds, ok, refused);
	assert_int_equal(failures, 0);
	assert_int_equal(refused, rounds * EXECERS); /* every thread ends on a refusal */

	assert_nothing_left(&d, ids, (size_t)rounds);
	char *m = metrics_text(&d);
	assert_metric(m, "sandbar_execs_running", 0);
	assert_metric(m, "sandbar_execs_total", ok);
	assert_metric(m, "sandbar_bytes_streamed_total{kind=\"json\"}", json_bytes);
	assert_metric(m, "sandbar_leases{state=\"active\"}", 0);
	assert_metric(m, "sandbar_leases{state=\"destroying\"}", 0);
	assert_metric(m, "sandbar_leases{state=\"destroyed\"}", rounds);
	assert_metric(m, "sandbar_http_requests_total{class=\"5xx\"}", 0);
	free(m);
	sb_strv_free(ids);
	sbt_daemon_stop(&d);
	curl_global_cleanup();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(exec_while_destroy_answers_cleanly),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
