/* Lease routes on a real daemon: acquire is idempotent on acquisition_id (same lease again),
 * different parameters conflict, destroyed leases leave tombstones that a late replay cannot
 * revive, destroy is idempotent, renew moves the expiry, the reaper destroys expired leases,
 * and the list shows live leases (and tombstones on request). */
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(acquire_replays_and_conflicts),
	    cmocka_unit_test(destroyed_lease_is_a_tombstone),
	    cmocka_unit_test(renew_moves_expiry_and_reaper_destroys_expired),
	    cmocka_unit_test(defer_destroys_after_the_running_exec),
	    cmocka_unit_test(lease_json_has_the_documented_fields),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
