/* The command-path file transport (spec §2.2, §2.3, §5.3, §6.1) through real runners: the
 * single-stream, chunked and printf uploads (call counts, the 4 MiB guard, exact bytes,
 * monotonic progress, temp cleanup when the rename fails), chunked downloads under a stdout cap,
 * the size limit checked before any content is read, and command errors with output tails.
 */
#include "harness.h"
#include "runtime/rt.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MiB (1024u * 1024u)
#define GUARD (4u * MiB + 100u * 1024u) /* 4.1 MiB of base64 per call at most */

typedef struct bytes_log {
	uint64_t done[4096];
	uint64_t total[4096];
	size_t n;
} bytes_log;

static void log_bytes(void *ud, uint64_t done, uint64_t total)
{
	bytes_log *l = ud;
	if (l->n < 4096) {
		l->done[l->n] = done;
		l->total[l->n] = total;
		l->n++;
	}
}

static void assert_monotonic_to(const bytes_log *l, uint64_t total)
{
	assert_true(l->n >= 1);
	for (size_t i = 0; i < l->n; i++) {
		assert_int_equal(l->total[i], total);
		if (i)
			assert_true(l->done[i] >= l->done[i - 1]);
	}
	assert_int_equal(l->done[l->n - 1], total);
}

typedef struct fixture {
	char *dir;
	rth_rec *rec;
	sb_runner *runner;
	sb_rt_ctx ctx;
	bytes_log log;
	sb_rt_progress p;
} fixture;

static void fx_init(fixture *f, unsigned caps_clear)
{
	memset(f, 0, sizeof *f);
	f->dir = sbt_mkdtemp("rt-transport");
	f->runner = rth_rec_new(rth_runner(false), caps_clear, &f->rec);
	f->ctx = (sb_rt_ctx){.runner = f->runner, .shell = "sh", .timeout_ms = 60000};
	sb_rt_progress_init(&f->p, NULL, NULL, SB_PHASE_CONFIG_SYNC, "Syncing", "test", "to");
	f->p.on_bytes = log_bytes;
	f->p.bytes_ud = &f->log;
}

static void fx_deinit(fixture *f)
{
	sb_runner_free(f->runner);
	sbt_rmtree(f->dir);
}

static int memfd_with(const void *p, size_t n)
{
	int fd = memfd_create("test", MFD_CLOEXEC);
	assert_true(fd >= 0);
	SB_ASSERT_OK(sb_write_all(fd, p, n));
	return fd;
}

static void *pattern(size_t n, uint64_t seed)
{
	unsigned char *p = sb_xmalloc(n);
	if (seed) {
		sbt_fill_random(p, n, seed);
	} else {
		for (size_t i = 0; i < n; i++)
			p[i] = (unsigned char)i; /* every byte value */
	}
	return p;
}

/* The 4 MiB guard binds every chunked call; one single-stream call may carry up to 96 MiB. */
static void upload_and_check(fixture *f, size_t n, uint64_t seed)
{
	bool single = sb_runner_caps(f->runner) & SB_RUNNER_CAP_STDIN_PROGRESS;
	void *data = pattern(n, seed);
	int fd = memfd_with(data, n);
	char *dest = sbt_path(f->dir, "sub/dir/payload.bin");
	SB_ASSERT_OK(sb_rt_upload(&f->ctx, fd, n, dest, &f->p));
	size_t len = 0;
	char *got = sbt_read(f->dir, "sub/dir/payload.bin", &len);
	assert_non_null(got);
	assert_int_equal(len, n);
	assert_memory_equal(got, data, n);
	assert_monotonic_to(&f->log, n);
	if (!single || n <= 3 * MiB)
		assert_true(rth_rec_max_stdin(f->rec) <= GUARD);
	/* nothing but the payload is left beside it */
	char *ls = sbt_sh_out("ls -A '%s/sub/dir'", f->dir);
	assert_string_equal(ls, "payload.bin\n");
	free(ls);
	free(got);
	free(dest);
	close(fd);
	free(data);
}

static void single_stream_upload_is_one_call(void **state)
{
	(void)state;
	fixture f;
	fx_init(&f, 0);
	upload_and_check(&f, 3 * MiB, 0);
	assert_int_equal(rth_rec_count(f.rec), 1);
	assert_int_equal(rth_rec_count_stdin(f.rec), 1);
	const char *s = rth_rec_call(f.rec, 0)->script;
	/* staged beside the target under a unique name, trap cleanup, then mv -f */
	assert_non_null(strstr(s, "trap "));
	assert_non_null(strstr(s, SB_RT_UPLOAD_TAG));
	assert_true(strstr(s, SB_RT_UPLOAD_TAG) < strstr(s, "mv -f"));
	fx_deinit(&f);
}

