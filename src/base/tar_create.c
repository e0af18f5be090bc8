/* tar archives with libarchive, no tar process: creation. The tree is walked with sb_fs_walk
 * (sorted, never following links unless asked) and written as pax-restricted entries by hand:
 * no xattrs, ACLs or flags, no "." member, no "._*" AppleDouble files, nothing the excludes
 * match; sparse files keep their holes. */
#include "tar_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Archive blocks handed to write(): large, so a pipe sees few big writes. */
#define TAR_BLOCK (256 * 1024)

/* ---------------------------------------------------------------- create */

struct dir_id {
	dev_t dev;
	ino_t ino;
	char *relpath; /* "" for the root */
};

struct tar_create {
	struct archive *a;
	struct archive_entry *entry;
	const sb_tar_create_opts *o; /* excludes, links followed, pick (which entries go in) */
	/* The current file's hash, when o->on_file wants it (one context, reset by each final). */
	sb_sha256 *sha;
	bool hashing;
	const char *dir;
	int out_fd;
	uint64_t bytes;
	bool discard; /* failed: swallow the trailer libarchive writes when freed */
	sb_err *write_err;
	char *buf;
	/* Directories on the path from the root to the current entry, to spot link loops when
	 * following symlinks. */
	struct dir_id *stack;
	size_t nstack, capstack;
};

static la_ssize_t create_write_cb(struct archive *a, void *ud, const void *p, size_t n)
{
	struct tar_create *c = ud;
	if (c->discard)
		return (la_ssize_t)n;
	sb_err *err = sb_write_all(c->out_fd, p, n);
	if (err) {
		if (!c->write_err)
			c->write_err = err;
		else
			sb_err_free(err);
		archive_set_error(a, EIO, "writing the archive failed");
		return -1;
	}
	c->bytes += n;
	return (la_ssize_t)n;
}

static void stack_push(struct tar_create *c, const struct stat *st, const char *relpath)
{
	if (c->nstack == c->capstack) {
		c->capstack = c->capstack ? c->capstack * 2 : 16;
		c->stack = sb_xrealloc(c->stack, c->capstack * sizeof *c->stack);
	}
	c->stack[c->nstack++] = (struct dir_id){st->st_dev, st->st_ino, sb_xstrdup(relpath)};
}

/* Drop the directories that are not ancestors of relpath (the walk has left them). */
static void stack_trim(struct tar_create *c, const char *relpath)
{
	while (c->nstack > 0) {
		const char *top = c->stack[c->nstack - 1].relpath;
		size_t n = strlen(top);
		if (n == 0 || (strncmp(relpath, top, n) == 0 && relpath[n] == '/'))
			return;
		free(c->stack[--c->nstack].relpath);
	}
}

static bool stack_has(const struct tar_create *c, const struct stat *st)
{
	for (size_t i = 0; i < c->nstack; i++)
		if (c->stack[i].dev == st->st_dev && c->stack[i].ino == st->st_ino)
			return true;
	return false;
}

static void entry_common(struct tar_create *c, const char *relpath, const struct stat *st,
                         unsigned type)
{
	archive_entry_clear(c->entry);
	archive_entry_copy_pathname(c->entry, relpath);
	archive_entry_set_filetype(c->entry, type);
	archive_entry_set_perm(c->entry, st->st_mode & 07777);
	archive_entry_set_uid(c->entry, st->st_uid);
	archive_entry_set_gid(c->entry, st->st_gid);
	/* Whole seconds: sub-second times would cost a pax header per member. */
	archive_entry_set_mtime(c->entry, st->st_mtim.tv_sec, 0);
	archive_entry_set_size(c->entry, type == AE_IFREG ? st->st_size : 0);
}

static sb_err *take_write_err(struct tar_create *c, const char *relpath)
{
	if (c->write_err) {
		sb_err *err = c->write_err;
		c->write_err = NULL;
		return sb_err_prefix(err, "archiving %s", c->dir);
	}
	return sb_err_new(SB_E_IO, "archiving %s: writing %s: %s", c->dir, relpath,
	                  archive_error_string(c->a));
}

