/* Progress lines and throttling (spec §5.1, §6.4) with a controlled clock, and the status
 * events of a whole prepare + restore through a real runner (§5.2, §6.2).
 */
#include "harness.h"
#include "runtime/rt.h"

#include <string.h>

static int64_t fake_now;
static int64_t fake_clock(void)
{
	return fake_now;
}

static void init_reporter(sb_rt_progress *p, rth_lines *l, const char *label)
{
	sb_runtime_progress_sink ps = rth_progress_sink(l);
	sb_runtime_status_sink ss = rth_status_sink(l);
	sb_rt_progress_init(p, &ps, &ss, SB_PHASE_CONFIG_SYNC, "Syncing", label, "to");
	p->clock_ms = fake_clock;
	fake_now = 1000000;
}

static void line_format(void **state)
{
	(void)state;
	rth_lines l = {0};
	sb_rt_progress p;
	init_reporter(&p, &l, "workspace");
	sb_rt_progress_report(&p, 13212057, 32925237); /* 40% of 31.4 MB */
	assert_string_equal(l.lines[0],
	                    "[sandbar] Syncing workspace to sandbox: 40% (12.6/31.4 MB)\n");
	assert_string_equal(l.status[0],
	                    "config_sync|Syncing workspace to sandbox: 40% (12.6/31.4 MB)");
	rth_lines_free(&l);

	init_reporter(&p, &l, NULL); /* no label */
	sb_rt_progress_complete(&p, 0, 0);
	assert_string_equal(l.lines[0], "[sandbar] Syncing to sandbox: 100% (0.0/0.0 MB)\n");
	rth_lines_free(&l);
}

static void throttles_to_ten_percent_steps(void **state)
{
	(void)state;
	rth_lines l = {0};
	sb_rt_progress p;
	init_reporter(&p, &l, "workspace");
	for (uint64_t i = 1; i <= 100; i++)
		sb_rt_progress_report(&p, i * 1048576, 100 * 1048576);
	size_t n = sb_strv_len(l.lines);
	assert_true(n <= 11);
	assert_true(n >= 10);
	assert_non_null(strstr(l.lines[n - 1], ": 100% (100.0/100.0 MB)"));
	/* terminal once: complete() after the 100% report adds nothing */
	sb_rt_progress_complete(&p, 100 * 1048576, 100 * 1048576);
	assert_int_equal(sb_strv_len(l.lines), n);
	rth_lines_free(&l);
}

static void emits_after_interval_without_step(void **state)
{
	(void)state;
	rth_lines l = {0};
	sb_rt_progress p;
	init_reporter(&p, &l, "workspace");
	sb_rt_progress_report(&p, 1, 1000);
	sb_rt_progress_report(&p, 2, 1000); /* same step, no time passed: suppressed */
	assert_int_equal(sb_strv_len(l.lines), 1);
	fake_now += 1999;
	sb_rt_progress_report(&p, 3, 1000);
	assert_int_equal(sb_strv_len(l.lines), 1);
	fake_now += 1;
	sb_rt_progress_report(&p, 4, 1000);
	assert_int_equal(sb_strv_len(l.lines), 2);
	rth_lines_free(&l);
}

static void unknown_total_and_failure(void **state)
{
	(void)state;
	rth_lines l = {0};
	sb_rt_progress p;
	init_reporter(&p, &l, "workspace");
	sb_rt_progress_report(&p, 3 * 1048576, 0);
	assert_string_equal(l.lines[0], "[sandbar] Syncing workspace to sandbox: 3.0 MB\n");
	sb_rt_progress_fail(&p);
	assert_string_equal(l.lines[1],
	                    "[sandbar] Syncing workspace to sandbox: failed after 3.0 MB\n");
	sb_rt_progress_complete(&p, 5, 5); /* fail and complete are mutually exclusive */
	sb_rt_progress_fail(&p);
	assert_int_equal(sb_strv_len(l.lines), 2);
	rth_lines_free(&l);

	init_reporter(&p, &l, "workspace");
	sb_rt_progress_report(&p, 1048576, 4 * 1048576);
	sb_rt_progress_fail(&p);
	assert_string_equal(l.lines[1],
	                    "[sandbar] Syncing workspace to sandbox: failed at 25% (1.0/4.0 MB)\n");
	rth_lines_free(&l);
}

static void stage_timer_format(void **state)
{
	(void)state;
	rth_lines l = {0};
	sb_runtime_progress_sink ps = rth_progress_sink(&l);
	sb_rt_timer t;
	sb_rt_timer_start(&t, &ps, "stage", "workspace", false);
	sb_rt_timer_mark(&t, "tar");
	sb_rt_timer_mark(&t, "upload");
	sb_rt_timer_finish(&t, false);
	sb_rt_timer_finish(&t, true); /* idempotent */
	assert_int_equal(sb_strv_len(l.lines), 1);
	long a, b, total;
	char tail[64];
	assert_int_equal(
	    sscanf(l.lines[0],
	           "[sandbar] sync stage workspace: tar %ldms, upload %ldms (total %ldms) %63[^\n]",
	           &a, &b, &total, tail),
	    4);
	assert_string_equal(tail, "[transport=fallback]");
	rth_lines_free(&l);
	/* a failure still records the durations so far */
	sb_rt_timer_start(&t, &ps, "restore", "workspace", true);
	sb_rt_timer_mark(&t, "transfer+extract");
	sb_rt_timer_finish(&t, true);
	assert_non_null(strstr(l.lines[0], "[sandbar] sync restore workspace: transfer+extract "));
	assert_non_null(strstr(l.lines[0], "ms) failed [transport=native]\n"));
	rth_lines_free(&l);
}

