/* Moving a directory tree into or out of the remote side. Command path: the tar is built (or
 * read) on the host with libarchive in an anonymous memory file, uploaded or downloaded through
 * remote commands, and extracted (or created) by the remote tar. Native path: the same tar is
 * streamed straight through the runner's sync_in / sync_out. Both apply the same excludes and
 * the same destroy-then-replace rule, so they leave byte-identical trees.
 */
#include "runtime/rt.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static sb_err *new_memfd(const char *name, int *fd)
{
	*fd = memfd_create(name, MFD_CLOEXEC);
	if (*fd < 0)
		return sb_err_sys(errno, "creating an in-memory file for the %s archive", name);
	return NULL;
}

static sb_err *rewind_fd(int fd)
{
	if (lseek(fd, 0, SEEK_SET) < 0)
		return sb_err_sys(errno, "rewinding the workspace archive");
	return NULL;
}

/* ---- stage in */

typedef struct tar_src {
	const sb_rt_stage *s;
	uint64_t bytes;
} tar_src;

static sb_err *produce_tar(void *ud, int fd)
{
	tar_src *t = ud;
	return sb_tar_create(t->s->local_dir, t->s->ex, t->s->follow_symlinks, fd, &t->bytes);
}

typedef struct sync_in_ctx {
	const sb_rt_ctx *c;
	const sb_rt_stage *s;
	sb_rt_progress *p;
} sync_in_ctx;

static sb_err *consume_sync_in(void *ud, int fd)
{
	sync_in_ctx *k = ud;
	return sb_runner_sync_in(k->c->runner, k->s->remote_dir, k->s->spare, fd,
				 sb_rt_progress_fn, k->p);
}

sb_err *sb_rt_stage_in(const sb_rt_ctx *c, const sb_rt_stage *s, sb_rt_progress *p,
		       uint64_t *bytes_out)
{
	tar_src t = {.s = s, .bytes = 0};
	sb_err *err;
	if (s->native) {
		sync_in_ctx k = {.c = c, .s = s, .p = p};
		err = sb_rt_pump(produce_tar, &t, consume_sync_in, &k);
		if (err) {
			sb_rt_progress_fail(p);
			return sb_err_prefix(err, "staging %s into %s (native transfer)", s->local_dir,
					     s->remote_dir);
		}
		sb_rt_progress_complete(p, t.bytes, t.bytes);
		*bytes_out = t.bytes;
		return NULL;
	}
	int fd = -1;
	char *script = NULL;
	err = new_memfd("workspace-upload", &fd);
	if (!err)
		err = produce_tar(&t, fd);
	if (!err)
		err = sb_rt_upload(c, fd, t.bytes, s->upload_tar, p);
	if (!err) {
		script = sb_rt_script_extract(s->remote_dir, s->upload_tar, s->spare);
		err = sb_rt_run(c, script, NULL, NULL, 0, NULL);
	}
	if (err) {
		/* The archive is a temporary of this staging. The extract script's trap removes it
		 * when that script ran; this covers an upload whose rename landed before its call
		 * failed, and an extract call that never reached the far side. */
		sb_buf rm = SB_BUF_INIT;
		sb_buf_appends(&rm, "rm -f ");
		sb_shell_quote(&rm, s->upload_tar);
		sb_rt_run_quiet(c, sb_buf_cstr(&rm));
		sb_buf_deinit(&rm);
	}
	sb_close(&fd);
	free(script);
	if (err)
		return sb_err_prefix(err, "staging %s into %s", s->local_dir, s->remote_dir);
	*bytes_out = t.bytes;
	return NULL;
}

/* ---- fetch out */

typedef struct sync_out_ctx {
	const sb_rt_ctx *c;
	const sb_rt_fetch *f;
	sb_rt_progress *p;
} sync_out_ctx;

static sb_err *produce_sync_out(void *ud, int fd)
{
	sync_out_ctx *k = ud;
	return sb_runner_sync_out(k->c->runner, k->f->remote_dir, k->f->ex, fd, sb_rt_progress_fn,
				  k->p);
}

