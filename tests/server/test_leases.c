/* Lease routes on a real daemon: acquire is idempotent on acquisition_id (same lease again),
 * different parameters conflict, destroyed leases leave tombstones that a late replay cannot
 * revive, destroy is idempotent, renew moves the expiry, the reaper destroys expired leases,
 * and the list shows live leases (and tombstones on request). With "reuse_key" (#15) a second
 * acquire of the same configuration gets the same lease back ("reused": true) with its files,
 * whatever its acquisition, issue or run ids; another configuration destroys it and makes a
 * fresh one; a destroyed lease is replaced; the key survives a daemon restart; reuse_key with
 * lease_id, or an empty key, is refused. */
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "srvtest.h"

static sbt_daemon D;
static bool OK;

static int setup(void **state)
{
	(void)state;
	sbt_group_start(&D, NULL);
	OK = sbt_sandbox_ok(&D);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sbt_group_stop(&D);
	return 0;
}

static void acquire_replays_and_conflicts(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	long st;
	const char *body = "{\"acquisition_id\":\"acq-replay\",\"ttl_s\":600,\"issue_id\":\"I-1\","
	                   "\"run_id\":\"R-1\",\"limits\":{\"pids\":256}}";
	json_t *a = sbt_call(&D, "POST", "/v1/leases", body, &st);
	assert_int_equal(st, 200);
	assert_true(json_is_false(json_object_get(a, "replayed")));
	assert_string_equal(sbt_jstr(a, "state"), "active");
	assert_string_equal(sbt_jstr(a, "issue_id"), "I-1");
	json_t *b = sbt_call(&D, "POST", "/v1/leases", body, &st);
	assert_int_equal(st, 200);
	assert_true(json_is_true(json_object_get(b, "replayed")));
	assert_string_equal(sbt_jstr(a, "id"), sbt_jstr(b, "id"));
	json_t *c = sbt_call(&D, "POST", "/v1/leases",
	                     "{\"acquisition_id\":\"acq-replay\",\"ttl_s\":601}", &st);
	assert_int_equal(st, 409);
	assert_string_equal(sbt_jstr(c, "error"), "acquisition_conflict");
	assert_string_equal(sbt_jstr(json_object_get(c, "details"), "lease_id"), sbt_jstr(a, "id"));
	/* A caller-chosen lease id taken by another acquisition conflicts too. */
	char *b2 =
	    sb_strfmt("{\"acquisition_id\":\"acq-other\",\"lease_id\":\"%s\"}", sbt_jstr(a, "id"));
	json_t *d = sbt_call(&D, "POST", "/v1/leases", b2, &st);
	assert_int_equal(st, 409);
	json_decref(d);
	free(b2);
	json_decref(a);
	json_decref(b);
	json_decref(c);
}

static void destroyed_lease_is_a_tombstone(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	long st;
	char *id = sbt_acquire(&D, "acq-tomb");
	char *t = sb_strfmt("/v1/leases/%s", id);
	json_t *j = sbt_call(&D, "DELETE", t, NULL, &st);
	assert_int_equal(st, 200);
	assert_true(json_is_false(json_object_get(j, "already")));
	json_decref(j);
	j = sbt_call(&D, "DELETE", t, NULL, &st);
	assert_int_equal(st, 200);
	assert_true(json_is_true(json_object_get(j, "already")));
	json_decref(j);
	j = sbt_call(&D, "GET", t, NULL, &st);
	assert_int_equal(st, 200);
	assert_string_equal(sbt_jstr(j, "state"), "destroyed");
	json_decref(j);
	/* A late replay of the same acquisition must not revive it. */
	j = sbt_call(&D, "POST", "/v1/leases", "{\"acquisition_id\":\"acq-tomb\",\"ttl_s\":600}",
	             &st);
	assert_int_equal(st, 409);
	assert_string_equal(sbt_jstr(j, "error"), "acquisition_conflict");
	assert_string_equal(sbt_jstr(json_object_get(j, "details"), "state"), "destroyed");
	json_decref(j);
	/* Execs on it are refused as not found. */
	char *x = sb_strfmt("/v1/leases/%s/exec", id);
	j = sbt_call(&D, "POST", x, "{\"argv\":[\"true\"]}", &st);
	assert_int_equal(st, 404);
	json_decref(j);
	/* Listed only on request. */
	j = sbt_call(&D, "GET", "/v1/leases", NULL, &st);
	char *s = json_dumps(j, 0);
	assert_null(strstr(s, id));
	free(s);
	json_decref(j);
	j = sbt_call(&D, "GET", "/v1/leases?all=1", NULL, &st);
	s = json_dumps(j, 0);
	assert_non_null(strstr(s, id));
	free(s);
	json_decref(j);
	free(x);
	free(t);
	free(id);
}

