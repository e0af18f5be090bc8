/* tar archives with libarchive, no tar process: extraction. Members are read with libarchive
 * but created here, relative to directory fds opened with O_NOFOLLOW: archive_write_disk
 * resolves names against the process cwd, which a threaded daemon cannot chdir, and walking
 * fds refuses "..", absolute names and writes through any symlink by construction. Names are
 * bytes (libarchive runs under a UTF-8 locale, tar_locale.c). The file data written is counted
 * against an optional limit, holes excluded, and each file's SHA-256 can be told as it is written
 * (sb_tar_extract_opts.on_file), so a caller need not read the tree again to hash it.
 *
 * Over 600 lines on purpose: every member kind (file, directory, symlink, hard link) goes
 * through the same directory-fd chain and the same clear-the-way rule, and splitting them
 * apart would expose the chain's internals to make four files out of one job. */
#include "tar_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- extract */

struct deferred_dir {
	char *relpath;
	size_t depth;
	mode_t mode;
	struct timespec mtime;
};

struct tar_extract {
	const char *dir;
	int rootfd;
	int in_fd;
	uint64_t bytes;
	sb_tar_special special;
	uint64_t specials;
	uint64_t max_written; /* 0: no limit */
	sb_tar_file_fn on_file;
	void *on_file_ud;
	sb_sha256 *sha;   /* with on_file: every member's hash, one after the other */
	uint64_t written; /* file data bytes written (holes excluded) */
	sb_err *read_err;
	char *rbuf;
	/* Open directories (O_PATH) along the last member's parent path: most members share a
	 * parent with the one before, so they cost one openat() each. */
	char **chain_names;
	int *chain_fds;
	size_t nchain, capchain;
	/* Directory modes and times, applied at the end so that a read-only directory can still
	 * receive its members and extracting a child does not disturb a parent's mtime. */
	struct deferred_dir *dirs;
	size_t ndirs, capdirs;
};

static la_ssize_t extract_read_cb(struct archive *a, void *ud, const void **buf)
{
	struct tar_extract *x = ud;
	for (;;) {
		ssize_t n = read(x->in_fd, x->rbuf, SB_FS_COPY_BUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (!x->read_err)
				x->read_err = sb_err_sys(errno, "reading the archive");
			archive_set_error(a, errno, "reading the archive failed");
			return -1;
		}
		x->bytes += (uint64_t)n;
		*buf = x->rbuf;
		return n;
	}
}

static void chain_truncate(struct tar_extract *x, size_t n)
{
	while (x->nchain > n) {
		x->nchain--;
		close(x->chain_fds[x->nchain]);
		free(x->chain_names[x->nchain]);
	}
}

/* Split a member name into its segments: leading "./" and empty or "." segments are dropped
 * (GNU tar writes "./a"), while an absolute name or a ".." anywhere is an escape. */
static sb_err *split_member(const char *dir, const char *name, char ***segs_out, size_t *n_out)
{
	*segs_out = NULL;
	*n_out = 0;
	if (name[0] == '/')
		return sb_err_new(SB_E_ESCAPE,
		                  "extracting into %s: member %s is an absolute path; refused", dir,
		                  name);
	if (strlen(name) > PATH_MAX)
		return sb_err_new(SB_E_TOO_LARGE,
		                  "extracting into %s: a member name is longer than %d bytes", dir,
		                  PATH_MAX);
	char **segs = NULL;
	size_t n = 0;
	for (const char *s = name; *s;) {
		const char *e = strchr(s, '/');
		size_t len = e ? (size_t)(e - s) : strlen(s);
		if (len == 2 && s[0] == '.' && s[1] == '.') {
			sb_strv_free(segs);
			return sb_err_new(SB_E_ESCAPE,
			                  "extracting into %s: member %s climbs out with \"..\"; "
			                  "refused",
			                  dir, name);
		}
		if (len > NAME_MAX) {
			sb_strv_free(segs);
			return sb_err_new(
			    SB_E_TOO_LARGE,
			    "extracting into %s: member %s has a segment longer than %d "
			    "bytes",
			    dir, name, NAME_MAX);
		}
		if (len > 0 && !(len == 1 && s[0] == '.')) {
			segs = sb_xrealloc(segs, (n + 2) * sizeof *segs);
			segs[n++] = sb_xstrndup(s, len);
			segs[n] = NULL;
		}
		s += len;
		if (*s == '/')
			s++;
	}
	*segs_out = segs;
	*n_out = n;
	return NULL;
}

