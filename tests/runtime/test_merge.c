/* The restore merge (spec §3.3, §8.2) through real runners: every row of the three-way table,
 * conflicts under keep-local / take-remote / fail, sequential restores with a stale baseline,
 * and remote entries that try to escape the workspace (".." members, writes through symlinks,
 * local symlinks on the path) never being written on the host.
 */
#include "harness.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The scenario every policy test starts from. */
static void diverge(rth_env *e)
{
	const char *files[] = {"a.txt", "b.txt", "c.txt", "d.txt", "f.txt", "g.txt", "dir/h.txt"};
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
		sbt_write_str(e->local, files[i], "base\n");
	rth_env_prepare(e);
	sbt_write_str(e->ws, "a.txt", "remote\n"); /* both changed: conflict */
	sbt_write_str(e->local, "a.txt", "local\n");
	assert_int_equal(sbt_sh("rm '%s/b.txt'", e->ws), 0); /* remote deleted, local changed */
	sbt_write_str(e->local, "b.txt", "local\n");
	sbt_write_str(e->ws, "c.txt", "remote\n"); /* local deleted, remote changed */
	assert_int_equal(sbt_sh("rm '%s/c.txt'", e->local), 0);
	assert_int_equal(sbt_sh("rm '%s/d.txt'", e->ws), 0); /* remote deleted, local same */
	sbt_write_str(e->local, "e.txt", "created locally during the run\n");
	sbt_write_str(e->local, "f.txt", "local only edit\n"); /* remote unchanged */
	sbt_write_str(e->ws, "g.txt", "same\n");               /* both changed the same way */
	sbt_write_str(e->local, "g.txt", "same\n");
	sbt_write_str(e->ws, "dir/h.txt", "remote\n"); /* remote changed, local same */
	sbt_write_str(e->ws, "new/remote.txt", "remote new\n");
}

static const sb_runtime_conflict *find_conflict(const sb_restore_report *r, const char *path)
{
	for (size_t i = 0; i < r->n_conflicts; i++)
		if (strcmp(r->conflicts[i].path, path) == 0)
			return &r->conflicts[i];
	return NULL;
}

static void assert_common_outcome(rth_env *e, const sb_restore_report *rep)
{
	assert_false(rth_exists(e->local, "d.txt"));
	rth_assert_file(e->local, "e.txt", "created locally during the run\n");
	rth_assert_file(e->local, "f.txt", "local only edit\n");
	rth_assert_file(e->local, "g.txt", "same\n");
	rth_assert_file(e->local, "dir/h.txt", "remote\n");
	rth_assert_file(e->local, "new/remote.txt", "remote new\n");
	assert_int_equal(rep->n_conflicts, 3);
	assert_int_equal(rep->n_deleted, 1);
	assert_string_equal(rep->deleted[0], "d.txt");
	assert_int_equal(rep->n_changed, 1);
	assert_string_equal(rep->changed[0], "dir/h.txt");
	assert_int_equal(rep->n_added, 1);
	assert_string_equal(rep->added[0], "new/remote.txt");
	assert_true(rep->bytes_moved > 0);
}

static void conflict_keeps_both_versions(void **state)
{
	(void)state;
	rth_env e;
	rth_env_init(&e, true);
	diverge(&e);
	sb_restore_report rep;
	sb_restore_report_init(&rep);
	SB_ASSERT_OK(sb_runtime_restore(e.rt, NULL, &rep));
	assert_common_outcome(&e, &rep);
	rth_assert_file(e.local, "a.txt", "local\n");
	rth_assert_file(e.local, "a.txt.sandbar-remote", "remote\n");
	rth_assert_file(e.local, "b.txt", "local\n");
	assert_false(rth_exists(e.local, "c.txt"));
	rth_assert_file(e.local, "c.txt.sandbar-remote", "remote\n");
	const sb_runtime_conflict *a = find_conflict(&rep, "a.txt");
	assert_non_null(a);
	assert_int_equal(a->kind, SB_CONFLICT_BOTH_CHANGED);
	assert_false(a->kept_remote);
	assert_string_equal(a->remote_copy, "a.txt.sandbar-remote");
	const sb_runtime_conflict *b = find_conflict(&rep, "b.txt");
	assert_non_null(b);
	assert_int_equal(b->kind, SB_CONFLICT_REMOTE_DELETED);
	assert_null(b->remote_copy);
	const sb_runtime_conflict *c = find_conflict(&rep, "c.txt");
	assert_non_null(c);
	assert_int_equal(c->kind, SB_CONFLICT_LOCAL_DELETED);
	sb_restore_report_deinit(&rep);

	/* the baseline moved on: restoring again reports nothing new and keeps local edits */
	sbt_write_str(e.local, "dir/h.txt", "edited after the restore\n");
	SB_ASSERT_OK(sb_runtime_restore(e.rt, NULL, &rep));
	assert_int_equal(rep.n_conflicts, 0);
	assert_int_equal(rep.n_added + rep.n_changed + rep.n_deleted, 0);
	rth_assert_file(e.local, "dir/h.txt", "edited after the restore\n");
	sb_restore_report_deinit(&rep);
	rth_env_free(&e);
}

