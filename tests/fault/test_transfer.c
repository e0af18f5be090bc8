/* A runner that fails part way through a transfer: for every k, the k-th remote command of a
 * prepare or a restore fails (the far side is unreachable for that one call, or the channel is
 * lost after the command ran), and the far side answers again afterwards. The operation must
 * fail with an error naming the step, leave no temp or staging files on the far side, and, for
 * a restore, leave the local workspace exactly as it was.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum fail_mode {
	FAIL_REFUSE, /* the call never reaches the far side */
	FAIL_LOST,   /* the command runs, then the channel reports it lost */
} fail_mode;

typedef struct flaky {
	sb_runner base;
	sb_runner *inner;
	size_t calls;  /* execute calls so far */
	size_t fail_k; /* 1-based call that fails; 0 = none */
	fail_mode mode;
} flaky;

static sb_err *flaky_execute(sb_runner *r, const sb_exec_request *req, const sb_exec_callbacks *cb,
			     sb_cancel *cancel, sb_exec_result *res)
{
	flaky *f = r->impl;
	size_t n = ++f->calls;
	if (n != f->fail_k)
		return sb_runner_execute(f->inner, req, cb, cancel, res);
	if (f->mode == FAIL_REFUSE)
		return sb_err_new(SB_E_IO, "injected: the far side did not answer call %zu", n);
	sb_err *err = sb_runner_execute(f->inner, req, cb, cancel, res);
	if (err)
		return err;
	free(res->transport_error_code);
	free(res->transport_error_msg);
	res->transport_error_code = sb_xstrdup("duplex_channel_lost");
	res->transport_error_msg = sb_strfmt("injected: channel lost after call %zu", n);
	return NULL;
}

static void flaky_destroy(sb_runner *r)
{
	flaky *f = r->impl;
	sb_runner_free(f->inner);
	free(f);
}

static const sb_runner_ops flaky_ops = {
    .name = "flaky",
    .execute = flaky_execute,
    .destroy = flaky_destroy,
};

/* A command-path runner (no native transfer) that uploads in chunks: stdin but no stdin
 * progress, so a 3.5 MiB archive takes two chunk calls. */
static flaky *flaky_new(void)
{
	flaky *f = sb_xcalloc(1, sizeof *f);
	f->inner = rth_runner(false);
	f->base.ops = &flaky_ops;
	f->base.caps = SB_RUNNER_CAP_STDIN;
	f->base.impl = f;
	return f;
}

static void fill_workspace(const char *dir)
{
	size_t big_len = (7u << 20) / 2; /* two upload chunks */
	char *big = sb_xmalloc(big_len);
	sbt_fill_random(big, big_len, 7);
	sbt_write(dir, "big.bin", big, big_len, 0644);
	free(big);
	sbt_write_str(dir, "a.txt", "alpha\n");
	sbt_write_str(dir, "src/main.c", "int main(void) { return 0; }\n");
	sbt_write_str(dir, "src/lib/util.c", "/* util */\n");
}

/* Every path under dir whose name carries a temp or staging marker, newline-separated. */
static char *leftovers(const char *dir)
{
	return sbt_sh_out("cd '%s' && find . \\( -name '*.sandbar-*' -o -name '*-upload.tar' "
			  "-o -name '*-download.tar' -o -name '*.b64' -o -name '.sandbar-restore' "
			  "\\) -print",
			  dir);
}

static void assert_no_leftovers(const char *dir, const char *when)
{
	char *l = leftovers(dir);
	if (l[0])
		print_error("%s left behind in %s:\n%s", when, dir, l);
	assert_string_equal(l, "");
	free(l);
}

static sb_runtime_prepare_opts prep_opts(sb_runner *r, const char *local, const char *ws)
{
	return (sb_runtime_prepare_opts){
	    .runner = r,
	    .spec = {.remote_cwd = ws},
	    .adapter_key = "claude",
	    .workspace_local_dir = local,
	};
}

static void failed_upload_call_leaves_nothing_on_the_far_side(void **state)
{
	(void)state;
	char *local = sbt_mkdtemp("flt-local");
	fill_workspace(local);
	/* how many calls a clean prepare makes */
	flaky *f = flaky_new();
	char *base = sbt_mkdtemp("flt-remote");
	char *ws = sbt_path(base, "ws");
	sb_runtime_prepare_opts o = prep_opts(&f->base, local, ws);
	sb_runtime *rt = NULL;
	SB_ASSERT_OK(sb_runtime_prepare(&o, &rt));
	size_t total = f->calls;
	assert_true(total >= 4); /* init, two chunks, mv, extract at least */
	sb_runtime_free(rt);
	sb_runner_free(&f->base);
	sbt_rmtree(base);
	free(ws);

	for (int mode = FAIL_REFUSE; mode <= FAIL_LOST; mode++) {
		for (size_t k = 1; k <= total; k++) {
			f = flaky_new();
			f->fail_k = k;
			f->mode = (fail_mode)mode;
			base = sbt_mkdtemp("flt-remote");
			ws = sbt_path(base, "ws");
			/* an earlier workspace the failed prepare must not leave half-replaced with
			 * temp files in it */
			sbt_write_str(ws, "old.txt", "old\n");
			o = prep_opts(&f->base, local, ws);
			rt = NULL;
			sb_err *err = sb_runtime_prepare(&o, &rt);
			if (!err) {
				/* the failed call was one prepare may ignore (a probe): the result
				 * must then be complete */
				rth_assert_trees_equal(local, ws,
						       (const char *const[]){".paperclip-runtime",
									     NULL});
				sb_runtime_free(rt);
			} else {
				assert_null(rt);
				/* names the operation and the step that failed */
				assert_non_null(strstr(err->msg, "preparing the managed runtime"));
				assert_non_null(strstr(err->msg, "injected"));
				assert_true(strstr(err->msg, "uploading") || strstr(err->msg, "staging"));
				sb_err_free(err);
			}
			char *when = sb_strfmt("prepare failing call %zu (%s)", k,
					       mode == FAIL_REFUSE ? "refused" : "lost");
			assert_no_leftovers(base, when);
			free(when);
			sb_runner_free(&f->base);
			sbt_rmtree(base);
			free(ws);
		}
	}
	sbt_rmtree(local);
}

