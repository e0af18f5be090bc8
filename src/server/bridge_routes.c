/* The bridge's lease routes (paperclip-bridge-protocol.md §2.3, G2 semantics) on the daemon's
 * lease service: health, probe, acquire (idempotent on acquisitionId, fingerprint-checked,
 * tombstoned), resume (409 sandbox_state_lost when the sandbox died or its mirror no longer
 * matches); release and destroy are in bridge_release.c, the ownership mirror in
 * bridge_owner.c.
 */
#include "bridge.h"
#include "bridge_int.h"

#include "sleep.h"
#include "warm_pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sb_json.h"

/* One place for the sandbox configuration of bridge leases (network full for Paperclip compat
 * leases, DESIGN.md 9.9; the operator's compat_callback): every acquire below takes it from
 * here, and so does the warm pool's "paperclip" configuration, so the two cannot drift apart
 * (a drift would only cost claims: the pool claims on an exact match alone). */
void sbs_bridge_warm_config(const sbs_server *srv, sbs_warm_config *out)
{
	*out = (sbs_warm_config){.name = "paperclip",
	                         .network = true,
	                         .callback = srv->bridge_callback,
	                         .callback_json = srv->bridge_callback_json};
}

static void bridge_sandbox_config(const sbs_server *srv, sbs_lease_params *p)
{
	sbs_warm_config c;
	sbs_bridge_warm_config(srv, &c);
	p->network = c.network;
	p->callback = c.callback;
	p->callback_json = c.callback_json;
}

/* Options as stored at acquire time. */
static sb_err *stored_opts(const sbs_lease_info *li, bridge_opts *o)
{
	const json_t *pc = bridge_record_meta(li);
	if (!pc)
		return sb_err_new(SB_E_CONFLICT,
		                  "lease %s was not acquired through the bridge protocol", li->id);
	return bridge_opts_parse(pc, o);
}

/* The metadata every lease answer carries. */
static json_t *lease_answer(const char *lease_id, const char *acquisition_id, const bridge_opts *o,
                            bool reuse, const char *scope, bool resumed)
{
	json_t *m = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:b, s:b, s:o, s:b}",
	                      "provider", BRIDGE_PROVIDER, "acquisitionId", acquisition_id,
	                      "remoteCwd", o->remote_cwd, "sandboxId", lease_id, "sessionStrategy",
	                      o->named ? "named" : "default", "sessionId", o->session_id,
	                      "keepAlive", o->keep_alive, "sleepAfter", o->sleep_after,
	                      "normalizeId", o->normalize_id, "reuseLease", reuse, "reuseScopeId",
	                      scope ? json_string(scope) : json_null(), "resumedLease", resumed);
	if (bridge_is_g1_acquisition(acquisition_id)) {
		/* G1's answer: no ownership or scope fields. */
		json_object_del(m, "acquisitionId");
		json_object_del(m, "reuseLease");
		json_object_del(m, "reuseScopeId");
	}
	return json_pack("{s:s, s:o}", "providerLeaseId", lease_id, "metadata", m);
}

/* keepAlive:false leases sleep after sleepAfter without requests or commands (sleep.h). */
static void set_sleep_policy(sbs_server *srv, const char *id, const bridge_opts *o)
{
	int64_t ms = 0;
	sb_err *err = NULL;
	if (!o->keep_alive) {
		json_t *v = json_string(o->sleep_after);
		err = sbs_parse_duration_ms(v, &ms);
		json_decref(v);
		if (err) {
			sb_warn("lease %s: sleepAfter: %s; using %s", id, err->msg,
			        BRIDGE_DEFAULT_SLEEP_AFTER);
			sb_err_free(err);
			ms = 10 * 60 * 1000;
		}
	}
	if ((err = sbs_sleep_set_policy(srv->sleep, id, ms))) {
		sb_warn("%s", err->msg);
		sb_err_free(err);
	}
}

static bool parse_body(sbs_req *r, json_t **body, bridge_opts *o)
{
	if (!sbs_req_json(r, body))
		return false;
	sb_err *err = bridge_opts_parse(*body, o);
	if (err) {
		sbs_reply_error(r, 400, "invalid_request", "%s", err->msg);
		sb_err_free(err);
		json_decref(*body);
		*body = NULL;
		return false;
	}
	return true;
}

