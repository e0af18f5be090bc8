/* The bridge client's lease operations (paperclip-bridge-protocol.md §1.4, §2.3): health,
 * probe, acquire (replayed with one acquisition id through a shared timeout budget), resume,
 * release and destroy, each one JSON request on the /v2 prefix. The exec path lives in
 * bridge_runner.c. Request bodies are built with the protocol's defaults so that a stock
 * bridge and sandbar see exactly what the Paperclip plugin would send.
 */
#include "bridge_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "sb_json.h"

struct sb_bridge {
	bridge_conf conf;
	pthread_mutex_t mu;
	bool health_known; /* sign decided */
	bool sign;
};

sb_err *sb_bridge_new(const sb_bridge_opts *opts, sb_bridge **out)
{
	*out = NULL;
	sb_bridge *b = sb_xcalloc(1, sizeof(*b));
	sb_err *err = bridge_conf_init(&b->conf, opts);
	if (err) {
		free(b);
		return err;
	}
	pthread_mutex_init(&b->mu, NULL);
	/* Without a token the only way in is a signature, whatever /health would say. */
	if (!b->conf.token) {
		b->sign = true;
		b->health_known = true;
	}
	*out = b;
	return NULL;
}

void sb_bridge_free(sb_bridge *b)
{
	if (!b)
		return;
	bridge_conf_deinit(&b->conf);
	pthread_mutex_destroy(&b->mu);
	free(b);
}

void sb_bridge_health_deinit(sb_bridge_health *h)
{
	if (!h)
		return;
	free(h->provider);
	free(h->bridge_version);
	memset(h, 0, sizeof(*h));
}

void sb_bridge_lease_deinit(sb_bridge_lease *l)
{
	if (!l)
		return;
	free(l->provider_lease_id);
	free(l->acquisition_id);
	free(l->remote_cwd);
	free(l->session_strategy);
	free(l->session_id);
	free(l->orphan_lease_id);
	memset(l, 0, sizeof(*l));
}

static bool want_sign(sb_bridge *b)
{
	pthread_mutex_lock(&b->mu);
	bool s = b->sign;
	pthread_mutex_unlock(&b->mu);
	return s;
}

/* ---------------------------------------------------------------- request helpers */

/* Percent-encode one path segment (RFC 3986 unreserved characters kept). */
static char *path_escape(const char *s)
{
	sb_buf b = SB_BUF_INIT;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~')
			sb_buf_appendc(&b, (char)*p);
		else
			sb_buf_appendf(&b, "%%%02X", *p);
	}
	return sb_buf_steal(&b, NULL);
}

/* POST/DELETE a JSON object (consumed) and parse a JSON object answer. A non-2xx answer is an
 * error (see bridge_error), with the server's code and details.providerLeaseId handed out. */
typedef struct call_info {
	long status; /* 0 when no answer arrived */
	char *code;  /* the server's error code, "" when none (malloc'd) */
	char *lease; /* details.providerLeaseId (malloc'd) or NULL */
} call_info;

static void call_info_deinit(call_info *ci)
{
	free(ci->code);
	free(ci->lease);
	memset(ci, 0, sizeof(*ci));
}

static sb_err *call_json(sb_bridge *b, const char *method, const char *path, json_t *body,
                         int64_t timeout_ms, json_t **answer, call_info *ci)
{
	if (answer)
		*answer = NULL;
	if (ci)
		memset(ci, 0, sizeof(*ci));
	char *text = body ? sb_json_dumps(body) : NULL;
	json_decref(body);
	bridge_req rq = BRIDGE_REQ_INIT;
	rq.method = method;
	rq.path = path;
	rq.body = text;
	rq.body_len = text ? strlen(text) : 0;
	rq.timeout_ms = timeout_ms;
	rq.sign = want_sign(b);
	bridge_resp rs;
	char *what = sb_strfmt("%s %s", method, path);
	sb_err *err = bridge_http_do(&b->conf, &rq, &rs);
	free(text);
	if (err)
		goto out;
	if (ci)
		ci->status = rs.status;
	if (rs.status < 200 || rs.status > 299) {
		err = bridge_error(&rs, what, ci ? &ci->code : NULL, ci ? &ci->lease : NULL);
		goto out;
	}
	if (answer) {
		json_error_t jerr;
		json_t *j = json_loadb(rs.body.data ? rs.body.data : "", rs.body.len, 0, &jerr);
		if (!j || !json_is_object(j)) {
			json_decref(j);
			err = sb_err_new(SB_E_PROTOCOL,
			                 "%s: bridge answered %ld with a body that is not a JSON "
			                 "object",
			                 what, rs.status);
			goto out;
		}
		*answer = j;
	}
out:
	bridge_resp_deinit(&rs);
	free(what);
	return err;
}