/* The directory holding segs[0..n) (n may be 0: the root), opened along the chain. Missing
 * directories are created when create is set. Any symlink on the way is refused: a member is
 * never written through a link, whether the archive made it or it was there before. The
 * returned fd belongs to the chain. */
static sb_err *chain_open(struct tar_extract *x, char **segs, size_t n, bool create,
                          const char *member, int *out)
{
	size_t k = 0;
	while (k < x->nchain && k < n && strcmp(x->chain_names[k], segs[k]) == 0)
		k++;
	chain_truncate(x, k);
	for (size_t i = k; i < n; i++) {
		int cur = i ? x->chain_fds[i - 1] : x->rootfd;
		int fd = openat(cur, segs[i], O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 && errno == ENOENT && create) {
			if (mkdirat(cur, segs[i], 0755) != 0 && errno != EEXIST)
				return sb_err_sys(errno,
				                  "extracting %s into %s: creating its parent %s",
				                  member, x->dir, segs[i]);
			fd = openat(cur, segs[i], O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		if (fd < 0) {
			int e = errno;
			struct stat st;
			if (fstatat(cur, segs[i], &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(st.st_mode))
				return sb_err_new(SB_E_ESCAPE,
				                  "extracting into %s: member %s would be written "
				                  "through the symlink %s; refused",
				                  x->dir, member, segs[i]);
			return sb_err_sys(e, "extracting %s into %s: opening its parent %s", member,
			                  x->dir, segs[i]);
		}
		if (x->nchain == x->capchain) {
			x->capchain = x->capchain ? x->capchain * 2 : 16;
			x->chain_names =
			    sb_xrealloc(x->chain_names, x->capchain * sizeof *x->chain_names);
			x->chain_fds =
			    sb_xrealloc(x->chain_fds, x->capchain * sizeof *x->chain_fds);
		}
		x->chain_names[x->nchain] = sb_xstrdup(segs[i]);
		x->chain_fds[x->nchain] = fd;
		x->nchain++;
	}
	*out = n ? x->chain_fds[n - 1] : x->rootfd;
	return NULL;
}

/* Make room for a new member called name in pfd: remove a file or symlink, or an empty
 * directory, in the way (what tar does). */
static sb_err *clear_way(struct tar_extract *x, int pfd, const char *name, const char *member)
{
	if (unlinkat(pfd, name, 0) == 0 || errno == ENOENT)
		return NULL;
	if (errno == EISDIR || errno == EPERM) {
		if (unlinkat(pfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
			return NULL;
		if (errno == ENOTEMPTY || errno == EEXIST)
			return sb_err_new(SB_E_CONFLICT,
			                  "extracting %s into %s: a non-empty directory is in the "
			                  "way",
			                  member, x->dir);
	}
	return sb_err_sys(errno, "extracting %s into %s: removing what is in the way", member,
	                  x->dir);
}

static sb_err *pwrite_all(int fd, const char *p, size_t n, off_t off)
{
	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return sb_err_sys(errno, "writing");
		p += w;
		n -= (size_t)w;
		off += w;
	}
	return NULL;
}

static sb_err *archive_err(struct tar_extract *x, struct archive *a, const char *what)
{
	if (x->read_err) {
		sb_err *err = x->read_err;
		x->read_err = NULL;
		return sb_err_prefix(err, "extracting into %s", x->dir);
	}
	return sb_err_new(SB_E_INVAL, "extracting into %s: %s: the archive is malformed: %s",
	                  x->dir, what, archive_error_string(a));
}

/* Count a member's file data against the limit before any of it is written. */
static sb_err *charge(struct tar_extract *x, uint64_t n, const char *member)
{
	if (x->max_written && n > x->max_written - x->written) {
		sb_err *err = sb_err_new(
		    SB_E_FILE_TOO_LARGE,
		    "extracting into %s: refused at %s: the archive expands to more than the limit "
		    "of %llu bytes (%llu written before it, %llu more in it)",
		    x->dir, member, (unsigned long long)x->max_written,
		    (unsigned long long)x->written, (unsigned long long)n);
		err->actual_bytes =
		    (int64_t)(x->written + n > INT64_MAX ? INT64_MAX : x->written + n);
		err->limit_bytes = (int64_t)x->max_written;
		return err;
	}
	x->written += n;
	return NULL;
}

/* The data bytes a regular member carries: its data regions when it is sparse. */
static uint64_t member_data_bytes(struct archive_entry *e)
{
	int64_t size = archive_entry_size(e);
	if (archive_entry_sparse_reset(e) > 0) {
		uint64_t sum = 0;
		la_int64_t off, len;
		while (archive_entry_sparse_next(e, &off, &len) == ARCHIVE_OK)
			if (len > 0)
				sum += (uint64_t)len;
		return sum;
	}
	return size > 0 ? (uint64_t)size : 0;
}

static int open_new_file(int pfd, const char *name, mode_t mode)
{
	int fd;
	do
		fd = openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		            mode | 0200);
	while (fd < 0 && errno == EINTR);
	return fd;
}

/* The plain SHA-256 of a member as it is written, for sb_tar_extract_opts.on_file: blocks
 * come in order of offset, and the gaps between them (holes) are zeros. */
typedef struct member_hash {
	sb_sha256 *sha; /* the extraction's one context (reset by each final); NULL: not wanted */
	bool broken;    /* blocks came out of order: not told */
	uint64_t fed;
} member_hash;

static void feed_zeros(member_hash *h, uint64_t n)
{
	static const unsigned char zeros[1 << 16];
	for (; h->sha && !h->broken && n;) {
		size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
		sb_sha256_update(h->sha, zeros, k);
		n -= k;
		h->fed += k;
	}
}

static void feed_block(member_hash *h, const void *buf, size_t size, int64_t off)
{
	if (!h->sha || h->broken)
		return;
	if (off < 0 || (uint64_t)off < h->fed) {
		h->broken = true;
		return;
	}
	feed_zeros(h, (uint64_t)off - h->fed);
	sb_sha256_update(h->sha, buf, size);
	h->fed += size;
}

/* Tell on_file of the member written as fd (its bytes all fed, when written), under its path
 * segs[0..n); the hash is finished either way, ready for the next member. */
static void tell_file(struct tar_extract *x, member_hash *h, int fd, char *const *segs, size_t n,
                      uint64_t size, bool written)
{
	if (!h->sha)
		return;
	struct stat st;
	bool told = written && !h->broken && fstat(fd, &st) == 0;
	if (told)
		feed_zeros(h, size - h->fed);
	unsigned char sha[SB_SHA256_LEN];
	sb_sha256_final(h->sha, sha);
	if (!told)
		return;
	sb_buf rel = SB_BUF_INIT;
	for (size_t i = 0; i < n; i++) {
		if (i)
			sb_buf_appendc(&rel, '/');
		sb_buf_appends(&rel, segs[i]);
	}
	x->on_file(x->on_file_ud, sb_buf_cstr(&rel), size,
	           (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec, sha);
	sb_buf_deinit(&rel);
}

static sb_err *extract_file(struct tar_extract *x, struct archive *a, struct archive_entry *e,
                            int pfd, char *const *segs, size_t n, const char *member)
{
	const char *name = segs[n - 1];
	mode_t mode = archive_entry_perm(e) & 0777;
	sb_err *lerr = charge(x, member_data_bytes(e), member);
	if (lerr)
		return lerr;
	int fd = open_new_file(pfd, name, mode);
	if (fd < 0 && errno == EEXIST) {
		sb_err *err = clear_way(x, pfd, name, member);
		if (err)
			return err;
		fd = open_new_file(pfd, name, mode);
	}
	if (fd < 0)
		return sb_err_sys(errno, "extracting %s into %s: creating it", member, x->dir);
	sb_err *err = NULL;
	int64_t end = 0;
	member_hash h = {.sha = x->sha};
	for (;;) {
		const void *buf;
		size_t size;
		la_int64_t off;
		int r = archive_read_data_block(a, &buf, &size, &off);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN) {
			err = archive_err(x, a, member);
			break;
		}
		err = pwrite_all(fd, buf, size, (off_t)off);
		if (err) {
			err = sb_err_prefix(err, "extracting %s into %s", member, x->dir);
			break;
		}
		feed_block(&h, buf, size, off);
		if (off + (int64_t)size > end)
			end = off + (int64_t)size;
	}
	/* A sparse member ends in a hole: give the file its full length. */
	int64_t size = archive_entry_size(e);
	if (!err && size > end && ftruncate(fd, (off_t)size) != 0)
		err = sb_err_sys(errno, "extracting %s into %s: setting its size", member, x->dir);
	if (!err && fchmod(fd, mode) != 0)
		err = sb_err_sys(errno, "extracting %s into %s: setting its mode", member, x->dir);
	if (!err) {
		struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT},
		                         {archive_entry_mtime(e), archive_entry_mtime_nsec(e)}};
		if (futimens(fd, ts) != 0)
			err = sb_err_sys(errno, "extracting %s into %s: setting its time", member,
			                 x->dir);
	}
	tell_file(x, &h, fd, segs, n, size > end ? (uint64_t)size : (uint64_t)end, !err);
	if (close(fd) != 0 && errno != EINTR && !err)
		err = sb_err_sys(errno, "extracting %s into %s: closing it", member, x->dir);
	return err;
}

static sb_err *extract_dir(struct tar_extract *x, struct archive_entry *e, int pfd,
                           const char *name, char **segs, size_t n, const char *member)
{
	if (mkdirat(pfd, name, 0700) != 0) {
		if (errno != EEXIST)
			return sb_err_sys(errno, "extracting %s into %s: creating the directory",
			                  member, x->dir);
		struct stat st;
		if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			return sb_err_sys(errno, "extracting %s into %s: examining it", member,
			                  x->dir);
		if (!S_ISDIR(st.st_mode)) {
			sb_err *err = clear_way(x, pfd, name, member);
			if (err)
				return err;
			if (mkdirat(pfd, name, 0700) != 0)
				return sb_err_sys(errno,
				                  "extracting %s into %s: creating the directory",
				                  member, x->dir);
		} else if ((st.st_mode & 0700) != 0700 &&
		           fchmodat(pfd, name, (st.st_mode & 0777) | 0700, 0) != 0) {
			/* An existing directory must take its members; the final mode comes later.
			 */
			return sb_err_sys(errno, "extracting %s into %s: making it writable",
			                  member, x->dir);
		}
	}
	if (x->ndirs == x->capdirs) {
		x->capdirs = x->capdirs ? x->capdirs * 2 : 64;
		x->dirs = sb_xrealloc(x->dirs, x->capdirs * sizeof *x->dirs);
	}
	sb_buf rel = SB_BUF_INIT;
	for (size_t i = 0; i < n; i++) {
		if (i)
			sb_buf_appendc(&rel, '/');
		sb_buf_appends(&rel, segs[i]);
	}
	x->dirs[x->ndirs++] = (struct deferred_dir){
	    .relpath = sb_buf_steal(&rel, NULL),
	    .depth = n,
	    .mode = archive_entry_perm(e) & 0777,
	    .mtime = {archive_entry_mtime(e), archive_entry_mtime_nsec(e)},
	};
	return NULL;
}

static sb_err *extract_symlink(struct tar_extract *x, struct archive_entry *e, int pfd,
                               const char *name, const char *member)
{
	const char *target = archive_entry_symlink(e);
	if (!target || !*target)
		return sb_err_new(SB_E_INVAL, "extracting into %s: symlink member %s has no target",
		                  x->dir, member);
	/* The target is data, as in tar: it may point anywhere (a venv's python -> /usr/bin).
	 * What is refused is writing through it, see chain_open(). */
	if (symlinkat(target, pfd, name) != 0) {
		if (errno != EEXIST)
			return sb_err_sys(errno, "extracting %s into %s: creating the symlink",
			                  member, x->dir);
		sb_err *err = clear_way(x, pfd, name, member);
		if (err)
			return err;
		if (symlinkat(target, pfd, name) != 0)
			return sb_err_sys(errno, "extracting %s into %s: creating the symlink",
			                  member, x->dir);
	}
	struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT},
	                         {archive_entry_mtime(e), archive_entry_mtime_nsec(e)}};
	(void)utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW); /* cosmetic; not all FS allow it */
	return NULL;
}

