/* A file's hashes, from one pass over its data regions (holes are never read: SEEK_DATA skips
 * them, and they are fed as zeros).
 *
 * The plain SHA-256 of the bytes (what sha256sum prints) is what snapshots and manifests compare
 * (sb_rt_plain_hash). The content hash (sb_rt_content_hash) is what a runtime saved with state
 * version 2 holds: SHA-256 over the file's 64 KiB blocks (at fixed offsets), where each run of
 * all-zero blocks is fed as one record of its length instead of its bytes. It is computed only to
 * compare a live file with such a saved baseline; taking both on every file cost twice the
 * SHA-256 work, most of a whole-tree restore's time after the transfer.
 *
 * The content hash's stream is 'Z' + 8-byte little-endian length for a zero run, 'D' + the bytes
 * for any other block. It parses back one way only (every data block but the last is exactly
 * 64 KiB), so two different contents never feed the same stream. */
#include "rt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLOCK (64u * 1024u)

struct content_hash {
	sb_sha256 *sha;   /* the content hash, or NULL */
	uint64_t zeros;   /* length of the content hash's zero run not fed yet */
	sb_sha256 *plain; /* the plain SHA-256 of the bytes (what sha256sum prints), or NULL */
};

/* Holes read as zeros: the plain hash needs their bytes. */
static void feed_plain_zeros(struct content_hash *h, const unsigned char *zero, uint64_t n)
{
	while (h->plain && n) {
		size_t k = n < BLOCK ? (size_t)n : BLOCK;
		sb_sha256_update(h->plain, zero, k);
		n -= k;
	}
}

static void flush_zeros(struct content_hash *h)
{
	if (!h->sha || !h->zeros)
		return;
	unsigned char rec[9] = {'Z'};
	for (int i = 0; i < 8; i++)
		rec[1 + i] = (unsigned char)(h->zeros >> (8 * i));
	sb_sha256_update(h->sha, rec, sizeof rec);
	h->zeros = 0;
}

static bool all_zero(const unsigned char *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

static void feed_block(struct content_hash *h, const unsigned char *p, size_t n)
{
	if (h->plain)
		sb_sha256_update(h->plain, p, n);
	if (!h->sha)
		return;
	if (all_zero(p, n)) {
		h->zeros += n;
		return;
	}
	flush_zeros(h);
	sb_sha256_update(h->sha, "D", 1);
	sb_sha256_update(h->sha, p, n);
}

/* Read exactly n bytes at off; fewer means the file shrank while it was hashed. */
static sb_err *read_block(int fd, const char *path, unsigned char *buf, size_t n, uint64_t off)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = pread(fd, buf + got, n - got, (off_t)(off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return sb_err_sys(errno, "reading %s", path);
		if (r == 0)
			return sb_err_new(SB_E_CONFLICT, "%s shrank while it was being hashed",
			                  path);
		got += (size_t)r;
	}
	return NULL;
}

/* Where the next data at or after pos starts: size when only a hole is left, pos itself when
 * the file system cannot say (then every block is read). */
static uint64_t next_data(int fd, uint64_t pos, uint64_t size)
{
	off_t d = lseek(fd, (off_t)pos, SEEK_DATA);
	if (d < 0)
		return errno == ENXIO ? size : pos;
	return (uint64_t)d < size ? (uint64_t)d : size;
}

/* Either or both of the hashes (a NULL out is not computed), from the same reads. */
static sb_err *file_hashes(int fd, const char *path, unsigned char out[SB_SHA256_LEN],
                           unsigned char plain[SB_SHA256_LEN], uint64_t *size_out)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return sb_err_sys(errno, "stat %s", path);
	uint64_t size = st.st_size > 0 ? (uint64_t)st.st_size : 0;
	bool has_holes = (uint64_t)st.st_blocks * 512 < size;
	struct content_hash h = {.sha = out ? sb_sha256_new() : NULL,
	                         .plain = plain ? sb_sha256_new() : NULL};
	unsigned char *buf = sb_xmalloc(BLOCK);
	unsigned char *zero = plain && has_holes ? sb_xcalloc(1, BLOCK) : NULL;
	sb_err *err = NULL;
	uint64_t pos = 0;
	while (!err && pos < size) {
		if (has_holes) {
			/* Whole blocks before the next data are zero without reading them. */
			uint64_t d = next_data(fd, pos, size);
			uint64_t skip_to = d >= size ? size : d - d % BLOCK;
			if (skip_to > pos) {
				h.zeros += skip_to - pos;
				feed_plain_zeros(&h, zero, skip_to - pos);
				pos = skip_to;
				continue;
			}
		}
		size_t n = size - pos < BLOCK ? (size_t)(size - pos) : BLOCK;
		err = read_block(fd, path, buf, n, pos);
		if (!err)
			feed_block(&h, buf, n);
		pos += n;
	}
	flush_zeros(&h);
	if (!err) {
		if (out)
			sb_sha256_final(h.sha, out);
		if (plain)
			sb_sha256_final(h.plain, plain);
		*size_out = size;
	}
	free(buf);
	free(zero);
	if (h.sha)
		sb_sha256_free(h.sha);
	if (h.plain)
		sb_sha256_free(h.plain);
	return err;
}

sb_err *sb_rt_content_hash(int fd, const char *path, unsigned char out[SB_SHA256_LEN],
                           uint64_t *size_out)
{
	return file_hashes(fd, path, out, NULL, size_out);
}

sb_err *sb_rt_plain_hash(int fd, const char *path, unsigned char out[SB_SHA256_LEN],
                         uint64_t *size_out)
{
	return file_hashes(fd, path, NULL, out, size_out);
}
