/* sync.delta_stage: staging into a directory that holds an earlier staging of the same workspace
 * (SANDBAR_SYNC=incremental, #15) sends only what differs and deletes what was deleted: bytes
 * counted ("bytes_up" of --json), local deletions and deletions on the far side, a file
 * replaced by a directory and the reverse, mode-only changes, one remote command for staging,
 * the fallback (one line) for another workspace's staging and a far side without sha256sum or
 * without find -printf (busybox), and
 * a reused sandbox lease (--reuse). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clitest.h"
#include "counting.h"
#include "runtime/harness.h"

#define N_FILES 40
#define FILE_BYTES 50000
#define FALLBACK "incremental staging not possible ("

/* Every mtime an hour old: files written just before a staging are compared by content. */
static void fill_workspace(clit *t)
{
	SB_ASSERT_OK(sb_fs_mkdir_p(t->ws, 0755));
	int rc = sbt_sh("cd '%s' && mkdir -p src dir deep/a/b && i=0; while [ $i -lt %d ]; do "
	                "head -c %d /dev/urandom > src/f$i.bin; i=$((i+1)); done && "
	                "echo 'echo hi' > run.sh && chmod 644 run.sh && echo inner > dir/x && "
	                "echo plain > file && echo bye > gone.txt && echo d > deep/a/b/c && "
	                "ln -s file link && find . -exec touch -h -d '1 hour ago' {} +",
	                t->ws, N_FILES, FILE_BYTES);
	assert_int_equal(rc, 0);
}

typedef struct run_out {
	int code;
	long long bytes_up;
	char *err; /* stderr, with the command's stdout (--json) */
	int calls;
} run_out;

static long long json_int(const char *s, const char *key)
{
	char *k = sb_strfmt("\"%s\":", key);
	const char *b = strstr(s, k);
	long long v = b ? atoll(b + strlen(k)) : -1;
	free(k);
	return v;
}

/* One run through the counting prefix into root/remote (kept between runs), from ws. */
static void run_in(clit *t, const char *ws, const char *cmd, run_out *o)
{
	char *calls;
	char *wrapper = synct_wrapper(t, &calls);
	sbt_sh("rm -f '%s'", calls);
	char *via = sb_strfmt("cmd:%s", wrapper);
	char *remote = sbt_path(t->root, "remote");
	clit_res r;
	o->code = clit_run(t, &r, CLIT_V("SANDBAR_SYNC=incremental"),
	                   CLIT_V("run", "--json", "-w", ws, "--via", via, "--remote-dir", remote,
	                          "--force", "--", "sh", "-c", cmd));
	o->bytes_up = json_int(r.out, "bytes_up");
	if (o->code != 0)
		print_error("exit %d, stderr:\n%s\n", o->code, r.err);
	o->err = sb_xstrdup(r.err);
	o->calls = synct_count_lines(calls);
	clit_res_free(&r);
	free(remote);
	free(via);
	free(wrapper);
	free(calls);
}

static void expect_out(run_out *o, const char *has)
{
	if (!strstr(o->err, has)) {
		print_error("no \"%s\" in the run's output:\n%s\n", has, o->err);
		fail();
	}
}

static void expect_delta(run_out *o, long long min_bytes, long long max_bytes)
{
	assert_int_equal(o->code, 0);
	if (strstr(o->err, FALLBACK)) {
		print_error("fell back:\n%s\n", o->err);
		fail();
	}
	if (o->bytes_up < min_bytes || o->bytes_up > max_bytes) {
		print_error("staged %lld bytes, expected %lld..%lld\n", o->bytes_up, min_bytes,
		            max_bytes);
		fail();
	}
}

/* The first run stages everything; a second run with two files grown by 1000 bytes sends those
 * two (plus tar headers and the listing, about 70 bytes an entry), in one command. */
static void repeat_run_sends_only_changed_bytes(void **state)
{
	clit *t = *state;
	fill_workspace(t);
	run_out o;
	run_in(t, t->ws, "true", &o);
	assert_int_equal(o.code, 0);
	assert_true(o.bytes_up > (long long)N_FILES * FILE_BYTES);
	free(o.err);
	assert_int_equal(sbt_sh("cd '%s' && head -c 1000 /dev/urandom >> src/f1.bin && "
	                        "head -c 1000 /dev/urandom >> src/f2.bin",
	                        t->ws),
	                 0);
	char *sum =
	    sbt_sh_out("cd '%s' && cat src/f1.bin src/f2.bin | sha256sum | cut -c1-64", t->ws);
	sum[strcspn(sum, "\n")] = '\0';
	run_in(t, t->ws, "cat src/f1.bin src/f2.bin | sha256sum", &o);
	long long changed = 2LL * (FILE_BYTES + 1000);
	expect_delta(&o, changed, changed + 32 * 1024);
	expect_out(&o, sum);
	/* staging (one), the command, the restore's listing and selection */
	if (o.calls > 4) {
		print_error("%d remote commands\n", o.calls);
		fail();
	}
	free(o.err);
	/* nothing changed: the listing and an empty archive */
	run_in(t, t->ws, "true", &o);
	expect_delta(&o, 0, 16 * 1024);
	free(o.err);
	free(sum);
}

