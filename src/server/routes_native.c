/* The native API under /v1 (docs/api.md): health, metrics and leases; execs with SSE streaming
 * and resumable output, signals and processes are in routes_execs.c, input to execs in
 * routes_exec_input.c, file and workspace routes in routes_files.c. Handlers validate input
 * (400 naming the field), call the lease and exec services, and map outcomes to the
 * documented status codes. */
#include "acquire_request.h"
#include "warm_pool.h"
#include "server_int.h"
#include "sleep.h"

#include <stdlib.h>
#include <string.h>
#include "sb_json.h"

/* ------------------------------------------------------------------ helpers */

/* Resolve {id} to a referenced lease or reply with the error. */
sbs_lease *sbs_route_lease(sbs_req *r, unsigned flags)
{
	const char *id = sbs_req_param(r, "id");
	sbs_req_set_lease(r, id);
	sbs_lease *l = NULL;
	sb_err *err = sbs_leases_get(sbs_req_server(r)->leases, id, flags | SBS_GET_USE, &l);
	if (err) {
		sbs_reply_err(r, err);
		return NULL;
	}
	return l;
}

/* ------------------------------------------------------------------ health, metrics */

static void h_health(sbs_req *r, void *ud)
{
	(void)ud;
	sbs_server *srv = sbs_req_server(r);
	json_t *j = json_object();
	json_object_set_new(j, "ok", json_true());
	json_object_set_new(j, "version", json_string(SB_VERSION));
	char t[SB_ISO8601_LEN];
	sb_iso8601(srv->started_ms, t);
	json_object_set_new(j, "started_at", json_string(t));
	json_t *caps = json_object();
	json_object_set_new(caps, "sse", json_true());
	json_object_set_new(caps, "resumable_output", json_true());
	json_object_set_new(caps, "acquisition_replay", json_true());
	json_object_set_new(caps, "tombstones", json_true());
	json_object_set_new(caps, "files", json_true());
	json_object_set_new(caps, "workspace_tar", json_true());
	json_object_set_new(caps, "hmac", json_true());
	json_object_set_new(j, "capabilities", caps);
	json_t *lim = json_object();
	json_object_set_new(lim, "max_connections",
	                    json_integer((json_int_t)srv->limits.max_connections));
	json_object_set_new(lim, "max_waiting", json_integer(srv->limits.max_waiting));
	json_object_set_new(lim, "max_waiting_per_peer",
	                    json_integer(srv->limits.max_waiting_per_peer));
	json_object_set_new(lim, "header_timeout_ms", json_integer(srv->limits.header_timeout_ms));
	json_object_set_new(lim, "idle_timeout_s", json_integer(srv->limits.idle_timeout_s));
	json_object_set_new(lim, "open_files", json_integer((json_int_t)srv->nofile));
	json_object_set_new(lim, "max_header_bytes",
	                    json_integer((json_int_t)srv->limits.max_header_bytes));
	json_object_set_new(lim, "max_json_bytes",
	                    json_integer((json_int_t)srv->limits.max_json_bytes));
	json_object_set_new(lim, "max_json_depth",
	                    json_integer((json_int_t)srv->limits.max_json_depth));
	json_object_set_new(lim, "max_upload_bytes",
	                    json_integer((json_int_t)srv->limits.max_upload_bytes));
	json_object_set_new(lim, "exec_output_cap",
	                    json_integer((json_int_t)srv->limits.output_cap));
	json_object_set_new(lim, "sse_keepalive_ms", json_integer(srv->limits.keepalive_ms));
	json_object_set_new(lim, "hmac_skew_s", json_integer(SB_HMAC_SKEW_S));
	json_t *sh = srv->sandbox_health;
	json_t *enf = sh ? json_object_get(sh, "limits") : NULL;
	json_object_set_new(lim, "sandbox", enf ? json_deep_copy(enf) : json_object());
	json_object_set_new(j, "limits", lim);
	json_object_set_new(j, "sandbox", sh ? json_deep_copy(sh) : json_null());
	/* the warm pool: its size and the sandboxes waiting in it (not leases until claimed),
	 * in all and per configuration */
	unsigned wsize = 0, wready = 0;
	json_t *pools = json_object();
	if (srv->warm) {
		sbs_warm_counts(srv->warm, &wsize, &wready);
		sbs_warm_stats st[SBS_WARM_CONFIGS_MAX];
		size_t n = sbs_warm_stats_get(srv->warm, st, SBS_WARM_CONFIGS_MAX);
		for (size_t i = 0; i < n; i++)
			json_object_set_new(
			    pools, st[i].name,
			    json_pack("{s:I, s:I, s:I, s:I}", "size", (json_int_t)st[i].size,
			              "ready", (json_int_t)st[i].ready, "claimed",
			              (json_int_t)st[i].claimed, "empty", (json_int_t)st[i].empty));
	}
	json_object_set_new(j, "warm", json_integer(wsize));
	json_object_set_new(j, "warm_ready", json_integer(wready));
	json_object_set_new(j, "warm_pools", pools);
	sbs_reply_json(r, 200, j);
}