/* ---------------------------------------------------------------- health, probe */

static void route_health(sbs_req *r, void *ud)
{
	(void)ud;
	json_t *caps = json_pack("{s:b, s:b, s:b, s:b, s:b}", "reuseLease", 1, "namedSessions", 1,
	                         "previewUrls", 0, "acquisitionReplay", 1, "scopedReuse", 1);
	/* sandbar's own object: ignored by the stock plugin, read by sandbar's bridge runner to
	 * choose HMAC signing, the native workspace routes, and cancelling a command it stops
	 * waiting for (an exec named by sandbarExecId, signalled through the native API). */
	json_t *ext = json_pack("{s:s, s:b, s:b, s:s, s:b}", "version", SB_VERSION, "hmac", 1,
	                        "workspaceTar", 1, "nativeApi", "/v1", "cancel", 1);
	sbs_reply_json(r, 200,
	               json_pack("{s:b, s:s, s:s, s:o, s:o}", "ok", 1, "provider", BRIDGE_PROVIDER,
	                         "bridgeVersion", SB_VERSION, "capabilities", caps, "sandbar",
	                         ext));
}

typedef struct setup_ctx {
	const char *lease_id, *acquisition_id, *fingerprint;
	const bridge_opts *o;
	bool probe;
	char *pwd; /* probe: what `pwd` printed */
} setup_ctx;

static sb_err *setup_lease(void *ud, sb_sandbox *sb)
{
	setup_ctx *sc = ud;
	if (!sc->probe)
		return bridge_write_mirror(sb, sc->lease_id, sc->acquisition_id, sc->fingerprint,
		                           sc->o, false);
	sb_buf script = SB_BUF_INIT;
	sb_buf_appends(&script, "mkdir -p ");
	sb_shell_quote(&script, sc->o->remote_cwd);
	sb_buf_appends(&script, " && cd ");
	sb_shell_quote(&script, sc->o->remote_cwd);
	sb_buf_appends(&script, " && pwd");
	sb_exec_result res;
	sb_exec_result_init(&res);
	sb_err *err = bridge_run_sh(sb, sb_buf_cstr(&script), NULL, 0, sc->o->timeout_ms, &res);
	if (!err && !sb_exec_result_ok(&res))
		err = bridge_command_failed(sb_buf_cstr(&script), &res);
	if (!err)
		sc->pwd = sb_xstrdup(res.out.data ? res.out.data : "");
	sb_exec_result_deinit(&res);
	sb_buf_deinit(&script);
	return err;
}