static const char *or_default(const char *s, const char *def)
{
	return s && *s ? s : def;
}

static int64_t command_timeout(const sb_bridge_lease_params *p)
{
	return p && p->timeout_ms > 0 ? p->timeout_ms : BRIDGE_COMMAND_TIMEOUT_DEFAULT;
}

/* The session and cwd fields every lease body carries. */
static void add_common(json_t *o, const sb_bridge_lease_params *p)
{
	json_object_set_new(o, "requestedCwd",
	                    json_string(or_default(p->requested_cwd, "/workspace/paperclip")));
	json_object_set_new(o, "sessionStrategy",
	                    json_string(or_default(p->session_strategy, "named")));
	json_object_set_new(o, "sessionId", json_string(or_default(p->session_id, "paperclip")));
	json_object_set_new(o, "timeoutMs", json_integer(command_timeout(p)));
}

static void add_str(json_t *o, const char *key, const char *v)
{
	if (v && *v)
		json_object_set_new(o, key, json_string(v));
}

static sb_err *parse_lease(const json_t *j, const char *what, sb_bridge_lease *out)
{
	const char *id = json_string_value(json_object_get(j, "providerLeaseId"));
	json_t *m = json_object_get(j, "metadata");
	if (!id || !*id || !json_is_object(m))
		return sb_err_new(SB_E_PROTOCOL,
		                  "%s: the bridge's answer lacks providerLeaseId or metadata",
		                  what);
	const char *acq = json_string_value(json_object_get(m, "acquisitionId"));
	if (!acq || !*acq)
		return sb_err_new(SB_E_PROTOCOL,
		                  "%s: the bridge's answer for lease %s lacks ownership metadata "
		                  "(metadata.acquisitionId)",
		                  what, id);
	out->provider_lease_id = sb_xstrdup(id);
	out->acquisition_id = sb_xstrdup(acq);
	const char *s = json_string_value(json_object_get(m, "remoteCwd"));
	out->remote_cwd = s ? sb_xstrdup(s) : NULL;
	s = json_string_value(json_object_get(m, "sessionStrategy"));
	out->session_strategy = s ? sb_xstrdup(s) : NULL;
	s = json_string_value(json_object_get(m, "sessionId"));
	out->session_id = s ? sb_xstrdup(s) : NULL;
	out->resumed = json_is_true(json_object_get(m, "resumedLease"));
	return NULL;
}

/* ---------------------------------------------------------------- health and probe */

