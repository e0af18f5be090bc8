/* runtime.content_hash: a file's hashes (runtime/content_hash.c) are functions of the content
 * alone. The content hash (what a version-2 saved state holds): a sparse file and a dense file of
 * the same bytes hash the same; any changed byte, in data or in a zero region, or a different
 * length changes it; a 4 GiB sparse file is hashed without reading its holes (counted in the
 * bytes the process read, not timed). The plain hash (what snapshots compare): exactly the
 * SHA-256 of the bytes, sparse or dense, holes unread too. */
#include "harness.h"

#include "runtime/rt.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *dir;

static void hash_path_with(sb_err *(*hash)(int, const char *, unsigned char *, uint64_t *),
                           const char *name, unsigned char out[SB_SHA256_LEN], uint64_t *size)
{
	char *p = sbt_path(dir, name);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	SB_ASSERT_OK(hash(fd, p, out, size));
	close(fd);
	free(p);
}

static void hash_path(const char *name, unsigned char out[SB_SHA256_LEN], uint64_t *size)
{
	hash_path_with(sb_rt_content_hash, name, out, size);
}

/* A file of `size` bytes, zero but for `n` marks (offset, byte); sparse: by seeking, dense:
 * every zero written. */
static void make(const char *name, uint64_t size, bool sparse, const uint64_t *offs,
                 const unsigned char *bytes, size_t n)
{
	char *p = sbt_path(dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	if (sparse) {
		assert_int_equal(ftruncate(fd, (off_t)size), 0);
	} else {
		static char zeros[1 << 16];
		for (uint64_t w = 0; w < size;) {
			size_t k = size - w < sizeof zeros ? (size_t)(size - w) : sizeof zeros;
			assert_int_equal(pwrite(fd, zeros, k, (off_t)w), (ssize_t)k);
			w += k;
		}
	}
	for (size_t i = 0; i < n; i++)
		assert_int_equal(pwrite(fd, &bytes[i], 1, (off_t)offs[i]), 1);
	close(fd);
	free(p);
}

static int setup(void **state)
{
	(void)state;
	dir = sbt_mkdtemp("sb-content-hash");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sbt_rmtree(dir);
	return 0;
}

static void same_content_same_hash_whatever_the_layout(void **state)
{
	(void)state;
	const uint64_t size = 5u * 65536u + 123u;
	const uint64_t offs[] = {0, 70000, 3u * 65536u + 5u, size - 1};
	const unsigned char bytes[] = {'a', 'b', 'c', 'd'};
	make("sparse", size, true, offs, bytes, 4);
	make("dense", size, false, offs, bytes, 4);
	unsigned char hs[SB_SHA256_LEN], hd[SB_SHA256_LEN];
	uint64_t ss = 0, sd = 0;
	hash_path("sparse", hs, &ss);
	hash_path("dense", hd, &sd);
	assert_int_equal(ss, size);
	assert_int_equal(sd, size);
	assert_memory_equal(hs, hd, SB_SHA256_LEN);
}

static void any_difference_changes_the_hash(void **state)
{
	(void)state;
	const uint64_t size = 4u * 65536u;
	const uint64_t offs[] = {100, 200000};
	const unsigned char a[] = {'x', 'y'};
	const unsigned char b[] = {'x', 'z'}; /* one byte differs */
	const uint64_t offs_moved[] = {100, 200001};
	make("a", size, true, offs, a, 2);
	make("b", size, true, offs, b, 2);
	make("moved", size, true, offs_moved, a, 2);
	make("longer", size + 1, true, offs, a, 2);
	make("zeros", size, true, NULL, NULL, 0);
	make("zeros_longer", size + 65536, true, NULL, NULL, 0);
	const char *names[] = {"a", "b", "moved", "longer", "zeros", "zeros_longer"};
	unsigned char h[6][SB_SHA256_LEN];
	uint64_t sz;
	for (int i = 0; i < 6; i++)
		hash_path(names[i], h[i], &sz);
	for (int i = 0; i < 6; i++)
		for (int j = i + 1; j < 6; j++)
			if (memcmp(h[i], h[j], SB_SHA256_LEN) == 0) {
				print_error("%s and %s hash the same\n", names[i], names[j]);
				fail();
			}
}

/* Bytes this process has read by read(2) and pread(2) so far (/proc/self/io rchar). */
static uint64_t bytes_read_so_far(void)
{
	char *io = sbt_read("/proc/self", "io", NULL);
	assert_non_null(io);
	const char *p = strstr(io, "rchar: ");
	assert_non_null(p);
	uint64_t n = strtoull(p + 7, NULL, 10);
	free(io);
	return n;
}

/* Bytes read while hashing (with hash) a new sparse file of size bytes, one byte set at off. */
static uint64_t read_while_hashing(sb_err *(*hash)(int, const char *, unsigned char *, uint64_t *),
                                   const char *name, uint64_t size, uint64_t off)
{
	const unsigned char m[] = {'m'};
	make(name, size, true, &off, m, 1);
	uint64_t before = bytes_read_so_far();
	unsigned char h[SB_SHA256_LEN];
	uint64_t sz = 0;
	hash_path_with(hash, name, h, &sz);
	uint64_t read = bytes_read_so_far() - before;
	print_message("%s: a sparse file of %llu bytes hashed reading %llu bytes\n", name,
	              (unsigned long long)size, (unsigned long long)read);
	assert_int_equal(sz, size);
	return read;
}

static void holes_are_not_read(void **state)
{
	(void)state;
	/* its one data block (64 KiB), and whatever the page cache read ahead: never the holes */
	assert_true(read_while_hashing(sb_rt_content_hash, "huge", (uint64_t)4 << 30, 1000000) <
	            (uint64_t)1 << 20);
}

/* The plain hash is sha256sum's, whatever the layout: compared with SHA-256 of the same bytes
 * built in memory, for a sparse and a dense file, and the content hash differs from it. */
static void plain_hash_is_the_sha256_of_the_bytes(void **state)
{
	(void)state;
	const uint64_t size = 3u * 65536u + 77u;
	const uint64_t offs[] = {5, 65536u * 2u + 1u, size - 1};
	const unsigned char marks[] = {'p', 'q', 'r'};
	make("plain_sparse", size, true, offs, marks, 3);
	make("plain_dense", size, false, offs, marks, 3);
	unsigned char *bytes = sb_xcalloc(1, size);
	for (size_t i = 0; i < 3; i++)
		bytes[offs[i]] = marks[i];
	unsigned char want[SB_SHA256_LEN], sparse[SB_SHA256_LEN], dense[SB_SHA256_LEN],
	    content[SB_SHA256_LEN];
	sb_sha256_once(bytes, size, want);
	free(bytes);
	uint64_t ss = 0, sd = 0, sc = 0;
	hash_path_with(sb_rt_plain_hash, "plain_sparse", sparse, &ss);
	hash_path_with(sb_rt_plain_hash, "plain_dense", dense, &sd);
	hash_path("plain_dense", content, &sc);
	assert_int_equal(ss, size);
	assert_int_equal(sd, size);
	assert_memory_equal(sparse, want, SB_SHA256_LEN);
	assert_memory_equal(dense, want, SB_SHA256_LEN);
	assert_memory_not_equal(content, want, SB_SHA256_LEN);
}

static void plain_hash_reads_no_holes(void **state)
{
	(void)state;
	assert_true(read_while_hashing(sb_rt_plain_hash, "plain_huge", (uint64_t)256 << 20,
	                               3000000) < (uint64_t)1 << 20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(same_content_same_hash_whatever_the_layout),
	    cmocka_unit_test(any_difference_changes_the_hash),
	    cmocka_unit_test(holes_are_not_read),
	    cmocka_unit_test(plain_hash_is_the_sha256_of_the_bytes),
	    cmocka_unit_test(plain_hash_reads_no_holes),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