static void chunked_upload_without_stdin_progress(void **state)
{
	(void)state;
	fixture f;
	fx_init(&f, SB_RUNNER_CAP_STDIN_PROGRESS);
	upload_and_check(&f, 12 * MiB, 7);
	assert_int_equal(rth_rec_count_stdin(f.rec), 4);
	assert_int_equal(rth_rec_count(f.rec), 2 + 4);
	assert_true(f.log.n > 2);
	fx_deinit(&f);
}

static void single_stream_collapses_round_trips(void **state)
{
	(void)state;
	fixture f;
	fx_init(&f, 0);
	upload_and_check(&f, 9 * MiB, 9);
	assert_int_equal(rth_rec_count(f.rec), 1);
	fx_deinit(&f);
	fx_init(&f, SB_RUNNER_CAP_STDIN_PROGRESS);
	upload_and_check(&f, 9 * MiB, 9);
	assert_int_equal(rth_rec_count(f.rec), 2 + 3);
	fx_deinit(&f);
}

static void printf_upload_uses_no_stdin(void **state)
{
	(void)state;
	fixture f;
	fx_init(&f, SB_RUNNER_CAP_STDIN | SB_RUNNER_CAP_STDIN_PROGRESS);
	upload_and_check(&f, 100 * 1024 + 5, 11);
	assert_int_equal(rth_rec_count_stdin(f.rec), 0);
	assert_int_equal(rth_rec_count_containing(f.rec, "printf '%s'"), 5);
	/* decoded to a temp, then renamed: never decoded onto the destination */
	const char *last = rth_rec_call(f.rec, rth_rec_count(f.rec) - 1)->script;
	assert_non_null(strstr(last, "base64 -d <"));
	assert_non_null(strstr(last, "mv -f"));
	fx_deinit(&f);
}

static void zero_byte_upload(void **state)
{
	(void)state;
	for (int mode = 0; mode < 3; mode++) {
		unsigned clear = mode == 0   ? 0
		                 : mode == 1 ? SB_RUNNER_CAP_STDIN_PROGRESS
		                             : SB_RUNNER_CAP_STDIN | SB_RUNNER_CAP_STDIN_PROGRESS;
		fixture f;
		fx_init(&f, clear);
		int fd = memfd_with("", 0);
		char *dest = sbt_path(f.dir, "empty");
		SB_ASSERT_OK(sb_rt_upload(&f.ctx, fd, 0, dest, &f.p));
		size_t len = 1;
		char *got = sbt_read(f.dir, "empty", &len);
		assert_non_null(got);
		assert_int_equal(len, 0);
		free(got);
		free(dest);
		close(fd);
		fx_deinit(&f);
	}
}

/* A PATH shim whose mv fails: the staged temp must not survive. */
static void upload_cleans_temp_when_rename_fails(void **state)
{
	(void)state;
	for (int mode = 0; mode < 3; mode++) {
		unsigned clear = mode == 0   ? 0
		                 : mode == 1 ? SB_RUNNER_CAP_STDIN_PROGRESS
		                             : SB_RUNNER_CAP_STDIN | SB_RUNNER_CAP_STDIN_PROGRESS;
		fixture f;
		fx_init(&f, clear);
		char *shim = sbt_path(f.dir, "shim");
		const char *mv = "#!/bin/sh\necho 'mv: rename failed' >&2\nexit 1\n";
		sbt_write(shim, "mv", mv, strlen(mv), 0755);
		char *path = sb_strfmt("PATH=%s:/usr/local/bin:/usr/bin:/bin", shim);
		rth_rec_add_env(f.rec, path);
		void *data = pattern(70000, 3);
		int fd = memfd_with(data, 70000);
		char *dest = sbt_path(f.dir, "out/file.bin");
		sb_err *err = sb_rt_upload(&f.ctx, fd, 70000, dest, &f.p);
		assert_non_null(err);
		assert_non_null(strstr(err->msg, "rename failed"));
		sb_err_free(err);
		char *ls = sbt_sh_out("ls -A '%s/out'", f.dir);
		assert_string_equal(ls, "");
		assert_true(rth_rec_count_containing(f.rec, "rm -f") >= 1);
		free(ls);
		free(dest);
		close(fd);
		free(data);
		free(path);
		free(shim);
		fx_deinit(&f);
	}
}

