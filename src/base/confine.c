/* Path confinement: open a relative path beneath a root directory fd and never outside it.
 * The kernel does it with openat2(RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS) where it exists (Linux
 * 5.6+); elsewhere (ENOSYS, old kernels, seccomp profiles) a resolver walks the path one
 * component at a time with O_NOFOLLOW, expands each symlink lexically into the remaining path
 * (at most 40 of them) and refuses any ".." above the root or absolute link, exactly the
 * cases where the kernel answers EXDEV. Both report an escape as SB_E_ESCAPE. */
#include "fs_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

#define MAX_SYMLINKS 40 /* Linux's MAXSYMLINKS */

static atomic_bool force_fallback;
static atomic_bool no_openat2; /* the kernel said ENOSYS once */

void sb_fs_beneath_force_fallback(bool on)
{
	atomic_store(&force_fallback, on);
}

sb_err *sb_path_check_relative(const char *rel)
{
	if (!rel)
		return sb_err_new(SB_E_INVAL, "path is missing");
	size_t len = strnlen(rel, PATH_MAX + 1);
	if (len == 0)
		return sb_err_new(SB_E_INVAL, "path is empty");
	if (len > PATH_MAX)
		return sb_err_new(SB_E_TOO_LARGE, "path is longer than %d bytes", PATH_MAX);
	if (rel[0] == '/')
		return sb_err_new(SB_E_ESCAPE,
		                  "path %s is absolute: it escapes its confinement root (give a "
		                  "path relative to the root)",
		                  rel);
	for (const char *seg = rel;;) {
		const char *slash = strchr(seg, '/');
		size_t n = slash ? (size_t)(slash - seg) : strlen(seg);
		if (n == 0)
			return sb_err_new(SB_E_INVAL,
			                  "path %s has an empty segment (\"//\" or a "
			                  "trailing '/')",
			                  rel);
		if (n == 1 && seg[0] == '.')
			return sb_err_new(SB_E_INVAL, "path %s has a \".\" segment", rel);
		if (n == 2 && seg[0] == '.' && seg[1] == '.')
			return sb_err_new(
			    SB_E_ESCAPE,
			    "path %s has a \"..\" segment: it escapes its confinement "
			    "root",
			    rel);
		if (n > NAME_MAX)
			return sb_err_new(SB_E_TOO_LARGE,
			                  "path %s has a segment longer than %d bytes", rel,
			                  NAME_MAX);
		if (!slash)
			break;
		seg = slash + 1;
	}
	return NULL;
}

/* ---- kernel resolver */

static int open_kernel(int rootfd, const char *rel, int flags, mode_t mode, int *out)
{
	struct open_how how = {
	    .flags = (uint64_t)(unsigned)flags,
	    /* openat2 rejects a mode without O_CREAT/O_TMPFILE, unlike openat. */
	    .mode = (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode & 07777) : 0,
	    .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	for (int again = 0;; again++) {
		long fd = syscall(SYS_openat2, rootfd, rel, &how, sizeof how);
		if (fd >= 0) {
			*out = (int)fd;
			return 0;
		}
		/* EAGAIN: a concurrent rename made the kernel unsure of its ".." check. */
		if (errno == EINTR || (errno == EAGAIN && again < 32))
			continue;
		return errno;
	}
}

/* ---- fallback resolver */

struct fdstack {
	int *fds;
	size_t n, cap;
};

static void fdstack_push(struct fdstack *s, int fd)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 16;
		s->fds = sb_xrealloc(s->fds, s->cap * sizeof *s->fds);
	}
	s->fds[s->n++] = fd;
}

static void fdstack_free(struct fdstack *s)
{
	for (size_t i = 0; i < s->n; i++)
		close(s->fds[i]);
	free(s->fds);
}

/* Replace the component at [start, end) of *rest by the target of the symlink name in dirfd.
 * Returns 0 or an errno (EXDEV for an absolute target). */
