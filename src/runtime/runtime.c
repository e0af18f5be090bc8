/* The prepared runtime's accessors and teardown, the restore report, and the names of the
 * conflict policies and kinds.
 */
#include "rt.h"

#include <stdlib.h>
#include <string.h>

const char *sb_runtime_workspace_local_dir(const sb_runtime *rt)
{
	return rt->local_dir;
}

const char *sb_runtime_workspace_remote_dir(const sb_runtime *rt)
{
	return rt->remote_dir;
}

const char *sb_runtime_root_dir(const sb_runtime *rt)
{
	return rt->root_dir;
}

const char *sb_runtime_asset_dir(const sb_runtime *rt, const char *key)
{
	for (size_t i = 0; rt->asset_keys && rt->asset_keys[i]; i++)
		if (strcmp(rt->asset_keys[i], key) == 0)
			return rt->asset_dirs[i];
	return NULL;
}

bool sb_runtime_uses_native(const sb_runtime *rt)
{
	return rt->native;
}

uint64_t sb_runtime_bytes_up(const sb_runtime *rt)
{
	return rt->bytes_up;
}

const sb_runtime_excluded *sb_runtime_excluded_stats(const sb_runtime *rt)
{
	return &rt->excluded;
}

void sb_runtime_free(sb_runtime *rt)
{
	if (!rt)
		return;
	free(rt->shell);
	free(rt->local_dir);
	free(rt->remote_dir);
	free(rt->root_dir);
	free(rt->overlay);
	free(rt->adapter_key);
	free(rt->lock_root);
	free(rt->provider_key);
	free(rt->lease_id);
	sb_strv_free(rt->asset_keys);
	sb_strv_free(rt->asset_dirs);
	sb_excludes_deinit(&rt->archive_ex);
	sb_excludes_deinit(&rt->restore_ex);
	sb_matcher_free(rt->matcher);
	sb_strv_free(rt->excluded.special_paths);
	sb_strv_free(rt->excluded.hardlink_paths);
	sb_snap_deinit(&rt->baseline);
	sb_snap_deinit(&rt->git_snap);
	free(rt);
}

void sb_restore_report_init(sb_restore_report *r)
{
	memset(r, 0, sizeof *r);
}

void sb_restore_report_deinit(sb_restore_report *r)
{
	sb_strv_free(r->added);
	sb_strv_free(r->changed);
	sb_strv_free(r->deleted);
	for (size_t i = 0; i < r->n_conflicts; i++) {
		free(r->conflicts[i].path);
		free(r->conflicts[i].remote_copy);
	}
	free(r->conflicts);
	free(r->branch);
	free(r->git_warning);
	sb_restore_report_init(r);
}

static const char *const policy_names[] = {
    [SB_CONFLICT_KEEP_LOCAL] = "keep-local",
    [SB_CONFLICT_TAKE_REMOTE] = "take-remote",
    [SB_CONFLICT_FAIL] = "fail",
};

const char *sb_conflict_policy_name(sb_conflict_policy p)
{
	if ((unsigned)p >= sizeof policy_names / sizeof policy_names[0])
		return "unknown";
	return policy_names[p];
}

sb_err *sb_conflict_policy_parse(const char *s, sb_conflict_policy *out)
{
	for (unsigned i = 0; i < sizeof policy_names / sizeof policy_names[0]; i++) {
		if (s && strcmp(s, policy_names[i]) == 0) {
			*out = (sb_conflict_policy)i;
			return NULL;
		}
	}
	return sb_err_new(SB_E_INVAL,
	                  "unknown conflict policy \"%s\": use keep-local, take-remote or fail",
	                  s ? s : "(null)");
}

const char *sb_conflict_kind_name(sb_conflict_kind k)
{
	switch (k) {
	case SB_CONFLICT_BOTH_CHANGED:
		return "changed on both sides";
	case SB_CONFLICT_REMOTE_DELETED:
		return "deleted in the sandbox, changed locally";
	case SB_CONFLICT_LOCAL_DELETED:
		return "deleted locally, changed in the sandbox";
	case SB_CONFLICT_BLOCKED:
		return "blocked by a local entry";
	}
	return "unknown";
}
