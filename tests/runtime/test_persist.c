/* runtime.persist: a prepared runtime saved to a file and loaded by "another process" (a fresh
 * load with a fresh runner) restores exactly as the original would, including the three-way
 * decisions that depend on the baseline; a damaged state file is refused, never half-used. */
#include "harness.h"

#include "runtime/rt.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static sb_runtime *prepare(sb_runner *r, const char *local, const char *remote)
{
	sb_runtime_prepare_opts o;
	memset(&o, 0, sizeof o);
	o.runner = r;
	o.spec.remote_cwd = remote;
	o.adapter_key = "persist";
	o.workspace_local_dir = local;
	sb_runtime *rt = NULL;
	SB_ASSERT_OK(sb_runtime_prepare(&o, &rt));
	return rt;
}

static void saved_runtime_restores_three_way_after_load(void **state)
{
	(void)state;
	char *local = sbt_mkdtemp("sb-persist-local");
	char *remote_base = sbt_mkdtemp("sb-persist-remote");
	char *remote = sbt_path(remote_base, "ws");
	char *saved = sbt_path(remote_base, "state.json");
	sbt_write_str(local, "edited-remotely.txt", "v1\n");
	sbt_write_str(local, "edited-locally.txt", "v1\n");
	sbt_write_str(local, "deleted-remotely.txt", "v1\n");
	sbt_write_str(local, "name with 'quote'\n.txt", "odd name\n");

	sb_runner *r1 = rth_runner(false);
	sb_runtime *rt = prepare(r1, local, remote);
	SB_ASSERT_OK(sb_runtime_save(rt, saved));
	sb_runtime_free(rt);
	sb_runner_free(r1);

	/* Work happens on both sides between push and pull. */
	sbt_write_str(remote, "edited-remotely.txt", "v2 remote\n");
	sbt_write_str(remote, "created-remotely.txt", "new\n");
	char *gone = sbt_path(remote, "deleted-remotely.txt");
	assert_int_equal(unlink(gone), 0);
	free(gone);
	sbt_write_str(local, "edited-locally.txt", "v2 local\n");

	sb_runner *r2 = rth_runner(false);
	sb_runtime_load_opts lo = {.runner = r2};
	SB_ASSERT_OK(sb_runtime_load(saved, &lo, &rt));
	assert_string_equal(sb_runtime_workspace_remote_dir(rt), remote);
	sb_restore_report rep;
	sb_restore_report_init(&rep);
	SB_ASSERT_OK(sb_runtime_restore(rt, NULL, &rep));
	rth_assert_file(local, "edited-remotely.txt", "v2 remote\n");
	rth_assert_file(local, "created-remotely.txt", "new\n");
	rth_assert_file(local, "edited-locally.txt", "v2 local\n");
	rth_assert_file(local, "name with 'quote'\n.txt", "odd name\n");
	assert_false(rth_exists(local, "deleted-remotely.txt"));
	assert_int_equal(rep.n_conflicts, 0);
	sb_restore_report_deinit(&rep);

	/* The restore advanced the baseline: saving and loading again, a second restore of an
	 * unchanged remote changes nothing. */
	SB_ASSERT_OK(sb_runtime_save(rt, saved));
	sb_runtime_free(rt);
	SB_ASSERT_OK(sb_runtime_load(saved, &lo, &rt));
	sb_restore_report_init(&rep);
	SB_ASSERT_OK(sb_runtime_restore(rt, NULL, &rep));
	assert_int_equal(rep.n_added + rep.n_changed + rep.n_deleted + rep.n_conflicts, 0);
	sb_restore_report_deinit(&rep);
	sb_runtime_free(rt);
	sb_runner_free(r2);
	free(saved);
	free(remote);
	sbt_rmtree(remote_base);
	sbt_rmtree(local);
}

/* Replace the one occurrence of from (same length as to) in text. */
static void replace_once(char *text, const char *from, const char *to)
{
	char *at = strstr(text, from);
	if (!at)
		fail_msg("\"%s\" is not in the saved state", from);
	assert_int_equal(strlen(from), strlen(to));
	memcpy(at, to, strlen(to));
	assert_null(strstr(at + 1, from));
}

