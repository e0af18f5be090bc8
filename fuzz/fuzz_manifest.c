/* Fuzz target: the far side's manifest (src/base/manifest.c) must never crash, and whatever it
 * accepts must be sorted, unique, relative, and hashed only where a file is listed. */
#include <sandbar/base.h>

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sb_manifest m;
	sb_err *err = sb_manifest_parse((const char *)data, size, &m);
	if (err) {
		if (m.n || m.v || m.untrusted)
			abort(); /* a failed parse hands nothing back */
		sb_err_free(err);
		return 0;
	}
	for (size_t i = 0; i < m.n; i++) {
		const sb_manifest_entry *e = &m.v[i];
		if (!e->path[0] || e->path[0] == '/' ||
		    (i && strcmp(m.v[i - 1].path, e->path) >= 0))
			abort();
		if (e->hashed && e->type != SB_FT_FILE)
			abort();
		if ((e->type == SB_FT_SYMLINK) != (e->target != NULL))
			abort();
		if (sb_manifest_find(&m, e->path) != e)
			abort();
	}
	sb_manifest_deinit(&m);
	return 0;
}
