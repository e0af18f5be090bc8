/* A runner that fails part way through a transfer: for every k, the k-th remote command of a
 * prepare or a restore fails (the far side is unreachable for that one call, or the channel is
 * lost after the command ran), and the far side answers again afterwards. The operation must
 * fail with an error naming the step, leave no temp or staging files on the far side, and, for
 * a restore, leave the local workspace exactly as it was.
 */
#include "harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
	size_t cut_bytes; /* native transfers: cut the stream after this many bytes */
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

/* Native transfer cut after cut_bytes of the tar stream (0 = pass through): the far side or
 * the channel dies part way through the archive. */
static sb_err *copy_to_tmp(int in, size_t limit, int *out)
{
	char tmpl[] = "/tmp/flt-stream-XXXXXX";
	int fd = mkstemp(tmpl);
	if (fd < 0)
		return sb_err_sys(errno, "creating a temp file");
	unlink(tmpl);
	char buf[65536];
	size_t total = 0;
	for (;;) {
		ssize_t n = read(in, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		size_t keep = total >= limit              ? 0
		              : (size_t)n < limit - total ? (size_t)n
		                                          : limit - total;
		total += (size_t)n;
		sb_err *err = keep ? sb_write_all(fd, buf, keep) : NULL;
		if (err) {
			close(fd);
			return err;
		}
	}
	lseek(fd, 0, SEEK_SET);
	*out = fd;
	return NULL;
}

/* One inbound transfer: sync_in, or (delta) sync_in_delta with keep as its removals. */
static sb_err *inner_in(flaky *f, bool delta, const char *dir, char *const *keep, int tar_fd,
                        sb_progress_fn p, void *ud)
{
	return delta ? sb_runner_sync_in_delta(f->inner, dir, keep, tar_fd, p, ud)
	             : sb_runner_sync_in(f->inner, dir, keep, tar_fd, p, ud);
}

static sb_err *flaky_in(sb_runner *r, bool delta, const char *dir, char *const *keep, int tar_fd,
                        sb_progress_fn p, void *ud)
{
	flaky *f = r->impl;
	if (!f->cut_bytes || tar_fd < 0)
		return inner_in(f, delta, dir, keep, tar_fd, p, ud);
	int cut = -1;
	sb_err *err = copy_to_tmp(tar_fd, f->cut_bytes, &cut);
	if (err)
		return err;
	err = inner_in(f, delta, dir, keep, cut, p, ud);
	close(cut);
	sb_err_free(err);
	return sb_err_new(SB_E_IO, "injected: the channel died after %zu bytes", f->cut_bytes);
}

static sb_err *flaky_sync_in(sb_runner *r, const char *dir, char *const *preserve, int tar_fd,
                             sb_progress_fn p, void *ud)
{
	return flaky_in(r, false, dir, preserve, tar_fd, p, ud);
}

static sb_err *flaky_sync_in_delta(sb_runner *r, const char *dir, char *const *dels, int tar_fd,
                                   sb_progress_fn p, void *ud)
{
	return flaky_in(r, true, dir, dels, tar_fd, p, ud);
}

/* One outbound transfer: sync_out, or with paths sync_out_paths. */
static sb_err *inner_out(flaky *f, const char *dir, const sb_excludes *ex, char *const *paths,
                         int tar_fd, sb_progress_fn p, void *ud)
{
	return paths ? sb_runner_sync_out_paths(f->inner, dir, paths, tar_fd, p, ud)
	             : sb_runner_sync_out(f->inner, dir, ex, tar_fd, p, ud);
}

static sb_err *flaky_out(sb_runner *r, const char *dir, const sb_excludes *ex, char *const *paths,
                         int tar_fd, sb_progress_fn p, void *ud)
{
	flaky *f = r->impl;
	if (!f->cut_bytes)
		return inner_out(f, dir, ex, paths, tar_fd, p, ud);
	char tmpl[] = "/tmp/flt-out-XXXXXX";
	int full = mkstemp(tmpl);
	if (full < 0)
		return sb_err_sys(errno, "creating a temp file");
	unlink(tmpl);
	sb_err *err = inner_out(f, dir, ex, paths, full, p, ud);
	if (err) {
		close(full);
		return err;
	}
	lseek(full, 0, SEEK_SET);
	int cut = -1;
	err = copy_to_tmp(full, f->cut_bytes, &cut);
	close(full);
	if (err)
		return err;
	char buf[65536];
	ssize_t n;
	/* a reader that already gave up on the truncated stream is fine: the error below is
	 * the one that counts */
	while ((n = read(cut, buf, sizeof buf)) > 0 && !err)
		err = sb_write_all(tar_fd, buf, (size_t)n);
	sb_err_free(err);
	close(cut);
	return sb_err_new(SB_E_IO, "injected: the channel died after %zu bytes", f->cut_bytes);
}

static sb_err *flaky_sync_out(sb_runner *r, const char *dir, const sb_excludes *ex, int tar_fd,
                              sb_progress_fn p, void *ud)
{
	return flaky_out(r, dir, ex, NULL, tar_fd, p, ud);
}

static sb_err *flaky_sync_out_paths(sb_runner *r, const char *dir, char *const *paths, int tar_fd,
                                    sb_progress_fn p, void *ud)
{
	return flaky_out(r, dir, NULL, paths, tar_fd, p, ud);
}

/* The listing and the record pass through: only the archives are cut. */
static sb_err *flaky_manifest(sb_runner *r, const char *dir, const sb_excludes *ex,
                              const sb_manifest_opts *o, sb_manifest *out)
{
	return sb_runner_manifest(((flaky *)r->impl)->inner, dir, ex, o, out);
}

static sb_err *flaky_file_read(sb_runner *r, const char *path, size_t max, sb_buf *out)
{
	return sb_runner_file_read(((flaky *)r->impl)->inner, path, max, out);
}

static sb_err *flaky_file_write(sb_runner *r, const char *path, const void *data, size_t len)
{
	return sb_runner_file_write(((flaky *)r->impl)->inner, path, data, len);
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
    .sync_in = flaky_sync_in,
    .sync_out = flaky_sync_out,
    .manifest = flaky_manifest,
    .sync_out_paths = flaky_sync_out_paths,
    .sync_in_delta = flaky_sync_in_delta,
    .file_read = flaky_file_read,
    .file_write = flaky_file_write,
    .destroy = flaky_destroy,
};

/* The local runner with native transfer, behind the same wrapper. */
static flaky *flaky_native_new(void)
{
	flaky *f = sb_xcalloc(1, sizeof *f);
	sb_local_runner_opts o = {.file_transfer = true};
	f->inner = sb_local_runner_new(&o);
	f->base.ops = &flaky_ops;
	f->base.caps = sb_runner_caps(f->inner);
	f->base.impl = f;
	return f;
}

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
				rth_assert_trees_equal(
				    local, ws, (const char *const[]){".paperclip-runtime", NULL});
				sb_runtime_free(rt);
			} else {
				assert_null(rt);
				/* names the operation and the step that failed */
				assert_non_null(strstr(err->msg, "preparing the managed runtime"));
				assert_non_null(strstr(err->msg, "injected"));
				assert_true(strstr(err->msg, "uploading") ||
				            strstr(err->msg, "staging"));
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
				 * restore is complete; put the local side back for the next round
				 */
				rth_assert_trees_equal(
				    ws, local, (const char *const[]){".paperclip-runtime", NULL});
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

/* Native transfers cut part way: prepare fails naming the step, restore fails and applies
 * nothing. (The far side of a cut sync_in is left part-replaced: sync_in is destroy-then-
 * replace; no temp files are involved, and the next prepare replaces it whole.) */
static void cut_native_transfers_fail_and_leave_no_staging(void **state)
{
	(void)state;
	char *local = sbt_mkdtemp("flt-local");
	fill_workspace(local);
	static const size_t cuts[] = {700, 100 * 1024, 2u << 20};
	for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
		flaky *f = flaky_native_new();
		f->cut_bytes = cuts[c];
		char *base = sbt_mkdtemp("flt-remote");
		char *ws = sbt_path(base, "ws");
		sb_runtime_prepare_opts o = prep_opts(&f->base, local, ws);
		sb_runtime *rt = NULL;
		sb_err *err = sb_runtime_prepare(&o, &rt);
		assert_non_null(err);
		assert_non_null(strstr(err->msg, "preparing the managed runtime"));
		assert_non_null(strstr(err->msg, "staging"));
		assert_non_null(strstr(err->msg, "injected"));
		sb_err_free(err);
		assert_no_leftovers(base, "cut native prepare");
		sb_runner_free(&f->base);
		sbt_rmtree(base);
		free(ws);
	}
	/* restore */
	flaky *f = flaky_native_new();
	char *base = sbt_mkdtemp("flt-remote");
	char *ws = sbt_path(base, "ws");
	sb_runtime_prepare_opts o = prep_opts(&f->base, local, ws);
	sb_runtime *rt = NULL;
	SB_ASSERT_OK(sb_runtime_prepare(&o, &rt));
	sbt_write_str(ws, "a.txt", "remote alpha\n");
	sbt_write_str(ws, "zz-new.txt", "new\n");
	assert_int_equal(sbt_sh("rm -f '%s/src/lib/util.c'", ws), 0);
	char *ref = sbt_mkdtemp("flt-ref");
	assert_int_equal(sbt_sh("cp -a '%s/.' '%s/'", local, ref), 0);
	for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
		f->cut_bytes = cuts[c];
		sb_err *err = sb_runtime_restore(rt, NULL, NULL);
		assert_non_null(err);
		assert_non_null(strstr(err->msg, "injected"));
		sb_err_free(err);
		rth_assert_trees_equal(ref, local, NULL);
		assert_no_leftovers(local, "cut native restore");
	}
	f->cut_bytes = 0;
	SB_ASSERT_OK(sb_runtime_restore(rt, NULL, NULL));
	rth_assert_trees_equal(ws, local, (const char *const[]){".paperclip-runtime", NULL});
	sb_runtime_free(rt);
	sb_runner_free(&f->base);
	sbt_rmtree(ref);
	sbt_rmtree(base);
	free(ws);
	sbt_rmtree(local);
}