static void h_metrics(sbs_req *r, void *ud)
{
	(void)ud;
	sbs_server *srv = sbs_req_server(r);
	uint64_t c[5];
	sbs_leases_counts(srv->leases, c);
	sbs_lease_counts lc = {.pending = c[SBS_LEASE_PENDING],
	                       .active = c[SBS_LEASE_ACTIVE],
	                       .destroying = c[SBS_LEASE_DESTROYING],
	                       .destroyed = c[SBS_LEASE_DESTROYED],
	                       .lost = c[SBS_LEASE_LOST]};
	sb_buf out = SB_BUF_INIT;
	sbs_metrics_render(srv->metrics, &lc, &out);
	sbs_gate_stats g = {0};
	for (size_t i = 0; i < sizeof srv->gates / sizeof srv->gates[0]; i++) {
		sbs_gate_stats one;
		if (!srv->gates[i])
			continue;
		sbs_gate_stats_get(srv->gates[i], &one);
		g.waiting += one.waiting;
		g.accepted += one.accepted;
		g.evicted += one.evicted;
		g.timed_out += one.timed_out;
		g.too_large += one.too_large;
	}
	sb_buf_appendf(&out,
	               "# HELP sandbar_connections_waiting Connections still sending their first "
	               "request head.\n# TYPE sandbar_connections_waiting gauge\n"
	               "sandbar_connections_waiting %llu\n"
	               "# HELP sandbar_connections_total Connections by fate at the gate.\n"
	               "# TYPE sandbar_connections_total counter\n"
	               "sandbar_connections_total{fate=\"served\"} %llu\n"
	               "sandbar_connections_total{fate=\"evicted\"} %llu\n"
	               "sandbar_connections_total{fate=\"header_timeout\"} %llu\n"
	               "sandbar_connections_total{fate=\"header_too_large\"} %llu\n",
	               (unsigned long long)g.waiting, (unsigned long long)g.accepted,
	               (unsigned long long)g.evicted, (unsigned long long)g.timed_out,
	               (unsigned long long)g.too_large);
	{
		/* callback bridges (issue 16) */
		const sb_callback_stats *cs = &srv->callback_stats;
		char line[512];
		snprintf(line, sizeof line,
		         "# TYPE sandbar_callback_requests_total counter\n"
		         "sandbar_callback_requests_total{outcome=\"allowed\"} %llu\n"
		         "sandbar_callback_requests_total{outcome=\"denied\"} %llu\n"
		         "sandbar_callback_requests_total{outcome=\"indeterminate\"} %llu\n",
		         (unsigned long long)__atomic_load_n(&cs->allowed, __ATOMIC_RELAXED),
		         (unsigned long long)__atomic_load_n(&cs->denied, __ATOMIC_RELAXED),
		         (unsigned long long)__atomic_load_n(&cs->indeterminate, __ATOMIC_RELAXED));
		sb_buf_appends(&out, line);
	}
	sb_buf_appendf(&out,
	               "# HELP sandbar_leases_sleeping Active leases whose command processes are "
	               "frozen (idle sleep).\n# TYPE sandbar_leases_sleeping gauge\n"
	               "sandbar_leases_sleeping %zu\n",
	               sbs_sleep_count(srv->sleep));
	if (srv->warm) {
		sbs_warm_stats st[SBS_WARM_CONFIGS_MAX];
		size_t n = sbs_warm_stats_get(srv->warm, st, SBS_WARM_CONFIGS_MAX);
		sb_buf_appends(&out,
		               "# HELP sandbar_warm_ready Warm sandboxes started and waiting, "
		               "by configuration.\n# TYPE sandbar_warm_ready gauge\n");
		for (size_t i = 0; i < n; i++)
			sb_buf_appendf(&out, "sandbar_warm_ready{config=\"%s\"} %u\n", st[i].name,
			               st[i].ready);
		sb_buf_appends(&out, "# HELP sandbar_warm_acquires_total Acquires of a warm "
		                     "configuration: claimed a waiting sandbox or found none.\n"
		                     "# TYPE sandbar_warm_acquires_total counter\n");
		for (size_t i = 0; i < n; i++)
			sb_buf_appendf(
			    &out,
			    "sandbar_warm_acquires_total{config=\"%s\",outcome=\"claimed\"} "
			    "%llu\n"
			    "sandbar_warm_acquires_total{config=\"%s\",outcome=\"empty\"} "
			    "%llu\n",
			    st[i].name, (unsigned long long)st[i].claimed, st[i].name,
			    (unsigned long long)st[i].empty);
	}
	sbs_leases_egress_metrics(srv->leases, &out);
	sbs_reply_bytes(r, 200, "text/plain; version=0.0.4", sb_buf_cstr(&out), out.len);
	sb_buf_deinit(&out);
}

