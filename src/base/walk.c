/* Safe recursive directory walk. Every directory is opened relative to its parent's fd with
 * O_NOFOLLOW|O_DIRECTORY and every entry is examined with fstatat(AT_SYMLINK_NOFOLLOW), so a
 * symlink is reported as a symlink and never entered, even when a directory is swapped for a
 * link mid-walk (the open then fails instead of following). Siblings are sorted by strcmp and
 * parents are reported before their children, so archives and snapshots come out stable. */
#include "fs_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

sb_err *sb_fs_read_names(int dfd, const char *display, char ***names_out, size_t *n_out)
{
	*names_out = NULL;
	*n_out = 0;
	/* fdopendir() takes ownership of its fd; hand it a duplicate so dfd stays usable for the
	 * *at() calls that follow. */
	int dup_fd = fcntl(dfd, F_DUPFD_CLOEXEC, 0);
	if (dup_fd < 0)
		return sb_err_sys(errno, "reading directory %s: duplicating its descriptor",
		                  display);
	DIR *d = fdopendir(dup_fd);
	if (!d) {
		int e = errno;
		close(dup_fd);
		return sb_err_sys(e, "reading directory %s", display);
	}
	rewinddir(d); /* the duplicate shares dfd's offset */
	char **names = NULL;
	size_t n = 0, cap = 0;
	sb_err *err = NULL;
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de) {
			if (errno)
				err = sb_err_sys(errno, "reading directory %s", display);
			break;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (n + 1 >= cap) {
			cap = cap ? cap * 2 : 32;
			names = sb_xrealloc(names, cap * sizeof *names);
		}
		names[n++] = sb_xstrdup(de->d_name);
		names[n] = NULL;
	}
	closedir(d);
	if (err) {
		sb_strv_free(names);
		return err;
	}
	if (n > 1)
		qsort(names, n, sizeof *names, cmp_names);
	*names_out = names;
	*n_out = n;
	return NULL;
}

struct walk {
	sb_walk_fn fn;
	void *ud;
	const char *display; /* the root, for messages */
	sb_buf rel;          /* relative path of the directory being listed */
	bool stopped;
};

static sb_ftype type_of(mode_t mode)
{
	if (S_ISREG(mode))
		return SB_FT_FILE;
	if (S_ISDIR(mode))
		return SB_FT_DIR;
	if (S_ISLNK(mode))
		return SB_FT_SYMLINK;
	return SB_FT_OTHER;
}

static sb_err *walk_dir(struct walk *w, int dfd)
{
	char **names = NULL;
	size_t n = 0;
	sb_err *err = NULL;
	size_t base_len = w->rel.len;
	{
		char *what = w->rel.len ? sb_strfmt("%s/%s", w->display, w->rel.data)
		                        : sb_xstrdup(w->display);
		err = sb_fs_read_names(dfd, what, &names, &n);
		free(what);
	}
	if (err)
		return err;
	for (size_t i = 0; i < n && !err && !w->stopped; i++) {
		const char *name = names[i];
		struct stat st;
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			if (errno == ENOENT)
				continue; /* removed since the listing: not part of the tree */
			err =
			    sb_err_sys(errno, "walking %s: examining %s%s%s", w->display,
			               w->rel.len ? w->rel.data : "", w->rel.len ? "/" : "", name);
			break;
		}
		w->rel.len = base_len;
		if (w->rel.data)
			w->rel.data[base_len] = '\0';
		if (base_len)
			sb_buf_appendc(&w->rel, '/');
		sb_buf_appends(&w->rel, name);
		sb_walk_entry e = {
		    .relpath = w->rel.data,
		    .name = name,
		    .type = type_of(st.st_mode),
		    .mode = st.st_mode,
		    .size = (uint64_t)st.st_size,
		    .mtime_sec = (int64_t)st.st_mtim.tv_sec,
		    .dirfd = dfd,
		    .st = &st,
		};
		sb_err *cb_err = NULL;
		int r = w->fn(&e, w->ud, &cb_err);
		if (cb_err) {
			err = cb_err;
			break;
		}
		if (r == SB_WALK_STOP) {
			w->stopped = true;
			break;
		}
		if (r != SB_WALK_CONTINUE && r != SB_WALK_SKIP) {
			err = sb_err_new(SB_E_INTERNAL, "walking %s: callback returned %d at %s",
			                 w->display, r, w->rel.data);
			break;
		}
		if (r == SB_WALK_SKIP || e.type != SB_FT_DIR)
			continue;
		int cfd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (cfd < 0) {
			err = sb_err_sys(errno, "walking %s: opening directory %s", w->display,
			                 w->rel.data);
			break;
		}
		err = walk_dir(w, cfd);
		close(cfd);
	}
	w->rel.len = base_len;
	if (w->rel.data)
		w->rel.data[base_len] = '\0';
	sb_strv_free(names);
	return err;
}

sb_err *sb_fs_walk_fd(int dirfd, const char *display, const char *prefix, sb_walk_fn fn, void *ud)
{
	struct walk w = {.fn = fn, .ud = ud, .display = display};
	sb_buf_init(&w.rel);
	if (prefix && *prefix)
		sb_buf_appends(&w.rel, prefix);
	sb_err *err = walk_dir(&w, dirfd);
	sb_buf_deinit(&w.rel);
	return err;
}

sb_err *sb_fs_walk(const char *root, sb_walk_fn fn, void *ud)
{
	if (!root || !*root)
		return sb_err_new(SB_E_INVAL, "walking a tree: the root path is empty");
	if (!fn)
		return sb_err_new(SB_E_INVAL, "walking %s: no callback given", root);
	/* The root itself is the caller's choice and may be reached through a symlink; nothing
	 * below it is. */
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return sb_err_sys(errno, "walking %s: opening the root directory", root);
	sb_err *err = sb_fs_walk_fd(fd, root, NULL, fn, ud);
	close(fd);
	return err;
}
