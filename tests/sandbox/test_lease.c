/* Lease bookkeeping: ids, duplicates, lease.json round trips (TTL, renew, limits), listing,
 * in-sandbox path mapping, and host-side work as the sandbox owner. */
#include "sbx.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void ids_are_validated_and_unique(void **s)
{
	(void)s;
	char *state = sbx_state_dir();
	sb_sandbox_config cfg;
	sbx_config(&cfg, state);
	sb_sandbox *sb = NULL;
	static const char *const bad[] = {"", "../x", "a/b", "with space", ".hidden"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		sb_err *err = sb_sandbox_create(&cfg, bad[i], NULL, &sb);
		assert_non_null(err);
		assert_int_equal(err->code, SB_E_INVAL);
		sb_err_free(err);
	}
	sb = sbx_create(state, "one", NULL);
	sb_sandbox *again = NULL;
	sb_err *err = sb_sandbox_create(&cfg, "one", NULL, &again);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_EXISTS);
	sb_err_free(err);
	assert_true(sb_sandbox_alive(sb)); /* the failed duplicate left the first one alone */
	SB_ASSERT_OK(sb_sandbox_destroy(sb));
	sbx_state_free(state);
}

static void lease_json_round_trips_through_open(void **s)
{
	(void)s;
	char *state = sbx_state_dir();
	sb_sandbox_opts o = {.network = true,
	                     .limits = {.memory_bytes = 256u << 20, .pids = 100, .ttl_s = 60}};
	sb_sandbox *sb = sbx_create(state, "meta", &o);
	sb_sandbox_info a;
	sb_sandbox_get_info(sb, &a);
	assert_true(a.expires_at_ms >= a.created_at_ms + 60000);
	assert_true(a.enforced.memory && a.enforced.pids && a.enforced.ttl);
	assert_true(a.host_uid != 0);
	SB_ASSERT_OK(sb_sandbox_renew(sb, 3600));
	sb_sandbox_get_info(sb, &a);
	sb_sandbox_close(sb);

	sb_sandbox_config cfg;
	sbx_config(&cfg, state);
	SB_ASSERT_OK(sb_sandbox_open(&cfg, "meta", &sb));
	sb_sandbox_info b;
	sb_sandbox_get_info(sb, &b);
	assert_string_equal(b.id, "meta");
	assert_true(b.network);
	assert_int_equal(b.limits.memory_bytes, 256u << 20);
	assert_int_equal(b.limits.pids, 100);
	assert_int_equal(b.limits.ttl_s, 3600);
	assert_int_equal(b.expires_at_ms, a.expires_at_ms);
	assert_int_equal(b.created_at_ms, a.created_at_ms);
	assert_int_equal(b.init_pid, a.init_pid);
	assert_true(b.enforced.memory && b.enforced.pids);
	assert_string_equal(b.cgroup_version, "v1");
	assert_string_equal(sb_sandbox_workspace_mount(sb), "/workspace");
	/* the re-opened handle works */
	sbx_result r;
	sbx_sh(sb, "echo again", &r);
	assert_string_equal(sb_buf_cstr(&r.out), "again\n");
	sbx_result_free(&r);
	SB_ASSERT_OK(sb_sandbox_destroy(sb));
	sbx_state_free(state);
}

static void inside_paths_map_to_the_workspace_only(void **s)
{
	(void)s;
	char *state = sbx_state_dir();
	sb_sandbox *sb = sbx_create(state, "paths", NULL);
	char *rel = NULL;
	SB_ASSERT_OK(sb_sandbox_map_path(sb, "/workspace", &rel));
	assert_string_equal(rel, "");
	free(rel);
	SB_ASSERT_OK(sb_sandbox_map_path(sb, "/workspace/a/b/", &rel));
	assert_string_equal(rel, "a/b");
	free(rel);
	static const char *const bad[] = {
	    "/", "/etc", "/workspace2", "/workspace/../etc", "/workspace/a/./b", "workspace/a"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		sb_err *err = sb_sandbox_map_path(sb, bad[i], &rel);
		assert_non_null(err);
		assert_int_equal(err->code, SB_E_ESCAPE);
		sb_err_free(err);
	}
	SB_ASSERT_OK(sb_sandbox_destroy(sb));
	sbx_state_free(state);
}