static void download_chunks_under_stdout_cap(void **state)
{
	(void)state;
	fixture f;
	fx_init(&f, 0);
	size_t n = 7 * MiB + 12345;
	void *data = pattern(n, 5);
	sbt_write(f.dir, "big.bin", data, n, 0644);
	char *src = sbt_path(f.dir, "big.bin");
	int out = memfd_with("", 0);
	uint64_t size = 0;
	SB_ASSERT_OK(sb_rt_download(&f.ctx, src, 0, out, &size, &f.p));
	assert_int_equal(size, n);
	char *got = sb_xmalloc(n);
	assert_int_equal(pread(out, got, n, 0), (ssize_t)n);
	assert_memory_equal(got, data, n);
	assert_int_equal(rth_rec_count_containing(f.rec, "base64 <"), 0);
	assert_int_equal(rth_rec_count_containing(f.rec, "dd if="), 3);
	assert_int_equal(rth_rec_count_containing(f.rec, "wc -c"), 1);
	assert_true(rth_rec_max_stdout(f.rec) <= 5 * MiB);
	assert_monotonic_to(&f.log, n);
	free(got);
	close(out);
	free(src);
	free(data);
	fx_deinit(&f);
}

static void download_rejects_oversize_before_reading(void **state)
{
	(void)state;
	fixture f;
	fx_init(&f, 0);
	void *data = pattern(1024, 1);
	sbt_write(f.dir, "f.bin", data, 1024, 0644);
	char *src = sbt_path(f.dir, "f.bin");
	int out = memfd_with("", 0);
	sb_err *err = sb_rt_download(&f.ctx, src, 16, out, NULL, &f.p);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_FILE_TOO_LARGE);
	assert_string_equal(sb_errcode_name(err->code), "ERR_SANDBOX_FILE_TOO_LARGE");
	assert_int_equal(err->actual_bytes, 1024);
	assert_int_equal(err->limit_bytes, 16);
	assert_non_null(strstr(err->msg, "1024 bytes, exceeding the 16 byte limit"));
	sb_err_free(err);
	assert_int_equal(rth_rec_count_containing(f.rec, "wc -c"), 1);
	assert_int_equal(rth_rec_count_containing(f.rec, "dd "), 0);
	close(out);
	free(src);
	free(data);
	fx_deinit(&f);
}

static void download_empty_file_reads_nothing(void **state)
{
	(void)state;
	fixture f;
	fx_init(&f, 0);
	sbt_write(f.dir, "empty", "", 0, 0644);
	char *src = sbt_path(f.dir, "empty");
	int out = memfd_with("", 0);
	uint64_t size = 99;
	SB_ASSERT_OK(sb_rt_download(&f.ctx, src, 0, out, &size, &f.p));
	assert_int_equal(size, 0);
	assert_int_equal(rth_rec_count_containing(f.rec, "dd "), 0);
	close(out);
	free(src);
	fx_deinit(&f);
}

static void command_error_carries_stdout_tail(void **state)
{
	(void)state;
	fixture f;
	fx_init(&f, 0);
	const char *script =
	    "echo 'tar: workspace-download.tar: Cannot open: Permission denied'; exit 2";
	sb_err *err = sb_rt_run(&f.ctx, script, NULL, NULL, 0, NULL);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_COMMAND);
	assert_non_null(strstr(err->msg, script));
	assert_non_null(strstr(err->msg, "failed with exit code 2:\n"));
	assert_non_null(strstr(
	    err->msg, "stdout: tar: workspace-download.tar: Cannot open: Permission denied"));
	assert_null(strstr(err->msg, "stderr:"));
	sb_err_free(err);
	fx_deinit(&f);
}

static void command_error_tails_are_bounded(void **state)
{
	(void)state;
	fixture f;
	fx_init(&f, 0);
	sb_err *err = sb_rt_run(&f.ctx,
	                        "i=0; while [ $i -lt 1000 ]; do printf 'line %05d\\n' $i >&2; "
	                        "i=$((i+1)); done; echo out; exit 3",
	                        NULL, NULL, 0, NULL);
	assert_non_null(err);
	const char *e = strstr(err->msg, "stderr: ...[truncated]\n");
	assert_non_null(e);
	assert_non_null(strstr(err->msg, "line 00999\nstdout: out"));
	assert_null(strstr(err->msg, "line 00001"));
	assert_true(strlen(err->msg) < 4000 + 400);
	sb_err_free(err);
	fx_deinit(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(single_stream_upload_is_one_call),
	    cmocka_unit_test(chunked_upload_without_stdin_progress),
	    cmocka_unit_test(single_stream_collapses_round_trips),
	    cmocka_unit_test(printf_upload_uses_no_stdin),
	    cmocka_unit_test(zero_byte_upload),
	    cmocka_unit_test(upload_cleans_temp_when_rename_fails),
	    cmocka_unit_test(download_chunks_under_stdout_cap),
	    cmocka_unit_test(download_rejects_oversize_before_reading),
	    cmocka_unit_test(download_empty_file_reads_nothing),
	    cmocka_unit_test(command_error_carries_stdout_tail),
	    cmocka_unit_test(command_error_tails_are_bounded),
	};
	return rth_run_both("runtime.transport", tests, sizeof tests / sizeof tests[0]);
}