static void route_probe(sbs_req *r, void *ud)
{
	sbs_server *srv = ud;
	json_t *body = NULL;
	bridge_opts o;
	if (!parse_body(r, &body, &o))
		return;
	/* Two probes in the same millisecond still get distinct sandboxes. */
	char *rnd = sb_random_id("");
	char *id = sb_strfmt("pc-acq-probe-%lld-%.24s", (long long)sb_wall_ms(), rnd);
	setup_ctx sc = {
	    .lease_id = id, .acquisition_id = id, .fingerprint = "probe", .o = &o, .probe = true};
	sbs_lease_params p = {.lease_id = id,
	                      .acquisition_id = id,
	                      .fingerprint = "probe",
	                      .ttl_s = 600,
	                      .setup = setup_lease,
	                      .setup_ud = &sc};
	bridge_sandbox_config(srv, &p);
	sbs_acquire_outcome outcome;
	sb_err *err = sbs_leases_acquire(srv->leases, &p, &outcome, NULL);
	if (!err && outcome != SBS_ACQ_CLAIMED)
		err = sb_err_new(SB_E_CONFLICT, "probe sandbox %s: %s", id,
		                 sbs_acquire_outcome_name(outcome));
	/* Always destroyed, whatever happened; a failed destroy surfaces as 500. */
	sbs_destroy_opts dopt = {.acquisition_id = id, .force = true, .reason = "probe"};
	sbs_destroy_outcome dout;
	sb_err *derr = NULL;
	if (!err || outcome == SBS_ACQ_CLAIMED)
		derr = sbs_leases_destroy(srv->leases, id, &dopt, &dout, NULL);
	if (derr && derr->code == SB_E_NOTFOUND) {
		sb_err_free(derr);
		derr = NULL;
	}
	if (err || derr) {
		sbs_reply_error(r, 500, "internal_error", "sandbox probe failed: %s%s%s",
		                err ? err->msg : "", err && derr ? "; " : "",
		                derr ? derr->msg : "");
	} else {
		size_t n = sc.pwd ? strlen(sc.pwd) : 0;
		while (n > 0 && sc.pwd[n - 1] == '\n')
			sc.pwd[--n] = '\0';
		json_t *m = json_pack("{s:s, s:s, s:b, s:s}", "provider", BRIDGE_PROVIDER,
		                      "remoteCwd", o.remote_cwd, "namedSessions", o.named, "stdout",
		                      sc.pwd ? sc.pwd : "");
		sbs_reply_json(r, 200,
		               json_pack("{s:b, s:s, s:o}", "ok", 1, "summary",
		                         "Connected to sandbar sandbox bridge.", "metadata", m));
	}
	sb_err_free(err);
	sb_err_free(derr);
	free(sc.pwd);
	free(id);
	free(rnd);
	bridge_opts_deinit(&o);
	json_decref(body);
}

/* ---------------------------------------------------------------- acquire */

static char *fingerprint_of(const json_t *body, const bridge_opts *o, const char *env_id,
                            const char *run_id, const char *issue_id, bool reuse, const char *scope)
{
	/* The same fields as the bridge's fingerprint, hashed so the record stays small. */
	json_t *f = json_pack("{s:s, s:s, s:o, s:s, s:s, s:s, s:b, s:s, s:b, s:b, s:o}",
	                      "environmentId", env_id, "runId", run_id, "issueId",
	                      issue_id ? json_string(issue_id) : json_null(), "remoteCwd",
	                      o->remote_cwd, "sessionStrategy", o->named ? "named" : "default",
	                      "sessionId", o->session_id, "keepAlive", o->keep_alive, "sleepAfter",
	                      o->sleep_after, "normalizeId", o->normalize_id, "reuseLease", reuse,
	                      "reuseScopeId", scope ? json_string(scope) : json_null());
	(void)body;
	char *text = json_dumps(f, JSON_COMPACT | JSON_PRESERVE_ORDER);
	char hex[SB_SHA256_HEX_LEN];
	sb_sha256_hex(text, strlen(text), hex);
	free(text);
	json_decref(f);
	return sb_xstrdup(hex);
}

/* G1 acquire (no acquisitionId): the lease is `pc-env-<environmentId>` with reuseLease (an
 * existing G1 lease of that id is reused as the bridge's getSandbox would), else
 * `pc-<runId>-<8 hex>`; its owner is a fresh internal acquisition "g1:<id>:<random>", so that a
 * destroyed reusable id can be acquired again. */