static void failed_download_call_leaves_the_local_workspace_untouched(void **state)
{
	(void)state;
	char *local = sbt_mkdtemp("flt-local");
	fill_workspace(local);
	flaky *f = flaky_new();
	char *base = sbt_mkdtemp("flt-remote");
	char *ws = sbt_path(base, "ws");
	sb_runtime_prepare_opts o = prep_opts(&f->base, local, ws);
	sb_runtime *rt = NULL;
	SB_ASSERT_OK(sb_runtime_prepare(&o, &rt));
	/* remote work: a change, an addition, a deletion, and a new big file so the download
	 * takes several chunk calls */
	sbt_write_str(ws, "a.txt", "remote alpha\n");
	sbt_write_str(ws, "src/new.c", "/* new */\n");
	assert_int_equal(sbt_sh("rm -f '%s/src/lib/util.c'", ws), 0);
	assert_int_equal(sbt_sh("head -c 4000000 /dev/urandom > '%s/big2.bin'", ws), 0);
	/* and the reference copy of the local side */
	char *ref = sbt_mkdtemp("flt-ref");
	assert_int_equal(sbt_sh("cp -a '%s/.' '%s/'", local, ref), 0);

	size_t before = f->calls;
	/* count a clean restore's calls on a second, identical runtime */
	char *local2 = sbt_mkdtemp("flt-local2");
	assert_int_equal(sbt_sh("cp -a '%s/.' '%s/'", local, local2), 0);
	flaky *f2 = flaky_new();
	char *ws2 = sbt_path(base, "ws2");
	sb_runtime_prepare_opts o2 = prep_opts(&f2->base, local2, ws2);
	sb_runtime *rt2 = NULL;
	SB_ASSERT_OK(sb_runtime_prepare(&o2, &rt2));
	assert_int_equal(sbt_sh("cp -a '%s/.' '%s/'", ws, ws2), 0);
	size_t start2 = f2->calls;
	SB_ASSERT_OK(sb_runtime_restore(rt2, NULL, NULL));
	size_t total = f2->calls - start2;
	assert_true(total >= 3); /* archive, size probe, chunks */
	sb_runtime_free(rt2);
	sb_runner_free(&f2->base);
	sbt_rmtree(local2);
	free(ws2);
	(void)before;

	for (int mode = FAIL_REFUSE; mode <= FAIL_LOST; mode++) {
		for (size_t k = 1; k <= total; k++) {
			f->fail_k = f->calls + k;
			f->mode = (fail_mode)mode;
			sb_err *err = sb_runtime_restore(rt, NULL, NULL);
			char *when = sb_strfmt("restore failing call %zu (%s)", k,
					       mode == FAIL_REFUSE ? "refused" : "lost");
			if (err) {
				assert_non_null(strstr(err->msg, "injected"));
				sb_err_free(err);
				/* nothing applied, no staging left */
				rth_assert_trees_equal(ref, local, NULL);
			} else {
				/* an ignorable call (the cleanup of the remote archive): the
				 * restore is complete; put the local side back for the next round */
				rth_assert_trees_equal(ws, local,
						       (const char *const[]){".paperclip-runtime",
									     NULL});
				/* the best-effort removal of the remote archive (spec §3.1) was the
				 * call that failed: the next restore, with the far side answering,
				 * replaces and removes it */
				f->fail_k = 0;
				SB_ASSERT_OK(sb_runtime_restore(rt, NULL, NULL));
				assert_int_equal(sbt_sh("rm -rf '%s' && mkdir '%s' && cp -a '%s/.' "
							"'%s/'",
							ref, ref, local, ref),
						 0);
			}
			assert_no_leftovers(local, when);
			assert_no_leftovers(base, when);
			free(when);
		}
	}
	/* the far side answers again: a clean restore applies everything */
	f->fail_k = 0;
	SB_ASSERT_OK(sb_runtime_restore(rt, NULL, NULL));
	rth_assert_trees_equal(ws, local, (const char *const[]){".paperclip-runtime", NULL});
	assert_no_leftovers(local, "the clean restore");

	sb_runtime_free(rt);
	sb_runner_free(&f->base);
	sbt_rmtree(ref);
	sbt_rmtree(base);
	free(ws);
	sbt_rmtree(local);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(failed_upload_call_leaves_nothing_on_the_far_side),
	    cmocka_unit_test(failed_download_call_leaves_the_local_workspace_untouched),
	};
	return rth_run_both("fault.transfer", tests, sizeof tests / sizeof tests[0]);
}
