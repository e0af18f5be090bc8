/* Round trips of awkward trees through prepare and restore, on both runners: names with spaces,
 * quotes, newlines and unicode; symlinks kept as links (in-tree, absolute, dangling) and never
 * followed out of the tree; exec bits; 0-byte files; empty directories; heavy directories,
 * .git and AppleDouble files excluded in both directions; an empty workspace.
 */
#include "harness.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const NAMES[] = {
    "with space.txt",
    "it's quoted \"twice\".txt",
    "new\nline.txt",
    "ünïcødé-日本語.txt",
    "$(touch pwned)`id`;*.txt",
    "-starts-with-dash",
    "dir with space/inner 'q'.txt",
};

typedef struct env {
	char *local, *base, *ws, *outside;
	sb_runner *runner;
	sb_runtime *rt;
} env;

static void env_init(env *e)
{
	memset(e, 0, sizeof *e);
	e->local = sbt_mkdtemp("rt-local");
	e->base = sbt_mkdtemp("rt-remote");
	e->outside = sbt_mkdtemp("rt-outside");
	e->ws = sbt_path(e->base, "ws");
	e->runner = rth_runner(false);
}

static void env_prepare(env *e)
{
	sb_runtime_prepare_opts o = {
	    .runner = e->runner,
	    .spec = {.remote_cwd = e->ws},
	    .adapter_key = "claude",
	    .workspace_local_dir = e->local,
	};
	SB_ASSERT_OK(sb_runtime_prepare(&o, &e->rt));
}

static void env_free(env *e)
{
	sb_runtime_free(e->rt);
	sb_runner_free(e->runner);
	free(e->ws);
	sbt_rmtree(e->base);
	sbt_rmtree(e->local);
	sbt_rmtree(e->outside);
}

static void mklink(const char *dir, const char *rel, const char *target)
{
	char *p = sbt_path(dir, rel);
	assert_int_equal(symlink(target, p), 0);
	free(p);
}

static void mkdir_in(const char *dir, const char *rel)
{
	char *p = sbt_path(dir, rel);
	SB_ASSERT_OK(sb_fs_mkdir_p(p, 0755));
	free(p);
}

static const char *const SKIP_OVERLAY[] = {".paperclip-runtime", NULL};