static sb_err *health_once(sb_bridge *b, int64_t timeout_ms, sb_bridge_health *out)
{
	memset(out, 0, sizeof(*out));
	json_t *j = NULL;
	sb_err *err = NULL;
	bridge_req rq = BRIDGE_REQ_INIT;
	rq.method = "GET";
	rq.path = BRIDGE_PREFIX_V1 "/health";
	rq.timeout_ms = timeout_ms;
	rq.sign = want_sign(b);
	bridge_resp rs;
	if ((err = bridge_http_do(&b->conf, &rq, &rs)))
		return err;
	if (rs.status != 200) {
		err = bridge_error(&rs, "GET " BRIDGE_PREFIX_V1 "/health", NULL, NULL);
		goto out;
	}
	json_error_t jerr;
	j = json_loadb(rs.body.data ? rs.body.data : "", rs.body.len, 0, &jerr);
	json_t *caps = j ? json_object_get(j, "capabilities") : NULL;
	if (!json_is_object(j) || !json_is_true(json_object_get(j, "ok"))) {
		err = sb_err_new(SB_E_PROTOCOL,
		                 "GET %s/health: the answer is not {ok: true, ...}; "
		                 "is %s a sandbox bridge?",
		                 BRIDGE_PREFIX_V1, b->conf.base_url);
		goto out;
	}
	const char *s = json_string_value(json_object_get(j, "provider"));
	out->provider = sb_xstrdup(s ? s : "");
	s = json_string_value(json_object_get(j, "bridgeVersion"));
	out->bridge_version = sb_xstrdup(s ? s : "");
	out->reuse_lease = json_is_true(json_object_get(caps, "reuseLease"));
	out->named_sessions = json_is_true(json_object_get(caps, "namedSessions"));
	out->acquisition_replay = json_is_true(json_object_get(caps, "acquisitionReplay"));
	out->scoped_reuse = json_is_true(json_object_get(caps, "scopedReuse"));
	/* sandbar's extension: an object the stock plugin ignores. */
	json_t *sb = json_object_get(j, "sandbar");
	if (json_is_object(sb)) {
		out->sandbar = true;
		out->hmac = json_is_true(json_object_get(sb, "hmac"));
		out->workspace_tar = json_is_true(json_object_get(sb, "workspaceTar"));
		out->cancel = json_is_true(json_object_get(sb, "cancel"));
	}
	pthread_mutex_lock(&b->mu);
	if (!b->health_known) {
		b->health_known = true;
		b->sign = out->hmac && b->conf.hmac_key_id;
	}
	pthread_mutex_unlock(&b->mu);
out:
	if (err)
		sb_bridge_health_deinit(out);
	json_decref(j);
	bridge_resp_deinit(&rs);
	return err;
}

sb_err *sb_bridge_health_get(sb_bridge *b, sb_bridge_health *out)
{
	return health_once(b, b->conf.request_timeout_ms, out);
}

sb_err *sb_bridge_probe(sb_bridge *b, const sb_bridge_lease_params *p, char **summary_out)
{
	static const sb_bridge_lease_params none;
	if (!p)
		p = &none;
	if (summary_out)
		*summary_out = NULL;
	json_t *body = json_object();
	add_common(body, p);
	json_object_set_new(body, "keepAlive", json_boolean(p->keep_alive));
	json_object_set_new(body, "sleepAfter", json_string(or_default(p->sleep_after, "1h")));
	json_object_set_new(body, "normalizeId", json_true());
	json_t *ans = NULL;
	sb_err *err = call_json(b, "POST", BRIDGE_PREFIX_V1 "/probe", body,
	                        b->conf.request_timeout_ms, &ans, NULL);
	if (err)
		return err;
	if (!json_is_true(json_object_get(ans, "ok"))) {
		const char *sum = json_string_value(json_object_get(ans, "summary"));
		err = sb_err_new(SB_E_PROTOCOL, "bridge probe failed: %s",
		                 sum ? sum : "the answer is not ok:true");
	} else if (summary_out) {
		const char *sum = json_string_value(json_object_get(ans, "summary"));
		*summary_out = sb_xstrdup(sum ? sum : "");
	}
	json_decref(ans);
	return err;
}

/* ---------------------------------------------------------------- acquire */

static bool is_hex32(const char *s)
{
	if (!s || strlen(s) != 32)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') ||
		      (*s >= 'A' && *s <= 'F')))
			return false;
	return true;
}

static json_t *acquire_body(const sb_bridge_lease_params *p, int64_t timeout_ms)
{
	json_t *o = json_object();
	add_str(o, "acquisitionId", p->acquisition_id);
	add_str(o, "environmentId", p->environment_id);
	add_str(o, "runId", p->run_id);
	if (p->reuse_lease)
		add_str(o, "reuseScopeId", p->reuse_scope_id);
	json_object_set_new(o, "issueId", p->issue_id ? json_string(p->issue_id) : json_null());
	json_object_set_new(o, "reuseLease", json_boolean(p->reuse_lease));
	json_object_set_new(o, "keepAlive", json_boolean(p->keep_alive));
	json_object_set_new(o, "sleepAfter", json_string(or_default(p->sleep_after, "1h")));
	json_object_set_new(o, "normalizeId", json_true());
	add_common(o, p);
	json_object_set_new(o, "timeoutMs", json_integer(timeout_ms));
	return o;
}

