/* sync.warm_pool_bridge_claims: with `serve --warm 2`, a Paperclip acquire (POST
 * /api/paperclip-sandbox/v2/leases/acquire, and the G1 route) claims a sandbox the pool started
 * ahead of time for the bridge's configuration: the lease keeps the bridge's id (pc-acq-...),
 * its sandbox_id is one that waited in the "paperclip" pool, that pool's claimed count rises
 * and the default pool is not touched. Every claim is fresh (nothing an earlier claim wrote or
 * left running), the bridge's setup ran in the claimed sandbox (its ownership mirror names the
 * lease), the bridge's exec route works on it, and a destroy removes the claimed sandbox. */
#include <string.h>
#include <sys/stat.h>

#include "warmtest.h"

#define CLAIMS 4

/* One line per thing an earlier claim could have left; nothing for a fresh sandbox. The
 * bridge's setup wrote /workspace/paperclip/.paperclip-lease.json and nothing else. */
#define CHECK                                                                                      \
	WARMT_CHECK_LEFT                                                                           \
	"[ \"$(ls -A /workspace)\" = paperclip ] || echo 'workspace: more than the mirror'; "      \
	"[ \"$(ls -A /workspace/paperclip)\" = .paperclip-lease.json ] || echo 'cwd not fresh'; "  \
	"true"

#define DIRTY WARMT_DIRTY CHECK

static bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static bool same_ids(char *const *a, char *const *b)
{
	if (sb_strv_len((char **)a) != sb_strv_len((char **)b))
		return false;
	for (size_t k = 0; a[k]; k++)
		if (!warmt_has(b, a[k]))
			return false;
	return true;
}

/* The bridge's own exec route (G2: the owning acquisition named). */
static char *bridge_exec(const char *id, const char *acq, const char *script)
{
	json_t *req = json_pack("{s:s, s:s, s:s, s:[ss]}", "providerLeaseId", id, "acquisitionId",
	                        acq, "command", "sh", "args", "-c", script);
	char *body = json_dumps(req, 0);
	json_decref(req);
	long st = 0;
	json_t *j = sbt_call(&warmt_daemon, "POST", "/api/paperclip-sandbox/v2/exec", body, &st);
	free(body);
	assert_int_equal(st, 200);
	assert_int_equal(json_integer_value(json_object_get(j, "exitCode")), 0);
	char *out = sb_xstrdup(sbt_jstr(j, "stdout") ? sbt_jstr(j, "stdout") : "");
	json_decref(j);
	return out;
}

/* The lease id came from the pool's bridge configuration: checks every count and marker, and
 * returns its sandbox id (malloc'd). before_*: the pools' ids just before the acquire. */
static char *check_claimed(const char *id, char **before_default, char **before_bridge,
                           int claimed_before, char *const *earlier)
{
	char *sid = warmt_sandbox_id(&warmt_daemon, id);
	assert_string_not_equal(sid, id);
	assert_true(warmt_has(before_bridge, sid));   /* it waited in the bridge's pool */
	assert_false(warmt_has(before_default, sid)); /* not the default one's */
	assert_false(warmt_has(earlier, sid));        /* no sandbox comes back */
	char **now = warmt_ids(&warmt_daemon, WARMT_BRIDGE);
	assert_false(warmt_has(now, sid)); /* it left the pool for good */
	sb_strv_free(now);
	int claimed = 0, empty = 0;
	warmt_claims(&warmt_daemon, WARMT_BRIDGE, &claimed, &empty);
	assert_int_equal(claimed, claimed_before + 1);
	/* the default pool was not touched: the same sandboxes wait, none claimed */
	now = warmt_ids(&warmt_daemon, WARMT_DEFAULT);
	assert_true(same_ids(now, before_default));
	sb_strv_free(now);
	warmt_claims(&warmt_daemon, WARMT_DEFAULT, &claimed, &empty);
	assert_int_equal(claimed, 0);
	/* the bridge's configuration: network full */
	char *t = sb_strfmt("/v1/leases/%s", id);
	long st = 0;
	json_t *j = sbt_call(&warmt_daemon, "GET", t, NULL, &st);
	free(t);
	assert_int_equal(st, 200);
	assert_string_equal(sbt_jstr(json_object_get(j, "network"), "mode"), "full");
	assert_string_equal(sbt_jstr(j, "state"), "active");
	json_decref(j);
	return sid;
}

