/* sync.delta: incremental restores (#15, SANDBAR_SYNC=incremental) through the real `sandbar`
 * binary and a counting command prefix: only the changed files come back (bytes counted),
 * deletions, kind changes both ways, mode-only changes, a content change under an unchanged
 * mtime (caught when the size changed, and by --checksum when it did not), the fallbacks when
 * the far side has no sha256sum or another clock, and the number of remote commands per run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clitest.h"
#include "counting.h"
#include "runtime/harness.h"

#define N_FILES 50
#define FILE_BYTES 20000

/* N_FILES files of FILE_BYTES, a script, a directory and a file to change kinds; every mtime an
 * hour old (files written just before staging are compared by content, not by mtime). */
static void fill_workspace(clit *t)
{
	SB_ASSERT_OK(sb_fs_mkdir_p(t->ws, 0755));
	int rc = sbt_sh("cd '%s' && mkdir -p src dir && i=0; while [ $i -lt %d ]; do "
	                "head -c %d /dev/urandom > src/f$i.bin; i=$((i+1)); done && "
	                "echo 'echo hi' > run.sh && chmod 644 run.sh && echo inner > dir/x && "
	                "echo plain > file && echo same-size-1 > quiet.txt && "
	                "echo short > grows.txt && echo bye > gone.txt && "
	                "find . -exec touch -h -d '1 hour ago' {} +",
	                t->ws, N_FILES, FILE_BYTES);
	assert_int_equal(rc, 0);
}

typedef struct run_out {
	int code;
	long long bytes_down;
	char *err;
	int calls;
} run_out;

static void run_in(clit *t, const char *mode, bool checksum, const char *cmd, run_out *o)
{
	char *calls;
	char *wrapper = synct_wrapper(t, &calls);
	sbt_sh("rm -f '%s'", calls);
	char *via = sb_strfmt("cmd:%s", wrapper);
	char *remote = sbt_path(t->root, "remote");
	char *env_mode = sb_strfmt("SANDBAR_SYNC=%s", mode);
	clit_res r;
	o->code = checksum
	              ? clit_run(t, &r, CLIT_V(env_mode),
	                         CLIT_V("run", "--json", "--checksum", "-w", t->ws, "--via", via,
	                                "--remote-dir", remote, "--force", "--", "sh", "-c", cmd))
	              : clit_run(t, &r, CLIT_V(env_mode),
	                         CLIT_V("run", "--json", "-w", t->ws, "--via", via, "--remote-dir",
	                                remote, "--force", "--", "sh", "-c", cmd));
	const char *b = strstr(r.out, "\"bytes_down\":");
	o->bytes_down = b ? atoll(b + strlen("\"bytes_down\":")) : -1;
	if (o->code != 0)
		print_error("exit %d, stderr:\n%s\n", o->code, r.err);
	o->err = sb_xstrdup(r.err);
	o->calls = synct_count_lines(calls);
	clit_res_free(&r);
	free(env_mode);
	free(remote);
	free(via);
	free(wrapper);
	free(calls);
}

static void run_out_free(run_out *o)
{
	free(o->err);
}

/* Two files grow by 1000 bytes: the restore moves them and the listing, not the 4 MB tree. */
static void repeat_run_moves_only_changed_files(void **state)
{
	clit *t = *state;
	fill_workspace(t);
	const char *cmd = "head -c 1000 /dev/zero >> src/f1.bin; head -c 1000 /dev/zero >> "
	                  "src/f2.bin";
	run_out full, inc;
	run_in(t, "full", false, "true", &full);
	assert_int_equal(full.code, 0);
	run_in(t, "incremental", false, cmd, &inc);
	assert_int_equal(inc.code, 0);
	assert_int_equal(
	    sbt_sh("test $(stat -c %%s '%s/src/f1.bin') -eq %d", t->ws, FILE_BYTES + 1000), 0);
	assert_int_equal(
	    sbt_sh("test $(stat -c %%s '%s/src/f2.bin') -eq %d", t->ws, FILE_BYTES + 1000), 0);
	long long changed = 2LL * (FILE_BYTES + 1000);
	/* the full path moved the whole tree; the delta: the two files, tar headers, the listing
	 * (about 70 bytes an entry) */
	assert_true(full.bytes_down > (long long)N_FILES * FILE_BYTES);
	if (!(inc.bytes_down > changed && inc.bytes_down < changed + 64 * 1024)) {
		print_error("incremental restore moved %lld bytes for %lld changed\n",
		            inc.bytes_down, changed);
		fail();
	}
	assert_null(strstr(inc.err, "incremental restore not possible"));
	/* stage, command, listing, selection */
	assert_true(inc.calls <= 4);
	run_out_free(&full);
	run_out_free(&inc);
}

