/* server.reuse_key: POST /v1/leases with "reuse_key" (#15) on a real daemon. A second acquire
 * with the key and the same configuration gets the same lease back ("reused": true), with its
 * files, whatever its acquisition, issue or run ids; another configuration destroys it and makes
 * a fresh one; a destroyed lease is replaced; the key survives a daemon restart; reuse_key with
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

/* Acquire with body; asserts 200; returns the lease id (malloc'd) and whether it was reused. */
static char *acquire(const char *body, bool *reused)
{
	long st;
	json_t *j = sbt_call(&D, "POST", "/v1/leases", body, &st);
	if (st != 200)
		print_error("acquire %s: %ld %s\n", body, st, j ? sbt_jstr(j, "message") : "");
	assert_int_equal(st, 200);
	assert_string_equal(sbt_jstr(j, "state"), "active");
	*reused = json_is_true(json_object_get(j, "reused"));
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
	bool reused;
	char *a = acquire("{\"acquisition_id\":\"r-1\",\"reuse_key\":\"repo-a\",\"run_id\":\"R1\","
	                  "\"ttl_s\":600}",
	                  &reused);
	assert_false(reused);
	char *out = run(a, "echo kept > /workspace/mark && echo ok");
	assert_string_equal(out, "ok\n");
	free(out);
	/* another acquisition and run id, the same configuration */
	char *b = acquire("{\"acquisition_id\":\"r-2\",\"reuse_key\":\"repo-a\",\"run_id\":\"R2\","
	                  "\"ttl_s\":600}",
	                  &reused);
	assert_true(reused);
	assert_string_equal(a, b);
	out = run(b, "cat /workspace/mark");
	assert_string_equal(out, "kept\n");
	free(out);
	/* another key is another lease */
	char *c = acquire("{\"acquisition_id\":\"r-3\",\"reuse_key\":\"repo-b\"}", &reused);
	assert_false(reused);
	assert_string_not_equal(a, c);
	free(a);
	free(b);
	free(c);
}

static void another_configuration_replaces_the_lease(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	bool reused;
	char *a = acquire("{\"acquisition_id\":\"c-1\",\"reuse_key\":\"repo-c\"}", &reused);
	assert_false(reused);
	char *b = acquire("{\"acquisition_id\":\"c-2\",\"reuse_key\":\"repo-c\","
	                  "\"limits\":{\"pids\":300}}",
	                  &reused);
	assert_false(reused);
	assert_string_not_equal(a, b);
	assert_string_equal(state_of(a), "destroyed");
	char *out = run(b, "test -e /workspace/mark && echo stale || echo fresh");
	assert_string_equal(out, "fresh\n");
	free(out);
	/* and back with the new configuration */
	char *c = acquire("{\"acquisition_id\":\"c-3\",\"reuse_key\":\"repo-c\","
	                  "\"limits\":{\"pids\":300}}",
	                  &reused);
	assert_true(reused);
	assert_string_equal(b, c);
	free(a);
	free(b);
	free(c);
}

static void a_destroyed_lease_is_replaced_and_the_key_survives_a_restart(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	bool reused;
	char *a = acquire("{\"acquisition_id\":\"d-1\",\"reuse_key\":\"repo-d\"}", &reused);
	long st;
	char *t = sb_strfmt("/v1/leases/%s", a);
	json_decref(sbt_call(&D, "DELETE", t, NULL, &st));
	assert_int_equal(st, 200);
	char *b = acquire("{\"acquisition_id\":\"d-2\",\"reuse_key\":\"repo-d\"}", &reused);
	assert_false(reused);
	assert_string_not_equal(a, b);
	sbt_daemon_signal(&D, SIGKILL); /* the worst case: no chance to save anything */
	sbt_daemon_restart(&D);
	char *c = acquire("{\"acquisition_id\":\"d-3\",\"reuse_key\":\"repo-d\"}", &reused);
	assert_true(reused);
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
	    cmocka_unit_test(same_configuration_gets_the_same_lease_back),
	    cmocka_unit_test(another_configuration_replaces_the_lease),
	    cmocka_unit_test(a_destroyed_lease_is_replaced_and_the_key_survives_a_restart),
	    cmocka_unit_test(bad_reuse_keys_are_refused),
	};
	return cmocka_run_group_tests_name("server.reuse_key", tests, setup, teardown);
}