/* A real prefix runner whose far side behaves like ssh losing its host: call k exits 255 with
 * ssh's message and runs nothing; the calls before and after it work. Chunked uploads (stdin
 * progress hidden) so a prepare makes several calls. */
static sb_runner *dying_prefix(const char *dir, size_t k, rth_rec **rec)
{
	char *script =
	    sb_strfmt("#!/bin/sh\n"
	              "n=$(cat '%s/count' 2>/dev/null || echo 0); n=$((n + 1)); "
	              "echo $n > '%s/count'\n"
	              "if [ $n -eq %zu ]; then echo 'ssh: connect to host far: Connection "
	              "refused' >&2; exit 255; fi\n"
	              "exec sh -c \"$1\"\n",
	              dir, dir, k);
	sbt_write(dir, "fake-ssh", script, strlen(script), 0755);
	free(script);
	char *path = sbt_path(dir, "fake-ssh");
	char *prefix[] = {path, NULL};
	sb_prefix_runner_opts o = {.prefix = prefix, .prefix_is_shell = true};
	sb_runner *r = NULL;
	SB_ASSERT_OK(sb_prefix_runner_new(&o, &r));
	free(path);
	return rth_rec_new(r, SB_RUNNER_CAP_STDIN_PROGRESS, rec);
}