static void acquire_g1(sbs_req *r, sbs_server *srv, const json_t *body, const bridge_opts *o)
{
	char *env_id = bridge_str(body, "environmentId", NULL);
	char *run_id = bridge_str(body, "runId", NULL);
	char *issue_id = bridge_str(body, "issueId", NULL);
	bool reuse = bridge_bool(body, "reuseLease", false);
	char *raw = NULL, *id = NULL, *acq = NULL, *rnd = NULL;
	sbs_lease_info info;
	sbs_lease_info_init(&info);
	sb_err *err = NULL;
	if (!env_id || !run_id) {
		sbs_reply_error(r, 400, "invalid_request", "environmentId and runId are required");
		goto out;
	}
	if (strlen(env_id) > BRIDGE_STR_MAX || strlen(run_id) > BRIDGE_STR_MAX ||
	    (issue_id && strlen(issue_id) > BRIDGE_STR_MAX)) {
		sbs_reply_error(r, 400, "invalid_request",
		                "environmentId, runId or issueId is longer than %d bytes",
		                BRIDGE_STR_MAX);
		goto out;
	}
	rnd = sb_random_id("");
	raw = reuse ? sb_strfmt("pc-env-%s", env_id) : sb_strfmt("pc-%s-%.8s", run_id, rnd);
	id = o->normalize_id ? bridge_normalize_id(raw) : sb_xstrdup(raw);
	if (!sbs_id_ok(id)) {
		sbs_reply_error(r, 400, "invalid_request",
		                "the lease id \"%.80s\" derived from %s is not a valid sandbox id "
		                "([A-Za-z0-9_-], 1 to %d characters); use a shorter id or "
		                "normalizeId",
		                id, reuse ? "environmentId" : "runId", SB_SANDBOX_ID_MAX);
		goto out;
	}
	sbs_req_set_lease(r, id);
	if (reuse && !sbs_leases_info(srv->leases, id, &info) &&
	    (info.state == SBS_LEASE_ACTIVE || info.state == SBS_LEASE_PENDING)) {
		if (!bridge_lease_is_g1(&info)) {
			sbs_reply_error(r, 409, "acquisition_conflict",
			                "Refusing to adopt sandbox %s: it is owned through the "
			                "ownership API (v2)",
			                id);
			goto out;
		}
		sbs_lease *l = NULL;
		if ((err = sbs_leases_get(srv->leases, id, SBS_GET_USE, &l))) {
			sbs_reply_error(r, 500, "internal_error", "reusing sandbox %s: %s", id,
			                err->msg);
			goto out;
		}
		bridge_opts so;
		memset(&so, 0, sizeof so);
		if (!(err = stored_opts(&info, &so))) {
			so.timeout_ms = o->timeout_ms;
			err = bridge_write_mirror(sbs_lease_sandbox(l), id, info.acquisition_id,
			                          "g1", &so, false);
		}
		sbs_lease_unref(l);
		if (err)
			sbs_reply_error(r, 500, "internal_error", "%s", err->msg);
		else
			sbs_reply_json(
			    r, 200, lease_answer(id, info.acquisition_id, &so, true, NULL, false));
		bridge_opts_deinit(&so);
		goto out;
	}
	acq = sb_strfmt(BRIDGE_G1_ACQ_PREFIX "%s:%.16s", id, rnd);
	json_t *md = json_pack(
	    "{s:{s:s, s:s, s:s, s:b, s:s, s:b, s:b, s:o, s:s, s:o, s:i}}", "paperclip",
	    "environmentId", env_id, "requestedCwd", o->remote_cwd, "sessionStrategy",
	    o->named ? "named" : "default", "keepAlive", o->keep_alive, "sleepAfter",
	    o->sleep_after, "normalizeId", o->normalize_id, "reuseLease", reuse, "reuseScopeId",
	    json_null(), "sessionId", o->session_id, "sessions", json_object(), "generation", 1);
	setup_ctx sc = {.lease_id = id, .acquisition_id = acq, .fingerprint = "g1", .o = o};
	sbs_lease_params p = {.lease_id = id,
	                      .acquisition_id = acq,
	                      .fingerprint = "g1",
	                      .issue_id = issue_id,
	                      .run_id = run_id,
	                      .metadata = md,
	                      .setup = setup_lease,
	                      .setup_ud = &sc};
	bridge_sandbox_config(srv, &p);
	sbs_acquire_outcome outcome;
	sbs_lease_info_deinit(&info);
	sbs_lease_info_init(&info);
	err = sbs_leases_acquire(srv->leases, &p, &outcome, &info);
	json_decref(md);
	if (err)
		sbs_reply_error(r, 500, "internal_error", "%s", err->msg);
	else if (outcome == SBS_ACQ_CLAIMED || outcome == SBS_ACQ_REPLAYED) {
		set_sleep_policy(srv, id, o);
		sbs_reply_json(r, 200, lease_answer(id, acq, o, reuse, NULL, false));
	} else
		sbs_reply_error(r, 409, "acquisition_conflict",
		                "Refusing to adopt sandbox %s: %s (another acquire of it is "
		                "running or it is being destroyed; retry)",
		                id, sbs_acquire_outcome_name(outcome));
out:
	sb_err_free(err);
	sbs_lease_info_deinit(&info);
	free(env_id);
	free(run_id);
	free(issue_id);
	free(raw);
	free(id);
	free(acq);
	free(rnd);
}