static void conflict_take_remote(void **state)
{
	(void)state;
	rth_env e;
	rth_env_init(&e, true);
	diverge(&e);
	sb_restore_report rep;
	sb_restore_report_init(&rep);
	sb_runtime_restore_opts ro = {.policy = SB_CONFLICT_TAKE_REMOTE};
	SB_ASSERT_OK(sb_runtime_restore(e.rt, &ro, &rep));
	assert_common_outcome(&e, &rep);
	rth_assert_file(e.local, "a.txt", "remote\n");
	assert_false(rth_exists(e.local, "b.txt"));
	rth_assert_file(e.local, "c.txt", "remote\n");
	assert_false(rth_exists(e.local, "a.txt.sandbar-remote"));
	for (size_t i = 0; i < rep.n_conflicts; i++)
		assert_true(rep.conflicts[i].kept_remote);
	sb_restore_report_deinit(&rep);
	rth_env_free(&e);
}

static void conflict_fail_applies_nothing(void **state)
{
	(void)state;
	rth_env e;
	rth_env_init(&e, true);
	diverge(&e);
	sb_restore_report rep;
	sb_restore_report_init(&rep);
	sb_runtime_restore_opts ro = {.policy = SB_CONFLICT_FAIL};
	sb_err *err = sb_runtime_restore(e.rt, &ro, &rep);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_CONFLICT);
	assert_non_null(strstr(err->msg, "a.txt (changed on both sides)"));
	assert_non_null(strstr(err->msg, "b.txt"));
	assert_non_null(strstr(err->msg, "c.txt"));
	sb_err_free(err);
	assert_int_equal(rep.n_conflicts, 3);
	/* nothing applied, not even the non-conflicting changes */
	rth_assert_file(e.local, "a.txt", "local\n");
	rth_assert_file(e.local, "d.txt", "base\n");
	rth_assert_file(e.local, "dir/h.txt", "base\n");
	assert_false(rth_exists(e.local, "new"));
	sb_restore_report_deinit(&rep);
	rth_env_free(&e);
}

static void stale_baseline_restores_keep_siblings(void **state)
{
	(void)state;
	rth_env e1, e2;
	rth_env_init(&e1, true);
	rth_env_init(&e2, true);
	sbt_write_str(e1.local, "root.txt", "r\n");
	/* two runtimes over the same local dir, both from the same baseline */
	sbt_rmtree(e2.local);
	e2.local = sb_xstrdup(e1.local);
	rth_env_prepare(&e1);
	rth_env_prepare(&e2);
	sbt_write_str(e1.ws, "a/b/c/one.txt", "1\n");
	sbt_write_str(e2.ws, "a/b/c/two.txt", "2\n");
	SB_ASSERT_OK(sb_runtime_restore(e1.rt, NULL, NULL));
	SB_ASSERT_OK(sb_runtime_restore(e2.rt, NULL, NULL));
	rth_assert_file(e1.local, "a/b/c/one.txt", "1\n");
	rth_assert_file(e1.local, "a/b/c/two.txt", "2\n");
	rth_assert_file(e1.local, "root.txt", "r\n");
	free(e2.local);
	e2.local = sbt_mkdtemp("rt-local");
	rth_env_free(&e2);
	rth_env_free(&e1);
}

