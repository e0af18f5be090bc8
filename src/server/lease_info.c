/* Lease records: their lifetime and their JSON form, which is both the API's "Lease" object
 * (docs/api.md) and what the store keeps, so the two cannot disagree. */
#include "store.h"

#include <stdlib.h>
#include <string.h>
#include "sb_json.h"

static const char *state_names[] = {"pending", "active", "destroying", "destroyed", "lost"};

const char *sbs_lease_state_name(sbs_lease_state s)
{
	return (unsigned)s < 5 ? state_names[s] : "unknown";
}

static int state_from_name(const char *n)
{
	for (int i = 0; i < 5; i++)
		if (strcmp(n, state_names[i]) == 0)
			return i;
	return -1;
}

void sbs_lease_info_init(sbs_lease_info *li)
{
	memset(li, 0, sizeof *li);
}

void sbs_lease_info_deinit(sbs_lease_info *li)
{
	free(li->acquisition_id);
	free(li->fingerprint);
	free(li->issue_id);
	free(li->run_id);
	free(li->reuse_scope);
	free(li->reuse_key);
	free(li->reuse_fingerprint);
	free(li->reason);
	json_decref(li->metadata);
	json_decref(li->net);
	json_decref(li->mounts);
	memset(li, 0, sizeof *li);
}

const char *sbs_lease_info_sandbox_id(const sbs_lease_info *li)
{
	return li->sandbox_id[0] ? li->sandbox_id : li->id;
}

static char *dup_or_null(const char *s)
{
	return s ? sb_xstrdup(s) : NULL;
}

void sbs_lease_info_copy(sbs_lease_info *dst, const sbs_lease_info *src)
{
	*dst = *src;
	dst->acquisition_id = dup_or_null(src->acquisition_id);
	dst->fingerprint = dup_or_null(src->fingerprint);
	dst->issue_id = dup_or_null(src->issue_id);
	dst->run_id = dup_or_null(src->run_id);
	dst->reuse_scope = dup_or_null(src->reuse_scope);
	dst->reuse_key = dup_or_null(src->reuse_key);
	dst->reuse_fingerprint = dup_or_null(src->reuse_fingerprint);
	dst->reason = dup_or_null(src->reason);
	dst->metadata = src->metadata ? json_deep_copy(src->metadata) : NULL;
	dst->net = src->net ? json_deep_copy(src->net) : NULL;
	dst->mounts = src->mounts ? json_deep_copy(src->mounts) : NULL;
}

static void set_str(json_t *j, const char *k, const char *v)
{
	json_object_set_new(j, k, v ? json_string(v) : json_null());
}

static void set_time(json_t *j, const char *k, int64_t ms)
{
	if (!ms) {
		json_object_set_new(j, k, json_null());
		return;
	}
	char t[SB_ISO8601_LEN];
	sb_iso8601(ms, t);
	json_object_set_new(j, k, json_string(t));
}

json_t *sbs_lease_info_json(const sbs_lease_info *li)
{
	json_t *j = json_object();
	json_object_set_new(j, "id", json_string(li->id));
	json_object_set_new(j, "sandbox_id", json_string(sbs_lease_info_sandbox_id(li)));
	json_object_set_new(j, "state", json_string(sbs_lease_state_name(li->state)));
	set_str(j, "acquisition_id", li->acquisition_id);
	set_str(j, "fingerprint", li->fingerprint);
	set_str(j, "issue_id", li->issue_id);
	set_str(j, "run_id", li->run_id);
	set_str(j, "reuse_scope", li->reuse_scope);
	set_str(j, "reuse_key", li->reuse_key);
	set_str(j, "reuse_fingerprint", li->reuse_fingerprint);
	set_str(j, "reason", li->reason);
	/* the network object (issue 14); live proxy counters are added by the routes */
	json_object_set_new(j, "network",
	                    li->net ? json_deep_copy(li->net)
	                            : json_pack("{s:s}", "mode", li->network ? "full" : "none"));
	json_object_set_new(j, "mounts", li->mounts ? json_deep_copy(li->mounts) : json_array());
	json_object_set_new(j, "ttl_s", json_integer(li->ttl_s));
	json_t *lim = json_object();
	json_object_set_new(lim, "memory_bytes", json_integer((json_int_t)li->limits.memory_bytes));
	json_object_set_new(lim, "pids", json_integer((json_int_t)li->limits.pids));
	json_object_set_new(lim, "cpu_weight", json_integer((json_int_t)li->limits.cpu_weight));
	json_object_set_new(lim, "nofile", json_integer((json_int_t)li->limits.nofile));
	json_object_set_new(lim, "nproc", json_integer((json_int_t)li->limits.nproc));
	json_object_set_new(
	    lim, "tmpfs_bytes",
	    json_integer((json_int_t)(li->limits.memory_bytes ? li->limits.memory_bytes
	                                                      : SB_SANDBOX_TMPFS_DEFAULT)));
	json_object_set_new(j, "limits", lim);
	json_t *enf = json_object();
	json_object_set_new(enf, "memory", json_boolean(li->enforced.memory));
	json_object_set_new(enf, "pids", json_boolean(li->enforced.pids));
	json_object_set_new(enf, "cpu", json_boolean(li->enforced.cpu));
	json_object_set_new(enf, "rlimits", json_boolean(li->enforced.rlimits));
	json_object_set_new(enf, "seccomp", json_boolean(li->enforced.seccomp));
	json_object_set_new(enf, "ttl", json_boolean(li->enforced.ttl));
	json_object_set_new(j, "enforced", enf);
	set_time(j, "created_at", li->created_ms);
	set_time(j, "renewed_at", li->renewed_ms);
	set_time(j, "expires_at", li->expires_ms);
	set_time(j, "finished_at", li->finished_ms);
	json_object_set_new(j, "created_ms", json_integer(li->created_ms));
	json_object_set_new(j, "renewed_ms", json_integer(li->renewed_ms));
	json_object_set_new(j, "expires_ms", json_integer(li->expires_ms));
	json_object_set_new(j, "finished_ms", json_integer(li->finished_ms));
	json_object_set_new(j, "metadata",
	                    li->metadata ? json_deep_copy(li->metadata) : json_null());
	return j;
}

