/* The body of POST /v1/leases (acquire_request.h): each field checked, 400 naming it; mounts
 * only below the operator's mount_allow (403 otherwise). */
#include "acquire_request.h"
#include "sleep.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include "sb_json.h"

#define MAX_SECRETS 16
#define MAX_MOUNTS 32

static sb_err *get_u64(const json_t *o, const char *key, uint64_t max, uint64_t *out)
{
	int64_t v = (int64_t)*out;
	sb_err *err = sb_json_get_int(o, key, false, 0, (int64_t)max, &v);
	if (!err)
		*out = (uint64_t)v;
	return err;
}

static sb_err *parse_acquire(const json_t *b, sbs_lease_params *p)
{
	sb_err *err;
	if ((err = sb_json_get_str(b, "acquisition_id", true, &p->acquisition_id)) ||
	    (err = sb_json_get_str(b, "lease_id", false, &p->lease_id)) ||
	    (err = sb_json_get_int(b, "ttl_s", false, 0, 365LL * 24 * 3600, &p->ttl_s)) ||
	    (err = sb_json_get_str(b, "issue_id", false, &p->issue_id)) ||
	    (err = sb_json_get_str(b, "run_id", false, &p->run_id)) ||
	    (err = sb_json_get_str(b, "reuse_scope", false, &p->reuse_scope)) ||
	    (err = sb_json_get_str(b, "reuse_key", false, &p->reuse_key)))
		return err;
	if (p->acquisition_id[0] == '\0')
		return sb_err_new(SB_E_INVAL, "\"acquisition_id\" must not be empty");
	const json_t *lim = json_object_get(b, "limits");
	if (lim && !json_is_null(lim)) {
		if (!json_is_object(lim))
			return sb_err_new(SB_E_INVAL, "\"limits\" must be an object");
		if ((err = get_u64(lim, "memory_bytes", UINT64_MAX / 2, &p->limits.memory_bytes)) ||
		    (err = get_u64(lim, "pids", 1u << 22, &p->limits.pids)) ||
		    (err = get_u64(lim, "cpu_weight", 10000, &p->limits.cpu_weight)) ||
		    (err = get_u64(lim, "nofile", 1u << 20, &p->limits.nofile)) ||
		    (err = get_u64(lim, "nproc", 1u << 22, &p->limits.nproc)))
			return sb_err_prefix(err, "\"limits\"");
	}
	const json_t *md = json_object_get(b, "metadata");
	if (md && !json_is_null(md)) {
		if (!json_is_object(md))
			return sb_err_new(SB_E_INVAL, "\"metadata\" must be an object");
		p->metadata = md;
	}
	return NULL;
}

/* The `network` field (issue 14, DESIGN.md §9.9): true (= full), false (= none) or
 * {"mode": "none"|"allowlist"|"full", "allow": ["HOST[:PORT]", ...]}. An allowlist lease's
 * egress proxy runs in the daemon; the daemon's own listeners are never reachable through it.
 * *egress is set for allowlist (free with sb_egress_config_free). */
static sb_err *parse_secrets(sbs_server *srv, const json_t *names, sb_egress_config *c,
                             char ***out);