static void dir_replaced_by_file_with_local_additions(void **state)
{
	(void)state;
	rth_env e;
	rth_env_init(&e, true);
	sbt_write_str(e.local, "thing/old.txt", "old\n");
	rth_env_prepare(&e);
	assert_int_equal(sbt_sh("rm -rf '%s/thing'", e.ws), 0);
	sbt_write_str(e.ws, "thing", "now a file\n");
	sbt_write_str(e.local, "thing/mine.txt", "added locally\n");
	sb_restore_report rep;
	sb_restore_report_init(&rep);
	SB_ASSERT_OK(sb_runtime_restore(e.rt, NULL, &rep));
	rth_assert_file(e.local, "thing/mine.txt", "added locally\n");
	assert_false(rth_exists(e.local, "thing/old.txt"));
	rth_assert_file(e.local, "thing.sandbar-remote", "now a file\n");
	const sb_runtime_conflict *c = find_conflict(&rep, "thing");
	assert_non_null(c);
	assert_int_equal(c->kind, SB_CONFLICT_BLOCKED);
	sb_restore_report_deinit(&rep);
	rth_env_free(&e);
}

/* A remote `tar` that answers the archive step with a hostile archive. */
static void install_hostile_tar(rth_env *e, const char *make_archive)
{
	char *real = sbt_sh_out("command -v tar");
	real[strcspn(real, "\n")] = '\0';
	char *shim = sbt_path(e->base, "shim");
	char *script = sb_strfmt("#!/bin/sh\n"
	                         "if { [ \"$1\" = \"-cf\" ] && [ \"$2\" = - ]; } || "
	                         "{ [ \"$1\" = \"-c\" ] && [ \"$2\" = -f ]; }; then "
	                         "out=$(mktemp); { %s; } >&2 && cat \"$out\"; rc=$?; "
	                         "rm -f \"$out\"; exit $rc; fi\n"
	                         "if [ \"$1\" = \"-cf\" ]; then out=\"$2\"; %s; exit $?; fi\n"
	                         "exec '%s' \"$@\"\n",
	                         make_archive, make_archive, real);
	sbt_write(shim, "tar", script, strlen(script), 0755);
	char *path = sb_strfmt("PATH=%s:/usr/local/bin:/usr/bin:/bin", shim);
	rth_rec_add_env(e->rec, path);
	free(path);
	free(script);
	free(shim);
	free(real);
}

static void assert_hostile_restore_refused(rth_env *e)
{
	/* A remote change, so that an incremental restore asks the far tar for a selection. */
	sbt_write_str(e->ws, "remote-change.txt", "new\n");
	sb_restore_report rep;
	sb_restore_report_init(&rep);
	sb_err *err = sb_runtime_restore(e->rt, NULL, &rep);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_ESCAPE);
	sb_err_free(err);
	char *ls = sbt_sh_out("ls -A '%s'", e->outside);
	assert_string_equal(ls, "");
	free(ls);
	rth_assert_file(e->local, "keep.txt", "keep\n");
	assert_int_equal(rep.n_added + rep.n_changed + rep.n_deleted, 0);
	sb_restore_report_deinit(&rep);
}

static void remote_dotdot_member_never_written(void **state)
{
	(void)state;
	rth_env e;
	rth_env_init(&e, true);
	sbt_write_str(e.local, "keep.txt", "keep\n");
	rth_env_prepare(&e);
	char *evil = sbt_path(e.base, "evil");
	sbt_write_str(evil, "escape.txt", "pwned\n");
	/* "../../<outside>/escape.txt" relative to the extraction dir, kept by -P */
	char *real = sbt_sh_out("command -v tar");
	real[strcspn(real, "\n")] = '\0';
	char *mk =
	    sb_strfmt("'%s' -cPf \"$out\" -C '%s' --transform 's,^,../../../../../../../../..%s/,' "
	              "escape.txt",
	              real, evil, e.outside);
	install_hostile_tar(&e, mk);
	char *listing =
	    sbt_sh_out("cd '%s' && '%s' -cPf - --transform 's,^,../x/,' escape.txt | '%s' -tf -",
	               evil, real, real);
	assert_non_null(strstr(listing, "../x/escape.txt")); /* the shim really emits ".." */
	free(listing);
	assert_hostile_restore_refused(&e);
	free(real);
	free(mk);
	free(evil);
	rth_env_free(&e);
}

