/* sync.warm_pool_crash_leaks_nothing: after a SIGKILL of a daemon with `--warm 2`, the restart
 * destroys the sandboxes the pool held for both configurations (no process left in their
 * cgroups, init gone, cgroup and lease directories removed), never adopts them as leases, keeps
 * the leases claimed before the crash (a native one, and a Paperclip one whose lease id is not
 * its sandbox's), and fills the pool back to 2 of each. A clean stop (SIGTERM) then destroys the
 * waiting ones. */
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "warmtest.h"

#define POOL (2 * WARMT_CONFIGS) /* sandboxes waiting in all */

static bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

/* The pool's sandboxes as they are now, each checked running. */
static char **running_pool(warmt_sandbox *sbs)
{
	char **ids = warmt_ids(&warmt_daemon, NULL);
	assert_int_equal(sb_strv_len(ids), POOL);
	for (size_t k = 0; ids[k]; k++) {
		warmt_sandbox_read(&warmt_daemon, ids[k], &sbs[k]);
		assert_true(warmt_init_alive(&sbs[k]));
		assert_true(warmt_procs(ids[k]) >= 1); /* the count below can see them */
		assert_true(sb_strv_len(sbs[k].cgroups) >= 1);
	}
	return ids;
}

/* Nothing of the sandbox id is left on the host. */
static void gone(const char *id, warmt_sandbox *s)
{
	assert_int_equal(warmt_procs(id), 0);
	assert_false(warmt_init_alive(s));
	for (size_t k = 0; s->cgroups[k]; k++)
		assert_false(exists(s->cgroups[k]));
	char *dir = sb_strfmt("%s/leases/%s", warmt_daemon.state_dir, id);
	assert_false(exists(dir));
	free(dir);
}

static void leases_are(const char *const *want)
{
	long st = 0;
	json_t *j = sbt_call(&warmt_daemon, "GET", "/v1/leases", NULL, &st);
	assert_int_equal(st, 200);
	json_t *arr = json_object_get(j, "leases");
	size_t n = 0;
	while (want[n])
		n++;
	assert_int_equal(json_array_size(arr), n);
	for (size_t k = 0; k < n; k++) {
		json_t *l = json_array_get(arr, k);
		assert_string_equal(sbt_jstr(l, "id"), want[k]);
		assert_string_equal(sbt_jstr(l, "state"), "active");
	}
	json_decref(j);
}

static void warm_pool_crash_leaks_nothing(void **state)
{
	(void)state;
	warmt_wait_ready(&warmt_daemon, 2);
	char *lease = warmt_acquire(&warmt_daemon, "{\"acquisition_id\":\"before-crash\"}");
	char **bridge_pool = warmt_ids(&warmt_daemon, WARMT_BRIDGE);
	char *pc = warmt_bridge_acquire(&warmt_daemon, "before-crash-pc");
	char *pc_sb = warmt_sandbox_id(&warmt_daemon, pc);
	assert_true(warmt_has(bridge_pool, pc_sb)); /* claimed from the pool: another id */
	sb_strv_free(bridge_pool);
	warmt_wait_ready(&warmt_daemon, 2);
	warmt_sandbox old[POOL];
	char **old_ids = running_pool(old);
	assert_false(warmt_has(old_ids, lease));
	assert_false(warmt_has(old_ids, pc_sb));

	int st = sbt_daemon_signal(&warmt_daemon, SIGKILL);
	assert_true(WIFSIGNALED(st));
	for (size_t k = 0; k < POOL; k++) /* a crash leaves them running: recovery's job */
		assert_true(warmt_init_alive(&old[k]));
	sbt_daemon_restart(&warmt_daemon);
	warmt_wait_ready(&warmt_daemon, 2);
	for (size_t k = 0; k < POOL; k++) {
		gone(old_ids[k], &old[k]);
		warmt_sandbox_deinit(&old[k]);
	}
	/* adopted: only the claimed ones, the Paperclip one still on the sandbox it claimed */
	leases_are((const char *const[]){lease, pc, NULL});
	char *sid = warmt_sandbox_id(&warmt_daemon, pc);
	assert_string_equal(sid, pc_sb);
	free(sid);
	char *out = warmt_exec(&warmt_daemon, lease, "echo alive");
	assert_string_equal(out, "alive\n");
	free(out);
	out = warmt_exec(&warmt_daemon, pc, "echo alive");
	assert_string_equal(out, "alive\n");
	free(out);

	warmt_sandbox now[POOL];
	char **new_ids = running_pool(now);
	for (size_t k = 0; new_ids[k]; k++)
		assert_false(warmt_has(old_ids, new_ids[k]));
	warmt_sandbox pcs;
	warmt_sandbox_read(&warmt_daemon, pc_sb, &pcs);
	warmt_destroy(&warmt_daemon, lease);
	warmt_destroy(&warmt_daemon, pc);
	gone(pc_sb, &pcs); /* a destroy finds the sandbox by the record's sandbox_id */
	warmt_sandbox_deinit(&pcs);
	/* A clean stop destroys what waits in the pool. */
	st = sbt_daemon_signal(&warmt_daemon, SIGTERM);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	for (size_t k = 0; k < POOL; k++) {
		gone(new_ids[k], &now[k]);
		warmt_sandbox_deinit(&now[k]);
	}
	char **left = warmt_ids(&warmt_daemon, NULL);
	assert_int_equal(sb_strv_len(left), 0);
	sb_strv_free(left);
	sb_strv_free(old_ids);
	sb_strv_free(new_ids);
	free(lease);
	free(pc);
	free(pc_sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(warm_pool_crash_leaks_nothing, warmt_setup,
	                                    warmt_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