static void renew_moves_expiry_and_reaper_destroys_expired(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	long st;
	char *id = sbt_acquire(&D, "acq-renew");
	char *r = sb_strfmt("/v1/leases/%s/renew", id);
	json_t *j = sbt_call(&D, "POST", r, "{\"ttl_s\":3600}", &st);
	assert_int_equal(st, 200);
	int64_t exp = json_integer_value(json_object_get(j, "expires_ms"));
	assert_true(exp > sb_wall_ms() + 3500 * 1000LL);
	json_decref(j);
	j = sbt_call(&D, "POST", r, "{}", &st);
	assert_int_equal(st, 400);
	json_decref(j);
	/* Expire in a second; the reaper (every 200 ms here) destroys it. */
	j = sbt_call(&D, "POST", r, "{\"ttl_s\":1}", &st);
	assert_int_equal(st, 200);
	json_decref(j);
	char *t = sb_strfmt("/v1/leases/%s", id);
	bool destroyed = false;
	for (int i = 0; i < 1000 && !destroyed; i++) {
		j = sbt_call(&D, "GET", t, NULL, &st);
		destroyed = !strcmp(sbt_jstr(j, "state"), "destroyed");
		if (destroyed)
			assert_string_equal(sbt_jstr(j, "reason"), "expired");
		json_decref(j);
		if (!destroyed)
			usleep(20000); /* poll interval: nothing notifies this condition */
	}
	assert_true(destroyed);
	free(t);
	free(r);
	free(id);
}

static void defer_destroys_after_the_running_exec(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	long st;
	char *id = sbt_acquire(&D, "acq-defer");
	char *x = sb_strfmt("/v1/leases/%s/exec", id);
	sbt_req rq = {.method = "POST",
	              .target = x,
	              .body = "{\"argv\":[\"sleep\",\"1\"]}",
	              .accept = "text/event-stream",
	              .abort_after = 1};
	sbt_resp rs;
	sbt_http(&D, &rq, &rs);
	sbt_resp_deinit(&rs);
	char *t = sb_strfmt("/v1/leases/%s?defer=1", id);
	json_t *j = sbt_call(&D, "DELETE", t, NULL, &st);
	assert_int_equal(st, 202);
	assert_string_equal(sbt_jstr(j, "state"), "destroying");
	json_decref(j);
	/* New execs are refused while it waits. */
	j = sbt_call(&D, "POST", x, "{\"argv\":[\"true\"]}", &st);
	assert_int_equal(st, 409);
	json_decref(j);
	char *g = sb_strfmt("/v1/leases/%s", id);
	bool destroyed = false;
	for (int i = 0; i < 1000 && !destroyed; i++) {
		j = sbt_call(&D, "GET", g, NULL, &st);
		destroyed = !strcmp(sbt_jstr(j, "state"), "destroyed");
		json_decref(j);
		if (!destroyed)
			usleep(20000); /* poll interval: nothing notifies this condition */
	}
	assert_true(destroyed);
	free(g);
	free(t);
	free(x);
	free(id);
}

static void lease_json_has_the_documented_fields(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	long st;
	char *id = sbt_acquire(&D, "acq-fields");
	char *t = sb_strfmt("/v1/leases/%s", id);
	json_t *j = sbt_call(&D, "GET", t, NULL, &st);
	assert_int_equal(st, 200);
	const char *keys[] = {"id",         "state",      "acquisition_id", "fingerprint",
	                      "network",    "ttl_s",      "limits",         "enforced",
	                      "created_at", "expires_at", "renewed_at"};
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		assert_non_null(json_object_get(j, keys[i]));
	json_decref(j);
	j = sbt_call(&D, "GET", "/v1/leases", NULL, &st);
	assert_true(json_array_size(json_object_get(j, "leases")) >= 1);
	json_decref(j);
	free(t);
	free(id);
}

/* Acquire with body; asserts 200 and whether the lease was reused; returns its id (malloc'd). */
static char *acquire(const char *body, bool want_reused)
{
	long st;
	json_t *j = sbt_call(&D, "POST", "/v1/leases", body, &st);
	if (st != 200)
		print_error("acquire %s: %ld %s\n", body, st, j ? sbt_jstr(j, "message") : "");
	assert_int_equal(st, 200);
	assert_string_equal(sbt_jstr(j, "state"), "active");
	assert_int_equal(json_is_true(json_object_get(j, "reused")), want_reused);
	assert_true(json_is_false(json_object_get(j, "replayed")));
	char *id = sb_xstrdup(sbt_jstr(j, "id"));
	json_decref(j);
	return id;
}

/* Run sh -c script in the lease; its stdout. */
static char *run(const char *id, const char *script)
{
	long st;
	char *t = sb_strfmt("/v1/leases/%s/exec", id);
	json_t *arg = json_pack("{s:[s,s,s]}", "argv", "sh", "-c", script);
	char *body = json_dumps(arg, JSON_COMPACT);
	json_t *j = sbt_call(&D, "POST", t, body, &st);
	assert_int_equal(st, 200);
	assert_int_equal(json_integer_value(json_object_get(j, "exit_code")), 0);
	char *out = sb_xstrdup(sbt_jstr(j, "stdout"));
	json_decref(j);
	free(body);
	json_decref(arg);
	free(t);
	return out;
}