/* A hard link member becomes an independent copy of its (already extracted, confined) target:
 * a link could tie the tree to a file elsewhere, and sandbar never hard-links. */
static sb_err *extract_hardlink(struct tar_extract *x, struct archive_entry *e, const char *member,
                                char **segs, size_t n)
{
	const char *target = archive_entry_hardlink(e);
	char **tsegs = NULL;
	size_t tn = 0;
	sb_err *err = split_member(x->dir, target, &tsegs, &tn);
	if (err)
		return sb_err_prefix(err, "hard link %s", member);
	int src = -1;
	if (tn == 0)
		err = sb_err_new(SB_E_INVAL, "extracting into %s: hard link %s has no target",
		                 x->dir, member);
	int tpfd = -1;
	if (!err)
		err = chain_open(x, tsegs, tn - 1, false, target, &tpfd);
	if (!err) {
		src = openat(tpfd, tsegs[tn - 1], O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		struct stat st;
		if (src < 0)
			err = sb_err_sys(errno,
			                 "extracting hard link %s into %s: opening its target %s",
			                 member, x->dir, target);
		else if (fstat(src, &st) != 0 || !S_ISREG(st.st_mode))
			err = sb_err_new(SB_E_INVAL,
			                 "extracting hard link %s into %s: its target %s is not a "
			                 "regular file",
			                 member, x->dir, target);
		else
			err = charge(x, (uint64_t)st.st_size, member); /* the copy is dense */
	}
	int pfd = -1;
	if (!err)
		err = chain_open(x, segs, n - 1, true, member, &pfd);
	int dst = -1;
	mode_t mode = archive_entry_perm(e) & 0777;
	if (!err) {
		dst = open_new_file(pfd, segs[n - 1], mode);
		if (dst < 0 && errno == EEXIST) {
			err = clear_way(x, pfd, segs[n - 1], member);
			if (!err)
				dst = open_new_file(pfd, segs[n - 1], mode);
		}
		if (!err && dst < 0)
			err =
			    sb_err_sys(errno, "extracting %s into %s: creating it", member, x->dir);
	}
	if (!err)
		err = sb_fs_copy_fd(src, dst, target);
	if (!err && fchmod(dst, mode) != 0)
		err = sb_err_sys(errno, "extracting %s into %s: setting its mode", member, x->dir);
	if (dst >= 0)
		close(dst);
	if (src >= 0)
		close(src);
	sb_strv_free(tsegs);
	return err;
}

static sb_err *extract_member(struct tar_extract *x, struct archive *a, struct archive_entry *e)
{
	const char *member = archive_entry_pathname(e);
	if (!member)
		return sb_err_new(SB_E_INVAL, "extracting into %s: a member has no name", x->dir);
	char **segs = NULL;
	size_t n = 0;
	sb_err *err = split_member(x->dir, member, &segs, &n);
	if (err || n == 0) {
		sb_strv_free(segs);
		return err; /* n == 0: the archive's "." entry; the target keeps its own mode */
	}
	/* The member replaces whatever is at its path: forget any open fd for that path. */
	size_t k = 0;
	while (k < x->nchain && k < n && strcmp(x->chain_names[k], segs[k]) == 0)
		k++;
	if (k == n)
		chain_truncate(x, n - 1);
	if (archive_entry_hardlink(e)) {
		err = extract_hardlink(x, e, member, segs, n);
		sb_strv_free(segs);
		return err;
	}
	unsigned type = archive_entry_filetype(e);
	if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK) {
		sb_strv_free(segs);
		if (x->special == SB_TAR_SPECIAL_REFUSE)
			return sb_err_new(SB_E_INVAL,
			                  "extracting into %s: member %s is a %s; devices, FIFOs "
			                  "and sockets are refused",
			                  x->dir, member,
			                  type == AE_IFIFO    ? "FIFO"
			                  : type == AE_IFSOCK ? "socket"
			                                      : "device");
		x->specials++;
		sb_warn("extracting into %s: skipping %s (devices, FIFOs and sockets are not "
		        "extracted)",
		        x->dir, member);
		return NULL;
	}
	int pfd = -1;
	err = chain_open(x, segs, n - 1, true, member, &pfd);
	if (!err) {
		const char *name = segs[n - 1];
		if (type == AE_IFREG)
			err = extract_file(x, a, e, pfd, segs, n, member);
		else if (type == AE_IFDIR)
			err = extract_dir(x, e, pfd, name, segs, n, member);
		else
			err = extract_symlink(x, e, pfd, name, member);
	}
	sb_strv_free(segs);
	return err;
}

