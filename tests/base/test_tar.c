/* base.tar: archives round-trip byte-exact (odd names, modes, links, empty dirs and files),
 * follow the member rules (sorted, relative, no "._*", excludes), interoperate with GNU tar,
 * and extraction refuses every way out of the target directory. */
#include "testutil.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers */

static int memfd(void)
{
	int fd = memfd_create("sb-test-tar", MFD_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

static off_t fd_size(int fd)
{
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	return st.st_size;
}

static void rewind_fd(int fd)
{
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
}

/* One line per entry: type, path, permission bits, then content hash, link target or nothing,
 * and the mtime for files and directories. Names are printed with sb_shell_quote so newlines
 * cannot fake lines. */
struct listing {
	sb_buf out;
	bool with_mtime;
};

static int listing_cb(const sb_walk_entry *e, void *ud, sb_err **err)
{
	struct listing *l = ud;
	(void)err;
	const char *t = e->type == SB_FT_FILE      ? "F"
	                : e->type == SB_FT_DIR     ? "D"
	                : e->type == SB_FT_SYMLINK ? "L"
	                                           : "O";
	sb_buf_appendf(&l->out, "%s ", t);
	sb_shell_quote(&l->out, e->relpath);
	sb_buf_appendf(&l->out, " %o", (unsigned)(e->mode & 07777));
	struct stat st;
	assert_int_equal(fstatat(e->dirfd, e->name, &st, AT_SYMLINK_NOFOLLOW), 0);
	if (e->type == SB_FT_FILE) {
		int fd = openat(e->dirfd, e->name, O_RDONLY | O_CLOEXEC);
		assert_true(fd >= 0);
		sb_buf data = SB_BUF_INIT;
		SB_ASSERT_OK(sb_read_fd_all(fd, 1 << 26, &data));
		close(fd);
		char hex[SB_SHA256_HEX_LEN];
		sb_sha256_hex(data.data, data.len, hex);
		sb_buf_appendf(&l->out, " %zu %.16s", data.len, hex);
		sb_buf_deinit(&data);
	} else if (e->type == SB_FT_SYMLINK) {
		char target[4096];
		ssize_t n = readlinkat(e->dirfd, e->name, target, sizeof target - 1);
		assert_true(n > 0);
		target[n] = '\0';
		sb_buf_appends(&l->out, " -> ");
		sb_shell_quote(&l->out, target);
	}
	if (l->with_mtime && e->type != SB_FT_SYMLINK)
		sb_buf_appendf(&l->out, " @%lld", (long long)st.st_mtim.tv_sec);
	sb_buf_appendc(&l->out, '\n');
	return SB_WALK_CONTINUE;
}

static char *tree_listing(const char *dir, bool with_mtime)
{
	struct listing l = {SB_BUF_INIT, with_mtime};
	SB_ASSERT_OK(sb_fs_walk(dir, listing_cb, &l));
	return sb_buf_steal(&l.out, NULL);
}

static void expect_same_tree(const char *a, const char *b, bool with_mtime)
{
	char *la = tree_listing(a, with_mtime), *lb = tree_listing(b, with_mtime);
	if (strcmp(la, lb) != 0)
		print_error("trees differ:\n--- %s\n%s--- %s\n%s", a, la, b, lb);
	assert_string_equal(la, lb);
	free(la);
	free(lb);
}

/* Member names of the archive in fd, in order (read from offset 0). */
static char **member_names(int fd)
{
	rewind_fd(fd);
	struct archive *a = archive_read_new();
	archive_read_support_format_tar(a);
	assert_int_equal(archive_read_open_fd(a, fd, 65536), ARCHIVE_OK);
	char **names = NULL;
	sb_strv_push(&names, "");
	struct archive_entry *e;
	while (archive_read_next_header(a, &e) == ARCHIVE_OK)
		sb_strv_push(&names, archive_entry_pathname(e));
	archive_read_free(a);
	return names; /* names[0] is a "" sentinel */
}

static void link_at(const char *dir, const char *name, const char *target)
{
	char *p = sbt_path(dir, name);
	assert_int_equal(symlink(target, p), 0);
	free(p);
}

static void mkdir_at(const char *dir, const char *name, mode_t mode)
{
	char *p = sbt_path(dir, name);
	SB_ASSERT_OK(sb_fs_mkdir_p(p, 0755));
	assert_int_equal(chmod(p, mode), 0);
	free(p);
}

static void set_mtime(const char *dir, const char *name, time_t t)
{
	char *p = sbt_path(dir, name);
	struct timespec ts[2] = {{t, 0}, {t, 0}};
	assert_int_equal(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0);
	free(p);
}

/* A tree with every kind of name and entry the round trip must keep. */
static void fill_tree(const char *src)
{
	sbt_write_str(src, "plain.txt", "plain\n");
	sbt_write_str(src, "with space/and 'single' \"double\" quotes.txt", "quoted");
	sbt_write_str(src, "new\nline", "newline in the name");
	sbt_write_str(src, "not-utf8-\xff\xfe", "raw bytes in the name");
	sbt_write_str(src,
	              "\xc3\xbc"
	              "n\xc3\xaf"
	              "c\xc3\xb8"
	              "d\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac.md",
	              "unicode");
	sbt_write(src, "bin/run.sh", "#!/bin/sh\necho hi\n", 18, 0755);
	sbt_write(src, "private", "secret", 6, 0600);
	sbt_write(src, "zero", "", 0, 0644);
	size_t big = 2 * 1024 * 1024 + 3;
	char *data = sb_xmalloc(big);
	sbt_fill_random(data, big, 7);
	sbt_write(src, "deep/a/b/c/d/big.bin", data, big, 0644);
	free(data);
	char longname[201];
	memset(longname, 'n', 200);
	longname[200] = '\0';
	char *longpath = sb_strfmt("long/%s/%s", longname, longname);
	sbt_write_str(src, longpath, "long path");
	free(longpath);
	mkdir_at(src, "empty-dir", 0750);
	sbt_write_str(src, "ro/inside", "in a read-only dir");
	mkdir_at(src, "ro", 0555);
	link_at(src, "link-rel", "plain.txt");
	link_at(src, "link-abs", "/usr/bin/env");
	link_at(src, "link-dangling", "does/not/exist");
	link_at(src, "link-dir", "deep/a");
	link_at(src, "link odd \n name", "with space");
	set_mtime(src, "plain.txt", 1600000000);
	set_mtime(src, "empty-dir", 1500000000);
	set_mtime(src, "deep/a", 1400000000);
}

static sb_err *extract_from(int fd, const char *dir, uint64_t *bytes)
{
	rewind_fd(fd);
	return sb_tar_extract(fd, dir, bytes);
}

/* ---- round trip */

static void round_trip_keeps_names_modes_links_and_empties(void **state)
{
	(void)state;
	char *top = sbt_mkdtemp("sb-tar");
	char *src = sbt_path(top, "src"), *dst = sbt_path(top, "dst/nested");
	fill_tree(src);
	int fd = memfd();
	uint64_t out = 0, in = 0;
	SB_ASSERT_OK(sb_tar_create(src, NULL, false, fd, &out));
	assert_int_equal(out, (uint64_t)fd_size(fd));
	assert_int_equal(out % 512, 0);
	SB_ASSERT_OK(extract_from(fd, dst, &in)); /* creates dst's parents too */
	assert_int_equal(in, out);
	expect_same_tree(src, dst, true);
	/* extracting again over the same tree is fine (read-only dir included) */
	SB_ASSERT_OK(extract_from(fd, dst, NULL));
	expect_same_tree(src, dst, true);
	close(fd);
	free(src);
	free(dst);
	sbt_rmtree(top);
}

static void round_trip_through_a_pipe(void **state)
{
	(void)state;
	char *top = sbt_mkdtemp("sb-tar");
	char *src = sbt_path(top, "src"), *dst = sbt_path(top, "dst");
	fill_tree(src);
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		sb_err *err = sb_tar_create(src, NULL, false, p[1], NULL);
		_exit(err ? 1 : 0);
	}
	close(p[1]);
	uint64_t in = 0;
	SB_ASSERT_OK(sb_tar_extract(p[0], dst, &in));
	close(p[0]);
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_true(in >= 1024);
	expect_same_tree(src, dst, true);
	free(src);
	free(dst);
	sbt_rmtree(top);
}

static void members_are_sorted_relative_and_never_dot(void **state)
{
	(void)state;
	char *src = sbt_mkdtemp("sb-tar");
	sbt_write_str(src, "b/z", "z");
	sbt_write_str(src, "a.txt", "a");
	sbt_write_str(src, "a/y", "y");
	sbt_write_str(src, "B", "B");
	int fd = memfd();
	SB_ASSERT_OK(sb_tar_create(src, NULL, false, fd, NULL));
	char **names = member_names(fd);
	const char *want[] = {"", "B", "a/", "a/y", "a.txt", "b/", "b/z", NULL};
	for (size_t i = 0; want[i] || names[i]; i++) {
		assert_non_null(want[i]);
		assert_non_null(names[i]);
		assert_string_equal(names[i], want[i]);
	}
	sb_strv_free(names);
	close(fd);
	sbt_rmtree(src);
}

static void empty_selection_is_exactly_1024_zero_bytes(void **state)
{
	(void)state;
	char *src = sbt_mkdtemp("sb-tar");
	unsigned char zeros[1024] = {0};
	for (int round = 0; round < 2; round++) {
		if (round == 1) { /* everything there is excluded or AppleDouble */
			sbt_write_str(src, "node_modules/x", "x");
			sbt_write_str(src, "._meta", "x");
		}
		sb_excludes ex;
		sb_excludes_init(&ex);
		sb_excludes_add_dir(&ex, "node_modules");
		int fd = memfd();
		uint64_t out = 0;
		SB_ASSERT_OK(sb_tar_create(src, &ex, false, fd, &out));
		sb_excludes_deinit(&ex);
		assert_int_equal(out, 1024);
		assert_int_equal(fd_size(fd), 1024);
		unsigned char got[1024];
		assert_int_equal(pread(fd, got, sizeof got, 0), 1024);
		assert_memory_equal(got, zeros, 1024);
		/* and it extracts to nothing */
		char *dst = sbt_mkdtemp("sb-tar-dst");
		SB_ASSERT_OK(extract_from(fd, dst, NULL));
		char *listing = tree_listing(dst, false);
		assert_string_equal(listing, "");
		free(listing);
		sbt_rmtree(dst);
		close(fd);
	}
	sbt_rmtree(src);
}

static void skips_appledouble_and_excludes_at_any_depth(void **state)
{
	(void)state;
	char *top = sbt_mkdtemp("sb-tar");
	char *src = sbt_path(top, "src"), *dst = sbt_path(top, "dst");
	sbt_write_str(src, "keep.txt", "k");
	sbt_write_str(src, "._keep.txt", "apple");
	sbt_write_str(src, "d/._x", "apple");
	sbt_write_str(src, "d/e/._dir/inner", "apple");
	sbt_write_str(src, "d/e/f.txt", "f");
	sbt_write_str(src, "node_modules/pkg/index.js", "nm");
	sbt_write_str(src, "web/app/node_modules/pkg/index.js", "nm");
	sbt_write_str(src, "web/app/node_modules_not/x", "kept");
	sbt_write_str(src, ".paperclip-runtime/state", "overlay");
	sbt_write_str(src, "a/.paperclip-runtime/state", "kept: literal prefix only");
	char *fifo = sbt_path(src, "d/pipe");
	assert_int_equal(mkfifo(fifo, 0600), 0);
	free(fifo);
	sb_excludes ex;
	sb_excludes_init(&ex);
	sb_excludes_add_dir(&ex, "node_modules");
	sb_excludes_add(&ex, ".paperclip-runtime");
	int fd = memfd();
	SB_ASSERT_OK(sb_tar_create(src, &ex, false, fd, NULL));
	sb_excludes_deinit(&ex);
	char **names = member_names(fd);
	sb_buf all = SB_BUF_INIT;
	for (size_t i = 1; names[i]; i++)
		sb_buf_appendf(&all, "%s|", names[i]);
	assert_string_equal(sb_buf_cstr(&all),
	                    "a/|a/.paperclip-runtime/|a/.paperclip-runtime/state|d/|d/e/|d/e/f.txt|"
	                    "keep.txt|web/|web/app/|web/app/node_modules_not/|"
	                    "web/app/node_modules_not/x|");
	sb_buf_deinit(&all);
	sb_strv_free(names);
	SB_ASSERT_OK(extract_from(fd, dst, NULL));
	char *k = sbt_read(dst, "keep.txt", NULL);
	assert_string_equal(k, "k");
	free(k);
	close(fd);
	free(src);
	free(dst);
	sbt_rmtree(top);
}

static void follow_symlinks_archives_what_links_point_to(void **state)
{
	(void)state;
	char *top = sbt_mkdtemp("sb-tar");
	char *src = sbt_path(top, "src"), *dst = sbt_path(top, "dst");
	char *ext = sbt_path(top, "external");
	sbt_write(ext, "tool.sh", "#!/bin/sh\n", 10, 0755);
	sbt_write_str(ext, "sub/data", "external data");
	sbt_write_str(src, "real", "real");
	link_at(src, "to-file", "real");
	link_at(src, "to-ext", ext);
	link_at(src, "dangling", "nowhere");
	sbt_write_str(src, "d/f", "f");
	link_at(src, "d/loop", ".."); /* leads back to the root: not followed */
	int fd = memfd();
	SB_ASSERT_OK(sb_tar_create(src, NULL, true, fd, NULL));
	SB_ASSERT_OK(extract_from(fd, dst, NULL));
	char *listing = tree_listing(dst, false);
	assert_non_null(strstr(listing, "F 'to-file' 644 4 "));
	assert_non_null(strstr(listing, "D 'to-ext' "));
	assert_non_null(strstr(listing, "F 'to-ext/tool.sh' 755 10 "));
	assert_non_null(strstr(listing, "F 'to-ext/sub/data' 644 13 "));
	assert_non_null(strstr(listing, "L 'dangling' 777 -> 'nowhere'"));
	assert_null(strstr(listing, "d/loop"));
	free(listing);
	close(fd);
	free(src);
	free(dst);
	free(ext);
	sbt_rmtree(top);
}

static void interoperates_with_gnu_tar(void **state)
{
	(void)state;
	if (sbt_sh("tar --version >/dev/null 2>&1") != 0) {
		print_message("no tar on this host: interop not checked\n");
		return;
	}
	char *top = sbt_mkdtemp("sb-tar");
	char *src = sbt_path(top, "src"), *ours = sbt_path(top, "ours.tar");
	char *by_tar = sbt_path(top, "by-tar"), *by_us = sbt_path(top, "by-us");
	fill_tree(src);
	/* our archive, extracted by tar */
	int fd = open(ours, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	SB_ASSERT_OK(sb_tar_create(src, NULL, false, fd, NULL));
	close(fd);
	SB_ASSERT_OK(sb_fs_mkdir_p(by_tar, 0755));
	assert_int_equal(sbt_sh("tar -xf '%s' -C '%s' 2>&1", ours, by_tar), 0);
	expect_same_tree(src, by_tar, true);
	/* tar's archive ("./" members, GNU format), extracted by us */
	assert_int_equal(sbt_sh("tar -cf '%s.gnu' -C '%s' .", ours, src), 0);
	char *gnu = sb_strfmt("%s.gnu", ours);
	fd = open(gnu, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	SB_ASSERT_OK(sb_tar_extract(fd, by_us, NULL));
	close(fd);
	expect_same_tree(src, by_us, true);
	free(gnu);
	free(src);
	free(ours);
	free(by_tar);
	free(by_us);
	sbt_rmtree(top);
}

/* ---- hostile archives */

struct member {
	const char *name;
	unsigned type;    /* AE_IFREG, AE_IFDIR, AE_IFLNK, AE_IFIFO, AE_IFCHR; 0 = hard link */
	const char *data; /* file content, symlink or hard link target */
};

static int build_archive(const struct member *m, size_t n)
{
	int fd = memfd();
	struct archive *a = archive_write_new();
	archive_write_set_format_pax_restricted(a);
	assert_int_equal(archive_write_open_fd(a, fd), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *e = archive_entry_new();
		archive_entry_copy_pathname(e, m[i].name);
		archive_entry_set_mtime(e, 1700000000, 0);
		if (m[i].type == 0) {
			archive_entry_set_filetype(e, AE_IFREG);
			archive_entry_set_perm(e, 0644);
			archive_entry_copy_hardlink(e, m[i].data);
			archive_entry_set_size(e, 0);
		} else {
			archive_entry_set_filetype(e, m[i].type);
			archive_entry_set_perm(e, m[i].type == AE_IFDIR ? 0755 : 0644);
			if (m[i].type == AE_IFLNK)
				archive_entry_copy_symlink(e, m[i].data);
			if (m[i].type == AE_IFCHR)
				archive_entry_set_rdev(e, makedev(1, 3));
			size_t len = m[i].type == AE_IFREG && m[i].data ? strlen(m[i].data) : 0;
			archive_entry_set_size(e, (la_int64_t)len);
		}
		assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
		if (m[i].type == AE_IFREG && m[i].data)
			archive_write_data(a, m[i].data, strlen(m[i].data));
		archive_entry_free(e);
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	return fd;
}

struct hostile {
	char *top, *outside, *dst;
};

static void hostile_up(struct hostile *h)
{
	h->top = sbt_mkdtemp("sb-tar-hostile");
	h->outside = sbt_path(h->top, "outside");
	h->dst = sbt_path(h->top, "dst");
	sbt_write_str(h->outside, "secret", "secret");
	SB_ASSERT_OK(sb_fs_mkdir_p(h->dst, 0755));
}

static void hostile_down(struct hostile *h)
{
	/* nothing may have landed outside dst */
	char *listing = tree_listing(h->outside, false);
	assert_string_equal(listing, "F 'secret' 644 6 2bb80d537b1da3e3\n");
	free(listing);
	char *top_listing = sbt_sh_out("ls -A '%s'", h->top);
	assert_string_equal(top_listing, "dst\noutside\n");
	free(top_listing);
	free(h->outside);
	free(h->dst);
	sbt_rmtree(h->top);
}

static void expect_refused(const struct member *m, size_t n, sb_errcode code, const char *what)
{
	struct hostile h;
	hostile_up(&h);
	int fd = build_archive(m, n);
	sbt_expect_code(extract_from(fd, h.dst, NULL), code, what);
	close(fd);
	hostile_down(&h);
}

static void extract_refuses_hostile_members(void **state)
{
	(void)state;
	const struct member dotdot[] = {{"ok", AE_IFREG, "fine"}, {"../evil", AE_IFREG, "x"}};
	expect_refused(dotdot, 2, SB_E_ESCAPE, "../evil");
	const struct member dotdot_deep[] = {{"a/../../evil", AE_IFREG, "x"}};
	expect_refused(dotdot_deep, 1, SB_E_ESCAPE, "a/../../evil");
	const struct member dotdot_dir[] = {{"../outside/", AE_IFDIR, NULL}};
	expect_refused(dotdot_dir, 1, SB_E_ESCAPE, "../outside/");
	const struct member abs_etc[] = {{"/etc/sandbar-test-evil", AE_IFREG, "x"}};
	expect_refused(abs_etc, 1, SB_E_ESCAPE, "/etc member");
	const struct member via_rel_link[] = {{"l", AE_IFLNK, "../outside"},
	                                      {"l/evil", AE_IFREG, "x"}};
	expect_refused(via_rel_link, 2, SB_E_ESCAPE, "write through a climbing symlink");
	const struct member via_dotdot_link[] = {{"l", AE_IFLNK, ".."},
	                                         {"l/outside/evil", AE_IFREG, "x"}};
	expect_refused(via_dotdot_link, 2, SB_E_ESCAPE, "write through a '..' symlink");
	const struct member via_in_tree_link[] = {
	    {"sub/", AE_IFDIR, NULL}, {"l", AE_IFLNK, "sub"}, {"l/evil", AE_IFREG, "x"}};
	expect_refused(via_in_tree_link, 3, SB_E_ESCAPE, "write through an in-tree symlink");
	const struct member link_chain[] = {
	    {"l1", AE_IFLNK, "l2"}, {"l2", AE_IFLNK, "../outside"}, {"l1/evil", AE_IFREG, "x"}};
	expect_refused(link_chain, 3, SB_E_ESCAPE, "write through a symlink chain");
	const struct member dir_over_link[] = {{"l", AE_IFLNK, "../outside"},
	                                       {"l/sub/", AE_IFDIR, NULL}};
	expect_refused(dir_over_link, 2, SB_E_ESCAPE, "directory through a symlink");
	const struct member hard_abs[] = {{"h", 0, "/etc/passwd"}};
	expect_refused(hard_abs, 1, SB_E_ESCAPE, "hard link to an absolute path");
	const struct member hard_out[] = {{"h", 0, "../outside/secret"}};
	expect_refused(hard_out, 1, SB_E_ESCAPE, "hard link climbing out");
	const struct member hard_via_link[] = {{"l", AE_IFLNK, "../outside"}, {"h", 0, "l/secret"}};
	expect_refused(hard_via_link, 2, SB_E_ESCAPE, "hard link through a symlink");
}

static void extract_refuses_absolute_members(void **state)
{
	(void)state;
	struct hostile h;
	hostile_up(&h);
	char *evil = sb_strfmt("%s/evil", h.outside);
	char *secret = sb_strfmt("%s/secret", h.outside);
	const struct member abs_file[] = {{evil, AE_IFREG, "x"}};
	const struct member abs_dir[] = {{h.outside, AE_IFDIR, NULL}};
	const struct member abs_link_then_write[] = {{"l", AE_IFLNK, h.outside},
	                                             {"l/evil", AE_IFREG, "x"}};
	const struct member abs_hard[] = {{"h", 0, secret}};
	const struct {
		const struct member *m;
		size_t n;
	} cases[] = {{abs_file, 1}, {abs_dir, 1}, {abs_link_then_write, 2}, {abs_hard, 1}};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		int fd = build_archive(cases[i].m, cases[i].n);
		sbt_expect_code(extract_from(fd, h.dst, NULL), SB_E_ESCAPE, cases[i].m[0].name);
		close(fd);
	}
	free(evil);
	free(secret);
	hostile_down(&h);
}

static void extract_refuses_writing_through_existing_symlinks(void **state)
{
	(void)state;
	struct hostile h;
	hostile_up(&h);
	link_at(h.dst, "pre", h.outside); /* already in the target before extraction */
	const struct member m[] = {{"pre/evil", AE_IFREG, "x"}};
	int fd = build_archive(m, 1);
	sbt_expect_code(extract_from(fd, h.dst, NULL), SB_E_ESCAPE, "pre-existing link");
	close(fd);
	/* a member that replaces the link itself is fine: the link goes, nothing outside moves */
	const struct member replace[] = {{"pre", AE_IFREG, "now a file"}};
	fd = build_archive(replace, 1);
	SB_ASSERT_OK(extract_from(fd, h.dst, NULL));
	close(fd);
	char *got = sbt_read(h.dst, "pre", NULL);
	assert_string_equal(got, "now a file");
	free(got);
	hostile_down(&h);
}

static void extract_replaces_existing_entries(void **state)
{
	(void)state;
	struct hostile h;
	hostile_up(&h);
	sbt_write(h.dst, "x", "old", 3, 0444);
	char *secret = sbt_path(h.outside, "secret");
	link_at(h.dst, "y", secret);
	free(secret);
	mkdir_at(h.dst, "z", 0755);
	sbt_write_str(h.dst, "full/keep", "k");
	const struct member m[] = {
	    {"x", AE_IFREG, "new x"}, {"y", AE_IFREG, "new y"}, {"z", AE_IFREG, "new z"}};
	int fd = build_archive(m, 3);
	SB_ASSERT_OK(extract_from(fd, h.dst, NULL));
	close(fd);
	const char *names[] = {"x", "y", "z"};
	const char *want[] = {"new x", "new y", "new z"};
	for (int i = 0; i < 3; i++) {
		char *got = sbt_read(h.dst, names[i], NULL);
		assert_string_equal(got, want[i]);
		free(got);
	}
	/* a non-empty directory in the way is a conflict, not silently deleted */
	const struct member full[] = {{"full", AE_IFREG, "x"}};
	fd = build_archive(full, 1);
	sbt_expect_code(extract_from(fd, h.dst, NULL), SB_E_CONFLICT, "non-empty dir in the way");
	close(fd);
	char *kept = sbt_read(h.dst, "full/keep", NULL);
	assert_string_equal(kept, "k");
	free(kept);
	hostile_down(&h);
}

static void extract_turns_hard_links_into_copies_and_skips_devices(void **state)
{
	(void)state;
	struct hostile h;
	hostile_up(&h);
	const struct member m[] = {{"./", AE_IFDIR, NULL},     {"./f", AE_IFREG, "shared"},
	                           {"./h", 0, "./f"},          {"./fifo", AE_IFIFO, NULL},
	                           {"./null", AE_IFCHR, NULL}, {"./after", AE_IFREG, "after"}};
	int fd = build_archive(m, 6);
	SB_ASSERT_OK(extract_from(fd, h.dst, NULL));
	close(fd);
	char *listing = tree_listing(h.dst, false);
	assert_string_equal(listing, "F 'after' 644 5 f39592393ef0859c\n"
	                             "F 'f' 644 6 a4d26868017c0ccf\n"
	                             "F 'h' 644 6 a4d26868017c0ccf\n");
	free(listing);
	char *f = sbt_path(h.dst, "f"), *hl = sbt_path(h.dst, "h");
	struct stat s1, s2;
	assert_int_equal(stat(f, &s1), 0);
	assert_int_equal(stat(hl, &s2), 0);
	assert_int_not_equal(s1.st_ino, s2.st_ino);
	assert_int_equal(s2.st_nlink, 1);
	free(f);
	free(hl);
	hostile_down(&h);
}

/* What sb_tar_extract_opts.on_file was told, in order. */
struct told {
	size_t n;
	char *path[8];
	uint64_t size[8];
	int64_t ctime_ns[8];
	unsigned char sha[8][SB_SHA256_LEN];
};

static void tell(void *ud, const char *relpath, uint64_t size, int64_t ctime_ns,
                 const unsigned char sha[SB_SHA256_LEN])
{
	struct told *t = ud;
	assert_true(t->n < 8);
	t->path[t->n] = sb_xstrdup(relpath);
	t->size[t->n] = size;
	t->ctime_ns[t->n] = ctime_ns;
	memcpy(t->sha[t->n], sha, SB_SHA256_LEN);
	t->n++;
}

static void assert_told(const struct told *t, size_t i, const char *path, const char *dir)
{
	assert_string_equal(t->path[i], path);
	char *p = sbt_path(dir, path);
	struct stat st;
	unsigned char want[SB_SHA256_LEN];
	assert_int_equal(stat(p, &st), 0);
	SB_ASSERT_OK(sb_sha256_file(p, want));
	free(p);
	assert_int_equal(t->size[i], (uint64_t)st.st_size);
	assert_int_equal(t->ctime_ns[i],
	                 (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec);
	assert_memory_equal(t->sha[i], want, SB_SHA256_LEN);
}

/* Each regular file written is told with its path below the target ("./" gone), its size and
 * ctime as written and the SHA-256 of its bytes (sparse ones with their holes as zeros); a path
 * written twice is told twice, the last as the file holds it; a hard link copy is not told. */
static void extract_tells_each_files_hash_as_written(void **state)
{
	(void)state;
	struct hostile h;
	hostile_up(&h);
	const struct member m[] = {{"./d", AE_IFDIR, NULL},    {"./d/f", AE_IFREG, "one"},
	                           {"./g", AE_IFREG, "first"}, {"./g", AE_IFREG, "second"},
	                           {"./h", 0, "./d/f"},        {"./l", AE_IFLNK, "g"}};
	int fd = build_archive(m, 6);
	rewind_fd(fd);
	struct told t = {0};
	sb_tar_extract_opts xo = {.on_file = tell, .on_file_ud = &t};
	SB_ASSERT_OK(sb_tar_extract_ex(fd, h.dst, &xo, NULL, NULL));
	close(fd);
	assert_int_equal(t.n, 3);
	assert_told(&t, 0, "d/f", h.dst);
	assert_string_equal(t.path[1], "g");
	assert_told(&t, 2, "g", h.dst);
	for (size_t i = 0; i < t.n; i++)
		free(t.path[i]);
	hostile_down(&h);

	char *top = sbt_mkdtemp("sb-tar-told-sparse");
	char *src = sbt_path(top, "src"), *dst = sbt_path(top, "dst"),
	     *arc = sbt_path(top, "s.tar");
	SB_ASSERT_OK(sb_fs_mkdir_p(src, 0755));
	assert_int_equal(sbt_sh("truncate -s 3M '%s/sparse' && printf data | dd of='%s/sparse' "
	                        "bs=1 seek=1100000 conv=notrunc 2>/dev/null && "
	                        "tar -S -cf '%s' -C '%s' .",
	                        src, src, arc, src),
	                 0);
	fd = open(arc, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	struct told ts = {0};
	xo.on_file_ud = &ts;
	SB_ASSERT_OK(sb_tar_extract_ex(fd, dst, &xo, NULL, NULL));
	close(fd);
	assert_int_equal(ts.n, 1);
	assert_told(&ts, 0, "sparse", dst);
	assert_int_equal(ts.size[0], 3u << 20);
	free(ts.path[0]);
	free(src);
	free(dst);
	free(arc);
	sbt_rmtree(top);
}

static int pick_all_but_zz(void *ud, const char *relpath, sb_ftype type)
{
	(void)ud;
	(void)type;
	return strncmp(relpath, "zz-", 3) == 0 ? SB_TAR_PICK_SKIP : SB_TAR_PICK_ADD;
}

static bool want_all_but_skipped(void *ud, const char *relpath)
{
	(void)ud;
	return strcmp(relpath, "skipped") != 0;
}

/* sb_tar_create_ex tells each regular file it archives whole, in the walk's order, with its
 * size, its ctime and the SHA-256 of the bytes archived (a sparse file's holes as zeros): the
 * hashes equal those of the files, and of what the archive gives back. A file want_hash declines,
 * a symlink and a directory are not told; what pick leaves out is neither archived nor told. */
static void create_tells_the_hash_of_each_file_it_archives(void **state)
{
	(void)state;
	char *top = sbt_mkdtemp("sb-tar-create-told");
	char *src = sbt_path(top, "src"), *dst = sbt_path(top, "dst");
	SB_ASSERT_OK(sb_fs_mkdir_p(src, 0755));
	assert_int_equal(sbt_sh("cd '%s' && mkdir d && printf one > d/f && head -c 300000 "
	                        "/dev/urandom > big && printf no > skipped && ln -s big link && "
	                        "truncate -s 3M sparse && printf data | dd of=sparse bs=1 "
	                        "seek=1100000 conv=notrunc 2>/dev/null && printf out > zz-left",
	                        src),
	                 0);
	char *arc = sbt_path(top, "a.tar");
	int fd = open(arc, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	struct told t = {0};
	sb_tar_create_opts o = {.pick = pick_all_but_zz,
	                        .on_file = tell,
	                        .want_hash = want_all_but_skipped,
	                        .on_file_ud = &t};
	SB_ASSERT_OK(sb_tar_create_ex(src, &o, fd, NULL));
	assert_int_equal(t.n, 3);
	assert_told(&t, 0, "big", src);
	assert_told(&t, 1, "d/f", src);
	assert_told(&t, 2, "sparse", src);
	assert_int_equal(t.size[2], 3u << 20);
	rewind_fd(fd);
	SB_ASSERT_OK(sb_tar_extract(fd, dst, NULL));
	close(fd);
	for (size_t i = 0; i < t.n; i++) {
		char *p = sbt_path(dst, t.path[i]);
		unsigned char got[SB_SHA256_LEN];
		SB_ASSERT_OK(sb_sha256_file(p, got));
		assert_memory_equal(t.sha[i], got, SB_SHA256_LEN);
		free(p);
		free(t.path[i]);
	}
	char *left = sbt_path(dst, "zz-left"), *skipped = sbt_path(dst, "skipped");
	assert_int_equal(access(left, F_OK), -1);
	assert_int_equal(access(skipped, F_OK), 0); /* archived, only not hashed */
	free(left);
	free(skipped);
	free(arc);
	free(src);
	free(dst);
	sbt_rmtree(top);
}

/* A file that holds fewer bytes than its size says (it shrank while it was read; a sysfs file
 * reads so every time: size 4096, a few bytes of text) is archived with zeros up to that size,
 * and told with the hash of exactly what the archive holds. */
static void create_tells_a_shrunk_file_as_archived(void **state)
{
	(void)state;
	const char *sys = "/sys/kernel/uevent_seqnum";
	struct stat st;
	assert_int_equal(stat(sys, &st), 0); /* the machine's own: it must be there */
	assert_true(S_ISREG(st.st_mode) && st.st_size == 4096);
	char *top = sbt_mkdtemp("sb-tar-create-shrunk");
	char *src = sbt_path(top, "src"), *dst = sbt_path(top, "dst"),
	     *arc = sbt_path(top, "a.tar");
	SB_ASSERT_OK(sb_fs_mkdir_p(src, 0755));
	assert_int_equal(sbt_sh("ln -s %s '%s/seq'", sys, src), 0);
	int fd = open(arc, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	struct told t = {0};
	sb_tar_create_opts o = {.follow_symlinks = true, .on_file = tell, .on_file_ud = &t};
	SB_ASSERT_OK(sb_tar_create_ex(src, &o, fd, NULL));
	assert_int_equal(t.n, 1);
	assert_string_equal(t.path[0], "seq");
	assert_int_equal(t.size[0], 4096);
	rewind_fd(fd);
	SB_ASSERT_OK(sb_tar_extract(fd, dst, NULL));
	close(fd);
	char *p = sbt_path(dst, "seq");
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, 4096);
	unsigned char got[SB_SHA256_LEN];
	SB_ASSERT_OK(sb_sha256_file(p, got));
	assert_memory_equal(t.sha[0], got, SB_SHA256_LEN);
	free(p);
	free(t.path[0]);
	free(arc);
	free(src);
	free(dst);
	sbt_rmtree(top);
}

/* The extraction limit counts file data written: hard link copies count their target's size,
 * holes of a sparse member count nothing, and the member that would cross it is refused
 * before any of its bytes are written. */
static void extract_limit_counts_copies_not_holes(void **state)
{
	(void)state;
	struct hostile h;
	hostile_up(&h);
	/* 6 bytes of data, 4 hard links: 30 bytes once extracted */
	const struct member m[] = {{"f", AE_IFREG, "shared"},
	                           {"h1", 0, "f"},
	                           {"h2", 0, "f"},
	                           {"h3", 0, "f"},
	                           {"h4", 0, "f"}};
	int fd = build_archive(m, 5);
	rewind_fd(fd);
	sb_tar_extract_opts xo = {.max_bytes = 29};
	sb_err *err = sb_tar_extract_ex(fd, h.dst, &xo, NULL, NULL);
	assert_non_null(err);
	if (err->code != SB_E_FILE_TOO_LARGE)
		print_error("%s\n", err->msg);
	assert_int_equal(err->code, SB_E_FILE_TOO_LARGE);
	assert_int_equal(err->limit_bytes, 29);
	assert_int_equal(err->actual_bytes, 30);
	assert_non_null(strstr(err->msg, "refused at h4"));
	sb_err_free(err);
	char *h4 = sbt_path(h.dst, "h4");
	assert_int_equal(access(h4, F_OK), -1); /* refused before it was created */
	free(h4);
	rewind_fd(fd);
	xo.max_bytes = 30;
	SB_ASSERT_OK(sb_tar_extract_ex(fd, h.dst, &xo, NULL, NULL));
	close(fd);
	hostile_down(&h);

	/* a 1 GiB sparse file holding 5 bytes of data (one file system block) passes a 64 KiB
	 * limit */
	char *top = sbt_mkdtemp("sb-tar-sparse-limit");
	char *src = sbt_path(top, "src"), *dst = sbt_path(top, "dst");
	SB_ASSERT_OK(sb_fs_mkdir_p(src, 0755));
	assert_int_equal(sbt_sh("truncate -s 1G '%s/big' && printf hello | dd of='%s/big' bs=1 "
	                        "seek=4096 conv=notrunc 2>/dev/null",
	                        src, src),
	                 0);
	int afd = memfd();
	SB_ASSERT_OK(sb_tar_create(src, NULL, false, afd, NULL));
	rewind_fd(afd);
	xo.max_bytes = 65536;
	SB_ASSERT_OK(sb_tar_extract_ex(afd, dst, &xo, NULL, NULL));
	close(afd);
	char *big = sbt_path(dst, "big");
	struct stat st;
	assert_int_equal(stat(big, &st), 0);
	assert_int_equal(st.st_size, (off_t)1 << 30);
	free(big);
	free(src);
	free(dst);
	sbt_rmtree(top);
}

static void extract_rejects_garbage_truncation_and_empty_input(void **state)
{
	(void)state;
	struct hostile h;
	hostile_up(&h);
	/* garbage */
	int fd = memfd();
	char junk[4096];
	sbt_fill_random(junk, sizeof junk, 99);
	assert_int_equal(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
	sbt_expect_code(extract_from(fd, h.dst, NULL), SB_E_INVAL, "garbage");
	close(fd);
	/* empty input */
	fd = memfd();
	sbt_expect_code(extract_from(fd, h.dst, NULL), SB_E_INVAL, "empty input");
	close(fd);
	/* a valid archive cut in the middle of a member's data */
	char big[3000];
	memset(big, 'b', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	const struct member m[] = {{"big", AE_IFREG, big}};
	fd = build_archive(m, 1);
	assert_int_equal(ftruncate(fd, 512 + 1024), 0);
	sbt_expect_code(extract_from(fd, h.dst, NULL), SB_E_INVAL, "truncated");
	close(fd);
	/* a bad fd is an I/O error naming the target */
	sb_err *err = sb_tar_extract(-1, h.dst, NULL);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_IO);
	sb_err_free(err);
	hostile_down(&h);
}

static void create_reports_missing_dir_and_write_errors(void **state)
{
	(void)state;
	char *dir = sbt_mkdtemp("sb-tar");
	sbt_write_str(dir, "f", "x");
	int fd = memfd();
	char *missing = sbt_path(dir, "missing");
	sbt_expect_code(sb_tar_create(missing, NULL, false, fd, NULL), SB_E_NOTFOUND,
	                "missing dir");
	close(fd);
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	close(p[0]);
	void (*old)(int) = signal(SIGPIPE, SIG_IGN);
	uint64_t out = 7;
	sbt_expect_code(sb_tar_create(dir, NULL, false, p[1], &out), SB_E_IO, "closed pipe");
	signal(SIGPIPE, old);
	assert_int_equal(out, 0);
	close(p[1]);
	free(missing);
	sbt_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(round_trip_keeps_names_modes_links_and_empties),
	    cmocka_unit_test(round_trip_through_a_pipe),
	    cmocka_unit_test(members_are_sorted_relative_and_never_dot),
	    cmocka_unit_test(empty_selection_is_exactly_1024_zero_bytes),
	    cmocka_unit_test(skips_appledouble_and_excludes_at_any_depth),
	    cmocka_unit_test(follow_symlinks_archives_what_links_point_to),
	    cmocka_unit_test(interoperates_with_gnu_tar),
	    cmocka_unit_test(extract_refuses_hostile_members),
	    cmocka_unit_test(extract_refuses_absolute_members),
	    cmocka_unit_test(extract_refuses_writing_through_existing_symlinks),
	    cmocka_unit_test(extract_replaces_existing_entries),
	    cmocka_unit_test(extract_turns_hard_links_into_copies_and_skips_devices),
	    cmocka_unit_test(extract_tells_each_files_hash_as_written),
	    cmocka_unit_test(create_tells_the_hash_of_each_file_it_archives),
	    cmocka_unit_test(create_tells_a_shrunk_file_as_archived),
	    cmocka_unit_test(extract_limit_counts_copies_not_holes),
	    cmocka_unit_test(extract_rejects_garbage_truncation_and_empty_input),
	    cmocka_unit_test(create_reports_missing_dir_and_write_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