static void awkward_names_round_trip(void **state)
{
	(void)state;
	env e;
	env_init(&e);
	for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
		sbt_write_str(e.local, NAMES[i], NAMES[i]);
	sbt_write(e.local, "run.sh", "#!/bin/sh\necho hi\n", 18, 0755);
	sbt_write(e.local, "secret", "s", 1, 0600);
	sbt_write(e.local, "empty.bin", "", 0, 0644);
	mkdir_in(e.local, "empty dir");
	mkdir_in(e.local, "a/b/c/deep empty");
	mklink(e.local, "link-in-tree", "with space.txt");
	mklink(e.local, "link-dangling", "does/not/exist");
	mklink(e.local, "link-out", e.outside);
	sbt_write_str(e.outside, "precious.txt", "outside\n");
	env_prepare(&e);
	rth_assert_trees_equal(e.local, e.ws, SKIP_OVERLAY);
	/* the link that points out of the tree was staged as a link, never followed */
	char *lp = sbt_path(e.ws, "link-out");
	struct stat st;
	assert_int_equal(lstat(lp, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	free(lp);
	assert_false(rth_exists(e.ws, "pwned"));

	/* the sandbox changes every kind of entry */
	sbt_write_str(e.ws, "new\nline.txt", "changed remotely\n");
	sbt_write_str(e.ws, "remote only ü'\".txt", "new\n");
	assert_int_equal(sbt_sh("chmod 0755 '%s/secret'", e.ws), 0);
	assert_int_equal(
	    sbt_sh("rm '%s/link-in-tree' && ln -s 'ünïcødé-日本語.txt' '%s/link-in-tree'", e.ws,
	           e.ws),
	    0);
	assert_int_equal(sbt_sh("rmdir '%s/empty dir' && mkdir '%s/new empty'", e.ws, e.ws), 0);
	sbt_write(e.ws, "empty.bin", "x", 1, 0644);
	sbt_write(e.ws, "now-empty.txt", "", 0, 0640);
	mklink(e.ws, "remote-link-out", e.outside);
	sb_restore_report rep;
	sb_restore_report_init(&rep);
	SB_ASSERT_OK(sb_runtime_restore(e.rt, NULL, &rep));
	rth_assert_trees_equal(e.local, e.ws, SKIP_OVERLAY);
	assert_int_equal(rep.n_conflicts, 0);
	/* nothing was written through the links out of the tree */
	char *ls = sbt_sh_out("ls -A '%s'", e.outside);
	assert_string_equal(ls, "precious.txt\n");
	free(ls);
	assert_false(rth_exists(e.local, "pwned"));
	sb_restore_report_deinit(&rep);
	env_free(&e);
}

static void heavy_dirs_stay_on_their_side(void **state)
{
	(void)state;
	env e;
	env_init(&e);
	sbt_write_str(e.local, "src/main.c", "int main;\n");
	sbt_write_str(e.local, "node_modules/dep/index.js", "local dep\n");
	sbt_write_str(e.local, "pkg/node_modules/x.js", "nested dep\n");
	sbt_write_str(e.local, "pkg/build/out.o", "obj\n");
	sbt_write_str(e.local, ".git/HEAD", "ref: refs/heads/main\n");
	sbt_write_str(e.local, "._README.md", "appledouble\n");
	sbt_write_str(e.local, "sub/._x", "appledouble\n");
	sbt_write_str(e.local, "builder.txt", "not a heavy dir\n");
	env_prepare(&e);
	rth_assert_file(e.ws, "src/main.c", "int main;\n");
	rth_assert_file(e.ws, "builder.txt", "not a heavy dir\n");
	assert_false(rth_exists(e.ws, "node_modules"));
	assert_false(rth_exists(e.ws, "pkg/node_modules"));
	assert_false(rth_exists(e.ws, "pkg/build"));
	assert_false(rth_exists(e.ws, ".git"));
	assert_false(rth_exists(e.ws, "._README.md"));
	assert_false(rth_exists(e.ws, "sub/._x"));

	/* the sandbox grows its own heavy dirs: never imported; local ones never deleted */
	sbt_write_str(e.ws, "node_modules/remote-dep/index.js", "remote\n");
	sbt_write_str(e.ws, "pkg/dist/bundle.js", "bundle\n");
	sbt_write_str(e.ws, "._remote", "appledouble\n");
	sbt_write_str(e.ws, "src/main.c", "int main(void);\n");
	SB_ASSERT_OK(sb_runtime_restore(e.rt, NULL, NULL));
	rth_assert_file(e.local, "src/main.c", "int main(void);\n");
	rth_assert_file(e.local, "node_modules/dep/index.js", "local dep\n");
	rth_assert_file(e.local, "pkg/node_modules/x.js", "nested dep\n");
	rth_assert_file(e.local, "pkg/build/out.o", "obj\n");
	rth_assert_file(e.local, ".git/HEAD", "ref: refs/heads/main\n");
	rth_assert_file(e.local, "._README.md", "appledouble\n");
	rth_assert_file(e.local, "sub/._x", "appledouble\n");
	assert_false(rth_exists(e.local, "node_modules/remote-dep"));
	assert_false(rth_exists(e.local, "pkg/dist"));
	assert_false(rth_exists(e.local, "._remote"));
	env_free(&e);
}

static void caller_excludes_and_preserved_paths(void **state)
{
	(void)state;
	env e;
	env_init(&e);
	sbt_write_str(e.local, "keep.txt", "k\n");
	sbt_write_str(e.local, "big/data.bin", "huge\n");
	sbt_write_str(e.local, "docs/gen/api.html", "generated\n");
	sbt_write_str(e.local, "x/docs/gen/kept.txt", "not excluded: literal prefix only\n");
	sbt_write_str(e.local, ".claude/settings.json", "{}\n");
	char *excludes[] = {(char *)"big", (char *)"docs/gen", NULL};
	char *preserve[] = {(char *)".claude", NULL};
	sb_runtime_prepare_opts o = {
	    .runner = e.runner,
	    .spec = {.remote_cwd = e.ws},
	    .adapter_key = "claude",
	    .workspace_local_dir = e.local,
	    .excludes = excludes,
	    .preserve_absent_on_restore = preserve,
	};
	SB_ASSERT_OK(sb_runtime_prepare(&o, &e.rt));
	assert_false(rth_exists(e.ws, "big"));
	assert_false(rth_exists(e.ws, "docs/gen"));
	rth_assert_file(e.ws, "x/docs/gen/kept.txt", "not excluded: literal prefix only\n");
	rth_assert_file(e.ws, ".claude/settings.json", "{}\n"); /* uploaded, never restored */
	assert_int_equal(sbt_sh("rm -rf '%s/.claude' '%s/x'", e.ws, e.ws), 0);
	SB_ASSERT_OK(sb_runtime_restore(e.rt, NULL, NULL));
	rth_assert_file(e.local, "big/data.bin", "huge\n");
	rth_assert_file(e.local, "docs/gen/api.html", "generated\n");
	rth_assert_file(e.local, ".claude/settings.json", "{}\n");
	assert_false(rth_exists(e.local, "x")); /* the remote deleted it: deleted locally */
	env_free(&e);

	/* bad excludes are refused before anything runs */
	env_init(&e);
	char *bad[] = {(char *)"../up", NULL};
	o.runner = e.runner;
	o.workspace_local_dir = e.local;
	o.spec.remote_cwd = e.ws;
	o.excludes = bad;
	o.preserve_absent_on_restore = NULL;
	sb_err *err = sb_runtime_prepare(&o, &e.rt);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_INVAL);
	sb_err_free(err);
	assert_false(rth_exists(e.base, "ws"));
	env_free(&e);
}

static void empty_workspace_round_trips(void **state)
{
	(void)state;
	env e;
	env_init(&e);
	env_prepare(&e);
	assert_true(rth_exists(e.ws, ".paperclip-runtime/claude"));
	sbt_write_str(e.ws, "created.txt", "from the sandbox\n");
	SB_ASSERT_OK(sb_runtime_restore(e.rt, NULL, NULL));
	rth_assert_file(e.local, "created.txt", "from the sandbox\n");
	assert_int_equal(sbt_sh("rm '%s/created.txt'", e.ws), 0);
	SB_ASSERT_OK(sb_runtime_restore(e.rt, NULL, NULL)); /* remote empty again */
	assert_false(rth_exists(e.local, "created.txt"));
	env_free(&e);
}

static void restage_wipes_stale_remote_but_spares_overlay(void **state)
{
	(void)state;
	env e;
	env_init(&e);
	sbt_write_str(e.ws, "stale.txt", "left from an earlier run\n");
	sbt_write_str(e.ws, ".paperclip-runtime/bridge/queue.json", "[]\n");
	sbt_write_str(e.local, "fresh.txt", "fresh\n");
	env_prepare(&e);
	assert_false(rth_exists(e.ws, "stale.txt"));
	rth_assert_file(e.ws, "fresh.txt", "fresh\n");
	rth_assert_file(e.ws, ".paperclip-runtime/bridge/queue.json", "[]\n");
	env_free(&e);
}

static void fifo_is_ignored(void **state)
{
	(void)state;
	env e;
	env_init(&e);
	sbt_write_str(e.local, "a.txt", "a\n");
	char *fifo = sbt_path(e.local, "pipe");
	assert_int_equal(mkfifo(fifo, 0644), 0);
	env_prepare(&e);
	assert_false(rth_exists(e.ws, "pipe"));
	sbt_write_str(e.ws, "a.txt", "b\n");
	SB_ASSERT_OK(sb_runtime_restore(e.rt, NULL, NULL));
	rth_assert_file(e.local, "a.txt", "b\n");
	struct stat st;
	assert_int_equal(lstat(fifo, &st), 0); /* never taken for a deleted file */
	assert_true(S_ISFIFO(st.st_mode));
	free(fifo);
	env_free(&e);
}

static void assets_follow_symlinks_and_exclude(void **state)
{
	(void)state;
	env e;
	env_init(&e);
	char *home = sbt_mkdtemp("rt-home");
	sbt_write_str(e.outside, "real-config.toml", "model = \"x\"\n");
	char *cfg = sb_strfmt("%s/real-config.toml", e.outside);
	mklink(home, "config.toml", cfg);
	sbt_write_str(home, "auth.json", "{}\n");
	sbt_write_str(home, "tmp/big.bin", "scratch\n");
	sbt_write_str(home, "._auth.json", "appledouble\n");
	char *asset_ex[] = {(char *)"tmp", (char *)".tmp", NULL};
	sb_runtime_asset assets[] = {
	    {.key = "home", .local_dir = home, .follow_symlinks = true, .excludes = asset_ex},
	};
	sb_runtime_prepare_opts o = {
	    .runner = e.runner,
	    .spec = {.remote_cwd = e.ws},
	    .adapter_key = "codex",
	    .workspace_local_dir = e.local,
	    .assets = assets,
	    .n_assets = 1,
	};
	SB_ASSERT_OK(sb_runtime_prepare(&o, &e.rt));
	const char *dir = sb_runtime_asset_dir(e.rt, "home");
	char *want = sb_strfmt("%s/.paperclip-runtime/codex/home", e.ws);
	assert_string_equal(dir, want);
	struct stat st;
	char *p = sbt_path(dir, "config.toml");
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISREG(st.st_mode)); /* followed: a regular file in the sandbox */
	rth_assert_file(dir, "config.toml", "model = \"x\"\n");
	rth_assert_file(dir, "auth.json", "{}\n");
	assert_false(rth_exists(dir, "tmp"));
	assert_false(rth_exists(dir, "._auth.json"));
	assert_null(sb_runtime_asset_dir(e.rt, "nope"));
	/* the overlay holding the asset is never restored into the workspace */
	SB_ASSERT_OK(sb_runtime_restore(e.rt, NULL, NULL));
	assert_false(rth_exists(e.local, ".paperclip-runtime"));
	free(p);
	free(want);
	free(cfg);
	sbt_rmtree(home);
	env_free(&e);
}