static void deletions_and_kind_changes_come_back(void **state)
{
	clit *t = *state;
	fill_workspace(t);
	run_out o;
	run_in(t, "incremental", false, "true", &o);
	run_out_free(&o);
	/* local deletion since the last run: the remote must not hold it any more */
	sbt_sh("rm '%s/src/f7.bin'", t->ws);
	const char *cmd = "test ! -e src/f7.bin && rm gone.txt && rm file && mkdir file && "
	                  "echo in > file/inner && rm -r dir && echo now-a-file > dir && "
	                  "rm -r src/f9.bin";
	run_in(t, "incremental", false, cmd, &o);
	assert_int_equal(o.code, 0);
	assert_false(rth_exists(t->ws, "gone.txt"));
	assert_false(rth_exists(t->ws, "src/f9.bin"));
	assert_false(rth_exists(t->ws, "src/f7.bin"));
	rth_assert_file(t->ws, "file/inner", "in\n");
	rth_assert_file(t->ws, "dir", "now-a-file\n");
	assert_int_equal(sbt_sh("test $(stat -c %%s '%s/src/f8.bin') -eq %d", t->ws, FILE_BYTES),
	                 0);
	run_out_free(&o);
}

static void mode_only_change_comes_back(void **state)
{
	clit *t = *state;
	fill_workspace(t);
	run_out o;
	run_in(t, "incremental", false, "chmod 755 run.sh", &o);
	assert_int_equal(o.code, 0);
	struct stat st;
	char *p = sbt_path(t->ws, "run.sh");
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0755);
	free(p);
	run_out_free(&o);
}

/* The documented assumption: size and mtime. A content change that keeps the old mtime is
 * caught when the size changed; when it did not, only --checksum sees it. */
static void old_mtime_content_change(void **state)
{
	clit *t = *state;
	fill_workspace(t);
	const char *cmd = "r=$(stat -c %Y grows.txt); echo much-longer-now > grows.txt; "
	                  "touch -d @$r grows.txt; q=$(stat -c %Y quiet.txt); "
	                  "echo same-size-2 > quiet.txt; touch -d @$q quiet.txt";
	run_out o;
	run_in(t, "incremental", false, cmd, &o);
	assert_int_equal(o.code, 0);
	rth_assert_file(t->ws, "grows.txt", "much-longer-now\n");
	rth_assert_file(t->ws, "quiet.txt", "same-size-1\n"); /* not seen: the assumption */
	run_out_free(&o);
	sbt_sh("echo short > '%s/grows.txt' && echo same-size-1 > '%s/quiet.txt' && "
	       "touch -d '1 hour ago' '%s/grows.txt' '%s/quiet.txt'",
	       t->ws, t->ws, t->ws, t->ws);
	run_in(t, "incremental", true, cmd, &o);
	assert_int_equal(o.code, 0);
	rth_assert_file(t->ws, "grows.txt", "much-longer-now\n");
	rth_assert_file(t->ws, "quiet.txt", "same-size-2\n");
	run_out_free(&o);
}

static void assert_fell_back(clit *t, const char *cmd, const char *why)
{
	run_out o;
	run_in(t, "incremental", false, cmd, &o);
	assert_int_equal(o.code, 0);
	char *line = sb_strfmt("incremental restore not possible (%s", why);
	if (!strstr(o.err, line)) {
		print_error("no \"%s\" line in stderr:\n%s\n", line, o.err);
		fail();
	}
	free(line);
	/* the whole tree came back, and the change with it */
	assert_true(o.bytes_down > (long long)N_FILES * FILE_BYTES);
	run_out_free(&o);
}

/* A far side without sha256sum: one line, then the whole tree, and the right result. */
static void missing_sha256sum_falls_back(void **state)
{
	clit *t = *state;
	fill_workspace(t);
	char *path = synct_far_path_without(t, "sha256sum");
	assert_fell_back(t, "echo changed > src/f3.bin", "sha256sum is missing");
	rth_assert_file(t->ws, "src/f3.bin", "changed\n");
	sbt_rmtree(path); /* frees path */
}

/* A far clock an hour ahead: its mtimes say nothing about ours. */
static void clock_skew_falls_back(void **state)
{
	clit *t = *state;
	fill_workspace(t);
	char *path = synct_far_path_without(t, "date");
	char *fake = sb_strfmt("#!/bin/sh\necho $(( $(%s +%%s) + 3600 ))\n",
	                       access("/usr/bin/date", X_OK) == 0 ? "/usr/bin/date" : "/bin/date");
	sbt_write(path, "date", fake, strlen(fake), 0755);
	free(fake);
	assert_fell_back(t, "echo changed > src/f4.bin", "the far clock is");
	rth_assert_file(t->ws, "src/f4.bin", "changed\n");
	sbt_rmtree(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    CLIT_TEST(repeat_run_moves_only_changed_files),
	    CLIT_TEST(deletions_and_kind_changes_come_back),
	    CLIT_TEST(mode_only_change_comes_back),
	    CLIT_TEST(old_mtime_content_change),
	    CLIT_TEST(missing_sha256sum_falls_back),
	    CLIT_TEST(clock_skew_falls_back),
	};
	return cmocka_run_group_tests_name("sync.delta", tests, NULL, NULL);
}