typedef struct extract_ctx {
	const char *dest;
	uint64_t bytes;
} extract_ctx;

static sb_err *consume_extract(void *ud, int fd)
{
	extract_ctx *x = ud;
	return sb_tar_extract(fd, x->dest, &x->bytes);
}

/* Copy the stream into a memory file, refusing more than max bytes. */
typedef struct bounded_copy {
	int out;
	int64_t max;
	uint64_t bytes;
	const char *what;
} bounded_copy;

static sb_err *consume_bounded(void *ud, int fd)
{
	bounded_copy *b = ud;
	char *buf = sb_xmalloc(1u << 20);
	sb_err *err = NULL;
	for (;;) {
		ssize_t r = read(fd, buf, 1u << 20);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = sb_err_sys(errno, "reading the archive of %s", b->what);
			break;
		}
		if (r == 0)
			break;
		b->bytes += (uint64_t)r;
		if (b->bytes > (uint64_t)b->max) {
			err = sb_err_new(SB_E_FILE_TOO_LARGE,
					 "Remote archive of %s exceeds the %lld byte limit", b->what,
					 (long long)b->max);
			err->actual_bytes = (int64_t)b->bytes;
			err->limit_bytes = b->max;
			break;
		}
		err = sb_write_all(b->out, buf, (size_t)r);
		if (err)
			break;
	}
	free(buf);
	return err;
}

static sb_err *fetch_native(const sb_rt_ctx *c, const sb_rt_fetch *f, sb_rt_progress *p,
			    uint64_t *bytes_out)
{
	sync_out_ctx k = {.c = c, .f = f, .p = p};
	extract_ctx x = {.dest = f->local_dest, .bytes = 0};
	sb_err *err;
	if (f->max_bytes <= 0) {
		err = sb_rt_pump(produce_sync_out, &k, consume_extract, &x);
	} else {
		/* With a limit, nothing is extracted before the whole archive is known to fit. */
		bounded_copy b = {.out = -1, .max = f->max_bytes, .what = f->remote_dir};
		err = new_memfd("workspace-download", &b.out);
		if (!err)
			err = sb_rt_pump(produce_sync_out, &k, consume_bounded, &b);
		if (!err)
			err = rewind_fd(b.out);
		if (!err)
			err = consume_extract(&x, b.out);
		sb_close(&b.out);
	}
	if (err) {
		sb_rt_progress_fail(p);
		return err;
	}
	sb_rt_progress_complete(p, x.bytes, x.bytes);
	*bytes_out = x.bytes;
	return NULL;
}

sb_err *sb_rt_fetch_out(const sb_rt_ctx *c, const sb_rt_fetch *f, sb_rt_progress *p,
			uint64_t *bytes_out)
{
	sb_err *err;
	if (f->native) {
		err = fetch_native(c, f, p, bytes_out);
		return err ? sb_err_prefix(err, "fetching %s (native transfer)", f->remote_dir)
			   : NULL;
	}
	char *script = sb_rt_script_archive(f->remote_dir, f->download_tar, f->ex);
	int fd = -1;
	uint64_t size = 0;
	err = sb_rt_run(c, script, NULL, NULL, 0, NULL);
	if (!err)
		err = new_memfd("workspace-download", &fd);
	if (!err)
		err = sb_rt_download(c, f->download_tar, f->max_bytes, fd, &size, p);
	/* The remote archive goes whatever happened (best effort, spec §3.1 step 3). */
	sb_buf rm = SB_BUF_INIT;
	sb_buf_appends(&rm, "rm -f ");
	sb_shell_quote(&rm, f->download_tar);
	sb_rt_run_quiet(c, sb_buf_cstr(&rm));
	sb_buf_deinit(&rm);
	if (!err)
		err = rewind_fd(fd);
	if (!err) {
		extract_ctx x = {.dest = f->local_dest};
		err = consume_extract(&x, fd);
	}
	sb_close(&fd);
	free(script);
	if (err)
		return sb_err_prefix(err, "fetching %s", f->remote_dir);
	*bytes_out = size;
	return NULL;
}
