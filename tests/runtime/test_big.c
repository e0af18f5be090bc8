/* Size and count at scale, through both runners on the command path: a 50 MiB file and 5,000
 * small files arrive byte-exact in the sandbox and come back byte-exact.
 */
#include "harness.h"

#include <string.h>

#define MiB (1024u * 1024u)

static void round_trip(const char *local, const char *tag)
{
	char *base = sbt_mkdtemp(tag);
	char *ws = sbt_path(base, "ws");
	sb_runner *runner = rth_runner(false);
	sb_runtime_prepare_opts o = {
	    .runner = runner,
	    .spec = {.remote_cwd = ws},
	    .adapter_key = "claude",
	    .workspace_local_dir = local,
	};
	sb_runtime *rt = NULL;
	SB_ASSERT_OK(sb_runtime_prepare(&o, &rt));
	const char *const skip[] = {".paperclip-runtime", NULL};
	rth_assert_trees_equal(local, ws, skip);
	/* the sandbox rewrites everything: the restore brings every byte back */
	assert_int_equal(sbt_sh("cd '%s' && for f in $(find . -type f -name '*.bin' "
	                        "! -path './.paperclip-runtime/*'); do printf x >> \"$f\"; done",
	                        ws),
	                 0);
	sb_restore_report rep;
	sb_restore_report_init(&rep);
	SB_ASSERT_OK(sb_runtime_restore(rt, NULL, &rep));
	rth_assert_trees_equal(local, ws, skip);
	assert_int_equal(rep.n_conflicts, 0);
	sb_restore_report_deinit(&rep);
	sb_runtime_free(rt);
	sb_runner_free(runner);
	free(ws);
	sbt_rmtree(base);
}

static void fifty_mib_file_byte_exact(void **state)
{
	(void)state;
	char *local = sbt_mkdtemp("rt-local");
	size_t n = 50 * MiB + 7;
	char *data = sb_xmalloc(n);
	sbt_fill_random(data, n, 50);
	sbt_write(local, "big.bin", data, n, 0644);
	free(data);
	round_trip(local, "rt-remote");
	sbt_rmtree(local);
}

static void five_thousand_small_files(void **state)
{
	(void)state;
	char *local = sbt_mkdtemp("rt-local");
	char buf[600];
	for (unsigned i = 0; i < 5000; i++) {
		char rel[64];
		snprintf(rel, sizeof rel, "d%02u/sub%u/f%04u.bin", i % 50, i % 7, i);
		size_t len = (i * 37u) % sizeof buf;
		sbt_fill_random(buf, len, i + 1);
		sbt_write(local, rel, buf, len, (i % 5) ? 0644 : 0755);
	}
	round_trip(local, "rt-remote");
	sbt_rmtree(local);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(fifty_mib_file_byte_exact),
	    cmocka_unit_test(five_thousand_small_files),
	};
	return rth_run_both("runtime.big", tests, sizeof tests / sizeof tests[0]);
}