/* Make a saved state what the previous sandbar wrote: version 2, each file's digest its
 * content hash (runtime/content_hash.c) instead of its plain SHA-256. */
static void downgrade_to_version_2(const char *dir, const char *local, const char *const *files,
                                   size_t n)
{
	char *text = sbt_read(dir, "state.json", NULL);
	assert_non_null(text);
	replace_once(text, "\"version\":3,", "\"version\":2,");
	for (size_t i = 0; i < n; i++) {
		size_t len = 0;
		char *bytes = sbt_read(local, files[i], &len);
		char plain_hex[SB_SHA256_HEX_LEN], content_hex[SB_SHA256_HEX_LEN];
		sb_sha256_hex(bytes, len, plain_hex);
		free(bytes);
		char *path = sbt_path(local, files[i]);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		assert_true(fd >= 0);
		unsigned char content[SB_SHA256_LEN];
		uint64_t size = 0;
		SB_ASSERT_OK(sb_rt_content_hash(fd, path, content, &size));
		close(fd);
		free(path);
		sb_hex_encode(content, SB_SHA256_LEN, content_hex);
		replace_once(text, plain_hex, content_hex);
	}
	sbt_write_str(dir, "state.json", text);
	free(text);
}

/* A state saved by the previous sandbar (version 2: content hashes) still restores three-way:
 * each saved digest is compared with the live file's content hash, so only what really changed
 * counts as changed. Saved again unrestored it stays version 2; once restored, version 3. */
static void a_state_saved_as_version_2_still_restores(void **state)
{
	(void)state;
	char *local = sbt_mkdtemp("sb-persist-v2-local");
	char *remote_base = sbt_mkdtemp("sb-persist-v2-remote");
	char *remote = sbt_path(remote_base, "ws");
	char *saved = sbt_path(remote_base, "state.json");
	const char *const files[] = {"same.txt", "edited-remotely.txt", "edited-locally.txt",
	                             "edited-both.txt"};
	for (size_t i = 0; i < 4; i++)
		sbt_write_str(local, files[i], files[i]); /* distinct contents, distinct digests */
	sb_runner *r = rth_runner(false);
	sb_runtime *rt = prepare(r, local, remote);
	SB_ASSERT_OK(sb_runtime_save(rt, saved));
	sb_runtime_free(rt);
	downgrade_to_version_2(remote_base, local, files, 4);

	sbt_write_str(remote, "edited-remotely.txt", "v2 remote\n");
	sbt_write_str(remote, "edited-both.txt", "v2 remote\n");
	sbt_write_str(local, "edited-locally.txt", "v2 local\n");
	sbt_write_str(local, "edited-both.txt", "v2 local\n");

	sb_runtime_load_opts lo = {.runner = r};
	SB_ASSERT_OK(sb_runtime_load(saved, &lo, &rt));
	SB_ASSERT_OK(sb_runtime_save(rt, saved));
	char *text = sbt_read(remote_base, "state.json", NULL);
	assert_non_null(strstr(text, "\"version\":2,"));
	free(text);
	sb_restore_report rep;
	sb_restore_report_init(&rep);
	SB_ASSERT_OK(sb_runtime_restore(rt, NULL, &rep));
	rth_assert_file(local, "same.txt", "same.txt");
	rth_assert_file(local, "edited-remotely.txt", "v2 remote\n");
	rth_assert_file(local, "edited-locally.txt", "v2 local\n");
	rth_assert_file(local, "edited-both.txt", "v2 local\n");
	assert_int_equal(rep.n_changed, 1);
	assert_string_equal(rep.changed[0], "edited-remotely.txt");
	assert_int_equal(rep.n_conflicts, 1);
	assert_string_equal(rep.conflicts[0].path, "edited-both.txt");
	sb_restore_report_deinit(&rep);
	SB_ASSERT_OK(sb_runtime_save(rt, saved));
	text = sbt_read(remote_base, "state.json", NULL);
	assert_non_null(strstr(text, "\"version\":3,"));
	free(text);
	sb_runtime_free(rt);
	sb_runner_free(r);
	free(saved);
	free(remote);
	sbt_rmtree(remote_base);
	sbt_rmtree(local);
}