/* Worth replaying with the same acquisition id: the outcome is unknown (no answer) or still
 * being made (503 acquisition_in_progress, other 5xx except acquisition_failed). */
static bool acquire_retryable(const call_info *ci)
{
	if (ci->status == 0)
		return true;
	if (strcmp(ci->code, "acquisition_in_progress") == 0)
		return true;
	return ci->status >= 500 && strcmp(ci->code, "acquisition_failed") != 0;
}

sb_err *sb_bridge_acquire(sb_bridge *b, const sb_bridge_lease_params *p, sb_bridge_lease *out)
{
	memset(out, 0, sizeof(*out));
	if (!p || !p->acquisition_id || !*p->acquisition_id || !p->environment_id ||
	    !*p->environment_id || !p->run_id || !*p->run_id)
		return sb_err_new(SB_E_INVAL, "bridge acquire: acquisition_id, environment_id and "
		                              "run_id are required");
	if (p->reuse_lease && !is_hex32(p->reuse_scope_id))
		return sb_err_new(SB_E_INVAL, "bridge acquire: a reusable lease needs a "
		                              "reuse_scope_id of 32 hex characters");
	int64_t cmd_timeout = command_timeout(p);
	int64_t budget =
	    cmd_timeout > b->conf.request_timeout_ms ? cmd_timeout : b->conf.request_timeout_ms;
	int64_t deadline = sb_mono_ms() + budget;

	sb_bridge_health h;
	sb_err *err = health_once(b, budget, &h);
	if (err)
		return sb_err_prefix(err, "bridge acquire");
	if (!h.acquisition_replay)
		err =
		    sb_err_new(SB_E_UNSUPPORTED,
		               "bridge acquire: %s does not advertise acquisitionReplay; it cannot "
		               "replay an acquisition safely (upgrade the bridge)",
		               b->conf.base_url);
	else if (p->reuse_lease && !h.scoped_reuse)
		err =
		    sb_err_new(SB_E_UNSUPPORTED,
		               "bridge acquire: %s does not advertise scopedReuse; reusable leases "
		               "need it (upgrade the bridge or turn reuse off)",
		               b->conf.base_url);
	sb_bridge_health_deinit(&h);
	if (err)
		return err;

	sb_err *last = NULL;
	char *orphan = NULL;
	for (int attempt = 1;; attempt++) {
		int64_t remaining = deadline - sb_mono_ms();
		if (remaining <= 0)
			break;
		json_t *body = acquire_body(p, remaining < cmd_timeout ? remaining : cmd_timeout);
		json_t *ans = NULL;
		call_info ci;
		sb_err *e = call_json(b, "POST", BRIDGE_PREFIX_V2 "/leases/acquire", body,
		                      remaining, &ans, &ci);
		if (!e) {
			e = parse_lease(ans, "bridge acquire", out);
			json_decref(ans);
			call_info_deinit(&ci);
			sb_err_free(last);
			free(orphan);
			if (e)
				sb_bridge_lease_deinit(out);
			return e;
		}
		if (ci.lease) {
			free(orphan);
			orphan = ci.lease;
			ci.lease = NULL;
		}
		bool retry = e->code != SB_E_CANCELED && acquire_retryable(&ci);
		call_info_deinit(&ci);
		sb_err_free(last);
		last = e;
		if (!retry)
			break;
		int64_t delay = 250;
		for (int i = 1; i < attempt && delay < 5000; i++)
			delay *= 2;
		if (delay > 5000)
			delay = 5000;
		remaining = deadline - sb_mono_ms();
		if (delay > remaining)
			delay = remaining;
		if (delay > 0)
			sb_sleep_ms(delay);
	}
	if (!last)
		last = sb_err_new(SB_E_TIMEOUT, "bridge acquire %s: no answer within %lld ms",
		                  p->acquisition_id, (long long)budget);
	out->orphan_lease_id = orphan;
	return last;
}

/* ---------------------------------------------------------------- resume, release, destroy */