/* ------------------------------------------------------------------ leases */

static void h_acquire(sbs_req *r, void *ud)
{
	(void)ud;
	sbs_server *srv = sbs_req_server(r);
	json_t *b = NULL;
	if (!sbs_req_json(r, &b))
		return;
	sbs_acquire_req q;
	sb_err *err = sbs_acquire_req_parse(srv, b, &q);
	if (err) {
		if (q.forbidden) {
			sbs_reply_error(r, 403, q.forbidden, "%s", err->msg);
			sb_err_free(err);
		} else {
			sbs_reply_err(r, err);
		}
		json_decref(b);
		return;
	}
	int64_t sleep_after = q.sleep_after_ms;
	sbs_acquire_outcome oc;
	sbs_lease_info li;
	sbs_lease_info_init(&li);
	int64_t t0 = (sb_mono_ns() / 1000);
	err = sbs_leases_acquire(srv->leases, &q.p, &oc, &li);
	if (!err && oc == SBS_ACQ_CLAIMED)
		sbs_metrics_acquired(srv->metrics, (sb_mono_ns() / 1000) - t0);
	sbs_acquire_req_deinit(&q);
	json_decref(b);
	if (err) {
		/* Only a request the client can correct is its fault; anything that failed inside
		 * the daemon (a file of the state directory missing is ENOENT, not "no such
		 * lease") is a 500 the client may retry with the same acquisition id. */
		const char *code;
		unsigned st = sbs_err_status(err, &code);
		bool clients_fault = err->code == SB_E_INVAL || err->code == SB_E_CONFLICT ||
		                     err->code == SB_E_EXISTS || err->code == SB_E_TOO_LARGE;
		if (!clients_fault || st >= 500) {
			sbs_metrics_acquire_failed(srv->metrics, sb_errcode_name(err->code));
			sbs_reply_error(r, 500, "acquisition_failed", "%s", err->msg);
		} else {
			sbs_reply_error(r, st, code, "%s", err->msg);
		}
		sb_err_free(err);
		sbs_lease_info_deinit(&li);
		return;
	}
	sbs_req_set_lease(r, li.id);
	json_t *details =
	    json_pack("{s:s, s:s}", "lease_id", li.id, "state", sbs_lease_state_name(li.state));
	switch (oc) {
	case SBS_ACQ_CLAIMED:
	case SBS_ACQ_REPLAYED:
	case SBS_ACQ_REUSED: {
		if (oc == SBS_ACQ_CLAIMED && sleep_after > 0 &&
		    (err = sbs_sleep_set_policy(srv->sleep, li.id, sleep_after))) {
			sb_warn("%s", err->msg);
			sb_err_free(err);
		}
		json_t *j = sbs_lease_info_json(&li);
		sbs_sleep_annotate(srv->sleep, j);
		sbs_leases_annotate_network(srv->leases, j);
		json_object_set_new(j, "replayed", json_boolean(oc == SBS_ACQ_REPLAYED));
		json_object_set_new(j, "reused", json_boolean(oc == SBS_ACQ_REUSED));
		json_decref(details);
		sbs_reply_json(r, 200, j);
		break;
	}
	case SBS_ACQ_IN_PROGRESS:
		sbs_req_add_header(r, "Retry-After", "1");
		sbs_reply_error_details(
		    r, 503, "acquisition_in_progress", details,
		    "acquisition \"%s\" (lease %s) is still being set up; retry", li.acquisition_id,
		    li.id);
		break;
	case SBS_ACQ_CONFLICT:
		sbs_reply_error_details(r, 409, "acquisition_conflict", details,
		                        "acquisition \"%s\" or lease id %s is already used with "
		                        "different parameters; use a new acquisition_id",
		                        li.acquisition_id, li.id);
		break;
	case SBS_ACQ_COMPLETED:
		sbs_reply_error_details(
		    r, 409, "acquisition_conflict", details,
		    "the lease %s of acquisition \"%s\" was destroyed; use a new "
		    "acquisition_id",
		    li.id, li.acquisition_id);
		break;
	case SBS_ACQ_DESTROYING:
		sbs_reply_error_details(r, 409, "acquisition_conflict", details,
		                        "the lease %s of acquisition \"%s\" is being destroyed",
		                        li.id, li.acquisition_id);
		break;
	}
	sbs_lease_info_deinit(&li);
}