static const char *state_of(const char *id)
{
	static char s[32];
	long st;
	char *t = sb_strfmt("/v1/leases/%s", id);
	json_t *j = sbt_call(&D, "GET", t, NULL, &st);
	snprintf(s, sizeof s, "%s", j && sbt_jstr(j, "state") ? sbt_jstr(j, "state") : "?");
	json_decref(j);
	free(t);
	return s;
}

static void same_configuration_gets_the_same_lease_back(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	char *a = acquire("{\"acquisition_id\":\"r-1\",\"reuse_key\":\"repo-a\",\"run_id\":\"R1\","
	                  "\"ttl_s\":600}",
	                  false);
	char *out = run(a, "echo kept > /workspace/mark && echo ok");
	assert_string_equal(out, "ok\n");
	free(out);
	/* another acquisition and run id, the same configuration */
	char *b = acquire("{\"acquisition_id\":\"r-2\",\"reuse_key\":\"repo-a\",\"run_id\":\"R2\","
	                  "\"ttl_s\":600}",
	                  true);
	assert_string_equal(a, b);
	out = run(b, "cat /workspace/mark");
	assert_string_equal(out, "kept\n");
	free(out);
	/* another key is another lease */
	char *c = acquire("{\"acquisition_id\":\"r-3\",\"reuse_key\":\"repo-b\"}", false);
	assert_string_not_equal(a, c);
	free(a);
	free(b);
	free(c);
}

static void another_configuration_replaces_the_lease(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	char *a = acquire("{\"acquisition_id\":\"c-1\",\"reuse_key\":\"repo-c\"}", false);
	char *b = acquire("{\"acquisition_id\":\"c-2\",\"reuse_key\":\"repo-c\","
	                  "\"limits\":{\"pids\":300}}",
	                  false);
	assert_string_not_equal(a, b);
	assert_string_equal(state_of(a), "destroyed");
	char *out = run(b, "test -e /workspace/mark && echo stale || echo fresh");
	assert_string_equal(out, "fresh\n");
	free(out);
	/* and back with the new configuration */
	char *c = acquire("{\"acquisition_id\":\"c-3\",\"reuse_key\":\"repo-c\","
	                  "\"limits\":{\"pids\":300}}",
	                  true);
	assert_string_equal(b, c);
	free(a);
	free(b);
	free(c);
}

static void a_destroyed_lease_is_replaced_and_the_key_survives_a_restart(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	char *a = acquire("{\"acquisition_id\":\"d-1\",\"reuse_key\":\"repo-d\"}", false);
	long st;
	char *t = sb_strfmt("/v1/leases/%s", a);
	json_decref(sbt_call(&D, "DELETE", t, NULL, &st));
	assert_int_equal(st, 200);
	char *b = acquire("{\"acquisition_id\":\"d-2\",\"reuse_key\":\"repo-d\"}", false);
	assert_string_not_equal(a, b);
	sbt_daemon_signal(&D, SIGKILL); /* the worst case: no chance to save anything */
	sbt_daemon_restart(&D);
	char *c = acquire("{\"acquisition_id\":\"d-3\",\"reuse_key\":\"repo-d\"}", true);
	assert_string_equal(b, c);
	free(t);
	free(a);
	free(b);
	free(c);
}

static void bad_reuse_keys_are_refused(void **state)
{
	(void)state;
	long st;
	json_t *j =
	    sbt_call(&D, "POST", "/v1/leases",
	             "{\"acquisition_id\":\"x-1\",\"reuse_key\":\"k\",\"lease_id\":\"mine\"}", &st);
	assert_int_equal(st, 400);
	assert_non_null(strstr(sbt_jstr(j, "message"), "lease_id"));
	json_decref(j);
	j = sbt_call(&D, "POST", "/v1/leases", "{\"acquisition_id\":\"x-2\",\"reuse_key\":\"\"}",
	             &st);
	assert_int_equal(st, 400);
	json_decref(j);
	j = sbt_call(&D, "POST", "/v1/leases", "{\"acquisition_id\":\"x-3\",\"reuse_key\":7}", &st);
	assert_int_equal(st, 400);
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(acquire_replays_and_conflicts),
	    cmocka_unit_test(destroyed_lease_is_a_tombstone),
	    cmocka_unit_test(renew_moves_expiry_and_reaper_destroys_expired),
	    cmocka_unit_test(defer_destroys_after_the_running_exec),
	    cmocka_unit_test(lease_json_has_the_documented_fields),
	    cmocka_unit_test(same_configuration_gets_the_same_lease_back),
	    cmocka_unit_test(another_configuration_replaces_the_lease),
	    cmocka_unit_test(a_destroyed_lease_is_replaced_and_the_key_survives_a_restart),
	    cmocka_unit_test(bad_reuse_keys_are_refused),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