sb_err *sb_bridge_resume(sb_bridge *b, const char *lease_id, const sb_bridge_lease_params *p,
                         sb_bridge_lease *out)
{
	static const sb_bridge_lease_params none;
	memset(out, 0, sizeof(*out));
	if (!p)
		p = &none;
	if (!lease_id || !*lease_id)
		return sb_err_new(SB_E_INVAL, "bridge resume: no lease id");
	json_t *body = json_object();
	json_object_set_new(body, "providerLeaseId", json_string(lease_id));
	add_str(body, "acquisitionId", p->acquisition_id);
	add_common(body, p);
	json_object_set_new(body, "keepAlive", json_boolean(p->keep_alive));
	json_object_set_new(body, "sleepAfter", json_string(or_default(p->sleep_after, "1h")));
	json_object_set_new(body, "normalizeId", json_true());
	json_t *ans = NULL;
	call_info ci;
	sb_err *err = call_json(b, "POST", BRIDGE_PREFIX_V2 "/leases/resume", body,
	                        b->conf.request_timeout_ms, &ans, &ci);
	if (err) {
		/* 409 means the sandbox (or its ownership) is gone: the caller acquires anew. */
		if (ci.status == 409)
			err->code = SB_E_STATE_LOST;
		else if (ci.status == 404) {
			sb_err_free(err);
			err =
			    sb_err_new(SB_E_UNSUPPORTED,
			               "bridge resume of %s: %s does not support ownership API v2 "
			               "(404); upgrade the bridge",
			               lease_id, b->conf.base_url);
		}
		call_info_deinit(&ci);
		return err;
	}
	call_info_deinit(&ci);
	err = parse_lease(ans, "bridge resume", out);
	json_decref(ans);
	if (!err && strcmp(out->provider_lease_id, lease_id) != 0)
		err = sb_err_new(SB_E_PROTOCOL,
		                 "bridge resume of %s: the bridge answered for another lease, %s",
		                 lease_id, out->provider_lease_id);
	if (!err && p->acquisition_id && *p->acquisition_id &&
	    strcmp(out->acquisition_id, p->acquisition_id) != 0)
		err = sb_err_new(
		    SB_E_PROTOCOL,
		    "bridge resume of %s: the bridge answered for acquisition %s, not %s", lease_id,
		    out->acquisition_id, p->acquisition_id);
	if (err)
		sb_bridge_lease_deinit(out);
	return err;
}

sb_err *sb_bridge_release(sb_bridge *b, const char *lease_id, const sb_bridge_lease_params *p)
{
	static const sb_bridge_lease_params none;
	if (!p)
		p = &none;
	if (!lease_id || !*lease_id)
		return NULL; /* nothing was acquired: nothing to release */
	json_t *body = json_object();
	json_object_set_new(body, "providerLeaseId", json_string(lease_id));
	add_str(body, "acquisitionId", p->acquisition_id);
	json_object_set_new(body, "reuseLease", json_boolean(p->reuse_lease));
	json_object_set_new(body, "keepAlive", json_boolean(p->keep_alive));
	add_common(body, p);
	return call_json(b, "POST", BRIDGE_PREFIX_V2 "/leases/release", body,
	                 b->conf.request_timeout_ms, NULL, NULL);
}

sb_err *sb_bridge_destroy(sb_bridge *b, const char *lease_id, const sb_bridge_lease_params *p)
{
	static const sb_bridge_lease_params none;
	if (!p)
		p = &none;
	if (!lease_id || !*lease_id)
		return sb_err_new(SB_E_INVAL, "bridge destroy: no lease id");
	json_t *body = json_object();
	json_object_set_new(body, "providerLeaseId", json_string(lease_id));
	add_str(body, "acquisitionId", p->acquisition_id);
	add_common(body, p);
	char *esc = path_escape(lease_id);
	char *path = sb_strfmt("%s/leases/%s", BRIDGE_PREFIX_V2, esc);
	sb_err *err = call_json(b, "DELETE", path, body, b->conf.request_timeout_ms, NULL, NULL);
	free(path);
	free(esc);
	return err;
}

/* For the runner: the connection and signing decision of a client. */
const bridge_conf *bridge_client_conf(sb_bridge *b, bool *sign)
{
	*sign = want_sign(b);
	return &b->conf;
}