static void h_list(sbs_req *r, void *ud)
{
	(void)ud;
	json_t *arr = NULL;
	sb_err *err =
	    sbs_leases_list(sbs_req_server(r)->leases, sbs_req_query_bool(r, "all", false), &arr);
	if (err) {
		sbs_reply_err(r, err);
		return;
	}
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v)
	{
		sbs_sleep_annotate(sbs_req_server(r)->sleep, v);
		sbs_leases_annotate_network(sbs_req_server(r)->leases, v);
	}
	sbs_reply_json(r, 200, json_pack("{s:o}", "leases", arr));
}

/* POST /v1/leases/{id}/sleep and /wake: idle sleep on request (docs/api.md). */
static void h_sleep(sbs_req *r, void *ud)
{
	bool wake = ud != NULL;
	const char *id = sbs_req_param(r, "id");
	sbs_req_set_lease(r, id);
	sbs_server *srv = sbs_req_server(r);
	sb_err *err = wake ? sbs_sleep_wake(srv->sleep, id) : sbs_sleep_now(srv->sleep, id);
	if (err) {
		if (err->code == SB_E_BUSY)
			sbs_reply_error(r, 409, "lease_busy", "%s", err->msg);
		else
			sbs_reply_err(r, err);
		return;
	}
	sbs_lease_info li;
	sbs_lease_info_init(&li);
	if ((err = sbs_leases_info(srv->leases, id, &li))) {
		sbs_reply_err(r, err);
		return;
	}
	json_t *j = sbs_lease_info_json(&li);
	sbs_sleep_annotate(srv->sleep, j);
	sbs_leases_annotate_network(srv->leases, j);
	sbs_reply_json(r, 200, j);
	sbs_lease_info_deinit(&li);
}

static void h_get(sbs_req *r, void *ud)
{
	(void)ud;
	const char *id = sbs_req_param(r, "id");
	sbs_req_set_lease(r, id);
	sbs_lease_info li;
	sbs_lease_info_init(&li);
	sb_err *err = sbs_leases_info(sbs_req_server(r)->leases, id, &li);
	if (err) {
		sbs_reply_err(r, err);
		return;
	}
	json_t *j = sbs_lease_info_json(&li);
	sbs_sleep_annotate(sbs_req_server(r)->sleep, j);
	sbs_leases_annotate_network(sbs_req_server(r)->leases, j);
	sbs_reply_json(r, 200, j);
	sbs_lease_info_deinit(&li);
}