static void cancelled_prepare_runs_nothing(void **state)
{
	(void)state;
	env e;
	env_init(&e);
	sbt_write_str(e.local, "a.txt", "a\n");
	sb_cancel *cancel = sb_cancel_new();
	sb_cancel_trigger(cancel);
	sb_runtime_prepare_opts o = {
	    .runner = e.runner,
	    .spec = {.remote_cwd = e.ws},
	    .adapter_key = "x",
	    .workspace_local_dir = e.local,
	    .cancel = cancel,
	};
	sb_err *err = sb_runtime_prepare(&o, &e.rt);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_CANCELED);
	sb_err_free(err);
	assert_false(rth_exists(e.ws, "a.txt"));
	sb_cancel_free(cancel);
	env_free(&e);
}

static void bad_requests_are_refused(void **state)
{
	(void)state;
	sb_conflict_policy pol;
	SB_ASSERT_OK(sb_conflict_policy_parse("take-remote", &pol));
	assert_int_equal(pol, SB_CONFLICT_TAKE_REMOTE);
	assert_string_equal(sb_conflict_policy_name(SB_CONFLICT_KEEP_LOCAL), "keep-local");
	sb_err *err = sb_conflict_policy_parse("theirs", &pol);
	assert_non_null(err);
	sb_err_free(err);
	env e;
	env_init(&e);
	const char *bad_keys[] = {"a/b", "..", "", "x*"};
	for (size_t i = 0; i < 4; i++) {
		sb_runtime_prepare_opts o = {
		    .runner = e.runner,
		    .spec = {.remote_cwd = e.ws},
		    .adapter_key = bad_keys[i],
		    .workspace_local_dir = e.local,
		};
		err = sb_runtime_prepare(&o, &e.rt);
		assert_non_null(err);
		assert_int_equal(err->code, SB_E_INVAL);
		sb_err_free(err);
	}
	sb_runtime_asset reserved[] = {{.key = "workspace", .local_dir = e.local}};
	sb_runtime_prepare_opts o = {
	    .runner = e.runner,
	    .spec = {.remote_cwd = "relative/dir"},
	    .adapter_key = "x",
	    .workspace_local_dir = e.local,
	};
	err = sb_runtime_prepare(&o, &e.rt);
	assert_non_null(err);
	sb_err_free(err);
	o.spec.remote_cwd = e.ws;
	o.assets = reserved;
	o.n_assets = 1;
	err = sb_runtime_prepare(&o, &e.rt);
	assert_non_null(err);
	assert_non_null(strstr(err->msg, "asset key"));
	sb_err_free(err);
	o.assets = NULL;
	o.n_assets = 0;
	o.spec.shell = "zsh";
	err = sb_runtime_prepare(&o, &e.rt);
	assert_non_null(err);
	sb_err_free(err);
	assert_false(rth_exists(e.base, "ws"));
	env_free(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(awkward_names_round_trip),
	    cmocka_unit_test(heavy_dirs_stay_on_their_side),
	    cmocka_unit_test(caller_excludes_and_preserved_paths),
	    cmocka_unit_test(empty_workspace_round_trips),
	    cmocka_unit_test(restage_wipes_stale_remote_but_spares_overlay),
	    cmocka_unit_test(fifo_is_ignored),
	    cmocka_unit_test(assets_follow_symlinks_and_exclude),
	    cmocka_unit_test(bad_requests_are_refused),
	    cmocka_unit_test(cancelled_prepare_runs_nothing),
	};
	return rth_run_both("runtime.tree", tests, sizeof tests / sizeof tests[0]);
}