static sb_err *add_header(struct tar_create *c, const char *relpath)
{
	int r = archive_write_header(c->a, c->entry);
	if (r == ARCHIVE_OK)
		return NULL;
	if (r == ARCHIVE_WARN) {
		/* e.g. a name that is not UTF-8, stored as raw bytes (hdrcharset=BINARY). */
		sb_debug("tar %s: %s: %s", c->dir, relpath, archive_error_string(c->a));
		return NULL;
	}
	return take_write_err(c, relpath);
}

static sb_err *add_dir(struct tar_create *c, const char *relpath, const struct stat *st)
{
	entry_common(c, relpath, st, AE_IFDIR);
	return add_header(c, relpath);
}

static sb_err *add_symlink(struct tar_create *c, int dirfd, const char *name, const char *relpath,
                           const struct stat *st)
{
	char target[PATH_MAX + 1];
	ssize_t n = readlinkat(dirfd, name, target, sizeof target);
	if (n < 0) {
		if (errno == ENOENT)
			return NULL; /* gone since the listing */
		return sb_err_sys(errno, "archiving %s: reading the symlink %s", c->dir, relpath);
	}
	if ((size_t)n >= sizeof target)
		return sb_err_new(SB_E_TOO_LARGE, "archiving %s: the target of %s is too long",
		                  c->dir, relpath);
	target[n] = '\0';
	entry_common(c, relpath, st, AE_IFLNK);
	archive_entry_copy_symlink(c->entry, target);
	return add_header(c, relpath);
}

/* A file with holes: its data regions (at most SPARSE_MAX_REGIONS, else it is archived whole),
 * found with SEEK_DATA/SEEK_HOLE. False when it has no hole worth keeping. */
#define SPARSE_MAX_REGIONS 256
typedef struct sparse_region {
	int64_t off, len;
} sparse_region;

static bool sparse_map(int fd, const struct stat *st, sparse_region *regs, size_t *n)
{
	*n = 0;
	if (st->st_size < 64 * 1024 || (int64_t)st->st_blocks * 512 >= (int64_t)st->st_size)
		return false;
	int64_t data_bytes = 0;
	off_t pos = 0;
	while (pos < st->st_size) {
		off_t d = lseek(fd, pos, SEEK_DATA);
		if (d < 0 && errno == ENXIO)
			break; /* a hole up to the end */
		if (d < 0)
			return false;
		off_t h = lseek(fd, d, SEEK_HOLE);
		if (h < 0 || h <= d || *n == SPARSE_MAX_REGIONS)
			return false;
		if (h > st->st_size)
			h = st->st_size;
		regs[(*n)++] = (sparse_region){d, h - d};
		data_bytes += h - d;
		pos = h;
	}
	if (lseek(fd, 0, SEEK_SET) < 0)
		return false;
	return data_bytes < st->st_size;
}

/* n bytes of the current file into the archive, and into its hash when one is taken. */
static sb_err *archive_bytes(struct tar_create *c, const char *relpath, const void *p, size_t n)
{
	if (archive_write_data(c->a, p, n) < 0)
		return take_write_err(c, relpath);
	if (c->hashing)
		sb_sha256_update(c->sha, p, n);
	return NULL;
}

/* n zero bytes into the archive (and the hash): a hole, which libarchive drops from a sparse
 * member, or the end of a file that shrank while it was read. */
static sb_err *archive_zeros(struct tar_create *c, const char *relpath, uint64_t left)
{
	static const char zeros[64 * 1024];
	while (left > 0) {
		size_t n = left < sizeof zeros ? (size_t)left : sizeof zeros;
		la_ssize_t w = archive_write_data(c->a, zeros, n);
		if (w < 0)
			return take_write_err(c, relpath);
		if (w == 0)
			return sb_err_new(SB_E_IO, "archiving %s: %s: a hole was not taken", c->dir,
			                  relpath);
		if (c->hashing)
			sb_sha256_update(c->sha, zeros, (size_t)w);
		left -= (uint64_t)w;
	}
	return NULL;
}