static void route_acquire(sbs_req *r, void *ud)
{
	sbs_server *srv = ud;
	json_t *body = NULL;
	bridge_opts o;
	if (!parse_body(r, &body, &o))
		return;
	char *acq = bridge_str(body, "acquisitionId", NULL);
	char *env_id = bridge_str(body, "environmentId", NULL);
	char *run_id = bridge_str(body, "runId", NULL);
	char *issue_id = bridge_str(body, "issueId", NULL);
	char *scope = bridge_str(body, "reuseScopeId", NULL);
	bool reuse = bridge_bool(body, "reuseLease", false);
	char *id = NULL, *fp = NULL;
	sbs_lease_info info;
	sbs_lease_info_init(&info);
	sb_err *err = NULL;
	if (!acq && bridge_req_is_v1(r)) {
		acquire_g1(r, srv, body, &o);
		goto out;
	}
	if (!acq || !env_id || !run_id) {
		sbs_reply_error(r, 400, "invalid_request",
		                "acquisitionId, environmentId and runId are required");
		goto out;
	}
	if (bridge_is_g1_acquisition(acq)) {
		sbs_reply_error(r, 400, "invalid_request",
		                "acquisitionId \"%.80s\" is reserved (the \"%s\" prefix marks "
		                "G1 leases)",
		                acq, BRIDGE_G1_ACQ_PREFIX);
		goto out;
	}
	if (strlen(acq) > SBS_ACQUISITION_ID_MAX || strlen(env_id) > BRIDGE_STR_MAX ||
	    strlen(run_id) > BRIDGE_STR_MAX || (issue_id && strlen(issue_id) > BRIDGE_STR_MAX)) {
		sbs_reply_error(r, 400, "invalid_request",
		                "acquisitionId (max %d bytes), environmentId, runId or issueId is "
		                "too long",
		                SBS_ACQUISITION_ID_MAX);
		goto out;
	}
	if (reuse && !bridge_is_hex32(scope)) {
		sbs_reply_error(r, 400, "invalid_request",
		                "reuseLease requires a reuseScopeId of exactly 32 hex characters");
		goto out;
	}
	if ((err = bridge_lease_id(acq, reuse ? scope : NULL, o.normalize_id, &id))) {
		sbs_reply_error(r, 400, "invalid_request", "%s", err->msg);
		goto out;
	}
	fp = fingerprint_of(body, &o, env_id, run_id, issue_id, reuse, reuse ? scope : NULL);
	json_t *md = json_pack(
	    "{s:{s:s, s:s, s:s, s:b, s:s, s:b, s:b, s:o, s:s, s:o}}", "paperclip", "environmentId",
	    env_id, "requestedCwd", o.remote_cwd, "sessionStrategy", o.named ? "named" : "default",
	    "keepAlive", o.keep_alive, "sleepAfter", o.sleep_after, "normalizeId", o.normalize_id,
	    "reuseLease", reuse, "reuseScopeId", reuse ? json_string(scope) : json_null(),
	    "sessionId", o.session_id, "sessions", json_object());
	setup_ctx sc = {.lease_id = id, .acquisition_id = acq, .fingerprint = fp, .o = &o};
	sbs_lease_params p = {.lease_id = id,
	                      .acquisition_id = acq,
	                      .fingerprint = fp,
	                      .issue_id = issue_id,
	                      .run_id = run_id,
	                      .reuse_scope = reuse ? scope : NULL,
	                      .metadata = md,
	                      .setup = setup_lease,
	                      .setup_ud = &sc};
	bridge_sandbox_config(srv, &p);
	sbs_acquire_outcome outcome;
	int64_t t0 = (sb_mono_ns() / 1000);
	err = sbs_leases_acquire(srv->leases, &p, &outcome, &info);
	if (!err && outcome == SBS_ACQ_CLAIMED)
		sbs_metrics_acquired(srv->metrics, (sb_mono_ns() / 1000) - t0);
	json_decref(md);
	sbs_req_set_lease(r, id);
	if (err) {
		/* The lease service destroyed what it created; nothing survives to report. */
		sbs_metrics_acquire_failed(srv->metrics, sb_errcode_name(err->code));
		sbs_reply_error(r, 500, "acquisition_failed", "%s", err->msg);
		goto out;
	}
	switch (outcome) {
	case SBS_ACQ_CLAIMED:
	case SBS_ACQ_REPLAYED:
		if (outcome == SBS_ACQ_CLAIMED)
			set_sleep_policy(srv, id, &o);
		sbs_reply_json(r, 200,
		               lease_answer(id, acq, &o, reuse, reuse ? scope : NULL, false));
		break;
	case SBS_ACQ_IN_PROGRESS:
		sbs_reply_error_details(r, 503, "acquisition_in_progress",
		                        json_pack("{s:s}", "providerLeaseId", id),
		                        "Acquisition %s of sandbox %s is still being set up; retry "
		                        "with the same acquisitionId",
		                        acq, id);
		break;
	default:
		sbs_reply_error(r, 409, "acquisition_conflict",
		                "Refusing to adopt sandbox %s for acquisition %s: %s", id, acq,
		                sbs_acquire_outcome_name(outcome));
		break;
	}
out:
	sb_err_free(err);
	sbs_lease_info_deinit(&info);
	free(acq);
	free(env_id);
	free(run_id);
	free(issue_id);
	free(scope);
	free(id);
	free(fp);
	bridge_opts_deinit(&o);
	json_decref(body);
}