/* A native delta staging (into an earlier staging, SB_RUNNER_CAP_DELTA) cut part way: prepare
 * fails naming the step, the far record says "unknown" from before the first change, and the
 * next staging is whole again and leaves the far tree equal to the local one. */
static void cut_native_delta_staging_is_never_trusted(void **state)
{
	(void)state;
	/* the default, whatever the environment says: delta stagings are what this test cuts */
	char *was = getenv("SANDBAR_SYNC") ? sb_xstrdup(getenv("SANDBAR_SYNC")) : NULL;
	setenv("SANDBAR_SYNC", "auto", 1);
	char *local = sbt_mkdtemp("flt-local");
	fill_workspace(local);
	flaky *f = flaky_native_new();
	char *base = sbt_mkdtemp("flt-remote");
	char *ws = sbt_path(base, "ws");
	sb_runtime_prepare_opts o = prep_opts(&f->base, local, ws);
	sb_runtime *rt = NULL;
	SB_ASSERT_OK(sb_runtime_prepare(&o, &rt));
	sb_runtime_free(rt);
	rt = NULL;
	const char *record = ".paperclip-runtime/claude/sync-state";
	char *rec = sbt_read(ws, record, NULL);
	assert_non_null(rec);
	assert_true(rec[0] == '1');
	free(rec);
	/* a local change and a local deletion, sent as a delta that the channel cuts */
	char *big = sb_xmalloc(256u << 10);
	sbt_fill_random(big, 256u << 10, 11);
	sbt_write(local, "src/new.bin", big, 256u << 10, 0644);
	free(big);
	sbt_write_str(local, "a.txt", "alpha, edited here\n");
	assert_int_equal(sbt_sh("rm '%s/src/lib/util.c'", local), 0);
	f->cut_bytes = 100 * 1024;
	sb_err *err = sb_runtime_prepare(&o, &rt);
	assert_non_null(err);
	assert_non_null(strstr(err->msg, "staging"));
	assert_non_null(strstr(err->msg, "injected"));
	sb_err_free(err);
	rec = sbt_read(ws, record, NULL);
	assert_non_null(rec);
	assert_string_equal(rec, ""); /* emptied before the first change: never trusted */
	free(rec);
	assert_no_leftovers(base, "cut delta staging");
	/* the channel is back: the whole tree goes, and both sides agree */
	f->cut_bytes = 0;
	SB_ASSERT_OK(sb_runtime_prepare(&o, &rt));
	rth_assert_trees_equal(local, ws, (const char *const[]){".paperclip-runtime", NULL});
	sb_runtime_free(rt);
	sb_runner_free(&f->base);
	sbt_rmtree(base);
	free(ws);
	sbt_rmtree(local);
	if (was)
		setenv("SANDBAR_SYNC", was, 1);
	else
		unsetenv("SANDBAR_SYNC");
	free(was);
}

