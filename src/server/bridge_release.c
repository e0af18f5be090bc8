/* The bridge's release and destroy routes (paperclip-bridge-protocol.md §2.3): release keeps
 * a reusable lease for its acquisition or destroys it; destroy is coordinated through the lease
 * service (refused while an exec runs) and idempotent per acquisition, tombstones included. G1
 * clients (no acquisitionId under v1) get their own lenient path. */
#include "bridge_int.h"

#include <stdlib.h>
#include <string.h>

/* Was lease id, as owned by acquisition acq, destroyed already (a tombstone)? */
static bool destroyed_by(sbs_server *srv, const char *id, const char *acq)
{
	sbs_lease_info li;
	sbs_lease_info_init(&li);
	sb_err *err = sbs_store_lease_by_acquisition(srv->store, acq, &li);
	bool yes = !err && li.state == SBS_LEASE_DESTROYED && strcmp(li.id, id) == 0;
	sb_err_free(err);
	sbs_lease_info_deinit(&li);
	return yes;
}

/* G1 release/destroy (no acquisitionId under v1) of a G1 lease: destroyed once no exec runs,
 * errors swallowed, always 200 (an unknown or destroyed id included). keep: reuseLease. */
static void g1_release(sbs_req *r, sbs_server *srv, const char *id, bool keep)
{
	sbs_lease_info info;
	sbs_lease_info_init(&info);
	sb_err *err = sbs_leases_info(srv->leases, id, &info);
	bool live = !err && info.state != SBS_LEASE_DESTROYED;
	if (live && !bridge_lease_is_g1(&info)) {
		bridge_reply_owned_by_v2(r, id);
		goto out;
	}
	if (live && !keep) {
		sbs_destroy_opts o = {
		    .acquisition_id = info.acquisition_id, .defer = true, .reason = "paperclip g1"};
		sbs_destroy_outcome out;
		sb_err *derr = sbs_leases_destroy(srv->leases, id, &o, &out, NULL);
		if (derr) {
			sb_warn("bridge (G1) destroy of lease %s: %s", id, derr->msg);
			sb_err_free(derr);
		}
	}
	sbs_reply_json(r, 200, json_pack("{s:b}", "ok", 1));
out:
	sb_err_free(err);
	sbs_lease_info_deinit(&info);
}

/* Coordinated destroy of lease id by acquisition acq; replies. */
static void destroy_and_reply(sbs_req *r, sbs_server *srv, const char *id, const char *acq)
{
	if (!acq && bridge_req_is_v1(r)) {
		g1_release(r, srv, id, false);
		return;
	}
	if (!acq) {
		/* sandbar never had unowned (legacy) bridge leases: no identity, no destroy. */
		sbs_reply_error(r, 409, "acquisition_conflict",
		                "destroying lease %s requires its acquisitionId", id);
		return;
	}
	sbs_destroy_opts o = {.acquisition_id = acq, .reason = "paperclip"};
	sbs_destroy_outcome out;
	char **busy = NULL;
	sb_err *err = sbs_leases_destroy(srv->leases, id, &o, &out, &busy);
	if (err) {
		if (err->code == SB_E_NOTFOUND)
			sbs_reply_error(r, 409, "acquisition_conflict",
			                "lease %s has no ownership record: %s", id, err->msg);
		else
			/* The outcome is unknown and the record stays DESTROYING: retry. */
			sbs_reply_error(r, 500, "internal_error", "%s", err->msg);
		sb_err_free(err);
		sb_strv_free(busy);
		return;
	}
	switch (out) {
	case SBS_DESTROY_DONE:
	case SBS_DESTROY_ALREADY:
		sbs_reply_json(r, 200, json_pack("{s:b}", "ok", 1));
		break;
	case SBS_DESTROY_BUSY:
	case SBS_DESTROY_DEFERRED:
	case SBS_DESTROY_IN_PROGRESS:
		sbs_reply_error_details(r, 409, "acquisition_conflict",
		                        json_pack("{s:s}", "providerLeaseId", id),
		                        "lease %s is busy (a setup, resume or exec is running); "
		                        "retry once it has finished",
		                        id);
		break;
	case SBS_DESTROY_CONFLICT:
		/* A repeated destroy by an acquisition whose lease is already gone succeeds
		 * without touching the later owner of the same id. */
		if (destroyed_by(srv, id, acq))
			sbs_reply_json(r, 200, json_pack("{s:b}", "ok", 1));
		else
			sbs_reply_error(r, 409, "acquisition_conflict",
			                "lease %s is owned by another acquisition", id);
		break;
	}
	sb_strv_free(busy);
}

void bridge_route_release(sbs_req *r, void *ud)
{
	sbs_server *srv = ud;
	json_t *body = NULL;
	if (!sbs_req_json(r, &body))
		return;
	char *id = bridge_str(body, "providerLeaseId", NULL);
	char *acq = bridge_str(body, "acquisitionId", NULL);
	sbs_lease_info info;
	sbs_lease_info_init(&info);
	if (!id) {
		sbs_reply_json(r, 200, json_pack("{s:b}", "ok", 1)); /* nothing to release */
		goto out;
	}
	sbs_req_set_lease(r, id);
	if (!bridge_bool(body, "reuseLease", false)) {
		destroy_and_reply(r, srv, id, acq);
		goto out;
	}
	if (!acq && bridge_req_is_v1(r)) {
		g1_release(r, srv, id, true);
		goto out;
	}
	if (!acq) {
		sbs_reply_error(r, 400, "invalid_request",
		                "releasing a reusable lease requires its acquisitionId");
		goto out;
	}
	sb_err *err = sbs_leases_info(srv->leases, id, &info);
	if (err || info.state == SBS_LEASE_DESTROYED || info.state == SBS_LEASE_DESTROYING ||
	    !info.acquisition_id || strcmp(info.acquisition_id, acq) != 0)
		sbs_reply_error(r, 409, "acquisition_conflict",
		                "lease %s is not owned by acquisition %s%s%s", id, acq,
		                err ? ": " : "", err ? err->msg : "");
	else
		sbs_reply_json(r, 200, json_pack("{s:b}", "ok", 1)); /* kept for reuse */
	sb_err_free(err);
out:
	sbs_lease_info_deinit(&info);
	free(id);
	free(acq);
	json_decref(body);
}

void bridge_route_delete(sbs_req *r, void *ud)
{
	sbs_server *srv = ud;
	const char *id = sbs_req_param(r, "id");
	if (!id || !*id) {
		sbs_reply_error(r, 400, "invalid_request", "the lease id is empty");
		return;
	}
	sbs_req_set_lease(r, id);
	/* The body is optional and a broken one is ignored, as the bridge does. */
	size_t len = 0;
	const char *text = sbs_req_body(r, &len);
	json_error_t jerr;
	json_t *body = len ? json_loadb(text, len, 0, &jerr) : NULL;
	char *acq = json_is_object(body) ? bridge_str(body, "acquisitionId", NULL) : NULL;
	destroy_and_reply(r, srv, id, acq);
	free(acq);
	json_decref(body);
}
