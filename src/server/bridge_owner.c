/* Ownership of bridge leases: the `.paperclip-lease.json` mirror in remoteCwd (written and read
 * by setup commands run in the lease's sandbox), the lease record's paperclip metadata, and the
 * internal acquisition identities of G1 clients. The record is the truth; the mirror only
 * reflects it, and a missing or altered mirror means the sandbox's state was lost. */
#include "bridge_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

sb_err *bridge_run_sh(sb_sandbox *sb, const char *script, const void *stdin_data, size_t stdin_len,
                      int64_t timeout_ms, sb_exec_result *res)
{
	sb_runner *runner = NULL;
	sb_sandbox_runner_opts ro = {.default_cwd = "/"};
	sb_err *err = sb_sandbox_runner_new(sb, &ro, &runner);
	if (err)
		return err;
	char *argv[] = {"sh", "-c", (char *)script, NULL};
	sb_exec_request rq = {
	    .argv = argv,
	    .cwd = "/",
	    .has_stdin = stdin_data != NULL,
	    .stdin_data = stdin_data,
	    .stdin_len = stdin_len,
	    .timeout_ms = timeout_ms,
	    .output_cap = 64 * 1024,
	};
	err = sb_runner_execute(runner, &rq, NULL, NULL, res);
	sb_runner_free(runner);
	return err;
}

sb_err *bridge_command_failed(const char *action, const sb_exec_result *res)
{
	if (res->timed_out)
		return sb_err_new(SB_E_TIMEOUT, "%s timed out", action);
	const char *detail = res->err.len ? res->err.data : res->out.len ? res->out.data : "";
	if (res->has_exit_code)
		return sb_err_new(SB_E_COMMAND, "%s failed with exit code %d%s%.500s", action,
		                  res->exit_code, *detail ? ": " : "", detail);
	return sb_err_new(SB_E_COMMAND, "%s failed (killed by %s)", action, res->signal);
}

json_t *bridge_mirror_json(const char *lease_id, const char *acquisition_id,
                           const char *fingerprint, const bridge_opts *o, bool resumed)
{
	char now[SB_ISO8601_LEN];
	sb_iso8601(sb_wall_ms(), now);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:b, s:b, s:s}", "provider",
	                 BRIDGE_PROVIDER, "providerLeaseId", lease_id, "acquisitionId",
	                 acquisition_id, "acquisitionFingerprint", fingerprint, "remoteCwd",
	                 o->remote_cwd, "sessionStrategy", o->named ? "named" : "default",
	                 "sessionId", o->session_id, "keepAlive", o->keep_alive, "sleepAfter",
	                 o->sleep_after, "normalizeId", o->normalize_id, "resumedLease", resumed,
	                 "updatedAt", now);
}

sb_err *bridge_write_mirror(sb_sandbox *sb, const char *lease_id, const char *acquisition_id,
                            const char *fingerprint, const bridge_opts *o, bool resumed)
{
	json_t *m = bridge_mirror_json(lease_id, acquisition_id, fingerprint, o, resumed);
	if (bridge_is_g1_acquisition(acquisition_id)) {
		/* The G1 sentinel: no ownership fields. */
		json_object_del(m, "acquisitionId");
		json_object_del(m, "acquisitionFingerprint");
	}
	char *text = json_dumps(m, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(m);
	char *tag = sb_random_id("");
	char *script = bridge_sentinel_write_script(o->remote_cwd, text, tag);
	sb_exec_result res;
	sb_exec_result_init(&res);
	sb_err *err = bridge_run_sh(sb, script, NULL, 0, o->timeout_ms, &res);
	if (!err && !sb_exec_result_ok(&res))
		err = bridge_command_failed("writing the lease mirror", &res);
	sb_exec_result_deinit(&res);
	free(script);
	free(tag);
	free(text);
	return err ? sb_err_prefix(err, "lease %s at %s", lease_id, o->remote_cwd) : NULL;
}

sb_err *bridge_read_mirror(sb_sandbox *sb, const char *cwd, int64_t timeout_ms, json_t **out)
{
	*out = NULL;
	char *path = bridge_sentinel_path(cwd);
	sb_buf script = SB_BUF_INIT;
	sb_buf_appendf(&script, "head -c %d ", BRIDGE_SENTINEL_MAX + 1);
	sb_shell_quote(&script, path);
	sb_exec_result res;
	sb_exec_result_init(&res);
	sb_err *err = bridge_run_sh(sb, sb_buf_cstr(&script), NULL, 0, timeout_ms, &res);
	if (!err && sb_exec_result_ok(&res) && res.out.len <= BRIDGE_SENTINEL_MAX) {
		json_error_t jerr;
		json_t *j = json_loadb(res.out.data ? res.out.data : "", res.out.len, 0, &jerr);
		if (json_is_object(j))
			*out = j;
		else
			json_decref(j);
	}
	sb_exec_result_deinit(&res);
	sb_buf_deinit(&script);
	free(path);
	return err;
}

const json_t *bridge_record_meta(const sbs_lease_info *li)
{
	json_t *pc = li->metadata ? json_object_get(li->metadata, "paperclip") : NULL;
	return json_is_object(pc) ? pc : NULL;
}

bool bridge_is_g1_acquisition(const char *acquisition_id)
{
	return acquisition_id &&
	       strncmp(acquisition_id, BRIDGE_G1_ACQ_PREFIX, strlen(BRIDGE_G1_ACQ_PREFIX)) == 0;
}

bool bridge_lease_is_g1(const sbs_lease_info *li)
{
	return bridge_record_meta(li) && bridge_is_g1_acquisition(li->acquisition_id);
}

bool bridge_req_is_v1(sbs_req *r)
{
	const char *p = sbs_req_path(r);
	return p && strncmp(p, BRIDGE_PREFIX_V1 "/", strlen(BRIDGE_PREFIX_V1) + 1) == 0;
}

void bridge_reply_owned_by_v2(sbs_req *r, const char *lease_id)
{
	sbs_reply_error(r, 409, "acquisition_conflict",
	                "lease %s is owned through the ownership API (v2): the request must "
	                "name its acquisitionId",
	                lease_id);
}
