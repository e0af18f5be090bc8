/* sync.warm_pool_claim_is_fresh: with `serve --warm 2`, each default acquire claims a sandbox
 * the pool started ahead of time for the default configuration (its id was one of those), and
 * every claim is fresh:
 * nothing an earlier claim wrote (workspace, /tmp, home) nor a process it left in the
 * background is there, and no lease id ever comes back. */
#include <string.h>

#include "warmtest.h"

#define CLAIMS 6

/* Prints one line per thing an earlier claim could have left; nothing for a fresh sandbox.
 * The process check compares whole command lines, so it never matches this script. */
#define CHECK WARMT_CHECK_LEFT "[ -z \"$(ls -A /workspace)\" ] || echo 'workspace not empty'; true"

#define DIRTY WARMT_DIRTY CHECK

static void warm_pool_claim_is_fresh(void **state)
{
	(void)state;
	char **claimed = sb_xcalloc(1, sizeof *claimed);
	for (int i = 0; i < CLAIMS; i++) {
		warmt_wait_ready(&warmt_daemon, 2);
		char **waiting = warmt_ids(&warmt_daemon, WARMT_DEFAULT);
		assert_int_equal(sb_strv_len(waiting), 2);
		char *body = sb_strfmt("{\"acquisition_id\":\"fresh-%d\",\"ttl_s\":600}", i);
		char *id = warmt_acquire(&warmt_daemon, body);
		free(body);
		/* claimed from the pool; no waiting sandbox has the id of an earlier claim */
		assert_true(warmt_has(waiting, id));
		for (size_t k = 0; waiting[k]; k++)
			assert_false(warmt_has(claimed, waiting[k]));
		sb_strv_push(&claimed, id);
		sb_strv_free(waiting);
		waiting = warmt_ids(&warmt_daemon, WARMT_DEFAULT);
		assert_false(warmt_has(waiting, id)); /* it left the pool for good */
		sb_strv_free(waiting);

		char *out = warmt_exec(&warmt_daemon, id, CHECK);
		assert_string_equal(out, "");
		free(out);
		/* Leave state behind; the check sees it here, so it would see it in a reused one.
		 */
		out = warmt_exec(&warmt_daemon, id, DIRTY);
		assert_non_null(strstr(out, "left: /workspace/warm-mark"));
		assert_non_null(strstr(out, "left: /tmp/warm-mark"));
		assert_non_null(strstr(out, "process left"));
		free(out);
		warmt_destroy(&warmt_daemon, id);
		free(id);
	}
	sb_strv_free(claimed);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(warm_pool_claim_is_fresh, warmt_setup, warmt_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
