/* The runtime's two lists (DESIGN.md §9.4). The transfer set (what staging sends and restore
 * fetches) leaves out only the overlay, sandbar's own directories, the caller's literal paths
 * and whatever the user's rules exclude; it includes .git. The merge set (baseline, snapshots,
 * three-way merge) is the transfer set without the top-level .git and the preserved paths:
 * git's directory never comes back file by file. This file also derives the subset a remote
 * `tar -c` can apply exactly, so the remote side never drops more than the host matcher would.
 */
#include "rt.h"

#include <errno.h>
#include <string.h>
#include <stdlib.h>

#define SANDBARIGNORE ".sandbarignore"
#define SANDBARIGNORE_MAX (1024 * 1024)

static sb_err *add_user(sb_excludes *ex, const char *p, const char *what)
{
	sb_err *err = sb_excludes_check_user(p);
	if (err)
		return sb_err_prefix(err, "%s \"%s\"", what, p);
	sb_excludes_add(ex, p);
	return NULL;
}

sb_err *sb_rt_build_matcher(const char *local_dir, char *const *patterns, const char *preset,
                            bool gitignore, bool no_sandbarignore, sb_matcher **out)
{
	*out = NULL;
	const char *preset_rules = NULL;
	if (preset && *preset) {
		preset_rules = sb_matcher_preset_rules(preset);
		if (!preset_rules)
			return sb_err_new(
			    SB_E_INVAL, "unknown exclude preset \"%s\" (known: paperclip)", preset);
	}
	sb_buf ignore_file = SB_BUF_INIT;
	sb_err *err = NULL;
	if (!no_sandbarignore) {
		char *path = sb_strfmt("%s/%s", local_dir, SANDBARIGNORE);
		err = sb_read_file(path, SANDBARIGNORE_MAX, &ignore_file);
		if (err && (err->sys_errno == ENOENT || err->code == SB_E_NOTFOUND)) {
			sb_err_free(err);
			err = NULL;
		} else if (err) {
			err = sb_err_prefix(err, "reading %s", path);
		}
		free(path);
	}
	bool any = preset_rules || gitignore || ignore_file.len || (patterns && patterns[0]);
	sb_matcher *m = NULL;
	if (!err && any)
		err = sb_matcher_new(local_dir, &m);
	if (!err && m && preset_rules)
		err = sb_matcher_add_rules(m, SB_RULE_PRESET, preset_rules);
	if (!err && m && ignore_file.len)
		err = sb_matcher_add_rules(m, SB_RULE_SANDBARIGNORE, sb_buf_cstr(&ignore_file));
	for (size_t i = 0; !err && m && patterns && patterns[i]; i++) {
		if (strchr(patterns[i], '\n') || strchr(patterns[i], '\r'))
			err = sb_err_new(SB_E_INVAL, "exclude pattern \"%s\" spans lines",
			                 patterns[i]);
		else
			err = sb_matcher_add_rules(m, SB_RULE_EXCLUDE, patterns[i]);
	}
	if (!err && m && gitignore)
		err = sb_matcher_use_gitignore(m);
	sb_buf_deinit(&ignore_file);
	if (err) {
		sb_matcher_free(m);
		return err;
	}
	*out = m;
	return NULL;
}

sb_err *sb_rt_build_excludes(const char *overlay, char *const *caller, char *const *preserve,
                             sb_matcher *matcher, sb_excludes *archive, sb_excludes *restore)
{
	sb_err *err = NULL;
	const char *fixed[] = {overlay, SB_RT_STAGING_DIR};
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
		sb_excludes_add(archive, fixed[i]);
		sb_excludes_add(restore, fixed[i]);
	}
	sb_excludes_add(restore, ".git");
	archive->matcher = matcher;
	restore->matcher = matcher;
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
	char **names = sb_matcher_far_side_names(ex->matcher);
	for (size_t i = 0; names && names[i]; i++)
		push_unique(segments, names[i], strlen(names[i]));
	sb_strv_free(names);
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