static void damaged_state_files_are_refused(void **state)
{
	(void)state;
	char *dir = sbt_mkdtemp("sb-persist-bad");
	const char *bad[] = {
	    "",
	    "[]",
	    "{\"version\":2}",
	    "{\"version\":1}",
	    /* valid shape but a path that is not base64 */
	    "{\"version\":3,\"local_dir\":\"!!\",\"remote_dir\":\"L3g=\",\"root_dir\":\"L3g=\","
	    "\"overlay\":\"eA==\",\"adapter_key\":\"eA==\",\"shell\":\"c2g=\","
	    "\"provider_key\":\"eA==\",\"lease_id\":\"eA==\",\"timeout_ms\":1,\"native\":false,"
	    "\"archive_excludes\":[],\"restore_excludes\":[],\"asset_keys\":[],"
	    "\"asset_dirs\":[],\"baseline\":[]}",
	    /* a shell other than sh or bash ("rm") */
	    "{\"version\":3,\"local_dir\":\"L3g=\",\"remote_dir\":\"L3g=\",\"root_dir\":\"L3g=\","
	    "\"overlay\":\"eA==\",\"adapter_key\":\"eA==\",\"shell\":\"cm0=\","
	    "\"provider_key\":\"eA==\",\"lease_id\":\"eA==\",\"timeout_ms\":1,\"native\":false,"
	    "\"archive_excludes\":[],\"restore_excludes\":[],\"asset_keys\":[],"
	    "\"asset_dirs\":[],\"baseline\":[]}",
	    /* unsorted baseline */
	    "{\"version\":3,\"local_dir\":\"L3g=\",\"remote_dir\":\"L3g=\",\"root_dir\":\"L3g=\","
	    "\"overlay\":\"eA==\",\"adapter_key\":\"eA==\",\"shell\":\"c2g=\","
	    "\"provider_key\":\"eA==\",\"lease_id\":\"eA==\",\"timeout_ms\":1,\"native\":false,"
	    "\"archive_excludes\":[],\"restore_excludes\":[],\"asset_keys\":[],"
	    "\"asset_dirs\":[],\"baseline\":[{\"p\":\"Yg==\",\"t\":\"d\",\"m\":16877,\"s\":0},"
	    "{\"p\":\"YQ==\",\"t\":\"d\",\"m\":16877,\"s\":0}]}",
	};
	/* each refused for its own defect, not for an earlier one */
	const char *why[] = {
	    "invalid JSON",
	    "expected a JSON object",
	    "field \"local_dir\" is required",
	    "state version 1 is not 3",
	    "field \"local_dir\": invalid base64",
	    "shell must be sh or bash",
	    "baseline entries are not sorted",
	};
	_Static_assert(sizeof why == sizeof bad, "one reason per damaged state");
	sb_runner *r = rth_runner(false);
	sb_runtime_load_opts lo = {.runner = r};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		sbt_write_str(dir, "state.json", bad[i]);
		char *path = sbt_path(dir, "state.json");
		sb_runtime *rt = NULL;
		sb_err *err = sb_runtime_load(path, &lo, &rt);
		if (!err)
			fail_msg("damaged state %zu was accepted", i);
		assert_null(rt);
		assert_non_null(strstr(err->msg, path));
		if (!strstr(err->msg, why[i]))
			fail_msg("damaged state %zu refused for another reason: %s", i, err->msg);
		sb_err_free(err);
		free(path);
	}
	sb_runtime *rt = NULL;
	char *missing = sbt_path(dir, "missing.json");
	sb_err *err = sb_runtime_load(missing, &lo, &rt);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_NOTFOUND);
	sb_err_free(err);
	free(missing);
	sb_runner_free(r);
	sbt_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(saved_runtime_restores_three_way_after_load),
	    cmocka_unit_test(a_state_saved_as_version_2_still_restores),
	    cmocka_unit_test(damaged_state_files_are_refused),
	};
	return rth_run_both("persist", tests, sizeof tests / sizeof *tests);
}
