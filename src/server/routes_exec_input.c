/* Native routes for input to running execs (docs/api.md, "Interactive execs"):
 *   POST /v1/leases/{id}/execs/{exec_id}/stdin   body appended to the command's stdin
 *                                                (?eof=1: then closed)
 *   POST /v1/leases/{id}/execs/{exec_id}/resize  {"rows","cols"} for a tty exec
 * The exec must have been started with "stdin_stream" or "tty"; its output is read as for any
 * exec (SSE on the exec or .../output). A body is spooled (bounded by max_upload_bytes, and
 * authenticated, HMAC digest included) before any of it reaches the command. */
#include <stdlib.h>
#include <string.h>

#include "exec_input.h"
#include "server_int.h"
#include "sb_json.h"

/* The lease exists and the exec is still running (a terminal takes writes after its command
 * ended: the table entry may outlive the end until the reaper notices), with its input in
 * the table: after a restart it is taken again from sandbar-init. Returns the lease (a
 * reference), else NULL with a reply queued and the exec's input dropped. */
static sbs_lease *exec_live(sbs_req *r)
{
	const char *id = sbs_req_param(r, "id"), *xid = sbs_req_param(r, "exec_id");
	sbs_req_set_lease(r, id);
	sbs_lease *l = NULL;
	sbs_server *srv = sbs_req_server(r);
	sbs_exec_inputs *inputs = sbs_execs_inputs(srv->execs);
	sb_err *err = sbs_leases_get(srv->leases, id, SBS_GET_USE, &l);
	if (err) {
		sbs_reply_err(r, err);
		return NULL;
	}
	sb_sandbox_exec_status st;
	err = sb_sandbox_exec_status_by_id(sbs_lease_sandbox(l), xid, &st);
	if (!err && st.running && !sbs_exec_inputs_has(inputs, id, xid)) {
		int fd = -1;
		bool tty = false;
		err = sb_sandbox_exec_input_attach(sbs_lease_sandbox(l), xid, &fd, &tty);
		if (!err)
			sbs_exec_inputs_add(inputs, id, xid, fd, tty);
		else if (err->code == SB_E_STATE_LOST)
			st.running = false; /* released, or started without one: nothing to write */
	}
	if (!err && st.running)
		return l;
	sbs_lease_unref(l);
	sbs_exec_inputs_drop(inputs, id, xid);
	if (err && err->code != SB_E_NOTFOUND && err->code != SB_E_STATE_LOST) {
		sbs_reply_err(r, err);
		return NULL;
	}
	sb_err_free(err);
	sbs_reply_error_details(r, 404, "not_found",
	                        json_pack("{s:s, s:I}", "exec_id", xid, "written", (json_int_t)0),
	                        "exec %s of lease %s is not running or has no open stdin", xid, id);
	return NULL;
}

static void h_stdin(sbs_req *r, void *ud)
{
	(void)ud;
	const char *eofv = sbs_req_query_get(r, "eof");
	bool eof = eofv && (!strcmp(eofv, "1") || !strcmp(eofv, "true") || !eofv[0]);
	if (eofv && !eof && strcmp(eofv, "0") && strcmp(eofv, "false")) {
		sbs_reply_error(r, 400, "invalid_request", "\"eof\" must be 1/true or 0/false");
		return;
	}
	sbs_lease *l = exec_live(r);
	if (!l)
		return;
	const char *id = sbs_req_param(r, "id"), *xid = sbs_req_param(r, "exec_id");
	uint64_t size = 0;
	int fd = sbs_req_body_fd(r, &size);
	uint64_t written = 0;
	sb_err *err = sbs_exec_inputs_write(sbs_execs_inputs(sbs_req_server(r)->execs), id, xid, fd,
	                                    size, eof, &written);
	if (!err && eof) { /* sandbar-init's copy goes too: the command sees EOF */
		sb_err *rel = sb_sandbox_exec_input_release(sbs_lease_sandbox(l), xid);
		if (rel && rel->code == SB_E_NOTFOUND)
			sb_err_free(rel); /* it ended meanwhile: no input is left to close */
		else
			err = rel;
	}
	sbs_lease_unref(l);
	if (err) {
		json_t *details =
		    json_pack("{s:s, s:I}", "exec_id", xid, "written", (json_int_t)written);
		if (err->code == SB_E_TIMEOUT)
			sbs_reply_error_details(r, 504, "stdin_stalled", details, "%s", err->msg);
		else if (err->code == SB_E_STATE_LOST)
			sbs_reply_error_details(r, 409, "stdin_closed", details, "%s", err->msg);
		else if (err->code == SB_E_NOTFOUND)
			sbs_reply_error_details(r, 404, "not_found", details, "%s", err->msg);
		else {
			json_decref(details);
			sbs_reply_err(r, err);
			return;
		}
		sb_err_free(err);
		return;
	}
	sbs_reply_json(r, 200,
	               json_pack("{s:s, s:I, s:b}", "exec_id", xid, "written", (json_int_t)written,
	                         "closed", eof));
}

static void h_resize(sbs_req *r, void *ud)
{
	(void)ud;
	json_t *b = NULL;
	if (!sbs_req_json(r, &b))
		return;
	int64_t rows = 0, cols = 0;
	sb_err *err = sb_json_get_int(b, "rows", true, 1, 10000, &rows);
	if (!err)
		err = sb_json_get_int(b, "cols", true, 1, 10000, &cols);
	json_decref(b);
	if (err) {
		sbs_reply_err(r, err);
		return;
	}
	sbs_lease *l = exec_live(r);
	if (!l)
		return;
	sbs_lease_unref(l);
	const char *id = sbs_req_param(r, "id"), *xid = sbs_req_param(r, "exec_id");
	err = sbs_exec_inputs_resize(sbs_execs_inputs(sbs_req_server(r)->execs), id, xid,
	                             (unsigned)rows, (unsigned)cols);
	if (err) {
		sbs_reply_err(r, err);
		return;
	}
	sbs_reply_json(r, 200,
	               json_pack("{s:s, s:I, s:I}", "exec_id", xid, "rows", (json_int_t)rows,
	                         "cols", (json_int_t)cols));
}

void sbs_exec_input_routes_register(sbs_server *srv)
{
	sbs_router *rt = srv->router;
	sbs_router_add(rt, "POST", "/v1/leases/{id}/execs/{exec_id}/stdin", SBS_ROUTE_BODY_SPOOL,
	               h_stdin, NULL);
	sbs_router_add(rt, "POST", "/v1/leases/{id}/execs/{exec_id}/resize", SBS_ROUTE_BODY_JSON,
	               h_resize, NULL);
}