static void remote_symlink_member_never_followed(void **state)
{
	(void)state;
	rth_env e;
	rth_env_init(&e, true);
	sbt_write_str(e.local, "keep.txt", "keep\n");
	rth_env_prepare(&e);
	/* member "link" -> outside, then member "link/pwn.txt": a write through the link */
	char *d1 = sbt_path(e.base, "d1"), *d2 = sbt_path(e.base, "d2");
	char *l = sbt_path(d1, "link");
	SB_ASSERT_OK(sb_fs_mkdir_p(d1, 0755));
	assert_int_equal(symlink(e.outside, l), 0);
	sbt_write_str(d2, "link/pwn.txt", "pwned\n");
	char *real = sbt_sh_out("command -v tar");
	real[strcspn(real, "\n")] = '\0';
	char *mk =
	    sb_strfmt("'%s' -cf \"$out\" -C '%s' link && '%s' -rf \"$out\" -C '%s' link/pwn.txt",
	              real, d1, real, d2);
	install_hostile_tar(&e, mk);
	assert_hostile_restore_refused(&e);
	free(mk);
	free(real);
	free(l);
	free(d1);
	free(d2);
	rth_env_free(&e);
}

static void local_symlink_on_path_blocks_writes(void **state)
{
	(void)state;
	for (int pol = SB_CONFLICT_KEEP_LOCAL; pol <= SB_CONFLICT_TAKE_REMOTE; pol++) {
		rth_env e;
		rth_env_init(&e, true);
		sbt_write_str(e.local, "d/x.txt", "base\n");
		rth_env_prepare(&e);
		/* locally, d becomes a link out of the tree; remotely, d/x.txt and d/y.txt change
		 */
		assert_int_equal(
		    sbt_sh("rm -rf '%s/d' && ln -s '%s' '%s/d'", e.local, e.outside, e.local), 0);
		sbt_write_str(e.ws, "d/x.txt", "remote\n");
		sbt_write_str(e.ws, "d/y.txt", "remote new\n");
		sb_restore_report rep;
		sb_restore_report_init(&rep);
		sb_runtime_restore_opts ro = {.policy = (sb_conflict_policy)pol};
		SB_ASSERT_OK(sb_runtime_restore(e.rt, &ro, &rep));
		char *ls = sbt_sh_out("ls -A '%s'", e.outside);
		assert_string_equal(ls, "");
		free(ls);
		assert_non_null(find_conflict(&rep, "d/x.txt"));
		assert_non_null(find_conflict(&rep, "d/y.txt"));
		sb_restore_report_deinit(&rep);
		rth_env_free(&e);
	}
}

static void foreign_staging_dir_is_never_deleted(void **state)
{
	(void)state;
	rth_env e;
	rth_env_init(&e, true);
	sbt_write_str(e.local, "a.txt", "base\n");
	rth_env_prepare(&e);
	/* the user happens to own a directory by the staging name (excluded from the sync) */
	sbt_write_str(e.local, ".sandbar-restore/mine.txt", "user data\n");
	sbt_write_str(e.ws, "a.txt", "remote\n");
	sb_err *err = sb_runtime_restore(e.rt, NULL, NULL);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_EXISTS);
	assert_non_null(strstr(err->msg, "was not made by sandbar"));
	sb_err_free(err);
	rth_assert_file(e.local, ".sandbar-restore/mine.txt", "user data\n");
	rth_assert_file(e.local, "a.txt", "base\n");
	/* moved away: the restore goes through and leaves no staging dir behind */
	assert_int_equal(sbt_sh("rm -rf '%s/.sandbar-restore'", e.local), 0);
	SB_ASSERT_OK(sb_runtime_restore(e.rt, NULL, NULL));
	rth_assert_file(e.local, "a.txt", "remote\n");
	assert_false(rth_exists(e.local, ".sandbar-restore"));
	rth_env_free(&e);
}

/* The mode mkdirat(…, 0755) gives under the current umask. */
static mode_t created_dir_mode(void)
{
	mode_t mask = umask(022);
	umask(mask);
	return 0755 & ~mask;
}

static mode_t mode_of(const char *dir, const char *rel)
{
	char *p = sbt_path(dir, rel);
	struct stat st;
	assert_int_equal(lstat(p, &st), 0);
	free(p);
	return st.st_mode & 07777;
}

/* A directory the local side never had comes back whole (the merge moves it in one rename):
 * every file, link and empty directory below it, each file and link in the report, directory
 * modes as the entry-by-entry path creates them, and nothing the merge set leaves out (an
 * ignored "._" name) brought in with it. On the full path and the incremental one. */