static void h_renew(sbs_req *r, void *ud)
{
	(void)ud;
	const char *id = sbs_req_param(r, "id");
	sbs_req_set_lease(r, id);
	json_t *b = NULL;
	if (!sbs_req_json(r, &b))
		return;
	int64_t ttl = 0;
	sb_err *err = sb_json_get_int(b, "ttl_s", true, 0, 365LL * 24 * 3600, &ttl);
	json_decref(b);
	if (err) {
		sbs_reply_err(r, err);
		return;
	}
	sbs_lease_info li;
	sbs_lease_info_init(&li);
	if ((err = sbs_leases_renew(sbs_req_server(r)->leases, id, ttl, &li))) {
		sbs_reply_err(r, err);
		return;
	}
	sbs_reply_json(r, 200, sbs_lease_info_json(&li));
	sbs_lease_info_deinit(&li);
}

static void h_destroy(sbs_req *r, void *ud)
{
	(void)ud;
	const char *id = sbs_req_param(r, "id");
	sbs_req_set_lease(r, id);
	sbs_destroy_opts o = {.acquisition_id = sbs_req_query_get(r, "acquisition_id"),
	                      .force = sbs_req_query_bool(r, "force", false),
	                      .defer = sbs_req_query_bool(r, "defer", false),
	                      .reason = "client"};
	sbs_destroy_outcome oc;
	char **busy = NULL;
	sb_err *err = sbs_leases_destroy(sbs_req_server(r)->leases, id, &o, &oc, &busy);
	if (err) {
		sb_strv_free(busy);
		sbs_reply_err(r, err);
		return;
	}
	json_t *ids = json_array();
	for (size_t i = 0; busy && busy[i]; i++)
		json_array_append_new(ids, json_string(busy[i]));
	sb_strv_free(busy);
	switch (oc) {
	case SBS_DESTROY_DONE:
	case SBS_DESTROY_ALREADY:
		json_decref(ids);
		sbs_reply_json(r, 200,
		               json_pack("{s:s, s:s, s:b}", "id", id, "state", "destroyed",
		                         "already", oc == SBS_DESTROY_ALREADY));
		break;
	case SBS_DESTROY_DEFERRED:
		sbs_reply_json(r, 202,
		               json_pack("{s:s, s:s, s:o}", "id", id, "state", "destroying",
		                         "waiting_for", ids));
		break;
	case SBS_DESTROY_BUSY:
		sbs_reply_error_details(r, 409, "lease_busy", json_pack("{s:o}", "busy", ids),
		                        "lease \"%s\" has running execs or active fences; retry "
		                        "later, or use ?defer=1 or ?force=1",
		                        id);
		break;
	case SBS_DESTROY_CONFLICT:
		json_decref(ids);
		sbs_reply_error(r, 409, "acquisition_conflict",
		                "lease \"%s\" belongs to another acquisition", id);
		break;
	case SBS_DESTROY_IN_PROGRESS:
		json_decref(ids);
		sbs_reply_error(r, 409, "lease_busy",
		                "lease \"%s\" is being set up or destroyed; retry", id);
		break;
	}
}

void sbs_native_routes_register(sbs_server *srv)
{
	sbs_router *rt = srv->router;
	sbs_router_add(rt, "GET", "/v1/health", SBS_ROUTE_NOAUTH, h_health, NULL);
	sbs_router_add(rt, "GET", "/metrics", 0, h_metrics, NULL);
	sbs_router_add(rt, "GET", "/v1/metrics", 0, h_metrics, NULL); /* the same, under /v1 */
	sbs_router_add(rt, "POST", "/v1/leases", SBS_ROUTE_BODY_JSON, h_acquire, NULL);
	sbs_router_add(rt, "GET", "/v1/leases", 0, h_list, NULL);
	sbs_router_add(rt, "GET", "/v1/leases/{id}", 0, h_get, NULL);
	sbs_router_add(rt, "DELETE", "/v1/leases/{id}", 0, h_destroy, NULL);
	sbs_router_add(rt, "POST", "/v1/leases/{id}/renew", SBS_ROUTE_BODY_JSON, h_renew, NULL);
	sbs_router_add(rt, "POST", "/v1/leases/{id}/sleep", 0, h_sleep, NULL);
	sbs_router_add(rt, "POST", "/v1/leases/{id}/wake", 0, h_sleep, (void *)1);
	sbs_exec_routes_register(srv);
	sbs_file_routes_register(srv);
}
