/* sync.warm_pool_refills: the pool of `serve --warm 2` refills to 2 of each configuration in
 * the background after claims (the claimed leases stay), its sandboxes are no leases (GET
 * /v1/leases, health's counts), and an acquire claims only from the configuration it asks for
 * exactly: a limit or an allowlist starts a sandbox of its own and leaves both pools alone;
 * network full is the bridge's configuration (no compat_callback here), so it claims from that
 * one; a lease id of the client's own claims, the lease naming its sandbox in sandbox_id. */
#include <string.h>

#include "warmtest.h"

static size_t lease_count(void)
{
	long st = 0;
	json_t *j = sbt_call(&warmt_daemon, "GET", "/v1/leases", NULL, &st);
	assert_int_equal(st, 200);
	size_t n = json_array_size(json_object_get(j, "leases"));
	json_decref(j);
	return n;
}

/* Acquire with body; which configuration's pool the lease's sandbox came from (its sandbox id
 * was waiting there), or "(no pool)". Every other pool was not touched: the same sandboxes wait. */
static const char *acquire_claims(const char *body, char ***ids)
{
	static const char *const configs[WARMT_CONFIGS] = {WARMT_DEFAULT, WARMT_BRIDGE};
	warmt_wait_ready(&warmt_daemon, 2);
	char **before[WARMT_CONFIGS];
	for (int k = 0; k < WARMT_CONFIGS; k++)
		before[k] = warmt_ids(&warmt_daemon, configs[k]);
	char *id = warmt_acquire(&warmt_daemon, body);
	char *sid = warmt_sandbox_id(&warmt_daemon, id);
	const char *from = NULL;
	for (int k = 0; k < WARMT_CONFIGS; k++) {
		if (warmt_has(before[k], sid)) {
			assert_true(from == NULL); /* one pool at most */
			from = configs[k];
			continue;
		}
		char **after = warmt_ids(&warmt_daemon, configs[k]);
		assert_int_equal(sb_strv_len(after), 2);
		for (size_t i = 0; before[k][i]; i++)
			assert_true(warmt_has(after, before[k][i]));
		sb_strv_free(after);
	}
	if (!from) /* a sandbox of its own: named for the lease */
		assert_string_equal(sid, id);
	for (int k = 0; k < WARMT_CONFIGS; k++)
		sb_strv_free(before[k]);
	sb_strv_push(ids, id);
	free(id);
	free(sid);
	return from ? from : "(no pool)";
}

static void warm_pool_refills(void **state)
{
	(void)state;
	char **ids = sb_xcalloc(1, sizeof *ids);
	warmt_wait_ready(&warmt_daemon, 2);
	int size = 0, ready = 0;
	warmt_counts(&warmt_daemon, WARMT_DEFAULT, &size, &ready);
	assert_int_equal(size, 2);
	warmt_counts(&warmt_daemon, WARMT_BRIDGE, &size, &ready);
	assert_int_equal(size, 2);
	warmt_counts(&warmt_daemon, NULL, &size, &ready); /* in all: 2 of each */
	assert_int_equal(size, 4);
	assert_int_equal(ready, 4);
	assert_int_equal(lease_count(), 0); /* waiting sandboxes are not leases */

	/* Claims without waiting in between take the pool down; it refills to 2 meanwhile. */
	char **before = warmt_ids(&warmt_daemon, WARMT_DEFAULT);
	for (int i = 0; i < 3; i++) {
		char *body = sb_strfmt("{\"acquisition_id\":\"refill-%d\"}", i);
		char *id = warmt_acquire(&warmt_daemon, body);
		sb_strv_push(&ids, id);
		free(id);
		free(body);
	}
	/* take never waits and only the refill thread adds: two waited, both were claimed */
	assert_true(warmt_has(before, ids[0]));
	assert_true(warmt_has(before, ids[1]));
	sb_strv_free(before);
	warmt_wait_ready(&warmt_daemon, 2);
	assert_int_equal(lease_count(), 3);
	char **waiting = warmt_ids(&warmt_daemon, NULL);
	for (size_t k = 0; ids[k]; k++)
		assert_false(warmt_has(waiting, ids[k]));
	sb_strv_free(waiting);

	/* Another configuration never claims. */
	assert_string_equal(
	    "(no pool)",
	    acquire_claims("{\"acquisition_id\":\"lim\",\"limits\":{\"pids\":256}}", &ids));
	assert_string_equal("(no pool)",
	                    acquire_claims("{\"acquisition_id\":\"netlim\",\"network\":true,"
	                                   "\"limits\":{\"nofile\":512}}",
	                                   &ids));
	assert_string_equal(
	    "(no pool)",
	    acquire_claims(
	        "{\"acquisition_id\":\"allow\",\"network\":{\"mode\":\"allowlist\",\"allow\":"
	        "[\"example.com\"]}}",
	        &ids));
	/* Network full is exactly the bridge's configuration here: its pool serves it. */
	assert_string_equal(acquire_claims("{\"acquisition_id\":\"net\",\"network\":true}", &ids),
	                    WARMT_BRIDGE);
	/* A lease id of the client's own keeps it; the sandbox keeps the pool's. */
	assert_string_equal(
	    acquire_claims("{\"acquisition_id\":\"own\",\"lease_id\":\"mine-1\"}", &ids),
	    WARMT_DEFAULT);
	/* The same configuration spelt out does (network false is none: DESIGN.md 9.9). */
	assert_string_equal(
	    acquire_claims("{\"acquisition_id\":\"none\",\"network\":false,\"ttl_s\":60}", &ids),
	    WARMT_DEFAULT);
	assert_int_equal(lease_count(), 9);
	for (size_t k = 0; ids[k]; k++)
		warmt_destroy(&warmt_daemon, ids[k]);
	assert_int_equal(lease_count(), 0);
	warmt_wait_ready(&warmt_daemon, 2);
	sb_strv_free(ids);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(warm_pool_refills, warmt_setup, warmt_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
