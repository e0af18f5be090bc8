/* The native path (runner sync_in / sync_out) against the command path, both through the local
 * runner: prepare leaves byte-identical remote trees, restore leaves byte-identical local trees
 * and reports, and the native path moves no workspace bytes through execute.
 */
#include "harness.h"

#include <string.h>
#include <unistd.h>

static void fill(const char *dir)
{
	sbt_write_str(dir, "README.md", "readme\n");
	sbt_write(dir, "bin/run", "#!/bin/sh\n", 10, 0755);
	sbt_write(dir, "empty", "", 0, 0600);
	sbt_write_str(dir, "name with 'quote'\nand newline", "q\n");
	sbt_write_str(dir, "node_modules/x.js", "heavy\n");
	sbt_write_str(dir, ".paperclip-runtime/state.json", "{}\n");
	sbt_write_str(dir, "._junk", "junk\n");
	char *p = sbt_path(dir, "edir");
	SB_ASSERT_OK(sb_fs_mkdir_p(p, 0755));
	free(p);
	p = sbt_path(dir, "link");
	assert_int_equal(symlink("README.md", p), 0);
	free(p);
	char *blob = sb_xmalloc(5u << 20);
	sbt_fill_random(blob, 5u << 20, 42);
	sbt_write(dir, "blob.bin", blob, 5u << 20, 0644);
	free(blob);
}

typedef struct side {
	char *local, *base, *ws;
	rth_rec *rec;
	sb_runner *runner;
	sb_runtime *rt;
} side;

static void side_prepare(side *s, bool native)
{
	memset(s, 0, sizeof *s);
	s->local = sbt_mkdtemp("rt-local");
	s->base = sbt_mkdtemp("rt-remote");
	s->ws = sbt_path(s->base, "ws");
	fill(s->local);
	sb_local_runner_opts lo = {.file_transfer = true};
	s->runner = rth_rec_new(sb_local_runner_new(&lo), 0, &s->rec);
	sb_runtime_prepare_opts o = {
	    .runner = s->runner,
	    .spec = {.remote_cwd = s->ws},
	    .adapter_key = "claude",
	    .workspace_local_dir = s->local,
	    .force_command_path = !native,
	    .exclude_preset = "paperclip", /* the heavy directories stay on their side */
	};
	SB_ASSERT_OK(sb_runtime_prepare(&o, &s->rt));
	assert_int_equal(sb_runtime_uses_native(s->rt), native);
}

static void side_free(side *s)
{
	sb_runtime_free(s->rt);
	sb_runner_free(s->runner);
	free(s->ws);
	sbt_rmtree(s->base);
	sbt_rmtree(s->local);
}

static void change_remote(const char *ws)
{
	sbt_write_str(ws, "README.md", "changed\n");
	sbt_write_str(ws, "new dir/new file", "new\n");
	assert_int_equal(sbt_sh("rm '%s/empty' && chmod 0700 '%s/bin/run'", ws, ws), 0);
	sbt_write_str(ws, "node_modules/remote.js", "not imported\n");
	sbt_write_str(ws, ".paperclip-runtime/remote.json", "not imported\n");
	sbt_write_str(ws, "._remote", "not imported\n");
}