static void new_directories_arrive_whole(const char *sync)
{
	setenv("SANDBAR_SYNC", sync, 1);
	rth_env e;
	rth_env_init(&e, false);
	sbt_write_str(e.local, "kept.txt", "base\n");
	rth_env_prepare(&e);
	sbt_write_str(e.ws, "tree/a.txt", "a\n");
	sbt_write_str(e.ws, "tree/deep/b.txt", "b\n");
	sbt_write_str(e.ws, "tree/deep/._meta", "ignored\n");
	assert_int_equal(sbt_sh("cd '%s/tree' && mkdir empty && ln -s deep/b.txt link && "
	                        "chmod 700 . && chmod 777 deep",
	                        e.ws),
	                 0);
	sb_restore_report rep;
	sb_restore_report_init(&rep);
	SB_ASSERT_OK(sb_runtime_restore(e.rt, NULL, &rep));
	rth_assert_file(e.local, "tree/a.txt", "a\n");
	rth_assert_file(e.local, "tree/deep/b.txt", "b\n");
	rth_assert_file(e.local, "tree/link", "b\n");
	assert_true(rth_exists(e.local, "tree/empty"));
	assert_false(rth_exists(e.local, "tree/deep/._meta"));
	assert_int_equal(mode_of(e.local, "tree"), created_dir_mode());
	assert_int_equal(mode_of(e.local, "tree/deep"), created_dir_mode());
	assert_int_equal(rep.n_added, 3);
	assert_string_equal(rep.added[0], "tree/a.txt");
	assert_string_equal(rep.added[1], "tree/deep/b.txt");
	assert_string_equal(rep.added[2], "tree/link");
	assert_int_equal(rep.n_conflicts, 0);
	assert_false(rth_exists(e.local, ".sandbar-restore"));
	sb_restore_report_deinit(&rep);
	rth_env_free(&e);
	unsetenv("SANDBAR_SYNC");
}

static void new_directories_arrive_whole_and_exact(void **state)
{
	(void)state;
	new_directories_arrive_whole("full");
}

static void new_directories_arrive_whole_and_exact_incrementally(void **state)
{
	(void)state;
	new_directories_arrive_whole("incremental");
}

/* A directory the local side deleted is not brought back whole because the remote added a
 * file to it: the files the remote left as they were stay deleted. */
static void a_locally_deleted_directory_gets_only_the_remote_additions(void **state)
{
	(void)state;
	setenv("SANDBAR_SYNC", "full", 1);
	rth_env e;
	rth_env_init(&e, false);
	sbt_write_str(e.local, "old/a.txt", "base\n");
	sbt_write_str(e.local, "old/sub/b.txt", "base\n");
	rth_env_prepare(&e);
	assert_int_equal(sbt_sh("rm -r '%s/old'", e.local), 0);
	sbt_write_str(e.ws, "old/new.txt", "remote\n");
	sb_restore_report rep;
	sb_restore_report_init(&rep);
	SB_ASSERT_OK(sb_runtime_restore(e.rt, NULL, &rep));
	rth_assert_file(e.local, "old/new.txt", "remote\n");
	assert_false(rth_exists(e.local, "old/a.txt"));
	assert_false(rth_exists(e.local, "old/sub/b.txt"));
	assert_int_equal(rep.n_added, 1);
	assert_int_equal(rep.n_conflicts, 0);
	sb_restore_report_deinit(&rep);
	rth_env_free(&e);
	unsetenv("SANDBAR_SYNC");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(conflict_keeps_both_versions),
	    cmocka_unit_test(conflict_take_remote),
	    cmocka_unit_test(conflict_fail_applies_nothing),
	    cmocka_unit_test(stale_baseline_restores_keep_siblings),
	    cmocka_unit_test(dir_replaced_by_file_with_local_additions),
	    cmocka_unit_test(remote_dotdot_member_never_written),
	    cmocka_unit_test(remote_symlink_member_never_followed),
	    cmocka_unit_test(local_symlink_on_path_blocks_writes),
	    cmocka_unit_test(foreign_staging_dir_is_never_deleted),
	    cmocka_unit_test(new_directories_arrive_whole_and_exact),
	    cmocka_unit_test(new_directories_arrive_whole_and_exact_incrementally),
	    cmocka_unit_test(a_locally_deleted_directory_gets_only_the_remote_additions),
	};
	return rth_run_both("runtime.merge", tests, sizeof tests / sizeof tests[0]);
}