static void prepare_and_restore_report_phases(void **state)
{
	(void)state;
	char *local = sbt_mkdtemp("rt-local");
	char *base = sbt_mkdtemp("rt-remote");
	char *ws = sbt_path(base, "ws");
	char *asset = sbt_mkdtemp("rt-asset");
	sbt_write_str(local, "a.txt", "a\n");
	sbt_write_str(asset, "auth.json", "{}\n");
	rth_lines l = {0};
	sb_runner *runner = rth_runner(false);
	sb_runtime_asset assets[] = {{.key = "home", .local_dir = asset}};
	sb_runtime_prepare_opts o = {
	    .runner = runner,
	    .spec = {.remote_cwd = ws},
	    .adapter_key = "codex",
	    .workspace_local_dir = local,
	    .assets = assets,
	    .n_assets = 1,
	    .progress = rth_progress_sink(&l),
	    .status = rth_status_sink(&l),
	};
	sb_runtime *rt = NULL;
	SB_ASSERT_OK(sb_runtime_prepare(&o, &rt));
	rth_assert_file(sb_runtime_asset_dir(rt, "home"), "auth.json", "{}\n");
	assert_int_equal(rth_strv_count_equal(l.status, "config_sync|Syncing workspace to sandbox"),
	                 1);
	assert_int_equal(
	    rth_strv_count_equal(l.status, "config_sync|Syncing runtime assets to sandbox"), 1);
	assert_int_equal(
	    rth_strv_count_containing(l.lines, "[sandbar] Syncing workspace to sandbox: 100% ("),
	    1);
	assert_int_equal(
	    rth_strv_count_containing(l.lines, "[sandbar] Syncing home to sandbox: 100% ("), 1);
	/* One timer line per tree: "tar .., upload .., extract .." chunked, "stream .." when the
	 * runner streams. */
	assert_int_equal(rth_strv_count_containing(l.lines, "[sandbar] sync stage workspace: "), 1);
	assert_int_equal(rth_strv_count_containing(l.lines, "[sandbar] sync stage home: "), 1);
	SB_ASSERT_OK(sb_runtime_restore(rt, NULL, NULL));
	assert_int_equal(rth_strv_count_equal(l.status, "restore|Restoring workspace from sandbox"),
	                 1);
	assert_int_equal(
	    rth_strv_count_containing(l.status, "restore|Restoring workspace from sandbox: 100% ("),
	    1);
	assert_int_equal(rth_strv_count_containing(
	                     l.lines, "[sandbar] Restoring workspace from sandbox: 100% ("),
	                 1);
	assert_int_equal(rth_strv_count_containing(l.lines, "[sandbar] sync restore workspace: "),
	                 1);
	size_t ns = sb_strv_len(l.status);
	assert_string_equal(l.status[ns - 1], "finalize|Finalizing sandbox workspace");
	rth_lines_free(&l);
	sb_runtime_free(rt);
	sb_runner_free(runner);
	free(ws);
	sbt_rmtree(asset);
	sbt_rmtree(base);
	sbt_rmtree(local);
}

static void failed_restore_still_finalizes(void **state)
{
	(void)state;
	char *local = sbt_mkdtemp("rt-local");
	char *base = sbt_mkdtemp("rt-remote");
	char *ws = sbt_path(base, "ws");
	sbt_write_str(local, "a.txt", "a\n");
	rth_lines l = {0};
	sb_runner *runner = rth_runner(false);
	sb_runtime_prepare_opts o = {
	    .runner = runner,
	    .spec = {.remote_cwd = ws},
	    .adapter_key = "x",
	    .workspace_local_dir = local,
	    .status = rth_status_sink(&l),
	};
	sb_runtime *rt = NULL;
	SB_ASSERT_OK(sb_runtime_prepare(&o, &rt));
	assert_int_equal(sbt_sh("rm -rf '%s'", ws), 0); /* the sandbox lost its workspace */
	sb_err *err = sb_runtime_restore(rt, NULL, NULL);
	assert_non_null(err);
	assert_non_null(strstr(err->msg, "failed with exit code"));
	sb_err_free(err);
	size_t ns = sb_strv_len(l.status);
	assert_string_equal(l.status[ns - 1], "finalize|Finalizing sandbox workspace");
	rth_assert_file(local, "a.txt", "a\n");
	rth_lines_free(&l);
	sb_runtime_free(rt);
	sb_runner_free(runner);
	free(ws);
	sbt_rmtree(base);
	sbt_rmtree(local);
}

int main(void)
{
	const struct CMUnitTest units[] = {
	    cmocka_unit_test(line_format),
	    cmocka_unit_test(throttles_to_ten_percent_steps),
	    cmocka_unit_test(emits_after_interval_without_step),
	    cmocka_unit_test(unknown_total_and_failure),
	    cmocka_unit_test(stage_timer_format),
	};
	const struct CMUnitTest flows[] = {
	    cmocka_unit_test(prepare_and_restore_report_phases),
	    cmocka_unit_test(failed_restore_still_finalizes),
	};
	int failed = cmocka_run_group_tests_name("runtime.progress", units, NULL, NULL);
	return failed +
	       rth_run_both("runtime.progress.flows", flows, sizeof flows / sizeof flows[0]);
}