static sb_err *parse_network(sbs_server *srv, const json_t *b, sbs_lease_params *p,
                             sb_egress_config **egress, char ***secret_names)
{
	*egress = NULL;
	const json_t *n = json_object_get(b, "network");
	if (!n || json_is_null(n))
		return NULL;
	if (json_is_boolean(n)) {
		p->network = json_is_true(n);
		return NULL;
	}
	if (!json_is_object(n))
		return sb_err_new(SB_E_INVAL, "\"network\" must be true, false or {\"mode\": "
		                              "\"none\"|\"allowlist\"|\"full\", \"allow\": [...]}");
	const char *k;
	const json_t *v;
	json_object_foreach((json_t *)n, k, v)
	{
		if (strcmp(k, "mode") != 0 && strcmp(k, "allow") != 0 && strcmp(k, "secrets") != 0)
			return sb_err_new(
			    SB_E_INVAL, "\"network.%s\" is not a field (mode, allow, secrets)", k);
	}
	const json_t *m = json_object_get(n, "mode"), *allow = json_object_get(n, "allow");
	int mode = json_is_string(m) ? sb_net_mode_parse(json_string_value(m)) : -1;
	if (mode < 0 || !strcmp(json_string_value(m), "true") ||
	    !strcmp(json_string_value(m), "false"))
		return sb_err_new(SB_E_INVAL,
		                  "\"network.mode\" must be \"none\", \"allowlist\" or \"full\"");
	if (allow && !json_is_null(allow) && (!json_is_array(allow) || mode != SB_NET_ALLOWLIST))
		return sb_err_new(SB_E_INVAL, "\"network.allow\" is an array, for mode allowlist");
	if (json_array_size(allow) > 256)
		return sb_err_new(SB_E_INVAL, "\"network.allow\" holds over 256 entries");
	const json_t *secrets = json_object_get(n, "secrets");
	if (secrets && !json_is_null(secrets) &&
	    (!json_is_array(secrets) || mode != SB_NET_ALLOWLIST))
		return sb_err_new(SB_E_INVAL,
		                  "\"network.secrets\" is an array of the operator's secret names, "
		                  "for mode allowlist");
	p->network = mode == SB_NET_FULL;
	if (mode != SB_NET_ALLOWLIST)
		return NULL;
	sb_egress_config *c = sb_xcalloc(1, sizeof *c);
	size_t i;
	json_array_foreach(allow, i, v)
	{
		if (!json_is_string(v)) {
			sb_egress_config_free(c);
			return sb_err_new(SB_E_INVAL, "\"network.allow[%zu]\" must be a string", i);
		}
		sb_strv_push(&c->allow, json_string_value(v));
	}
	/* the daemon's own TCP listener */
	int port = srv->listen_port;
	if (port) {
		/* unspecified address: that port on loopback and every address of this host */
		char *d = sb_strfmt("0.0.0.0:%d", port);
		sb_strv_push(&c->deny_listeners, d);
		free(d);
	}
	/* test options of the operator (a hosts file, an upstream CA) */
	if (srv->egress_hosts_file)
		c->hosts_file = sb_xstrdup(srv->egress_hosts_file);
	if (srv->egress_upstream_ca)
		c->upstream_ca = sb_xstrdup(srv->egress_upstream_ca);
	sb_err *err = parse_secrets(srv, secrets, c, secret_names);
	if (!err && (err = sb_egress_config_check(c)))
		err = sb_err_prefix(err, "\"network\"");
	if (err) {
		sb_egress_config_free(c);
		sb_strv_free(*secret_names);
		*secret_names = NULL;
		return err;
	}
	*egress = c;
	return NULL;
}

/* network.secrets: names of the operator's [serve] secret.NAME entries (§9.11), never values.
 * Each adds its hosts to the allowlist with the header set by the proxy. */
static sb_err *parse_secrets(sbs_server *srv, const json_t *names, sb_egress_config *c, char ***out)
{
	if (json_array_size(names) > MAX_SECRETS)
		return sb_err_new(SB_E_INVAL, "\"network.secrets\" holds over %d names",
		                  MAX_SECRETS);
	size_t i;
	const json_t *v;
	json_array_foreach(names, i, v)
	{
		if (!json_is_string(v))
			return sb_err_new(SB_E_INVAL, "\"network.secrets[%zu]\" must be a string",
			                  i);
		const char *name = json_string_value(v);
		for (size_t k = 0; *out && (*out)[k]; k++)
			if (strcmp((*out)[k], name) == 0)
				return sb_err_new(
				    SB_E_INVAL,
				    "\"network.secrets[%zu]\": \"%.64s\" is named twice", i, name);
		sb_err *err = sb_egress_config_add_named(c, srv->secrets, srv->nsecrets, name);
		if (err) {
			err->code = SB_E_INVAL; /* the client's to correct */
			return sb_err_prefix(err, "\"network.secrets[%zu]\"", i);
		}
		sb_strv_push(out, name);
	}
	return NULL;
}

/* The `callback` field: checked against the operator's [callback NAME] entries (§9.11). */
static sb_err *parse_callback(sbs_server *srv, const json_t *b, sb_callback_config **out,
                              char **text_out)
{
	const json_t *cb = json_object_get(b, "callback");
	if (!cb || json_is_null(cb))
		return NULL;
	if (!json_is_object(cb))
		return sb_err_new(SB_E_INVAL, "\"callback\" must be an object");
	char *text = json_dumps(cb, JSON_COMPACT | JSON_SORT_KEYS);
	if (!text)
		return sb_err_new(SB_E_INTERNAL, "serialising \"callback\"");
	sb_err *err =
	    sb_callback_config_from_json(text, strlen(text), srv->callbacks, srv->ncallbacks, out);
	if (err)
		free(text);
	else
		*text_out = text;
	return err;
}

/* Is path (resolved) at or below root (resolved)? */
static bool under(const char *path, const char *root)
{
	size_t n = strlen(root);
	while (n > 1 && root[n - 1] == '/')
		n--;
	return strncmp(path, root, n) == 0 && (path[n] == '\0' || path[n] == '/' || n == 1);
}

