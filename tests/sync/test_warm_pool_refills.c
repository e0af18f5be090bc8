/* sync.warm_pool_refills: the pool of `serve --warm 2` refills to 2 in the background after
 * claims (the claimed leases stay), its sandboxes are no leases (GET /v1/leases, health's
 * counts), and only an acquire of the default configuration claims: network full, a limit, a
 * lease id of the client's own each start a sandbox of their own and leave the pool alone. */
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

/* Acquire with body; whether the lease came from the pool (its id was waiting there). */
static bool acquire_claims(const char *body, char ***ids)
{
	warmt_wait_ready(&warmt_daemon, 2);
	char **before = warmt_ids(&warmt_daemon);
	char *id = warmt_acquire(&warmt_daemon, body);
	bool claimed = warmt_has(before, id);
	if (!claimed) { /* the pool was not touched: the same sandboxes still wait */
		char **after = warmt_ids(&warmt_daemon);
		assert_int_equal(sb_strv_len(after), 2);
		for (size_t k = 0; before[k]; k++)
			assert_true(warmt_has(after, before[k]));
		sb_strv_free(after);
	}
	sb_strv_free(before);
	sb_strv_push(ids, id);
	free(id);
	return claimed;
}

static void warm_pool_refills(void **state)
{
	(void)state;
	char **ids = sb_xcalloc(1, sizeof *ids);
	warmt_wait_ready(&warmt_daemon, 2);
	int size = 0, ready = 0;
	warmt_counts(&warmt_daemon, &size, &ready);
	assert_int_equal(size, 2);
	assert_int_equal(lease_count(), 0); /* waiting sandboxes are not leases */

	/* Claims without waiting in between take the pool down; it refills to 2 meanwhile. */
	char **before = warmt_ids(&warmt_daemon);
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
	char **waiting = warmt_ids(&warmt_daemon);
	for (size_t k = 0; ids[k]; k++)
		assert_false(warmt_has(waiting, ids[k]));
	sb_strv_free(waiting);

	/* Another configuration never claims. */
	assert_false(acquire_claims("{\"acquisition_id\":\"net\",\"network\":true}", &ids));
	assert_false(
	    acquire_claims("{\"acquisition_id\":\"lim\",\"limits\":{\"pids\":256}}", &ids));
	assert_false(acquire_claims("{\"acquisition_id\":\"own\",\"lease_id\":\"mine-1\"}", &ids));
	assert_false(acquire_claims(
	    "{\"acquisition_id\":\"allow\",\"network\":{\"mode\":\"allowlist\",\"allow\":"
	    "[\"example.com\"]}}",
	    &ids));
	/* The same configuration spelt out does (network false is none: DESIGN.md 9.9). */
	assert_true(
	    acquire_claims("{\"acquisition_id\":\"none\",\"network\":false,\"ttl_s\":60}", &ids));
	assert_int_equal(lease_count(), 8);
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