/* ---------------------------------------------------------------- resume */

static void reply_lost(sbs_req *r, const char *id, const char *why)
{
	sbs_reply_error(r, 409, "sandbox_state_lost",
	                "Sandbox state of lease %s is no longer available (%s); acquire a new "
	                "lease",
	                id, why);
}

static void route_resume(sbs_req *r, void *ud)
{
	sbs_server *srv = ud;
	json_t *body = NULL;
	bridge_opts o, so;
	memset(&so, 0, sizeof(so));
	if (!parse_body(r, &body, &o))
		return;
	char *id = bridge_str(body, "providerLeaseId", NULL);
	char *acq = bridge_str(body, "acquisitionId", NULL);
	sbs_lease *l = NULL;
	sbs_lease_info info;
	sbs_lease_info_init(&info);
	char *fence = NULL;
	json_t *mirror = NULL;
	sb_err *err = NULL;
	if (!id) {
		sbs_reply_error(r, 400, "invalid_request", "providerLeaseId is required");
		goto out;
	}
	sbs_req_set_lease(r, id);
	if ((err = sbs_leases_get(srv->leases, id, SBS_GET_USE, &l))) {
		/* Unknown, destroyed, dying or dead: the sandbox the caller knew is gone. */
		if (err->code == SB_E_BUSY)
			sbs_reply_error(r, 409, "acquisition_conflict",
			                "lease %s is still being set up", id);
		else
			reply_lost(r, id, err->msg);
		goto out;
	}
	sbs_lease_get_info(l, &info);
	bool g1 = !acq && bridge_req_is_v1(r);
	if (g1 && bridge_lease_is_g1(&info))
		acq = sb_xstrdup(info.acquisition_id);
	if (!acq || !info.acquisition_id || strcmp(acq, info.acquisition_id) != 0) {
		sbs_reply_error(r, 409, "acquisition_conflict",
		                "lease %s is owned by another acquisition%s", id,
		                acq ? "" : " (the request names none)");
		goto out;
	}
	if ((err = stored_opts(&info, &so))) {
		sbs_reply_error(r, 409, "acquisition_conflict", "%s", err->msg);
		goto out;
	}
	/* The mirror must still describe this owner; anything else means the workspace the
	 * caller relies on is not the one it left. */
	if ((err =
	         bridge_read_mirror(sbs_lease_sandbox(l), so.remote_cwd, o.timeout_ms, &mirror))) {
		reply_lost(r, id, err->msg);
		goto out;
	}
	const char *m_acq = json_string_value(json_object_get(mirror, "acquisitionId"));
	const char *m_fp = json_string_value(json_object_get(mirror, "acquisitionFingerprint"));
	if (g1 && !mirror) {
		/* G1 checks only that the sentinel is still there. */
		reply_lost(r, id, "its lease sentinel is missing or corrupt");
		goto out;
	}
	if (!g1 && (!mirror || !m_acq || !m_fp || strcmp(m_acq, acq) != 0 || !info.fingerprint ||
	            strcmp(m_fp, info.fingerprint) != 0)) {
		reply_lost(r, id, "its ownership mirror is missing, corrupt or foreign");
		goto out;
	}
	fence = sb_random_id("resume-");
	if ((err = sbs_lease_fence_begin(l, fence, sb_wall_ms() + BRIDGE_FENCE_TTL_MS, NULL))) {
		free(fence);
		fence = NULL;
		sbs_reply_error(r, 409, "acquisition_conflict",
		                "ownership of lease %s changed during resume: %s", id, err->msg);
		goto out;
	}
	/* The stored options win over the request's (they are what the fingerprint covers);
	 * only the command timeout is the caller's. */
	so.timeout_ms = o.timeout_ms;
	if ((err =
	         bridge_write_mirror(sbs_lease_sandbox(l), id, acq, info.fingerprint, &so, true))) {
		sbs_reply_error(r, 500, "internal_error", "%s", err->msg);
		goto out;
	}
	const json_t *pc = bridge_record_meta(&info);
	bool reuse = json_is_true(json_object_get(pc, "reuseLease"));
	const char *scope = json_string_value(json_object_get(pc, "reuseScopeId"));
	sbs_reply_json(r, 200, lease_answer(id, acq, &so, reuse, scope, true));
out:
	if (fence)
		sbs_lease_fence_end(l, fence);
	free(fence);
	if (l)
		sbs_lease_unref(l);
	json_decref(mirror);
	sb_err_free(err);
	sbs_lease_info_deinit(&info);
	free(id);
	free(acq);
	bridge_opts_deinit(&so);
	bridge_opts_deinit(&o);
	json_decref(body);
}

