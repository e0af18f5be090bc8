/* Install and detect at prepare (spec §2.4): `command -v <detect>` skips the install when it
 * succeeds, a missing tool runs it, and a failing install only warns with its output tail.
 */
#include "harness.h"

#include <string.h>

typedef struct env {
	char *local, *base, *ws, *marker;
	rth_rec *rec;
	sb_runner *runner;
	rth_lines lines;
} env;

static void run_prepare(env *e, const char *install, const char *detect)
{
	memset(e, 0, sizeof *e);
	e->local = sbt_mkdtemp("rt-local");
	e->base = sbt_mkdtemp("rt-remote");
	e->ws = sbt_path(e->base, "ws");
	e->marker = sbt_path(e->base, "installed");
	sbt_write_str(e->local, "a.txt", "a\n");
	e->runner = rth_rec_new(rth_runner(false), 0, &e->rec);
	/* "@M@" in the template stands for the marker path */
	sb_buf b = SB_BUF_INIT;
	const char *at = strstr(install, "@M@");
	if (at) {
		sb_buf_append(&b, install, (size_t)(at - install));
		sb_buf_appends(&b, e->marker);
		sb_buf_appends(&b, at + 3);
	} else {
		sb_buf_appends(&b, install);
	}
	char *cmd = sb_buf_steal(&b, NULL);
	sb_runtime_prepare_opts o = {
	    .runner = e->runner,
	    .spec = {.remote_cwd = e->ws},
	    .adapter_key = "claude",
	    .workspace_local_dir = e->local,
	    .install_command = cmd,
	    .detect_command = detect,
	    .progress = rth_progress_sink(&e->lines),
	};
	sb_runtime *rt = NULL;
	SB_ASSERT_OK(sb_runtime_prepare(&o, &rt));
	rth_assert_file(e->ws, "a.txt", "a\n"); /* prepare went on in every case */
	sb_runtime_free(rt);
	free(cmd);
}

static void env_free(env *e)
{
	rth_lines_free(&e->lines);
	sb_runner_free(e->runner);
	free(e->ws);
	free(e->marker);
	sbt_rmtree(e->base);
	sbt_rmtree(e->local);
}

static void detected_tool_skips_install(void **state)
{
	(void)state;
	env e;
	run_prepare(&e, "  touch '@M@'  ", "sh");
	assert_string_equal(rth_rec_call(e.rec, 0)->script, "command -v 'sh' >/dev/null 2>&1");
	assert_false(rth_exists(e.base, "installed"));
	assert_int_equal(rth_rec_count_containing(e.rec, "touch"), 0);
	env_free(&e);
}

static void missing_tool_runs_install(void **state)
{
	(void)state;
	env e;
	run_prepare(&e, "touch '@M@'", "sandbar-no-such-tool-4711");
	assert_true(rth_exists(e.base, "installed"));
	assert_string_equal(rth_rec_call(e.rec, 0)->cwd, "/");
	assert_int_equal(rth_strv_count_containing(e.lines.lines, "install command"), 0);
	env_free(&e);
}

static void no_detect_always_installs(void **state)
{
	(void)state;
	env e;
	run_prepare(&e, "touch '@M@'", NULL);
	assert_true(rth_exists(e.base, "installed"));
	assert_int_equal(rth_rec_count_containing(e.rec, "command -v '"), 0);
	env_free(&e);
}

static void failed_install_only_warns(void **state)
{
	(void)state;
	env e;
	run_prepare(&e, "echo out1; echo e1 >&2; echo >&2; echo e2 >&2; echo e3 >&2; exit 7",
	            "sandbar-no-such-tool-4711");
	assert_int_equal(rth_strv_count_containing(
	                     e.lines.lines, "[sandbar] managed-runtime install command exited 7: "
	                                    "echo out1;"),
	                 1);
	assert_int_equal(rth_strv_count_containing(e.lines.lines, " :: e1 | e2 | e3\n"), 1);
	env_free(&e);
}

static void blank_install_runs_nothing(void **state)
{
	(void)state;
	env e;
	run_prepare(&e, "   ", "sh");
	assert_int_equal(rth_rec_count_containing(e.rec, "command -v '"), 0);
	env_free(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(detected_tool_skips_install),
	    cmocka_unit_test(missing_tool_runs_install),
	    cmocka_unit_test(no_detect_always_installs),
	    cmocka_unit_test(failed_install_only_warns),
	    cmocka_unit_test(blank_install_runs_nothing),
	};
	return rth_run_both("runtime.install", tests, sizeof tests / sizeof tests[0]);
}