static void warm_pool_bridge_claims(void **state)
{
	(void)state;
	char **claimed = sb_xcalloc(1, sizeof *claimed);
	int n = 0, empty = 0;
	for (int i = 0; i < CLAIMS; i++) {
		warmt_wait_ready(&warmt_daemon, 2);
		char **before_default = warmt_ids(&warmt_daemon, WARMT_DEFAULT);
		char **before_bridge = warmt_ids(&warmt_daemon, WARMT_BRIDGE);
		int size = 0, ready = 0;
		warmt_counts(&warmt_daemon, WARMT_BRIDGE, &size, &ready);
		assert_int_equal(ready, 2);
		char *acq = sb_strfmt("warm-pc-%d", i);
		char *id = warmt_bridge_acquire(&warmt_daemon, acq);
		char *want =
		    sb_strfmt("pc-acq-%s", acq); /* the bridge's lease id stays a contract */
		assert_string_equal(id, want);
		free(want);
		char *sid = check_claimed(id, before_default, before_bridge, n++, claimed);
		sb_strv_push(&claimed, sid);
		sb_strv_free(before_default);
		sb_strv_free(before_bridge);

		/* fresh, set up for this lease, and usable through the bridge */
		char *out = warmt_exec(&warmt_daemon, id, CHECK);
		assert_string_equal(out, "");
		free(out);
		out = bridge_exec(id, acq, "cat /workspace/paperclip/.paperclip-lease.json");
		assert_non_null(strstr(out, id));
		assert_non_null(strstr(out, acq));
		free(out);
		/* leave state behind; the check sees it here, so it would see it in a reused one */
		out = bridge_exec(id, acq, DIRTY);
		assert_non_null(strstr(out, "left: /workspace/warm-mark"));
		assert_non_null(strstr(out, "left: /tmp/warm-mark"));
		assert_non_null(strstr(out, "process left"));
		free(out);
		warmt_destroy(&warmt_daemon, id);
		char *dir = sb_strfmt("%s/leases/%s", warmt_daemon.state_dir, sid);
		assert_false(exists(dir)); /* the destroy found the sandbox by its sandbox_id */
		free(dir);
		free(sid);
		free(id);
		free(acq);
	}

	/* G1 (the v1 route, no acquisitionId) has the same configuration: it claims too. */
	warmt_wait_ready(&warmt_daemon, 2);
	char **before_default = warmt_ids(&warmt_daemon, WARMT_DEFAULT);
	char **before_bridge = warmt_ids(&warmt_daemon, WARMT_BRIDGE);
	long st = 0;
	json_t *j = sbt_call(&warmt_daemon, "POST", "/api/paperclip-sandbox/v1/leases/acquire",
	                     "{\"environmentId\":\"env\",\"runId\":\"g1run\"}", &st);
	assert_int_equal(st, 200);
	char *id = sb_xstrdup(sbt_jstr(j, "providerLeaseId"));
	json_decref(j);
	assert_true(strncmp(id, "pc-g1run-", 9) == 0);
	char *sid = check_claimed(id, before_default, before_bridge, n++, claimed);
	char *out = warmt_exec(&warmt_daemon, id, CHECK);
	assert_string_equal(out, "");
	free(out);
	warmt_destroy(&warmt_daemon, id);
	sb_strv_free(before_default);
	sb_strv_free(before_bridge);
	free(sid);
	free(id);

	warmt_claims(&warmt_daemon, WARMT_BRIDGE, &n, &empty);
	assert_int_equal(n, CLAIMS + 1);
	warmt_wait_ready(&warmt_daemon, 2);
	sb_strv_free(claimed);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(warm_pool_bridge_claims, warmt_setup, warmt_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
