/* A lease on disk (lease.c): <state>/leases/<id>/lease.json, written atomically whenever the
 * lease's info changes and read to find a sandbox again (limits, owner, init's host pid and
 * start time, cgroups); and run/setup.cgroups, the cgroups a creation is about to make,
 * written before it makes any. */
#include "sandbox_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "sb_json.h"

#define LEASE_JSON_MAX (256u * 1024u)

static json_t *limits_json(const sb_sandbox_limits *l)
{
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "memory_bytes",
	                 (json_int_t)l->memory_bytes, "pids", (json_int_t)l->pids, "cpu_weight",
	                 (json_int_t)l->cpu_weight, "nofile", (json_int_t)l->nofile, "nproc",
	                 (json_int_t)l->nproc, "ttl_s", (json_int_t)l->ttl_s, "spool_bytes",
	                 (json_int_t)l->spool_bytes);
}

static json_t *enforced_json(const sb_sandbox_enforced *e)
{
	return json_pack("{s:b,s:b,s:b,s:b,s:b,s:b}", "memory", e->memory, "pids", e->pids, "cpu",
	                 e->cpu, "rlimits", e->rlimits, "seccomp", e->seccomp, "ttl", e->ttl);
}

/* Atomic replace without fsync: lease.json must survive our crash, not a power cut, and a
 * fsync would dominate the lease creation time. The temp file has a name of its own, so that
 * two threads saving one lease never write into each other's. */
static sb_err *write_replace(const char *path, const char *data, size_t len)
{
	sb_atomic_file af;
	sb_err *err = sb_atomic_open(path, 0600, &af);
	if (err)
		return err;
	if ((err = sb_write_all(af.fd, data, len))) {
		sb_atomic_abort(&af);
		return sb_err_prefix(err, "writing %s", path);
	}
	return sb_atomic_commit_nosync(&af);
}

sb_err *sb_lease_save(sb_sandbox *sb)
{
	const sb_sandbox_info *i = &sb->info;
	json_t *cg = json_array();
	for (size_t k = 0; sb->cgroups && sb->cgroups[k]; k++)
		json_array_append_new(cg, json_string(sb->cgroups[k]));
	json_t *j =
	    json_pack("{s:s,s:b,s:o,s:o,s:I,s:I,s:i,s:I,s:I,s:I,s:s,s:s,s:o}", "id", i->id,
	              "network", i->network, "limits", limits_json(&i->limits), "enforced",
	              enforced_json(&i->enforced), "created_at_ms", (json_int_t)i->created_at_ms,
	              "expires_at_ms", (json_int_t)i->expires_at_ms, "init_pid", i->init_pid,
	              "init_start", (json_int_t)sb->init_start, "host_uid", (json_int_t)i->host_uid,
	              "host_gid", (json_int_t)i->host_gid, "workspace_mount", sb->workspace_mount,
	              "cgroup_version", i->cgroup_version, "cgroups", cg);
	if (j)
		json_object_set_new(j, "network_mode", json_string(sb_net_mode_name(i->net_mode)));
	if (!j)
		return sb_err_new(SB_E_INTERNAL, "encoding lease.json of %s", sb->id);
	char *text = sb_json_dumps(j);
	json_decref(j);
	char *path = sb_strfmt("%s/lease.json", sb->lease_dir);
	sb_err *err = write_replace(path, text, strlen(text));
	free(path);
	free(text);
	return err;
}

static sb_err *get_u64(const json_t *o, const char *k, uint64_t *out)
{
	int64_t v = 0;
	sb_err *err = sb_json_get_int(o, k, false, 0, INT64_MAX, &v);
	if (!err)
		*out = (uint64_t)v;
	return err;
}

#define SETUP_RECORD "setup.cgroups"

/* The cgroups a creation is about to make (dirs: every one it may), one path a line, in run/
 * before it makes any: a process killed before lease.json exists (a daemon mid-acquire)
 * leaves them for the destroy of the unfinished lease to find (open_common). */
sb_err *sb_lease_setup_save(const sb_sandbox *sb, char *const *dirs)
{
	sb_buf b = SB_BUF_INIT;
	for (size_t k = 0; dirs && dirs[k]; k++) {
		sb_buf_appends(&b, dirs[k]);
		sb_buf_appends(&b, "\n");
	}
	char *path = sb_strfmt("%s/%s", sb->run_dir, SETUP_RECORD);
	sb_err *err = write_replace(path, sb_buf_cstr(&b), b.len);
	free(path);
	sb_buf_deinit(&b);
	return err;
}

/* Read the setup record of an unfinished creation; false when there is none. Only paths of
 * this lease's own cgroups (.../sandbar/<id>-<random>) are taken. */
bool sb_lease_setup_load(sb_sandbox *sb)
{
	char *path = sb_strfmt("%s/%s", sb->run_dir, SETUP_RECORD);
	sb_buf b = SB_BUF_INIT;
	sb_err *err = sb_read_file(path, LEASE_JSON_MAX, &b);
	free(path);
	if (err) {
		sb_err_free(err);
		sb_buf_deinit(&b);
		return false;
	}
	char *mine = sb_strfmt("/sandbar/%s-", sb->id), *save = NULL;
	for (char *l = strtok_r((char *)sb_buf_cstr(&b), "\n", &save); l;
	     l = strtok_r(NULL, "\n", &save))
		if (strstr(l, mine) && !strstr(l, "/../"))
			sb_strv_push(&sb->cgroups, l);
	free(mine);
	sb_buf_deinit(&b);
	return true;
}