static void native_and_command_paths_are_byte_identical(void **state)
{
	(void)state;
	side cmd, nat;
	side_prepare(&cmd, false);
	side_prepare(&nat, true);
	/* the staging record holds the time of each staging */
	const char *const record[] = {".paperclip-runtime/claude/sync-state", NULL};
	rth_assert_trees_equal(cmd.ws, nat.ws, record);
	/* A first staging is whole either way: incremental finds no record of an earlier one. The
	 * runner itself reads and writes the record: no command runs on the native path. */
	assert_int_equal(rth_rec_count_containing(nat.rec, "sync_in "), 1);
	assert_int_equal(rth_rec_count_containing(nat.rec, "sync_in_delta"), 0);
	assert_int_equal(rth_rec_count_containing(nat.rec, "file_read"),
	                 rth_incremental_native() ? 1 : 0);
	assert_int_equal(rth_rec_count_containing(nat.rec, "file_write"), 1);
	assert_int_equal(rth_rec_count_stdin(nat.rec), 0);
	assert_int_equal(rth_rec_count(nat.rec),
	                 2u + (rth_incremental_native() ? 1u : 0u)); /* nothing else at all */
	assert_int_equal(rth_rec_count_containing(cmd.rec, "sync_"), 0);
	size_t staged = rth_rec_count(nat.rec);

	change_remote(cmd.ws);
	change_remote(nat.ws);
	sb_restore_report rc, rn;
	sb_restore_report_init(&rc);
	sb_restore_report_init(&rn);
	SB_ASSERT_OK(sb_runtime_restore(cmd.rt, NULL, &rc));
	SB_ASSERT_OK(sb_runtime_restore(nat.rt, NULL, &rn));
	rth_assert_trees_equal(cmd.local, nat.local, NULL);
	rth_assert_file(nat.local, "README.md", "changed\n");
	assert_false(rth_exists(nat.local, "node_modules/remote.js"));
	assert_false(rth_exists(nat.local, ".paperclip-runtime/remote.json"));
	assert_false(rth_exists(nat.local, "._remote"));
	rth_assert_file(nat.local, ".paperclip-runtime/state.json", "{}\n");
	assert_int_equal(rc.n_added, rn.n_added);
	assert_int_equal(rc.n_changed, rn.n_changed);
	assert_int_equal(rc.n_deleted, rn.n_deleted);
	assert_int_equal(rn.n_changed, 2);
	assert_int_equal(rn.n_deleted, 1);
	/* incremental: the runner's own listing and one selection of the changed entries; full:
	 * the whole tree; no command either way */
	assert_int_equal(rth_rec_count_containing(nat.rec, "manifest "),
	                 rth_incremental_native() ? 1 : 0);
	assert_int_equal(rth_rec_count_containing(nat.rec, "sync_out_paths "),
	                 rth_incremental_native() ? 1 : 0);
	assert_int_equal(rth_rec_count_containing(nat.rec, "sync_out "),
	                 rth_incremental_native() ? 0 : 1);
	assert_int_equal(rth_rec_count(nat.rec), staged + (rth_incremental_native() ? 2u : 1u));
	if (rth_incremental_native())
		assert_true(rn.bytes_moved < 64u * 1024u); /* not the 5 MiB blob */
	sb_restore_report_deinit(&rc);
	sb_restore_report_deinit(&rn);
	side_free(&cmd);
	side_free(&nat);
}

/* The far listing hashes what the plan compares: a file the far side rewrote with its own bytes
 * (new inode, times and ctime; same size) is compared by hash and stays behind, while a new
 * file, which nothing compares, comes back without one being needed. */
static void a_file_rewritten_with_its_own_bytes_stays_behind(void **state)
{
	(void)state;
	side nat;
	side_prepare(&nat, true);
	assert_int_equal(sbt_sh("cd '%s' && cp -p blob.bin .b && touch .b && mv .b blob.bin && "
	                        "head -c 300000 /dev/urandom > added.bin",
	                        nat.ws),
	                 0);
	sb_restore_report rn;
	sb_restore_report_init(&rn);
	SB_ASSERT_OK(sb_runtime_restore(nat.rt, NULL, &rn));
	assert_int_equal(rn.n_changed, 0);
	assert_int_equal(rn.n_added, 1);
	assert_string_equal(rn.added[0], "added.bin");
	assert_int_equal(sbt_sh("cmp -s '%s/blob.bin' '%s/blob.bin' && cmp -s '%s/added.bin' "
	                        "'%s/added.bin'",
	                        nat.ws, nat.local, nat.ws, nat.local),
	                 0);
	if (rth_incremental_native()) /* the new file and the listing, not the 5 MiB blob */
		assert_true(rn.bytes_moved < 300000u + 64u * 1024u);
	sb_restore_report_deinit(&rn);
	side_free(&nat);
}

static void native_restore_honours_byte_limit(void **state)
{
	(void)state;
	side nat;
	side_prepare(&nat, true);
	/* a change bigger than the limit: refused whether the whole tree or the change comes */
	char *big = sb_xmalloc(64u * 1024u);
	sbt_fill_random(big, 64u * 1024u, 7);
	sbt_write(nat.ws, "README.md", big, 64u * 1024u, 0644);
	free(big);
	sb_runtime_restore_opts ro = {.max_bytes = 4096};
	sb_err *err = sb_runtime_restore(nat.rt, &ro, NULL);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_FILE_TOO_LARGE);
	assert_int_equal(err->limit_bytes, 4096);
	sb_err_free(err);
	rth_assert_file(nat.local, "README.md", "readme\n");
	side_free(&nat);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(native_and_command_paths_are_byte_identical),
	    cmocka_unit_test(a_file_rewritten_with_its_own_bytes_stays_behind),
	    cmocka_unit_test(native_restore_honours_byte_limit),
	};
	return cmocka_run_group_tests_name("runtime.native", tests, NULL, NULL);
}
