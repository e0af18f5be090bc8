/* sync.native_delta: repeat runs on a reused embedded sandbox (#15) through the real `sandbar`
 * binary. The sandbox runner lists the lease's workspace itself (SB_RUNNER_CAP_DELTA), so a
 * repeat run moves only what changed, both ways, without any command inside the sandbox besides
 * the user's (one exec spool per run); deletions and kind changes both ways; a record of another
 * workspace means the whole tree with one line; SANDBAR_SYNC=full keeps the whole-tree path. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clitest.h"

#define N_FILES 40
#define FILE_BYTES 50000 /* 2 MB in all: a whole transfer is unmistakable */
#define SMALL 200000     /* what a delta of a few small files stays under, archive included */

typedef struct run_out {
	long long up, down;
	char *out, *err;
} run_out;

static long long field(const char *json, const char *name)
{
	char *key = sb_strfmt("\"%s\":", name);
	const char *p = strstr(json, key);
	long long v = p ? atoll(p + strlen(key)) : -1;
	free(key);
	return v;
}

static void run_reuse(clit *t, const char *mode, const char *cmd, run_out *o)
{
	char *env = mode ? sb_strfmt("SANDBAR_SYNC=%s", mode) : sb_xstrdup("SANDBAR_SYNC");
	clit_res r;
	int code =
	    clit_run(t, &r, CLIT_V(env),
	             CLIT_V("run", "--json", "-w", t->ws, "--reuse", "nd", "--", "sh", "-c", cmd));
	if (code != 0)
		print_error("exit %d\nstdout:\n%s\nstderr:\n%s\n", code, r.out, r.err);
	assert_int_equal(code, 0);
	o->up = field(r.out, "bytes_up");
	o->down = field(r.out, "bytes_down");
	o->out = sb_xstrdup(r.out);
	o->err = sb_xstrdup(r.err);
	clit_res_free(&r);
	free(env);
}

static void run_out_free(run_out *o)
{
	free(o->out);
	free(o->err);
}

static void fill(clit *t)
{
	assert_int_equal(
	    sbt_sh("cd '%s' && mkdir -p src && i=0; while [ $i -lt %d ]; do "
	           "head -c %d /dev/urandom > src/f$i.bin; i=$((i+1)); done && "
	           "echo keep > keep.txt && echo gone > gone.txt && echo f > becomes_dir "
	           "&& mkdir becomes_file && echo x > becomes_file/x",
	           t->ws, N_FILES, FILE_BYTES),
	    0);
}

/* How many execs the lease has run (one spool directory each). */
static int execs_of(clit *t)
{
	char *spool = sb_strfmt("%s/leases/reuse-nd/spool", t->state);
	DIR *d = opendir(spool);
	assert_non_null(d);
	int n = 0;
	for (struct dirent *e; (e = readdir(d));)
		n += strncmp(e->d_name, "ex_", 3) == 0;
	closedir(d);
	free(spool);
	return n;
}

static void a_repeat_run_moves_only_what_changed_both_ways(void **state)
{
	clit *t = *state;
	fill(t);
	run_out first;
	run_reuse(t, NULL, "true", &first);
	assert_true(first.up > N_FILES * FILE_BYTES); /* the first staging is whole */
	int execs = execs_of(t);
	/* here: one file changed, one deleted, one new; a file becomes a directory and the reverse
	 */
	assert_int_equal(sbt_sh("cd '%s' && echo changed > keep.txt && rm gone.txt && echo new > "
	                        "new.txt && rm becomes_dir && mkdir becomes_dir && echo y > "
	                        "becomes_dir/y && rm -r becomes_file && echo z > becomes_file",
	                        t->ws),
	                 0);
	/* there: the same kinds of change, made by the command, which also reports what it saw */
	run_out second;
	run_reuse(
	    t, NULL,
	    "cat keep.txt new.txt becomes_dir/y becomes_file; test -e gone.txt && echo STALE; "
	    "echo made > made.txt && echo edited > src/f1.bin && rm src/f2.bin && "
	    "rm -r becomes_dir && echo w > becomes_dir",
	    &second);
	assert_non_null(strstr(second.err, "changed\nnew\ny\nz\n")); /* --json: output on stderr */
	assert_null(strstr(second.err, "STALE"));
	assert_true(second.up >= 0 && second.up < SMALL);
	assert_true(second.down >= 0 && second.down < SMALL);
	/* no command of ours ran inside: the lease's one new exec is the user's */
	assert_int_equal(execs_of(t), execs + 1);
	assert_null(strstr(second.err, "not possible"));
	char *got = sbt_read(t->ws, "made.txt", NULL);
	assert_string_equal(got, "made\n");
	free(got);
	got = sbt_read(t->ws, "src/f1.bin", NULL);
	assert_string_equal(got, "edited\n");
	free(got);
	got = sbt_read(t->ws, "becomes_dir", NULL);
	assert_string_equal(got, "w\n");
	free(got);
	assert_int_equal(sbt_sh("test ! -e '%s/src/f2.bin'", t->ws), 0);
	run_out_free(&first);
	run_out_free(&second);
}

static void another_workspaces_record_means_the_whole_tree(void **state)
{
	clit *t = *state;
	fill(t);
	run_out first;
	run_reuse(t, NULL, "true", &first);
	char *rec = sb_strfmt("%s/leases/reuse-nd/workspace/.paperclip-runtime/sandbar/sync-state",
	                      t->state);
	assert_int_equal(sbt_sh("test -s '%s' && printf '1 %%064d 12345\\n' 0 > '%s'", rec, rec),
	                 0);
	run_out second;
	run_reuse(t, NULL, "cat keep.txt", &second);
	assert_non_null(strstr(second.err, "the earlier staging is of another workspace"));
	assert_true(second.up > N_FILES * FILE_BYTES);
	assert_non_null(strstr(second.err, "keep\n"));
	/* and the whole staging wrote a record of its own: the next run is a delta again */
	run_out third;
	run_reuse(t, NULL, "true", &third);
	assert_true(third.up < SMALL);
	free(rec);
	run_out_free(&first);
	run_out_free(&second);
	run_out_free(&third);
}

static void sync_full_moves_the_whole_tree(void **state)
{
	clit *t = *state;
	fill(t);
	run_out first, second;
	run_reuse(t, "full", "true", &first);
	run_reuse(t, "full", "true", &second);
	assert_true(second.up > N_FILES * FILE_BYTES);
	assert_true(second.down > N_FILES * FILE_BYTES);
	run_out_free(&first);
	run_out_free(&second);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    CLIT_TEST(a_repeat_run_moves_only_what_changed_both_ways),
	    CLIT_TEST(another_workspaces_record_means_the_whole_tree),
	    CLIT_TEST(sync_full_moves_the_whole_tree),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