/* Deleted locally: gone on the far side (a file, a directory tree); deleted on the far side
 * while the local copy stays: sent again. */
static void deletions_both_ways(void **state)
{
	clit *t = *state;
	fill_workspace(t);
	run_out o;
	run_in(t, t->ws, "true", &o);
	free(o.err);
	assert_int_equal(sbt_sh("cd '%s' && rm gone.txt && rm -r deep", t->ws), 0);
	assert_int_equal(sbt_sh("rm '%s/remote/src/f3.bin' '%s/remote/link'", t->root, t->root), 0);
	run_in(t, t->ws,
	       "test ! -e gone.txt && test ! -e deep && test -h link && "
	       "test $(wc -c < src/f3.bin) -eq 50000 && echo DELETIONS-OK",
	       &o);
	expect_delta(&o, FILE_BYTES, FILE_BYTES + 16 * 1024);
	expect_out(&o, "DELETIONS-OK");
	free(o.err);
	assert_true(rth_exists(t->ws, "src/f3.bin"));
}

/* A file becomes a directory and a directory (with contents) a file; a link a file. */
static void kind_changes(void **state)
{
	clit *t = *state;
	fill_workspace(t);
	run_out o;
	run_in(t, t->ws, "true", &o);
	free(o.err);
	assert_int_equal(sbt_sh("cd '%s' && rm file && mkdir file && echo in > file/inner && "
	                        "rm -r dir && echo now-a-file > dir && rm link && echo L > link",
	                        t->ws),
	                 0);
	run_in(t, t->ws, "cat file/inner dir link && echo KINDS-OK", &o);
	expect_delta(&o, 1, 16 * 1024);
	expect_out(&o, "in\nnow-a-file\nL\nKINDS-OK");
	free(o.err);
}

/* Only the permission bits changed: a file's and a directory's. */
static void mode_only_change(void **state)
{
	clit *t = *state;
	fill_workspace(t);
	run_out o;
	run_in(t, t->ws, "true", &o);
	free(o.err);
	assert_int_equal(sbt_sh("cd '%s' && chmod 755 run.sh && chmod 700 dir && "
	                        "touch -h -d '1 hour ago' run.sh dir",
	                        t->ws),
	                 0);
	run_in(t, t->ws, "test -x run.sh && test $(stat -c %a dir) = 700 && echo MODES-OK", &o);
	expect_delta(&o, 1, 16 * 1024);
	expect_out(&o, "MODES-OK");
	free(o.err);
}

/* Another workspace's staging in the same directory: one line, then everything, correctly. */
static void other_workspace_falls_back(void **state)
{
	clit *t = *state;
	fill_workspace(t);
	run_out o;
	run_in(t, t->ws, "true", &o);
	free(o.err);
	char *other = sbt_path(t->root, "other-ws");
	sbt_write_str(other, "only.txt", "other\n");
	run_in(t, other, "ls; echo LISTED", &o);
	assert_int_equal(o.code, 0);
	expect_out(&o, "only.txt\nLISTED");
	assert_null(strstr(o.err, "gone.txt"));
	expect_out(&o, FALLBACK "the earlier staging is of another workspace");
	free(o.err);
	/* back to the first: its record was replaced, so everything goes again */
	run_in(t, t->ws, "test -e gone.txt && test ! -e only.txt && echo BACK-OK", &o);
	assert_int_equal(o.code, 0);
	expect_out(&o, "BACK-OK");
	assert_true(o.bytes_up > (long long)N_FILES * FILE_BYTES);
	free(o.err);
	free(other);
}

/* A far side without sha256sum: one line, the whole tree, the right result. */
static void missing_sha256sum_falls_back(void **state)
{
	clit *t = *state;
	fill_workspace(t);
	run_out o;
	run_in(t, t->ws, "true", &o);
	free(o.err);
	char *path = synct_far_path_without(t, "sha256sum");
	sbt_write_str(t->ws, "src/f5.bin", "changed\n");
	run_in(t, t->ws, "cat src/f5.bin", &o);
	assert_int_equal(o.code, 0);
	expect_out(&o, FALLBACK "sha256sum is missing");
	expect_out(&o, "changed\n");
	if (o.bytes_up <= (long long)(N_FILES - 1) * FILE_BYTES) {
		print_error("staged %lld bytes:\n%s\n", o.bytes_up, o.err);
		fail();
	}
	free(o.err);
	sbt_rmtree(path); /* frees path */
}