/* One data region of a sparse member; a file that shrank meanwhile is padded with zeros. */
static sb_err *copy_region(struct tar_create *c, int fd, const char *relpath, int64_t off,
                           uint64_t left)
{
	while (left > 0) {
		size_t want = left < SB_FS_COPY_BUF ? (size_t)left : SB_FS_COPY_BUF;
		ssize_t n = pread(fd, c->buf, want, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return sb_err_sys(errno, "archiving %s: reading %s", c->dir, relpath);
		if (n == 0) /* keeps the regions after it where they belong */
			return archive_zeros(c, relpath, left);
		sb_err *err = archive_bytes(c, relpath, c->buf, (size_t)n);
		if (err)
			return err;
		left -= (uint64_t)n;
		off += n;
	}
	return NULL;
}

/* Starts the hash of the file at relpath when the caller wants it. */
static void hash_begin(struct tar_create *c, const char *relpath)
{
	c->hashing =
	    c->o->on_file && (!c->o->want_hash || c->o->want_hash(c->o->on_file_ud, relpath));
	if (c->hashing && !c->sha)
		c->sha = sb_sha256_new();
}

/* Tells the hash of the file as archived (st: as it was opened) unless archiving it failed. */
static void hash_end(struct tar_create *c, const char *relpath, const struct stat *st, bool told)
{
	if (!c->hashing)
		return;
	c->hashing = false;
	unsigned char sha[SB_SHA256_LEN];
	sb_sha256_final(c->sha, sha); /* also resets the context for the next file */
	if (told)
		c->o->on_file(c->o->on_file_ud, relpath, (uint64_t)st->st_size,
		              (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec, sha);
}

static sb_err *add_file(struct tar_create *c, int dirfd, const char *name, const char *relpath,
                        bool follow)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NONBLOCK | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW));
	if (fd < 0) {
		if (errno == ENOENT)
			return NULL; /* gone since the listing */
		return sb_err_sys(errno, "archiving %s: opening %s", c->dir, relpath);
	}
	struct stat st;
	sb_err *err = NULL;
	if (fstat(fd, &st) != 0) {
		err = sb_err_sys(errno, "archiving %s: examining %s", c->dir, relpath);
		goto out;
	}
	if (!S_ISREG(st.st_mode))
		goto out; /* replaced by something else since the listing */
	entry_common(c, relpath, &st, AE_IFREG);
	hash_begin(c, relpath);
	/* Holes stay holes: a sparse file's data regions only, as a pax sparse member. */
	sparse_region regs[SPARSE_MAX_REGIONS];
	size_t nregs = 0;
	if (sparse_map(fd, &st, regs, &nregs)) {
		for (size_t i = 0; i < nregs; i++)
			archive_entry_sparse_add_entry(c->entry, regs[i].off, regs[i].len);
		archive_entry_sparse_add_entry(c->entry, st.st_size, 0);
		err = add_header(c, relpath);
		/* libarchive takes the whole logical stream and drops the hole bytes itself:
		 * holes are fed from a buffer it never reads, never from the file */
		int64_t pos = 0;
		for (size_t i = 0; !err && i <= nregs; i++) {
			int64_t at = i < nregs ? regs[i].off : st.st_size;
			err = archive_zeros(c, relpath, (uint64_t)(at - pos));
			if (!err && i < nregs)
				err = copy_region(c, fd, relpath, at, (uint64_t)regs[i].len);
			pos = i < nregs ? at + regs[i].len : at;
		}
		goto out;
	}
	err = add_header(c, relpath);
	uint64_t left = (uint64_t)st.st_size;
	while (!err && left > 0) {
		size_t want = left < SB_FS_COPY_BUF ? (size_t)left : SB_FS_COPY_BUF;
		ssize_t n = read(fd, c->buf, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = sb_err_sys(errno, "archiving %s: reading %s", c->dir, relpath);
			break;
		}
		if (n == 0) {
			/* Shrunk while we read: the member keeps its size, ending in zeros. */
			sb_warn("archiving %s: %s shrank while being read; padded with zeros",
			        c->dir, relpath);
			err = archive_zeros(c, relpath, left);
			break;
		}
		err = archive_bytes(c, relpath, c->buf, (size_t)n);
		left -= (uint64_t)n;
	}
