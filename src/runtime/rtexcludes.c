/* The runtime's exclude sets (spec §2.5, §2.8, §3.2): heavy build directories at any depth, the
 * top-level .git, the overlay and the caller's literal paths. One sb_excludes list drives the
 * archives, the baseline and both restore snapshots; this file also derives the subset a remote
 * `tar -c` can apply exactly, so the remote side never drops more than the host matcher would.
 */
#include "rt.h"

#include <string.h>
#include <stdlib.h>

static const char *const heavy_dirs[] = {
    "node_modules", "vendor", "dist", "build", "out", "coverage", ".next", ".turbo", ".cache",
};

static sb_err *add_user(sb_excludes *ex, const char *p, const char *what)
{
	sb_err *err = sb_excludes_check_user(p);
	if (err)
		return sb_err_prefix(err, "%s \"%s\"", what, p);
	sb_excludes_add(ex, p);
	return NULL;
}

sb_err *sb_rt_build_excludes(const char *overlay, char *const *caller, char *const *preserve,
                             sb_excludes *archive, sb_excludes *restore)
{
	sb_err *err = NULL;
	for (size_t i = 0; i < sizeof heavy_dirs / sizeof heavy_dirs[0]; i++) {
		sb_excludes_add_dir(archive, heavy_dirs[i]);
		sb_excludes_add_dir(restore, heavy_dirs[i]);
	}
	const char *fixed[] = {".git", ".git/*", overlay, SB_RT_STAGING_DIR};
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
		sb_excludes_add(archive, fixed[i]);
		sb_excludes_add(restore, fixed[i]);
	}
	for (size_t i = 0; caller && caller[i] && !err; i++) {
		err = add_user(archive, caller[i], "workspace exclude");
		if (!err)
			err = add_user(restore, caller[i], "workspace exclude");
	}
	for (size_t i = 0; preserve && preserve[i] && !err; i++)
		err = add_user(restore, preserve[i], "preserve-absent-on-restore path");
	return err;
}

bool sb_rt_name_ignored(const char *name)
{
	return name[0] == '.' && name[1] == '_';
}

static bool in_vec(char **v, const char *s)
{
	for (size_t i = 0; v && v[i]; i++)
		if (strcmp(v[i], s) == 0)
			return true;
	return false;
}

static void push_unique(char ***v, const char *s, size_t n)
{
	char *t = sb_xstrndup(s, n);
	if (t[0] && !strchr(t, '/') && !in_vec(*v, t))
		sb_strv_push(v, t);
	free(t);
}

void sb_rt_remote_tar_filters(const sb_excludes *ex, char ***segments, char ***toplevel)
{
	*segments = NULL;
	*toplevel = NULL;
	for (size_t i = 0; ex->patterns && ex->patterns[i]; i++) {
		const char *p = ex->patterns[i];
		size_t n = strlen(p);
		if (sb_str_has_prefix(p, "*/")) {
			/* "*\/X" and "*\/X/\*": segment X at any depth, which is exactly what an
			 * unanchored `tar --exclude X` does for a name without wildcards. */
			const char *x = p + 2;
			size_t xn = n - 2;
			if (sb_str_has_suffix(x, "/*"))
				xn -= 2;
			push_unique(segments, x, xn);
		} else if (!sb_str_has_suffix(p, "/*") && !strchr(p, '/')) {
			push_unique(toplevel, p, n); /* literal top-level name */
		}
		/* "X/\*" and literal paths with a slash: downloaded, dropped on the host. */
	}
}