static int expand_link(int dirfd, const char *name, sb_buf *rest, size_t end, int *links)
{
	if (++*links > MAX_SYMLINKS)
		return ELOOP;
	char target[PATH_MAX + 1];
	ssize_t n = readlinkat(dirfd, name, target, sizeof target);
	if (n < 0)
		return errno;
	if ((size_t)n >= sizeof target)
		return ENAMETOOLONG;
	if (n == 0)
		return ENOENT;
	if (target[0] == '/')
		return EXDEV;
	sb_buf next = SB_BUF_INIT;
	sb_buf_append(&next, target, (size_t)n);
	if (end < rest->len) {
		sb_buf_appendc(&next, '/');
		sb_buf_append(&next, rest->data + end, rest->len - end);
	}
	if (next.len > 16 * PATH_MAX) {
		sb_buf_deinit(&next);
		return ENAMETOOLONG;
	}
	sb_buf_deinit(rest);
	*rest = next;
	return 0;
}

static bool is_symlink_at(int dirfd, const char *name)
{
	struct stat st;
	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
}

/* When name in cur is a symlink, put its target in front of what is left to resolve and
 * restart from there (*pos = 0): true to go on resolving; false with *rc set (the link's own
 * error, e.g. ELOOP after too many) or untouched (not a link: the caller's error stands). */
static bool follow_link(int cur, const char *name, sb_buf *rest, size_t *pos, int *links, int *rc)
{
	if (!is_symlink_at(cur, name))
		return false;
	*rc = expand_link(cur, name, rest, *pos, links);
	*pos = 0;
	return *rc == 0;
}

static int open_fallback(int rootfd, const char *rel, int flags, mode_t mode, int *out)
{
	struct fdstack dirs = {0};
	sb_buf rest = SB_BUF_INIT;
	sb_buf_appends(&rest, rel);
	size_t pos = 0;
	int links = 0;
	int rc = 0;
	char name[NAME_MAX + 1];
	for (;;) {
		while (pos < rest.len && rest.data[pos] == '/')
			pos++;
		size_t start = pos;
		while (pos < rest.len && rest.data[pos] != '/')
			pos++;
		size_t n = pos - start;
		bool dir_wanted = pos < rest.len; /* followed by '/' */
		size_t after = pos;
		while (after < rest.len && rest.data[after] == '/')
			after++;
		bool last = after >= rest.len;
		if (n > NAME_MAX) {
			rc = ENAMETOOLONG;
			break;
		}
		if (n == 0) {
			memcpy(name, ".", 2);
		} else {
			memcpy(name, rest.data + start, n);
			name[n] = '\0';
		}
		int cur = dirs.n ? dirs.fds[dirs.n - 1] : rootfd;
		if (strcmp(name, "..") == 0) {
			if (dirs.n == 0) {
				rc = EXDEV;
				break;
			}
			close(dirs.fds[--dirs.n]);
			if (!last)
				continue;
			cur = dirs.n ? dirs.fds[dirs.n - 1] : rootfd;
			memcpy(name, ".", 2);
		} else if (strcmp(name, ".") == 0 && !last) {
			continue;
		}
		if (!last) {
			int fd = openat(cur, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd >= 0) {
				fdstack_push(&dirs, fd);
				continue;
			}
			rc = errno;
			if ((rc == ENOTDIR || rc == ELOOP) &&
			    follow_link(cur, name, &rest, &pos, &links, &rc))
				continue;
			break;
		}
		/* The last component: the caller's flags, but never following a link here; a link
		 * is expanded like any other unless the caller asked for O_NOFOLLOW. */
		int final_flags = flags | O_NOFOLLOW | (dir_wanted ? O_DIRECTORY : 0);
		int fd = openat(cur, name, final_flags, mode);
		if (fd >= 0 && (flags & O_PATH) && !(flags & O_NOFOLLOW)) {
			struct stat st;
			if (fstat(fd, &st) == 0 && S_ISLNK(st.st_mode)) {
				close(fd);
				fd = -1;
				errno = ELOOP;
			}
		}
		if (fd >= 0) {
			*out = fd;
			break;
		}
		rc = errno;
		if (!(flags & O_NOFOLLOW) && (rc == ELOOP || rc == ENOTDIR) &&
		    follow_link(cur, name, &rest, &pos, &links, &rc))
			continue;
		break;
	}
	fdstack_free(&dirs);
	sb_buf_deinit(&rest);
	return rc;
}

/* ---- public entry */

