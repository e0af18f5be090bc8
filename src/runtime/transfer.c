/* Moving a directory tree into or out of the remote side. Streamed wherever the runner allows
 * (stream.c): the command path over a runner that carries bytes both ways (one remote command
 * per direction), native staging always, native restore unless a byte limit must be checked on
 * the whole archive before extraction. Otherwise the tar is built (or read) on the host with
 * libarchive in an unnamed temp file, uploaded or downloaded through remote commands and
 * extracted (or created) by the remote tar, or handed to sync_out, whose size is then known
 * before anything is extracted. Both paths apply the same excludes and the same
 * destroy-then-replace rule, so they leave byte-identical trees.
 */
#include "rt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* An unnamed file in $TMPDIR (disk-backed where /tmp is, so a large workspace does not have
 * to fit in memory), or an anonymous memory file where O_TMPFILE is not supported. */
static sb_err *new_archive_file(const char *what, int *fd)
{
	const char *tmp = getenv("TMPDIR");
	if (!tmp || tmp[0] != '/')
		tmp = "/tmp";
	*fd = open(tmp, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (*fd >= 0)
		return NULL;
	*fd = memfd_create(what, MFD_CLOEXEC);
	if (*fd < 0)
		return sb_err_sys(
		    errno, "creating a temp file for the %s archive (in %s or memory)", what, tmp);
	return NULL;
}

static sb_err *rewind_fd(int fd)
{
	if (lseek(fd, 0, SEEK_SET) < 0)
		return sb_err_sys(errno, "rewinding the workspace archive");
	return NULL;
}

/* ---- stage in */

sb_err *sb_rt_stage_guard(const sb_rt_ctx *c, const sb_rt_stage *s)
{
	sb_buf b = SB_BUF_INIT;
	sb_rt_script_stage_head(&b, s);
	char *guard = sb_buf_steal(&b, NULL);
	sb_exec_result res;
	sb_exec_result_init(&res);
	sb_err *err = sb_rt_run(c, guard, NULL, NULL, 0, &res);
	err = sb_rt_stage_head_error(s, &res, err);
	sb_exec_result_deinit(&res);
	free(guard);
	return err;
}

sb_err *sb_rt_stage_tar(const sb_rt_stage *s, sb_tar_pick_fn pick, void *pick_ud, int fd,
                        uint64_t *bytes_out)
{
	sb_tar_create_opts o = {
	    .ex = s->ex,
	    .follow_symlinks = s->follow_symlinks,
	    .pick = pick,
	    .pick_ud = pick_ud,
	    .on_file = s->on_file,
	    .want_hash = s->want_hash,
	    .on_file_ud = s->hash_ud,
	};
	return sb_tar_create_ex(s->local_dir, &o, fd, bytes_out);
}

sb_err *sb_rt_stage_in(const sb_rt_ctx *c, const sb_rt_stage *s, sb_rt_progress *p,
                       uint64_t *bytes_out)
{
	sb_err *err = sb_rt_check_cancel(c);
	if (err)
		return err;
	sb_rt_timer tm;
	sb_rt_timer_start(&tm, &c->progress, "stage", s->label ? s->label : "tree", s->native);
	int fd = -1;
	uint64_t bytes = 0;
	char *script = NULL;
	if (!s->native && sb_rt_can_stream(c)) {
		err = sb_rt_stream_in(c, s, p, &tm, &bytes);
		sb_rt_timer_finish(&tm, err != NULL);
		if (err)
			return sb_err_prefix(err, "staging %s into %s (streamed)", s->local_dir,
			                     s->remote_dir);
		*bytes_out = bytes;
		return NULL;
	}
	if (s->ours_marker || s->create_fresh) {
		/* Checked (or made) on its own before anything is uploaded into the directory. */
		err = sb_rt_stage_guard(c, s);
		if (err) {
			sb_rt_timer_finish(&tm, true);
			return err;
		}
	}
	if (s->native) {
		err = sb_rt_stream_native_in(c, s, p, &tm, &bytes);
		sb_rt_timer_finish(&tm, err != NULL);
		if (err)
			return sb_err_prefix(err, "staging %s into %s (native transfer)",
			                     s->local_dir, s->remote_dir);
		*bytes_out = bytes;
		return NULL;
	}
	err = new_archive_file("workspace-upload", &fd);
	if (!err)
		err = sb_rt_stage_tar(s, NULL, NULL, fd, &bytes);
	sb_rt_timer_mark(&tm, "tar");
	if (!err) {
		err = sb_rt_upload(c, fd, bytes, s->upload_tar, p);
		sb_rt_timer_mark(&tm, "upload");
		if (!err) {
			script = sb_rt_script_extract(s->remote_dir, s->upload_tar, s->spare);
			err = sb_rt_run(c, script, NULL, NULL, 0, NULL);
			sb_rt_timer_mark(&tm, "extract");
		}
	}
	sb_rt_timer_finish(&tm, err != NULL);
	if (err && !s->native) {
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
		return sb_err_prefix(err, "staging %s into %s%s", s->local_dir, s->remote_dir,
		                     s->native ? " (native transfer)" : "");
	*bytes_out = bytes;
	return NULL;
}

/* ---- fetch out */

/* Native: sync_out into the file, then the size limit, then extraction. */
static sb_err *fetch_native(const sb_rt_ctx *c, const sb_rt_fetch *f, int fd, sb_rt_progress *p,
                            sb_rt_timer *tm, uint64_t *size)
{
	sb_err *err = sb_runner_sync_out(c->runner, f->remote_dir, f->ex, fd, sb_rt_progress_fn, p);
	sb_rt_timer_mark(tm, "transfer");
	struct stat st;
	if (!err && fstat(fd, &st) != 0)
		err = sb_err_sys(errno, "measuring the archive of %s", f->remote_dir);
	if (!err) {
		*size = (uint64_t)st.st_size;
		if (f->max_bytes > 0 && *size > (uint64_t)f->max_bytes) {
			err = sb_err_new(
			    SB_E_FILE_TOO_LARGE,
			    "Remote archive of %s is %llu bytes, exceeding the %lld byte "
			    "limit",
			    f->remote_dir, (unsigned long long)*size, (long long)f->max_bytes);
			err->actual_bytes = (int64_t)*size;
			err->limit_bytes = f->max_bytes;
		}
	}
	if (err)
		sb_rt_progress_fail(p);
	else
		sb_rt_progress_complete(p, *size, *size);
	return err;
}

/* Command path: remote tar into the overlay, chunked download, then the remote copy goes. */
static sb_err *fetch_command(const sb_rt_ctx *c, const sb_rt_fetch *f, int fd, sb_rt_progress *p,
                             sb_rt_timer *tm, uint64_t *size)
{
	char *script = sb_rt_script_archive(f->remote_dir, f->download_tar, f->ex);
	sb_err *err = sb_rt_run(c, script, NULL, NULL, 0, NULL);
	free(script);
	sb_rt_timer_mark(tm, "archive");
	if (!err) {
		err = sb_rt_download(c, f->download_tar, f->max_bytes, fd, size, p);
		sb_rt_timer_mark(tm, "download");
	}
	/* The remote archive goes whatever happened (best effort, spec §3.1 step 3). */
	sb_buf rm = SB_BUF_INIT;
	sb_buf_appends(&rm, "rm -f ");
	sb_shell_quote(&rm, f->download_tar);
	sb_rt_run_quiet(c, sb_buf_cstr(&rm));
	sb_buf_deinit(&rm);
	return err;
}

sb_err *sb_rt_fetch_out(const sb_rt_ctx *c, const sb_rt_fetch *f, sb_rt_progress *p,
                        uint64_t *bytes_out)
{
	sb_err *err = sb_rt_check_cancel(c);
	if (err)
		return err;
	sb_rt_timer tm;
	sb_rt_timer_start(&tm, &c->progress, "restore", f->label ? f->label : "tree", f->native);
	int fd = -1;
	uint64_t size = 0;
	if ((!f->native && sb_rt_can_stream(c)) || (f->native && f->max_bytes <= 0)) {
		err = f->native ? sb_rt_stream_native_out(c, f, p, &tm, &size)
		                : sb_rt_stream_out(c, f, p, &tm, &size);
		sb_rt_timer_finish(&tm, err != NULL);
		if (err)
			return sb_err_prefix(err, "fetching %s (%s)", f->remote_dir,
			                     f->native ? "native transfer" : "streamed");
		*bytes_out = size;
		return NULL;
	}
	err = new_archive_file("workspace-download", &fd);
	if (!err)
		err = f->native ? fetch_native(c, f, fd, p, &tm, &size)
		                : fetch_command(c, f, fd, p, &tm, &size);
	if (!err)
		err = rewind_fd(fd);
	if (!err) {
		sb_tar_extract_opts xo = sb_rt_fetch_extract_opts(f);
		err = sb_tar_extract_ex(fd, f->local_dest, &xo, NULL, NULL);
		sb_rt_timer_mark(&tm, "extract");
	}
	sb_rt_timer_finish(&tm, err != NULL);
	sb_close(&fd);
	if (err)
		return sb_err_prefix(err, "fetching %s%s", f->remote_dir,
		                     f->native ? " (native transfer)" : "");
	*bytes_out = size;
	return NULL;
}