/* A far find without -printf (busybox's): the listing fails, one line, then everything; the
 * restore likewise. */
static void find_without_printf_falls_back(void **state)
{
	clit *t = *state;
	fill_workspace(t);
	run_out o;
	run_in(t, t->ws, "true", &o);
	free(o.err);
	char *path = synct_far_path_without(t, "find");
	char *real = sbt_sh_out("command -v find");
	real[strcspn(real, "\n")] = '\0';
	char *fake =
	    sb_strfmt("#!/bin/sh\nfor a; do case $a in -printf) echo \"find: unrecognized: "
	              "$a\" >&2; exit 1;; esac; done\nexec '%s' \"$@\"\n",
	              real);
	sbt_write(path, "find", fake, strlen(fake), 0755);
	sbt_write_str(t->ws, "src/f6.bin", "changed\n");
	run_in(t, t->ws, "cat src/f6.bin; echo back > back.txt", &o);
	assert_int_equal(o.code, 0);
	expect_out(&o, FALLBACK);
	expect_out(&o, "changed\n");
	if (o.bytes_up <= (long long)(N_FILES - 1) * FILE_BYTES) {
		print_error("staged %lld bytes:\n%s\n", o.bytes_up, o.err);
		fail();
	}
	rth_assert_file(t->ws, "back.txt", "back\n");
	free(o.err);
	free(fake);
	free(real);
	sbt_rmtree(path); /* frees path */
}

/* The far tar dies before reading the archive (1 MB, past any pipe buffer): the run fails
 * naming it, rather than waiting for ever on a write nobody reads. */
static void far_tar_failure_is_an_error(void **state)
{
	clit *t = *state;
	fill_workspace(t);
	run_out o;
	run_in(t, t->ws, "true", &o);
	free(o.err);
	char *path = synct_far_path_without(t, "tar");
	const char *fake = "#!/bin/sh\necho 'tar: refusing to extract' >&2\nexit 2\n";
	sbt_write(path, "tar", fake, strlen(fake), 0755);
	assert_int_equal(sbt_sh("head -c 1000000 /dev/urandom > '%s/src/big.bin'", t->ws), 0);
	run_in(t, t->ws, "echo SHOULD-NOT-RUN", &o);
	assert_int_not_equal(o.code, 0);
	assert_null(strstr(o.err, "SHOULD-NOT-RUN"));
	expect_out(&o, "refusing to extract");
	free(o.err);
	sbt_rmtree(path); /* frees path */
}

/* A reused sandbox lease: the second run stages what changed. */
static void reused_lease_sends_only_changes(void **state)
{
	clit *t = *state;
	fill_workspace(t);
	clit_res r;
	for (int i = 0; i < 2; i++) {
		if (i)
			sbt_write_str(t->ws, "src/f7.bin", "seven\n");
		int code = clit_run(t, &r, CLIT_V("SANDBAR_SYNC=incremental"),
		                    CLIT_V("run", "--json", "-w", t->ws, "--reuse", "ds", "--",
		                           "sh", "-c", "cat src/f7.bin | wc -c; rm -f gone.txt"));
		if (code != 0)
			print_error("run %d: exit %d\n%s\n", i, code, r.err);
		assert_int_equal(code, 0);
		long long up = json_int(r.out, "bytes_up");
		if (i == 0) {
			assert_true(up > (long long)N_FILES * FILE_BYTES);
		} else if (up > 16 * 1024 || strstr(r.err, FALLBACK)) {
			print_error("second run staged %lld bytes\n%s\n", up, r.err);
			fail();
		}
		assert_non_null(strstr(r.err, i ? "6\n" : "50000\n"));
		clit_res_free(&r);
	}
	assert_false(rth_exists(t->ws, "gone.txt"));
	clit_run(t, &r, NULL, CLIT_V("lease", "destroy", "reuse-ds"));
	clit_res_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    CLIT_TEST(repeat_run_sends_only_changed_bytes),
	    CLIT_TEST(deletions_both_ways),
	    CLIT_TEST(kind_changes),
	    CLIT_TEST(mode_only_change),
	    CLIT_TEST(other_workspace_falls_back),
	    CLIT_TEST(missing_sha256sum_falls_back),
	    CLIT_TEST(find_without_printf_falls_back),
	    CLIT_TEST(far_tar_failure_is_an_error),
	    CLIT_TEST(reused_lease_sends_only_changes),
	};
	return cmocka_run_group_tests_name("sync.delta_stage", tests, NULL, NULL);
}