static void route_not_found(sbs_req *r, void *ud)
{
	(void)ud;
	sbs_reply_error(r, 404, "not_found", "No bridge route matched %s %s", sbs_req_method(r),
	                sbs_req_path(r));
}

/* ---------------------------------------------------------------- registration */

void sbs_bridge_routes_register(sbs_server *srv)
{
	static const char *const prefixes[] = {BRIDGE_PREFIX_V1, BRIDGE_PREFIX_V2};
	for (size_t i = 0; i < 2; i++) {
		const char *p = prefixes[i];
		char buf[128];
#define ROUTE(method, path, flags, h)                                                              \
	do {                                                                                       \
		snprintf(buf, sizeof(buf), "%s%s", p, path);                                       \
		sbs_router_add(srv->router, method, buf, flags, h, srv);                           \
	} while (0)
		ROUTE("GET", "/health", 0, route_health);
		ROUTE("POST", "/probe", SBS_ROUTE_BODY_JSON, route_probe);
		ROUTE("POST", "/leases/acquire", SBS_ROUTE_BODY_JSON, route_acquire);
		ROUTE("POST", "/leases/resume", SBS_ROUTE_BODY_JSON, route_resume);
		ROUTE("POST", "/leases/release", SBS_ROUTE_BODY_JSON, bridge_route_release);
		ROUTE("DELETE", "/leases/{id}", SBS_ROUTE_BODY_JSON, bridge_route_delete);
		/* Exec bodies carry stdin (base64 upload chunks of 4 MiB and more): spooled, then
		 * parsed under the route's own bound. */
		ROUTE("POST", "/exec", SBS_ROUTE_BODY_SPOOL, bridge_route_exec);
#undef ROUTE
	}
	sbs_router_set_fallback(srv->router, "/api/paperclip-sandbox/", route_not_found, srv);
}