static int deeper_first(const void *pa, const void *pb)
{
	const struct deferred_dir *a = pa, *b = pb;
	return a->depth < b->depth ? 1 : a->depth > b->depth ? -1 : 0;
}

/* Apply the directory modes and times, deepest first. Each directory is reached through the
 * chain again (no symlinks) and opened with O_NOFOLLOW: a later member may have replaced it. */
static sb_err *apply_dirs(struct tar_extract *x)
{
	if (x->ndirs > 1)
		qsort(x->dirs, x->ndirs, sizeof *x->dirs, deeper_first);
	sb_err *first = NULL;
	for (size_t i = 0; i < x->ndirs; i++) {
		struct deferred_dir *d = &x->dirs[i];
		char **segs = NULL;
		size_t n = 0;
		sb_err *err = split_member(x->dir, d->relpath, &segs, &n);
		int pfd = -1;
		if (!err && n > 0)
			err = chain_open(x, segs, n - 1, false, d->relpath, &pfd);
		if (!err && n > 0) {
			int fd = openat(pfd, segs[n - 1],
			                O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd >= 0) {
				struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, d->mtime};
				if (fchmod(fd, d->mode) != 0 || futimens(fd, ts) != 0)
					err = sb_err_sys(errno,
					                 "extracting into %s: setting the mode and "
					                 "time of %s",
					                 x->dir, d->relpath);
				close(fd);
			}
		}
		sb_strv_free(segs);
		if (err && !first)
			first = err;
		else
			sb_err_free(err);
	}
	return first;
}