static sb_err *write_marker(void *ud)
{
	const sb_sandbox *sb = ud;
	/* the lease's run/ (root's) is out of reach ... */
	char *path = sb_strfmt("%s/../run/probe", sb_sandbox_workspace_dir(sb));
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	free(path);
	if (fd >= 0 || errno != EACCES)
		return sb_err_new(SB_E_INTERNAL, "run/ was reachable as the owner");
	/* ... the workspace is not */
	fd = openat(sb_sandbox_workspace_fd(sb), "made-by-owner",
	            O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return sb_err_sys(errno, "creating made-by-owner");
	close(fd);
	/* and the owner cannot reach what the sandbox user cannot */
	fd = open("/root/.sbx-owner-probe", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0 || errno != EACCES) {
		if (fd >= 0) {
			close(fd);
			unlink("/root/.sbx-owner-probe");
		}
		return sb_err_new(SB_E_INTERNAL, "still privileged");
	}
	return NULL;
}

static sb_err *fail_on_purpose(void *ud)
{
	(void)ud;
	return sb_err_new(SB_E_CONFLICT, "told to fail");
}

static void owner_operations_run_as_the_sandbox_user(void **s)
{
	(void)s;
	if (geteuid() != 0)
		sbt_skip("not root: without root there is no identity to switch");
	char *state = sbx_state_dir();
	sb_sandbox *sb = sbx_create(state, "owner", NULL);
	char *path = sb_strfmt("%s/made-by-owner", sb_sandbox_workspace_dir(sb));
	SB_ASSERT_OK(sb_sandbox_as_owner(sb, write_marker, sb));
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	sb_sandbox_info info;
	sb_sandbox_get_info(sb, &info);
	assert_int_equal(st.st_uid, (uid_t)info.host_uid);
	free(path);
	sb_err *err = sb_sandbox_as_owner(sb, fail_on_purpose, NULL);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_CONFLICT);
	assert_string_equal(err->msg, "told to fail");
	sb_err_free(err);
	/* the thread is root again afterwards */
	int fd = open("/root/.sbx-owner-probe", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	unlink("/root/.sbx-owner-probe");
	SB_ASSERT_OK(sb_sandbox_destroy(sb));
	sbx_state_free(state);
}

static size_t count_spares(const char *state)
{
	char *leases = sb_strfmt("%s/leases", state);
	char *out = sbt_sh_out("ls -a '%s' | grep -c '^\\.spare-' || true", leases);
	size_t n = (size_t)atoi(out);
	free(out);
	free(leases);
	return n;
}

static void a_destroyed_lease_leaves_a_spare_for_the_next(void **s)
{
	(void)s;
	char *state = sbx_state_dir();
	sb_sandbox *a = sbx_create(state, "first", NULL);
	assert_int_equal(count_spares(state), 0);
	SB_ASSERT_OK(sb_sandbox_destroy(a));
	assert_int_equal(count_spares(state), 1);
	sb_sandbox_config cfg;
	sbx_config(&cfg, state);
	char **ids = NULL;
	SB_ASSERT_OK(sb_sandbox_list(&cfg, &ids));
	assert_int_equal(sb_strv_len(ids), 0); /* spares are not leases */
	sb_strv_free(ids);
	/* the next lease is made from it, with the same layout and owners */
	sb_sandbox *b = sbx_create(state, "second", NULL);
	assert_int_equal(count_spares(state), 0);
	sb_sandbox_info info;
	sb_sandbox_get_info(b, &info);
	struct stat st;
	assert_int_equal(stat(sb_sandbox_workspace_dir(b), &st), 0);
	assert_int_equal(st.st_uid, (uid_t)info.host_uid);
	assert_int_equal(st.st_mode & 07777, 0755);
	char *run = sb_strfmt("%s/leases/second/run", state);
	assert_int_equal(stat(run, &st), 0);
	assert_int_equal(st.st_uid, geteuid());
	assert_int_equal(st.st_mode & 07777, 0700);
	free(run);
	sbx_result r;
	sbx_sh(b, "echo fine > /workspace/f && cat /workspace/f", &r);
	assert_string_equal(sb_buf_cstr(&r.out), "fine\n");
	sbx_result_free(&r);
	/* a lease id that exists is still refused, spare or not */
	SB_ASSERT_OK(sb_sandbox_destroy(sbx_create(state, "third", NULL)));
	sb_sandbox *again = NULL;
	sb_err *err = sb_sandbox_create(&cfg, "second", NULL, &again);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_EXISTS);
	sb_err_free(err);
	assert_int_equal(count_spares(state), 1);
	SB_ASSERT_OK(sb_sandbox_destroy(b));
	sbx_state_free(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(ids_are_validated_and_unique),
	    cmocka_unit_test(lease_json_round_trips_through_open),
	    cmocka_unit_test(inside_paths_map_to_the_workspace_only),
	    cmocka_unit_test(owner_operations_run_as_the_sandbox_user),
	    cmocka_unit_test(a_destroyed_lease_leaves_a_spare_for_the_next),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