static int open_any(int rootfd, const char *rel, int flags, mode_t mode, int *out)
{
	if (!atomic_load(&force_fallback) && !atomic_load(&no_openat2)) {
		int rc = open_kernel(rootfd, rel, flags, mode, out);
		if (rc == ENOSYS)
			atomic_store(&no_openat2, true);
		else if (rc != EAGAIN) /* EAGAIN: renames kept racing; resolve it ourselves */
			return rc;
	}
	return open_fallback(rootfd, rel, flags, mode, out);
}

/* Create the missing parent directories of rel, each resolved beneath rootfd before the next is
 * made in it, so a parent can never be created outside. Returns 0 or an errno. */
static int make_parents(int rootfd, const char *rel)
{
	const char *last_slash = strrchr(rel, '/');
	if (!last_slash)
		return 0;
	size_t plen = (size_t)(last_slash - rel);
	int parent = -1;
	int rc = 0;
	for (size_t i = 0; i <= plen && !rc; i++) {
		if (i < plen && rel[i] != '/')
			continue;
		size_t seg_start = i;
		while (seg_start > 0 && rel[seg_start - 1] != '/')
			seg_start--;
		if (seg_start == i)
			continue; /* empty segment */
		char *prefix = sb_xstrndup(rel, i);
		char *name = sb_xstrndup(rel + seg_start, i - seg_start);
		int fd = -1;
		rc = open_any(rootfd, prefix, O_PATH | O_DIRECTORY | O_CLOEXEC, 0, &fd);
		if (rc == ENOENT) {
			int in = parent >= 0 ? parent : rootfd;
			if (mkdirat(in, name, 0755) != 0 && errno != EEXIST)
				rc = errno;
			else
				rc = open_any(rootfd, prefix, O_PATH | O_DIRECTORY | O_CLOEXEC, 0,
				              &fd);
		}
		if (!rc) {
			if (parent >= 0)
				close(parent);
			parent = fd;
		}
		free(prefix);
		free(name);
	}
	if (parent >= 0)
		close(parent);
	return rc;
}

sb_err *sb_fs_open_beneath(int rootfd, const char *rel, int flags, mode_t mode, unsigned sbflags,
                           int *out_fd)
{
	*out_fd = -1;
	if (!rel || !*rel)
		return sb_err_new(SB_E_INVAL, "opening beneath a root: the path is empty");
	if (strnlen(rel, PATH_MAX + 1) > PATH_MAX)
		return sb_err_new(SB_E_TOO_LARGE,
		                  "opening beneath a root: the path is longer than %d", PATH_MAX);
	if (sbflags & ~(unsigned)SB_OPEN_MKDIRS)
		return sb_err_new(SB_E_INVAL, "opening %s: unknown flags 0x%x", rel, sbflags);
	if (rel[0] == '/')
		return sb_err_new(SB_E_ESCAPE,
		                  "opening %s: an absolute path escapes its confinement root", rel);
	flags |= O_CLOEXEC;
	int fd = -1;
	int rc = open_any(rootfd, rel, flags, mode, &fd);
	if (rc == ENOENT && (sbflags & SB_OPEN_MKDIRS)) {
		rc = make_parents(rootfd, rel);
		if (!rc)
			rc = open_any(rootfd, rel, flags, mode, &fd);
	}
	if (rc == EXDEV)
		return sb_err_new(SB_E_ESCAPE,
		                  "opening %s: the path escapes its confinement root (\"..\" above "
		                  "the root, an absolute symlink or a symlink pointing outside)",
		                  rel);
	if (rc)
		return sb_err_sys(rc, "opening %s beneath its root", rel);
	*out_fd = fd;
	return NULL;
}

sb_err *sb_fs_open_dir_nofollow(int rootfd, const char *rel, bool create, int *out_fd)
{
	int fd = fcntl(rootfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return sb_err_sys(errno, "duplicating the directory fd for %s", rel);
	char *copy = sb_xstrdup(rel);
	char *save = NULL;
	sb_err *err = NULL;
	for (char *comp = strtok_r(copy, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
		int next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0 && errno == ENOENT && create) {
			if (mkdirat(fd, comp, 0755) != 0 && errno != EEXIST) {
				err = sb_err_sys(errno, "creating the directory %s", rel);
				break;
			}
			next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		if (next < 0) {
			err = sb_err_sys(errno, "opening the directory %s", rel);
			break;
		}
		close(fd);
		fd = next;
	}
	free(copy);
	if (err) {
		close(fd);
		return err;
	}
	*out_fd = fd;
	return NULL;
}