out:
	hash_end(c, relpath, &st, !err);
	close(fd);
	return err;
}

static int create_cb(const sb_walk_entry *e, void *ud, sb_err **err);

/* follow_symlinks: archive what the link points to under the link's name. */
static int add_followed(struct tar_create *c, const sb_walk_entry *e, sb_err **err)
{
	struct stat st;
	if (fstatat(e->dirfd, e->name, &st, 0) != 0) {
		sb_warn("archiving %s: cannot follow the symlink %s (%s); keeping it as a link",
		        c->dir, e->relpath, strerror(errno));
		struct stat lst;
		if (fstatat(e->dirfd, e->name, &lst, AT_SYMLINK_NOFOLLOW) == 0)
			*err = add_symlink(c, e->dirfd, e->name, e->relpath, &lst);
		return *err ? SB_WALK_STOP : SB_WALK_CONTINUE;
	}
	if (S_ISREG(st.st_mode)) {
		*err = add_file(c, e->dirfd, e->name, e->relpath, true);
		return *err ? SB_WALK_STOP : SB_WALK_CONTINUE;
	}
	if (!S_ISDIR(st.st_mode))
		return SB_WALK_CONTINUE; /* FIFO, socket, device: not archived */
	if (stack_has(c, &st)) {
		sb_warn("archiving %s: the symlink %s leads back to one of its parents; not "
		        "followed",
		        c->dir, e->relpath);
		return SB_WALK_CONTINUE;
	}
	*err = add_dir(c, e->relpath, &st);
	if (*err)
		return SB_WALK_STOP;
	int dfd = openat(e->dirfd, e->name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		*err = sb_err_sys(errno, "archiving %s: opening the linked directory %s", c->dir,
		                  e->relpath);
		return SB_WALK_STOP;
	}
	stack_push(c, &st, e->relpath);
	char *display = sb_strfmt("%s/%s", c->dir, e->relpath);
	*err = sb_fs_walk_fd(dfd, display, e->relpath, create_cb, c);
	free(display);
	close(dfd);
	return *err ? SB_WALK_STOP : SB_WALK_CONTINUE;
}

