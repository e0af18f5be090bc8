/* Uploading one file through remote commands (spec §2.2, §8.4). Three protocols, chosen by the
 * runner's capabilities: one base64 stdin stream (runners that stream stdin, up to 96 MiB of
 * text), 3 MiB-decoded chunks appended through stdin, or 32 KiB `printf` appends for runners
 * without stdin. Every protocol writes a unique temp name beside the target and renames it with
 * `mv -f`, so the target is either old or complete; the temp is removed when anything fails.
 */
#include "rt.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static sb_err *read_at(int fd, void *p, size_t n, uint64_t off)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = pread(fd, (char *)p + got, n - got, (off_t)(off + got));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return sb_err_sys(errno, "reading the upload source at offset %llu",
			                  (unsigned long long)(off + got));
		}
		if (r == 0)
			return sb_err_new(SB_E_IO,
			                  "upload source ended at %llu bytes, expected more",
			                  (unsigned long long)(off + got));
		got += (size_t)r;
	}
	return NULL;
}

/* Appends "mkdir -p <dir>" for dest's parent. */
static void append_mkdir_parent(sb_buf *s, const char *dest)
{
	char *dir = sb_rt_dirname(dest);
	sb_buf_appends(s, "mkdir -p ");
	sb_shell_quote(s, dir);
	free(dir);
}

/* trap that removes the given paths when the script exits (success included: after `mv -f`
 * the temp no longer exists) and turns signals into an exit so the trap runs. */
static void append_trap(sb_buf *s, const char *a, const char *b)
{
	sb_buf paths = SB_BUF_INIT;
	sb_shell_quote(&paths, a);
	if (b) {
		sb_buf_appendc(&paths, ' ');
		sb_shell_quote(&paths, b);
	}
	sb_buf_appends(s, "trap ");
	char *cmd = sb_strfmt("rm -f %s", sb_buf_cstr(&paths));
	sb_shell_quote(s, cmd);
	free(cmd);
	sb_buf_appends(s, " EXIT; trap 'exit 129' HUP INT TERM; ");
	sb_buf_deinit(&paths);
}

static sb_err *upload_single(const sb_rt_ctx *c, int fd, uint64_t size, const char *dest,
                             const char *tmp, sb_rt_progress *p)
{
	sb_rt_progress_report(p, 0, size);
	char *raw = sb_xmalloc(size ? (size_t)size : 1);
	sb_buf b64 = SB_BUF_INIT, s = SB_BUF_INIT;
	sb_err *err = read_at(fd, raw, (size_t)size, 0);
	if (err)
		goto out;
	sb_b64_encode(raw, (size_t)size, &b64);
	free(raw);
	raw = NULL;
	append_trap(&s, tmp, NULL);
	append_mkdir_parent(&s, dest);
	sb_buf_appends(&s, " && base64 -d > ");
	sb_shell_quote(&s, tmp);
	sb_buf_appends(&s, " && mv -f ");
	sb_shell_quote(&s, tmp);
	sb_buf_appendc(&s, ' ');
	sb_shell_quote(&s, dest);
	sb_rt_stdin in = {.has = true, .data = b64.data, .len = b64.len};
	err = sb_rt_run(c, sb_buf_cstr(&s), &in, NULL, 0, NULL);
out:
	free(raw);
	sb_buf_deinit(&b64);
	sb_buf_deinit(&s);
	return err;
}

static sb_err *run_fmt_path(const sb_rt_ctx *c, const char *pre, const char *path, const char *mid,
                            const char *path2)
{
	sb_buf s = SB_BUF_INIT;
	sb_buf_appends(&s, pre);
	sb_shell_quote(&s, path);
	if (mid) {
		sb_buf_appends(&s, mid);
		sb_shell_quote(&s, path2);
	}
	sb_err *err = sb_rt_run(c, sb_buf_cstr(&s), NULL, NULL, 0, NULL);
	sb_buf_deinit(&s);
	return err;
}