sb_err *sb_lease_load(sb_sandbox *sb)
{
	char *path = sb_strfmt("%s/lease.json", sb->lease_dir);
	sb_buf b = SB_BUF_INIT;
	json_t *j = NULL;
	sb_err *err = sb_read_file(path, LEASE_JSON_MAX, &b);
	if (err) {
		if (err->sys_errno == ENOENT) {
			sb_err_free(err);
			err = sb_err_new(SB_E_NOTFOUND, "no lease %s (no %s)", sb->id, path);
		}
		goto out;
	}
	if ((err = sb_json_parse_object(b.data, b.len, LEASE_JSON_MAX, 8, &j)))
		goto out;
	sb_sandbox_info *i = &sb->info;
	const char *mount = NULL, *cgv = NULL;
	int64_t pid = 0, start = 0;
	const json_t *lim = json_object_get(j, "limits"), *enf = json_object_get(j, "enforced");
	bool b1 = false;
	const json_t *nm = json_object_get(j, "network_mode");
	if (json_is_string(nm) && sb_net_mode_parse(json_string_value(nm)) >= 0)
		i->net_mode = (sb_net_mode)sb_net_mode_parse(json_string_value(nm));
	if ((err = sb_json_get_bool(j, "network", false, &i->network)) ||
	    (err = sb_json_get_int(j, "created_at_ms", false, 0, INT64_MAX, &i->created_at_ms)) ||
	    (err = sb_json_get_int(j, "expires_at_ms", false, 0, INT64_MAX, &i->expires_at_ms)) ||
	    (err = sb_json_get_int(j, "init_pid", true, 1, INT32_MAX, &pid)) ||
	    (err = sb_json_get_int(j, "init_start", false, -1, INT64_MAX, &start)) ||
	    (err = sb_json_get_int(j, "host_uid", true, 0, UINT32_MAX, &i->host_uid)) ||
	    (err = sb_json_get_int(j, "host_gid", true, 0, UINT32_MAX, &i->host_gid)) ||
	    (err = sb_json_get_str(j, "workspace_mount", true, &mount)) ||
	    (err = sb_json_get_str(j, "cgroup_version", false, &cgv)) ||
	    (err = sb_json_get_strv(j, "cgroups", false, 64, &sb->cgroups)))
		goto bad;
	if (json_is_object(lim) &&
	    ((err = get_u64(lim, "memory_bytes", &i->limits.memory_bytes)) ||
	     (err = get_u64(lim, "pids", &i->limits.pids)) ||
	     (err = get_u64(lim, "cpu_weight", &i->limits.cpu_weight)) ||
	     (err = get_u64(lim, "nofile", &i->limits.nofile)) ||
	     (err = get_u64(lim, "nproc", &i->limits.nproc)) ||
	     (err = get_u64(lim, "spool_bytes", &i->limits.spool_bytes)) ||
	     (err = sb_json_get_int(lim, "ttl_s", false, 0, INT64_MAX, &i->limits.ttl_s))))
		goto bad;
	if (json_is_object(enf)) {
		struct {
			const char *k;
			bool *v;
		} f[] = {{"memory", &i->enforced.memory},   {"pids", &i->enforced.pids},
		         {"cpu", &i->enforced.cpu},         {"rlimits", &i->enforced.rlimits},
		         {"seccomp", &i->enforced.seccomp}, {"ttl", &i->enforced.ttl}};
		for (size_t k = 0; k < sizeof f / sizeof f[0]; k++) {
			b1 = false;
			if ((err = sb_json_get_bool(enf, f[k].k, false, &b1)))
				goto bad;
			*f[k].v = b1;
		}
	}
	i->init_pid = (int)pid;
	sb->init_start = start;
	sb->workspace_mount = sb_xstrdup(mount);
	snprintf(i->cgroup_version, sizeof i->cgroup_version, "%s", cgv ? cgv : "");
	goto out;
bad:
	err = sb_err_prefix(err, "lease %s: corrupt %s", sb->id, path);
out:
	json_decref(j);
	sb_buf_deinit(&b);
	free(path);
	return err;
}

sb_err *sb_lease_state_read(const sb_sandbox *sb, const char *name, struct json_t **out)
{
	*out = NULL;
	char *path = sb_strfmt("%s/%s", sb->run_dir, name);
	sb_buf b = SB_BUF_INIT;
	bool found;
	sb_err *err = sb_read_file_if_any(path, 1u << 20, &b, &found);
	free(path);
	if (!err && found)
		err = sb_json_parse_object(b.data, b.len, 1u << 20, 10, out);
	if (b.data) /* it may hold a CA key or a token: the parsed copy is all that stays */
		memset(b.data, 0, b.len);
	sb_buf_deinit(&b);
	return err;
}
