/* Hashes taken while a fetched tree was extracted (sb_tar_extract_opts.on_file), handed to the
 * snapshot of that tree so the merge does not read every file a second time to hash it. A hash
 * is used only for a file whose size and ctime are still what they were when it was written:
 * any later write changes the ctime, and nothing sets a ctime back. */
#include "rt.h"

#include <stdlib.h>
#include <string.h>

struct sb_rt_known_file {
	char *path;
	uint64_t size;
	int64_t ctime_ns;
	size_t order; /* a path extracted twice: the later member is what the file holds */
	unsigned char sha[SB_SHA256_LEN];
};

void sb_rt_known_init(sb_rt_known *k)
{
	memset(k, 0, sizeof *k);
}

void sb_rt_known_deinit(sb_rt_known *k)
{
	for (size_t i = 0; i < k->n; i++)
		free(k->v[i].path);
	free(k->v);
	sb_rt_known_init(k);
}

void sb_rt_known_add(void *ud, const char *relpath, uint64_t size, int64_t ctime_ns,
                     const unsigned char sha[SB_SHA256_LEN])
{
	sb_rt_known *k = ud;
	if (k->n == k->cap) {
		k->cap = k->cap ? k->cap * 2 : 256;
		k->v = sb_xrealloc(k->v, k->cap * sizeof *k->v);
	}
	struct sb_rt_known_file *f = &k->v[k->n];
	f->path = sb_xstrdup(relpath);
	f->size = size;
	f->ctime_ns = ctime_ns;
	f->order = k->n++;
	memcpy(f->sha, sha, SB_SHA256_LEN);
}

static int by_path_then_order(const void *pa, const void *pb)
{
	const struct sb_rt_known_file *a = pa, *b = pb;
	int c = strcmp(a->path, b->path);
	return c ? c : a->order < b->order ? -1 : a->order > b->order;
}

size_t sb_rt_known_apply(sb_rt_known *k, sb_snap *s)
{
	if (k->n > 1)
		qsort(k->v, k->n, sizeof *k->v, by_path_then_order);
	size_t used = 0, i = 0;
	for (size_t j = 0; j < s->n && i < k->n; j++) {
		sb_snap_entry *e = &s->v[j];
		while (i < k->n && strcmp(k->v[i].path, e->path) < 0)
			i++;
		while (i + 1 < k->n && strcmp(k->v[i + 1].path, e->path) == 0)
			i++; /* the last member of that path */
		if (i == k->n || strcmp(k->v[i].path, e->path) != 0)
			continue;
		const struct sb_rt_known_file *f = &k->v[i];
		if (e->type != SB_FT_FILE || e->hashed || e->size != f->size ||
		    e->seen.ctime_ns != f->ctime_ns)
			continue;
		memcpy(e->sha, f->sha, SB_SHA256_LEN);
		e->hashed = true;
		e->content_digest = false;
		used++;
	}
	return used;
}

sb_tar_extract_opts sb_rt_fetch_extract_opts(const sb_rt_fetch *f)
{
	return (sb_tar_extract_opts){.max_bytes = f->max_extracted,
	                             .on_file = f->known ? sb_rt_known_add : NULL,
	                             .on_file_ud = f->known};
}
