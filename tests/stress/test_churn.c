/* Leases acquired, used and destroyed by many clients at once against one real daemon on its
 * unix socket: THREADS threads x CYCLES cycles of acquire -> JSON exec of `seq 1 1000` ->
 * DELETE. Every call must succeed (today's bug: a spare lease directory built by two threads
 * under one temporary name was handed out half-made, 404 on acquire), nothing may be left
 * behind (lease directories, cgroups, sandbox processes, zombies), and /metrics must say exactly
 * what happened. SANDBAR_STRESS_CYCLES raises the count (`make soak`). */
#include "stress.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define THREADS 8
#define CYCLES_DEFAULT 20

typedef struct worker {
	sbt_daemon *d;
	int idx, cycles;
	int done, failures;
	uint64_t json_bytes; /* bodies of the JSON exec results received */
	char first_error[600];
	char **lease_ids; /* every lease this worker made (NULL-terminated) */
	size_t nleases;
} worker;

static const char *expected_seq(void)
{
	static char text[8192];
	if (!text[0]) {
		size_t n = 0;
		for (int i = 1; i <= 1000; i++)
			n += (size_t)snprintf(text + n, sizeof text - n, "%d\n", i);
	}
	return text;
}

static void failed(worker *w, const char *what, long status, json_t *j)
{
	w->failures++;
	if (w->first_error[0])
		return;
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	snprintf(w->first_error, sizeof w->first_error, "%s: HTTP %ld %s", what, status,
	         s ? s : "(no JSON)");
	free(s);
}

static void *work(void *ud)
{
	worker *w = ud;
	for (int c = 0; c < w->cycles; c++) {
		char *body =
		    sb_strfmt("{\"acquisition_id\":\"churn-%d-%d\",\"ttl_s\":600}", w->idx, c);
		long st = 0;
		json_t *j = sbt_call(w->d, "POST", "/v1/leases", body, &st);
		free(body);
		const char *id = sbt_jstr(j, "id");
		if (st != 200 || !id) {
			failed(w, "acquire", st, j);
			json_decref(j);
			continue;
		}
		char *lease = sb_xstrdup(id);
		json_decref(j);
		sb_strv_push(&w->lease_ids, lease);
		w->nleases++;

		char *t = sb_strfmt("/v1/leases/%s/exec", lease);
		sbt_req xr = {
		    .method = "POST", .target = t, .body = "{\"argv\":[\"seq\",\"1\",\"1000\"]}"};
		sbt_resp r;
		st = sbt_http(w->d, &xr, &r);
		free(t);
		const char *out = sbt_jstr(r.json, "stdout");
		if (st != 200 || !out || strcmp(out, expected_seq()) != 0)
			failed(w, "exec", st, r.json);
		if (st == 200)
			w->json_bytes += r.body.len;
		sbt_resp_deinit(&r);

		t = sb_strfmt("/v1/leases/%s", lease);
		j = sbt_call(w->d, "DELETE", t, NULL, &st);
		free(t);
		if (st != 200 ||
		    strcmp(sbt_jstr(j, "state") ? sbt_jstr(j, "state") : "", "destroyed") != 0)
			failed(w, "destroy", st, j);
		else
			w->done++;
		json_decref(j);
		free(lease);
	}
	return NULL;
}

static void churn_never_fails_and_leaves_nothing(void **state)
{
	(void)state;
	curl_global_init(CURL_GLOBAL_ALL);
	sbt_daemon d;
	sbt_daemon_start(&d, NULL);
	assert_true(sbt_sandbox_ok(&d));
	int cycles = sbt_stress_count("SANDBAR_STRESS_CYCLES", CYCLES_DEFAULT);
	worker w[THREADS];
	pthread_t th[THREADS];
	memset(w, 0, sizeof w);
	for (int i = 0; i < THREADS; i++) {
		w[i] = (worker){.d = &d, .idx = i, .cycles = cycles};
		assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
	}
	int failures = 0, done = 0;
	uint64_t json_bytes = 0;
	char **ids = NULL;
	size_t nids = 0;
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		failures += w[i].failures;
		done += w[i].done;
		json_bytes += w[i].json_bytes;
		if (w[i].first_error[0])
			print_error("thread %d: %d failures, first: %s\n", i, w[i].failures,
			            w[i].first_error);
		for (size_t k = 0; k < w[i].nleases; k++)
			sb_strv_push(&ids, w[i].lease_ids[k]);
		nids += w[i].nleases;
		sb_strv_free(w[i].lease_ids);
	}
	assert_int_equal(failures, 0);
	assert_int_equal(done, THREADS * cycles);

	assert_nothing_left(&d, ids, nids);

	char *m = metrics_text(&d);
	assert_metric(m, "sandbar_execs_running", 0);
	assert_metric(m, "sandbar_execs_total", THREADS * cycles);
	assert_metric(m, "sandbar_leases{state=\"active\"}", 0);
	assert_metric(m, "sandbar_leases{state=\"pending\"}", 0);
	assert_metric(m, "sandbar_leases{state=\"destroying\"}", 0);
	assert_metric(m, "sandbar_leases{state=\"destroyed\"}", THREADS * cycles);
	/* every byte of every JSON result, counted once (each worker summed what it got) */
	assert_metric(m, "sandbar_bytes_streamed_total{kind=\"json\"}", json_bytes);
	assert_metric(m, "sandbar_bytes_streamed_total{kind=\"sse\"}", 0);
	assert_metric(m, "sandbar_bytes_streamed_total{kind=\"file\"}", 0);
	assert_metric(m, "sandbar_acquire_failures_total{reason=\"none\"}", 0);
	assert_metric(m, "sandbar_spares_discarded_total", 0);
	assert_metric(m, "sandbar_acquire_duration_seconds_count", THREADS * cycles);
	assert_metric(m, "sandbar_auth_failures_total", 0);
	assert_metric(m, "sandbar_http_requests_total{class=\"4xx\"}", 0);
	assert_metric(m, "sandbar_http_requests_total{class=\"5xx\"}", 0);
	free(m);
	sb_strv_free(ids);
	sbt_daemon_stop(&d);
	curl_global_cleanup();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(churn_never_fails_and_leaves_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