static char *get_s(const json_t *j, const char *k)
{
	const json_t *v = json_object_get(j, k);
	return json_is_string(v) ? sb_xstrdup(json_string_value(v)) : NULL;
}

static int64_t get_i(const json_t *j, const char *k)
{
	const json_t *v = json_object_get(j, k);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static bool get_b(const json_t *j, const char *k)
{
	return json_is_true(json_object_get(j, k));
}

sb_err *sbs_lease_info_from_json(const json_t *j, sbs_lease_info *out)
{
	sbs_lease_info_init(out);
	const json_t *id = json_object_get(j, "id");
	const json_t *st = json_object_get(j, "state");
	if (!json_is_string(id) || strlen(json_string_value(id)) > SB_SANDBOX_ID_MAX ||
	    !json_is_string(st) || state_from_name(json_string_value(st)) < 0)
		return sb_err_new(SB_E_INVAL, "lease record without a valid id or state");
	snprintf(out->id, sizeof out->id, "%s", json_string_value(id));
	/* absent in records written before warm claims could keep a lease id of their own */
	const json_t *sid = json_object_get(j, "sandbox_id");
	if (json_is_string(sid) && strcmp(json_string_value(sid), out->id) != 0) {
		if (strlen(json_string_value(sid)) > SB_SANDBOX_ID_MAX)
			return sb_err_new(SB_E_INVAL, "lease record %s: sandbox_id too long",
			                  out->id);
		snprintf(out->sandbox_id, sizeof out->sandbox_id, "%s", json_string_value(sid));
	}
	out->state = (sbs_lease_state)state_from_name(json_string_value(st));
	out->acquisition_id = get_s(j, "acquisition_id");
	out->fingerprint = get_s(j, "fingerprint");
	out->issue_id = get_s(j, "issue_id");
	out->run_id = get_s(j, "run_id");
	out->reuse_scope = get_s(j, "reuse_scope");
	out->reuse_key = get_s(j, "reuse_key");
	out->reuse_fingerprint = get_s(j, "reuse_fingerprint");
	out->reason = get_s(j, "reason");
	/* "network" was a boolean before the network object */
	const json_t *net = json_object_get(j, "network");
	if (json_is_object(net)) {
		out->net = json_object();
		static const char *const keep[] = {"mode", "allow", "secrets"};
		for (size_t i = 0; i < sizeof keep / sizeof *keep; i++) {
			json_t *v = json_object_get(net, keep[i]);
			if (v)
				json_object_set_new(out->net, keep[i], json_deep_copy(v));
		}
		const char *mode = json_string_value(json_object_get(net, "mode"));
		out->network = mode && strcmp(mode, "full") == 0;
	} else {
		out->network = json_is_true(net);
	}
	const json_t *mounts = json_object_get(j, "mounts");
	if (json_is_array(mounts) && json_array_size(mounts))
		out->mounts = json_deep_copy(mounts);
	out->ttl_s = get_i(j, "ttl_s");
	const json_t *lim = json_object_get(j, "limits");
	out->limits.memory_bytes = (uint64_t)get_i(lim, "memory_bytes");
	out->limits.pids = (uint64_t)get_i(lim, "pids");
	out->limits.cpu_weight = (uint64_t)get_i(lim, "cpu_weight");
	out->limits.nofile = (uint64_t)get_i(lim, "nofile");
	out->limits.nproc = (uint64_t)get_i(lim, "nproc");
	out->limits.ttl_s = out->ttl_s;
	const json_t *enf = json_object_get(j, "enforced");
	out->enforced.memory = get_b(enf, "memory");
	out->enforced.pids = get_b(enf, "pids");
	out->enforced.cpu = get_b(enf, "cpu");
	out->enforced.rlimits = get_b(enf, "rlimits");
	out->enforced.seccomp = get_b(enf, "seccomp");
	out->enforced.ttl = get_b(enf, "ttl");
	out->created_ms = get_i(j, "created_ms");
	out->renewed_ms = get_i(j, "renewed_ms");
	out->expires_ms = get_i(j, "expires_ms");
	out->finished_ms = get_i(j, "finished_ms");
	const json_t *md = json_object_get(j, "metadata");
	out->metadata = json_is_object(md) ? json_deep_copy(md) : NULL;
	return NULL;
}
