/* Renewals racing a destroy. ROUNDS leases; on each, RENEWERS threads renew in a loop while the
 * main thread destroys it. Acceptable answers for a renewal: 200 with a later expires_at (it
 * happened before the destroy), 409 (the lease is being destroyed), 404 not_found (destroyed);
 * never a 5xx, and never a 200 after the destroy answered 200 (a destroyed lease must not come
 * back). Afterwards the lease reads destroyed, nothing is left and /metrics agrees.
 * SANDBAR_STRESS_RENEW_ROUNDS raises the count. */
#include <pthread.h>
#include <stdatomic.h>

#include "stress.h"

#define RENEWERS 4
#define ROUNDS_DEFAULT 16

typedef struct renewer {
	sbt_daemon *d;
	const char *lease;
	atomic_bool *destroyed; /* set once the DELETE answered 200 */
	int ok, refused, failures;
	char first_error[400];
} renewer;

static void *renew(void *ud)
{
	renewer *w = ud;
	char *t = sb_strfmt("/v1/leases/%s/renew", w->lease);
	for (;;) {
		bool after = atomic_load(w->destroyed);
		long st;
		json_t *j = sbt_call(w->d, "POST", t, "{\"ttl_s\":600}", &st);
		const char *code = sbt_jstr(j, "error");
		bool stop = false;
		if (st == 200 && !after && sbt_jstr(j, "expires_at")) {
			w->ok++;
		} else if ((st == 409 && code) ||
		           (st == 404 && code && !strcmp(code, "not_found"))) {
			w->refused++;
			stop = st == 404;
		} else {
			w->failures++;
			stop = true;
			char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
			if (!w->first_error[0])
				snprintf(w->first_error, sizeof w->first_error,
				         "renew%s: HTTP %ld %s", after ? " after the destroy" : "",
				         st, s ? s : "");
			free(s);
		}
		json_decref(j);
		if (stop)
			break;
	}
	free(t);
	return NULL;
}

static void renew_while_destroy_never_revives(void **state)
{
	(void)state;
	curl_global_init(CURL_GLOBAL_ALL);
	sbt_daemon d;
	sbt_daemon_start(&d, NULL);
	assert_true(sbt_sandbox_ok(&d));
	int rounds = sbt_stress_count("SANDBAR_STRESS_RENEW_ROUNDS", ROUNDS_DEFAULT);
	char **ids = NULL;
	int ok = 0, refused = 0, failures = 0;
	for (int round = 0; round < rounds; round++) {
		char *aid = sb_strfmt("renew-destroy-%d", round);
		char *lease = sbt_acquire(&d, aid);
		free(aid);
		atomic_bool destroyed = false;
		renewer w[RENEWERS];
		pthread_t th[RENEWERS];
		for (int i = 0; i < RENEWERS; i++) {
			w[i] = (renewer){.d = &d, .lease = lease, .destroyed = &destroyed};
			assert_int_equal(pthread_create(&th[i], NULL, renew, &w[i]), 0);
		}
		usleep(10000 * (useconds_t)(round % 3)); /* a varying head start, not a sync */
		char *t = sb_strfmt("/v1/leases/%s", lease);
		long st;
		json_t *j = sbt_call(&d, "DELETE", t, NULL, &st);
		assert_int_equal(st, 200);
		atomic_store(&destroyed, true);
		json_decref(j);
		for (int i = 0; i < RENEWERS; i++) {
			pthread_join(th[i], NULL);
			ok += w[i].ok;
			refused += w[i].refused;
			failures += w[i].failures;
			if (w[i].first_error[0])
				print_error("round %d: %s\n", round, w[i].first_error);
		}
		j = sbt_call(&d, "GET", t, NULL, &st);
		assert_int_equal(st, 200);
		assert_string_equal(sbt_jstr(j, "state"), "destroyed");
		json_decref(j);
		free(t);
		sb_strv_push(&ids, lease);
		free(lease);
	}
	print_message("%d rounds: %d renewals, %d refused cleanly\n", rounds, ok, refused);
	assert_int_equal(failures, 0);

	assert_nothing_left(&d, ids, (size_t)rounds);
	char *m = metrics_text(&d);
	assert_metric(m, "sandbar_leases{state=\"active\"}", 0);
	assert_metric(m, "sandbar_leases{state=\"destroying\"}", 0);
	assert_metric(m, "sandbar_leases{state=\"destroyed\"}", rounds);
	assert_metric(m, "sandbar_execs_running", 0);
	assert_metric(m, "sandbar_http_requests_total{class=\"5xx\"}", 0);
	/* every request answered 2xx or 4xx, each counted once: acquires, renewals, destroys,
	 * the GETs, and the health probe of sbt_sandbox_ok */
	assert_metric(m, "sandbar_http_requests_total{class=\"4xx\"}", refused);
	free(m);
	sb_strv_free(ids);
	sbt_daemon_stop(&d);
	curl_global_cleanup();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(renew_while_destroy_never_revives),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