sb_err *sb_tar_extract(int fd, const char *dir, uint64_t *bytes_out)
{
	return sb_tar_extract_ex(fd, dir, NULL, bytes_out, NULL);
}

sb_err *sb_tar_extract_ex(int fd, const char *dir, const sb_tar_extract_opts *opts,
                          uint64_t *bytes_out, uint64_t *specials_out)
{
	sb_tar_extract_opts o = {0};
	if (opts)
		o = *opts;
	if (bytes_out)
		*bytes_out = 0;
	if (specials_out)
		*specials_out = 0;
	if (!dir || !*dir)
		return sb_err_new(SB_E_INVAL, "extracting: the target directory path is empty");
	sb_err *err = sb_archive_load(); /* before anything is created */
	if (err)
		return sb_err_prefix(err, "extracting into %s", dir);
	err = sb_fs_mkdir_p(dir, 0755);
	if (err)
		return sb_err_prefix(err, "extracting");
	struct tar_extract x = {.dir = dir,
	                        .in_fd = fd,
	                        .rootfd = -1,
	                        .special = o.special,
	                        .max_written = o.max_bytes,
	                        .on_file = o.on_file,
	                        .on_file_ud = o.on_file_ud};
	x.rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (x.rootfd < 0)
		return sb_err_sys(errno, "extracting into %s: opening the directory", dir);
	x.rbuf = sb_xmalloc(SB_FS_COPY_BUF);
	x.sha = x.on_file ? sb_sha256_new() : NULL;
	locale_t prev = sb_tar_enter_utf8();
	struct archive *a = archive_read_new();
	if (!a)
		sb_xmalloc(SIZE_MAX); /* libarchive out of memory: abort like every allocation */
	if (archive_read_support_format_tar(a) != ARCHIVE_OK ||
	    archive_read_open(a, &x, NULL, extract_read_cb, NULL) != ARCHIVE_OK)
		err = archive_err(&x, a, "opening the archive");
	size_t members = 0;
	while (!err) {
		struct archive_entry *e;
		int r = archive_read_next_header(a, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN) {
			err = archive_err(&x, a,
			                  members ? "reading a member header"
			                          : "reading the first member header");
			break;
		}
		if (r == ARCHIVE_WARN)
			sb_debug("extracting into %s: %s", dir, archive_error_string(a));
		members++;
		err = extract_member(&x, a, e);
	}
	archive_read_free(a);
	sb_err *derr = apply_dirs(&x);
	if (!err)
		err = derr;
	else
		sb_err_free(derr);
	sb_tar_leave_utf8(prev);
	chain_truncate(&x, 0);
	free(x.chain_names);
	free(x.chain_fds);
	for (size_t i = 0; i < x.ndirs; i++)
		free(x.dirs[i].relpath);
	free(x.dirs);
	sb_err_free(x.read_err);
	free(x.rbuf);
	if (x.sha)
		sb_sha256_free(x.sha);
	close(x.rootfd);
	if (bytes_out)
		*bytes_out = x.bytes;
	if (specials_out)
		*specials_out = x.specials;
	return err;
}