static void far_side_dying_like_ssh_leaves_nothing_behind(void **state)
{
	(void)state;
	char *local = sbt_mkdtemp("flt-local");
	fill_workspace(local);
	char *ctl = sbt_mkdtemp("flt-ssh");
	rth_rec *rec = NULL;
	sb_runner *r = dying_prefix(ctl, 0, &rec);
	char *base = sbt_mkdtemp("flt-remote");
	char *ws = sbt_path(base, "ws");
	sb_runtime_prepare_opts o = prep_opts(r, local, ws);
	sb_runtime *rt = NULL;
	SB_ASSERT_OK(sb_runtime_prepare(&o, &rt));
	size_t total = rth_rec_count(rec);
	sb_runtime_free(rt);
	sb_runner_free(r);
	sbt_rmtree(base);
	free(ws);
	for (size_t k = 1; k <= total; k++) {
		assert_int_equal(sbt_sh("rm -f '%s/count'", ctl), 0);
		r = dying_prefix(ctl, k, &rec);
		base = sbt_mkdtemp("flt-remote");
		ws = sbt_path(base, "ws");
		o = prep_opts(r, local, ws);
		rt = NULL;
		sb_err *err = sb_runtime_prepare(&o, &rt);
		if (err) {
			/* the step, and what the far side said */
			assert_non_null(strstr(err->msg, "preparing the managed runtime"));
			assert_non_null(strstr(err->msg, "Connection refused"));
			sb_err_free(err);
		} else {
			sb_runtime_free(rt);
		}
		char *when = sb_strfmt("prepare with ssh dying on call %zu", k);
		assert_no_leftovers(base, when);
		free(when);
		sb_runner_free(r);
		sbt_rmtree(base);
		free(ws);
	}
	sbt_rmtree(ctl);
	sbt_rmtree(local);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(failed_upload_call_leaves_nothing_on_the_far_side),
	    cmocka_unit_test(failed_download_call_leaves_the_local_workspace_untouched),
	};
	int rc = rth_run_both("fault.transfer", tests, sizeof tests / sizeof tests[0]);
	const struct CMUnitTest native[] = {
	    cmocka_unit_test(cut_native_transfers_fail_and_leave_no_staging),
	    cmocka_unit_test(cut_native_delta_staging_is_never_trusted),
	    cmocka_unit_test(far_side_dying_like_ssh_leaves_nothing_behind),
	};
	return rc + cmocka_run_group_tests_name("fault.transfer native", native, NULL, NULL);
}