/* "mkdir -p <dir> && rm -f <f> && : > <f>" */
static sb_err *init_temp(const sb_rt_ctx *c, const char *dest, const char *f)
{
	sb_buf s = SB_BUF_INIT;
	append_mkdir_parent(&s, dest);
	sb_buf_appends(&s, " && rm -f ");
	sb_shell_quote(&s, f);
	sb_buf_appends(&s, " && : > ");
	sb_shell_quote(&s, f);
	sb_err *err = sb_rt_run(c, sb_buf_cstr(&s), NULL, NULL, 0, NULL);
	sb_buf_deinit(&s);
	return err;
}

/* One append command running on a helper thread while the caller encodes the next chunk. */
typedef struct append_job {
	const sb_rt_ctx *c;
	const char *script;
	const sb_buf *b64;
	sb_err *err;
} append_job;

static void *run_append(void *arg)
{
	append_job *j = arg;
	sb_rt_stdin in = {.has = true, .data = j->b64->data, .len = j->b64->len};
	j->err = sb_rt_run(j->c, j->script, &in, NULL, 0, NULL);
	return NULL;
}

static sb_err *encode_chunk(int fd, uint64_t off, size_t n, char *raw, sb_buf *b64)
{
	sb_err *err = read_at(fd, raw, n, off);
	if (!err) {
		sb_buf_clear(b64);
		sb_b64_encode(raw, n, b64);
	}
	return err;
}

static sb_err *upload_chunked(const sb_rt_ctx *c, int fd, uint64_t size, const char *dest,
                              const char *tmp, sb_rt_progress *p)
{
	sb_err *err = init_temp(c, dest, tmp);
	if (err)
		return err;
	sb_rt_progress_report(p, 0, size);
	char *raw = sb_xmalloc(SB_RT_CHUNK_DECODED);
	sb_buf b64[2] = {SB_BUF_INIT, SB_BUF_INIT}, s = SB_BUF_INIT;
	sb_buf_appends(&s, "base64 -d >> ");
	sb_shell_quote(&s, tmp);
	uint64_t nchunks = (size + SB_RT_CHUNK_DECODED - 1) / SB_RT_CHUNK_DECODED;
	if (nchunks)
		err = encode_chunk(fd, 0,
		                   size < SB_RT_CHUNK_DECODED ? (size_t)size : SB_RT_CHUNK_DECODED,
		                   raw, &b64[0]);
	/* Chunk k is appended remotely while chunk k + 1 is read and encoded here; the appends
	 * themselves stay strictly in order. */
	for (uint64_t k = 0; k < nchunks && !err; k++) {
		append_job job = {.c = c, .script = sb_buf_cstr(&s), .b64 = &b64[k % 2]};
		pthread_t t;
		bool threaded = pthread_create(&t, NULL, run_append, &job) == 0;
		if (!threaded)
			run_append(&job);
		sb_err *enc_err = NULL;
		uint64_t off = (k + 1) * SB_RT_CHUNK_DECODED;
		if (k + 1 < nchunks)
			enc_err =
			    encode_chunk(fd, off,
			                 size - off < SB_RT_CHUNK_DECODED ? (size_t)(size - off)
			                                                  : SB_RT_CHUNK_DECODED,
			                 raw, &b64[(k + 1) % 2]);
		if (threaded)
			pthread_join(t, NULL);
		err = job.err ? job.err : enc_err;
		if (job.err)
			sb_err_free(enc_err);
		if (!err) {
			uint64_t done = off < size ? off : size;
			sb_rt_progress_report(p, done, size);
		}
	}
	free(raw);
	sb_buf_deinit(&b64[0]);
	sb_buf_deinit(&b64[1]);
	sb_buf_deinit(&s);
	if (!err)
		err = run_fmt_path(c, "mv -f ", tmp, " ", dest);
	return err;
}

