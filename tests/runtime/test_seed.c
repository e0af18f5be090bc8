/* The seed's two managed-runtime cases, through the local runner and the prefix runner: the
 * overlay stays out of the sync in both directions (with and without stdin), and staging into a
 * nested remote workspace runs every command from cwd "/".
 */
#include "harness.h"

#include <string.h>

static void assert_all_cwd_root(rth_rec *rec)
{
	for (size_t i = 0; i < rth_rec_count(rec); i++) {
		const rth_call *c = rth_rec_call(rec, i);
		if (strncmp(c->script, "sync_", 5) == 0)
			continue;
		if (strcmp(c->cwd, "/") != 0) {
			print_error("call %zu ran in %s: %s\n", i, c->cwd, c->script);
			fail();
		}
	}
}

static void overlay_case(unsigned caps_clear, bool expect_stdin)
{
	char *local = sbt_mkdtemp("rt-local");
	char *base = sbt_mkdtemp("rt-remote");
	char *ws = sbt_path(base, "ws");
	sbt_write_str(local, "README.md", "hello from the host\n");
	sbt_write_str(local, ".paperclip-runtime/state.json", "{\"local\":true}\n");

	rth_rec *rec;
	sb_runner *runner = rth_rec_new(rth_runner(false), caps_clear, &rec);
	sb_runtime *rt = rth_prepare(runner, local, ws);
	rth_assert_file(ws, "README.md", "hello from the host\n");
	assert_false(rth_exists(ws, ".paperclip-runtime/state.json"));
	if (expect_stdin)
		assert_int_equal(rth_rec_count_stdin(rec), 1); /* the single-stream upload */
	else
		assert_int_equal(rth_rec_count_stdin(rec), 0);
	assert_all_cwd_root(rec);
	size_t prepare_calls = rth_rec_count(rec);

	sbt_write_str(ws, "README.md", "edited in the sandbox\n");
	sbt_write_str(ws, ".paperclip-runtime/remote-state.json", "{\"remote\":true}\n");
	sb_restore_report rep;
	sb_restore_report_init(&rep);
	SB_ASSERT_OK(sb_runtime_restore(rt, NULL, &rep));
	rth_assert_file(local, "README.md", "edited in the sandbox\n");
	rth_assert_file(local, ".paperclip-runtime/state.json", "{\"local\":true}\n");
	assert_false(rth_exists(local, ".paperclip-runtime/remote-state.json"));
	assert_int_equal(rep.n_changed, 1);
	assert_string_equal(rep.changed[0], "README.md");
	assert_int_equal(rep.n_conflicts, 0);
	/* the full restore never uses stdin (the incremental one sends its file list) */
	for (size_t i = prepare_calls; i < rth_rec_count(rec) && !rth_incremental(); i++)
		assert_false(rth_rec_call(rec, i)->has_stdin);
	if (!expect_stdin && !rth_incremental())
		assert_int_equal(rth_rec_count_stdin(rec), 0);
	assert_all_cwd_root(rec);

	sb_restore_report_deinit(&rep);
	sb_runtime_free(rt);
	sb_runner_free(runner);
	free(ws);
	sbt_rmtree(base);
	sbt_rmtree(local);
}

static void overlay_stays_out_of_sync(void **state)
{
	(void)state;
	overlay_case(0, true);
}

static void overlay_stays_out_of_sync_without_stdin(void **state)
{
	(void)state;
	overlay_case(SB_RUNNER_CAP_STDIN | SB_RUNNER_CAP_STDIN_PROGRESS, false);
}

static void nested_remote_workspace_runs_from_root(void **state)
{
	(void)state;
	char *local = sbt_mkdtemp("rt-local");
	char *base = sbt_mkdtemp("rt-remote");
	char *ws = sbt_path(base, ".paperclip-runtime/runs/test/workspace");
	sbt_write_str(local, "task.txt", "nested\n");
	rth_rec *rec;
	sb_runner *runner = rth_rec_new(rth_runner(false), 0, &rec);
	sb_runtime_prepare_opts o = {
	    .runner = runner,
	    .spec = {.remote_cwd = base},
	    .workspace_remote_dir = ws,
	    .adapter_key = "codex",
	    .workspace_local_dir = local,
	};
	sb_runtime *rt = NULL;
	SB_ASSERT_OK(sb_runtime_prepare(&o, &rt));
	rth_assert_file(ws, "task.txt", "nested\n");
	char *root = sb_strfmt("%s/.paperclip-runtime/codex", ws);
	assert_string_equal(sb_runtime_root_dir(rt), root);
	assert_true(rth_rec_count(rec) > 0);
	assert_all_cwd_root(rec);
	sbt_write_str(ws, "task.txt", "done\n");
	SB_ASSERT_OK(sb_runtime_restore(rt, NULL, NULL));
	rth_assert_file(local, "task.txt", "done\n");
	assert_all_cwd_root(rec);
	free(root);
	sb_runtime_free(rt);
	sb_runner_free(runner);
	free(ws);
	sbt_rmtree(base);
	sbt_rmtree(local);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(overlay_stays_out_of_sync),
	    cmocka_unit_test(overlay_stays_out_of_sync_without_stdin),
	    cmocka_unit_test(nested_remote_workspace_runs_from_root),
	};
	return rth_run_both("runtime.seed", tests, sizeof tests / sizeof tests[0]);
}