/* `mounts`: ["HOST_PATH:SANDBOX_PATH[:ro|rw]", ...], read-only unless rw, each host path below
 * one of the operator's mount_allow paths. The sandbox layer checks the rest (never at or
 * around the workspace, never the daemon's paths; mounts.c) and the roots again. */
static sb_err *parse_mounts(sbs_server *srv, const json_t *b, sbs_acquire_req *q)
{
	const json_t *m = json_object_get(b, "mounts");
	if (!m || json_is_null(m))
		return NULL;
	if (!json_is_array(m))
		return sb_err_new(
		    SB_E_INVAL,
		    "\"mounts\" must be an array of \"HOST_PATH:SANDBOX_PATH[:ro|rw]\"");
	size_t n = json_array_size(m);
	if (n > MAX_MOUNTS)
		return sb_err_new(SB_E_INVAL, "\"mounts\" holds over %d entries", MAX_MOUNTS);
	if (n && (!srv->mount_allow || !srv->mount_allow[0])) {
		q->forbidden = "mount_not_allowed";
		return sb_err_new(
		    SB_E_INVAL, "\"mounts\": this daemon allows no host paths to be mounted (the "
		                "operator lists them in the config's [serve] section: mount_allow "
		                "= /path)");
	}
	q->mounts = n ? sb_xcalloc(n, sizeof *q->mounts) : NULL;
	for (size_t i = 0; i < n; i++) {
		const json_t *v = json_array_get(m, i);
		if (!json_is_string(v))
			return sb_err_new(SB_E_INVAL, "\"mounts[%zu]\" must be a string", i);
		sb_sandbox_mount *mt = &q->mounts[q->nmounts];
		sb_err *err = sb_sandbox_mount_parse(json_string_value(v), mt);
		if (err)
			return sb_err_prefix(err, "\"mounts[%zu]\"", i);
		q->nmounts++;
		char *real = realpath(mt->host, NULL);
		if (!real)
			return sb_err_new(SB_E_INVAL, "\"mounts[%zu]\": host path %s: %s", i,
			                  mt->host, strerror(errno));
		bool ok = false;
		for (size_t k = 0; srv->mount_allow[k] && !ok; k++) {
			char *root = realpath(srv->mount_allow[k], NULL);
			ok = root && under(real, root);
			free(root);
		}
		if (!ok) {
			err = sb_err_new(SB_E_INVAL,
			                 "\"mounts[%zu]\": host path %s is not under a path the "
			                 "operator allows (the config's [serve] mount_allow)",
			                 i, real);
			free(real);
			q->forbidden = "mount_not_allowed";
			return err;
		}
		free(mt->host);
		mt->host = real; /* what the fingerprint and lease info show */
	}
	return NULL;
}

void sbs_acquire_req_deinit(sbs_acquire_req *q)
{
	sb_callback_config_free(q->cb);
	free(q->cb_text);
	sb_egress_config_free(q->egress);
	sb_strv_free(q->secret_names);
	for (size_t i = 0; i < q->nmounts; i++)
		sb_sandbox_mount_deinit(&q->mounts[i]);
	free(q->mounts);
	const char *forbidden = q->forbidden;
	memset(q, 0, sizeof *q);
	q->forbidden = forbidden;
}

sb_err *sbs_acquire_req_parse(sbs_server *srv, const json_t *b, sbs_acquire_req *q)
{
	memset(q, 0, sizeof *q);
	sbs_lease_params *p = &q->p;
	sb_err *err = parse_acquire(b, p);
	if (!err && (err = parse_callback(srv, b, &q->cb, &q->cb_text)) == NULL) {
		p->callback = q->cb;
		p->callback_json = q->cb_text;
	}
	if (!err && (err = parse_network(srv, b, p, &q->egress, &q->secret_names)) == NULL) {
		p->egress = q->egress;
		p->secret_names = q->secret_names;
	}
	if (!err && (err = parse_mounts(srv, b, q)) == NULL) {
		p->mounts = q->mounts;
		p->nmounts = q->nmounts;
		p->mount_roots = (const char *const *)srv->mount_allow;
	}
	const json_t *jsa = json_object_get(b, "sleep_after");
	if (!err && jsa && !json_is_null(jsa) &&
	    (err = sbs_parse_duration_ms(jsa, &q->sleep_after_ms)))
		err = sb_err_prefix(err, "\"sleep_after\"");
	if (err)
		sbs_acquire_req_deinit(q);
	return err;
}