static sb_err *upload_printf(const sb_rt_ctx *c, int fd, uint64_t size, const char *dest,
                             const char *tmp, const char *b64path, sb_rt_progress *p)
{
	/* 24 KiB of input encodes to exactly one 32 KiB slice, a whole number of base64
	 * quanta, so slices concatenate into one valid stream. */
	enum { RAW_SLICE = SB_RT_PRINTF_SLICE / 4 * 3 };
	sb_err *err = init_temp(c, dest, b64path);
	if (err)
		return err;
	sb_rt_progress_report(p, 0, size);
	char raw[RAW_SLICE];
	sb_buf b64 = SB_BUF_INIT, s = SB_BUF_INIT;
	for (uint64_t off = 0; off < size && !err;) {
		size_t n = size - off < RAW_SLICE ? (size_t)(size - off) : RAW_SLICE;
		err = read_at(fd, raw, n, off);
		if (err)
			break;
		sb_buf_clear(&b64);
		sb_b64_encode(raw, n, &b64);
		sb_buf_clear(&s);
		sb_buf_appends(&s, "printf '%s' ");
		sb_shell_quote(&s, sb_buf_cstr(&b64));
		sb_buf_appends(&s, " >> ");
		sb_shell_quote(&s, b64path);
		err = sb_rt_run(c, sb_buf_cstr(&s), NULL, NULL, 0, NULL);
		off += n;
		if (!err)
			sb_rt_progress_report(p, off, size);
	}
	if (!err) {
		sb_buf_clear(&s);
		append_trap(&s, b64path, tmp);
		sb_buf_appends(&s, "base64 -d < ");
		sb_shell_quote(&s, b64path);
		sb_buf_appends(&s, " > ");
		sb_shell_quote(&s, tmp);
		sb_buf_appends(&s, " && mv -f ");
		sb_shell_quote(&s, tmp);
		sb_buf_appendc(&s, ' ');
		sb_shell_quote(&s, dest);
		err = sb_rt_run(c, sb_buf_cstr(&s), NULL, NULL, 0, NULL);
	}
	sb_buf_deinit(&b64);
	sb_buf_deinit(&s);
	return err;
}

sb_err *sb_rt_upload(const sb_rt_ctx *c, int fd, uint64_t size, const char *dest, sb_rt_progress *p)
{
	if (dest[0] != '/')
		return sb_err_new(SB_E_INVAL, "upload target %s is not an absolute path", dest);
	unsigned caps = sb_runner_caps(c->runner);
	char *tmp = sb_rt_temp_name(dest, SB_RT_UPLOAD_TAG);
	char *b64path = sb_strfmt("%s.b64", tmp);
	sb_err *err;
	if (!(caps & SB_RUNNER_CAP_STDIN))
		err = upload_printf(c, fd, size, dest, tmp, b64path, p);
	else if ((caps & SB_RUNNER_CAP_STDIN_PROGRESS) &&
	         sb_b64_encoded_len((size_t)size) <= SB_RT_SINGLE_STREAM_MAX &&
	         size <= SIZE_MAX / 2)
		err = upload_single(c, fd, size, dest, tmp, p);
	else
		err = upload_chunked(c, fd, size, dest, tmp, p);
	if (err) {
		/* The script traps cover failures inside a script; this covers a temp left by a
		 * failure between scripts or a shell killed before its trap ran. */
		sb_buf s = SB_BUF_INIT;
		sb_buf_appends(&s, "rm -f ");
		sb_shell_quote(&s, tmp);
		sb_buf_appendc(&s, ' ');
		sb_shell_quote(&s, b64path);
		sb_rt_run_quiet(c, sb_buf_cstr(&s));
		sb_buf_deinit(&s);
		sb_rt_progress_fail(p);
		err = sb_err_prefix(err, "uploading %s", dest);
	} else {
		sb_rt_progress_complete(p, size, size);
	}
	free(tmp);
	free(b64path);
	return err;
}