static int create_cb(const sb_walk_entry *e, void *ud, sb_err **err)
{
	struct tar_create *c = ud;
	if (strncmp(e->name, "._", 2) == 0 ||
	    sb_excludes_match_entry(c->o->ex, e->relpath, e->type == SB_FT_DIR))
		return SB_WALK_SKIP;
	if (c->o->pick) {
		int pick = c->o->pick(c->o->pick_ud, e->relpath, e->type);
		if (pick == SB_TAR_PICK_SKIP)
			return SB_WALK_SKIP;
		if (pick == SB_TAR_PICK_DESCEND)
			return SB_WALK_CONTINUE;
	}
	stack_trim(c, e->relpath);
	struct stat st;
	switch (e->type) {
	case SB_FT_DIR:
		if (fstatat(e->dirfd, e->name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			if (errno == ENOENT)
				return SB_WALK_SKIP;
			*err = sb_err_sys(errno, "archiving %s: examining %s", c->dir, e->relpath);
			return SB_WALK_STOP;
		}
		*err = add_dir(c, e->relpath, &st);
		stack_push(c, &st, e->relpath);
		break;
	case SB_FT_FILE:
		*err = add_file(c, e->dirfd, e->name, e->relpath, false);
		break;
	case SB_FT_SYMLINK:
		if (c->o->follow_symlinks)
			return add_followed(c, e, err);
		if (fstatat(e->dirfd, e->name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			if (errno == ENOENT)
				return SB_WALK_CONTINUE;
			*err = sb_err_sys(errno, "archiving %s: examining %s", c->dir, e->relpath);
			return SB_WALK_STOP;
		}
		*err = add_symlink(c, e->dirfd, e->name, e->relpath, &st);
		break;
	case SB_FT_OTHER:
		sb_debug("archiving %s: skipping %s (not a file, directory or symlink)", c->dir,
		         e->relpath);
		break;
	}
	return *err ? SB_WALK_STOP : SB_WALK_CONTINUE;
}

sb_err *sb_tar_create(const char *dir, const sb_excludes *ex, bool follow_symlinks, int fd,
                      uint64_t *bytes_out)
{
	sb_tar_create_opts o = {.ex = ex, .follow_symlinks = follow_symlinks};
	return sb_tar_create_ex(dir, &o, fd, bytes_out);
}

sb_err *sb_tar_create_pick(const char *dir, const sb_excludes *ex, bool follow_symlinks, int fd,
                           uint64_t *bytes_out, sb_tar_pick_fn pick, void *pick_ud)
{
	sb_tar_create_opts o = {
	    .ex = ex, .follow_symlinks = follow_symlinks, .pick = pick, .pick_ud = pick_ud};
	return sb_tar_create_ex(dir, &o, fd, bytes_out);
}

sb_err *sb_tar_create_ex(const char *dir, const sb_tar_create_opts *o, int fd, uint64_t *bytes_out)
{
	if (bytes_out)
		*bytes_out = 0;
	if (!dir || !*dir)
		return sb_err_new(SB_E_INVAL, "archiving: the directory path is empty");
	sb_err *lerr = sb_archive_load();
	if (lerr)
		return sb_err_prefix(lerr, "archiving %s", dir);
	int rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return sb_err_sys(errno, "archiving %s: opening the directory", dir);
	struct stat rootst;
	if (fstat(rootfd, &rootst) != 0) {
		sb_err *err = sb_err_sys(errno, "archiving %s: examining the directory", dir);
		close(rootfd);
		return err;
	}
	locale_t prev = sb_tar_enter_utf8();
	struct tar_create c = {
	    .o = o,
	    .dir = dir,
	    .out_fd = fd,
	    .buf = sb_xmalloc(SB_FS_COPY_BUF),
	};
	stack_push(&c, &rootst, "");
	c.a = archive_write_new();
	c.entry = archive_entry_new();
	if (!c.a || !c.entry)
		sb_xmalloc(SIZE_MAX); /* libarchive out of memory: abort like every allocation */
	sb_err *err = NULL;
	/* bytes_in_last_block 1: no padding past the two end records, so an empty selection is
	 * exactly 1024 zero bytes. */
	if (archive_write_set_format_pax_restricted(c.a) != ARCHIVE_OK ||
	    archive_write_set_bytes_per_block(c.a, TAR_BLOCK) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(c.a, 1) != ARCHIVE_OK ||
	    archive_write_open2(c.a, &c, NULL, create_write_cb, NULL, NULL) != ARCHIVE_OK)
		err = sb_err_new(SB_E_INTERNAL, "archiving %s: setting up libarchive: %s", dir,
		                 archive_error_string(c.a));
	if (!err)
		err = sb_fs_walk_fd(rootfd, dir, NULL, create_cb, &c);
	if (!err && archive_write_close(c.a) != ARCHIVE_OK)
		err = take_write_err(&c, "the end of the archive");
	archive_entry_free(c.entry);
	/* After a failure, freeing would still close the archive with a valid end marker, and a
	 * reader could take the stream for complete: write nothing more. */
	c.discard = err != NULL;
	archive_write_free(c.a);
	if (c.write_err)
		sb_err_free(c.write_err);
	for (size_t i = 0; i < c.nstack; i++)
		free(c.stack[i].relpath);
	free(c.stack);
	free(c.buf);
	if (c.sha)
		sb_sha256_free(c.sha);
	close(rootfd);
	sb_tar_leave_utf8(prev);
	if (bytes_out)
		*bytes_out = c.bytes;
	return err;
}
