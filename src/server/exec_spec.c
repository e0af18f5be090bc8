/* An exec request of the native API parsed and checked (execs.h: sbs_exec_spec): argv or
 * script, cwd, env, timeout, stdin in one of its forms (inline, streamed, a terminal:
 * exec_input.c), the caller's exec id. */
#include "execs.h"
#include "exec_input.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "sb_json.h"

void sbs_exec_spec_deinit(sbs_exec_spec *s)
{
	sb_strv_free(s->argv);
	sb_strv_free(s->env);
	free(s->cwd);
	free(s->exec_id);
	sb_buf_deinit(&s->stdin_data);
	free(s->tty_term);
	memset(s, 0, sizeof *s);
}

static bool env_key_ok(const char *k)
{
	if (!(isalpha((unsigned char)k[0]) || k[0] == '_'))
		return false;
	for (const char *p = k; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_')
			return false;
	return true;
}

sb_err *sbs_exec_spec_from_json(const json_t *body, sbs_exec_spec *out)
{
	*out = (sbs_exec_spec){0};
	sb_err *err = NULL;
	const json_t *argv = json_object_get(body, "argv");
	const char *script = NULL;
	if ((err = sb_json_get_str(body, "script", false, &script)))
		goto fail;
	if (argv && !json_is_null(argv)) {
		if (script) {
			err =
			    sb_err_new(SB_E_INVAL, "give either \"argv\" or \"script\", not both");
			goto fail;
		}
		if ((err = sb_json_get_strv(body, "argv", true, SBS_EXEC_MAX_ARGS, &out->argv)))
			goto fail;
		if (!out->argv || !out->argv[0] || !out->argv[0][0]) {
			err =
			    sb_err_new(SB_E_INVAL, "\"argv\" must be a non-empty array whose first "
			                           "element is a program name");
			goto fail;
		}
	} else if (script) {
		sb_strv_push(&out->argv, "sh");
		sb_strv_push(&out->argv, "-c");
		sb_strv_push(&out->argv, script);
	} else {
		err = sb_err_new(SB_E_INVAL, "\"argv\" (array of strings) or \"script\" (string) "
		                             "is required");
		goto fail;
	}
	const char *cwd = NULL;
	if ((err = sb_json_get_str(body, "cwd", false, &cwd)))
		goto fail;
	if (cwd) {
		if (cwd[0] != '/') {
			err = sb_err_new(SB_E_INVAL, "\"cwd\" must be an absolute in-sandbox path");
			goto fail;
		}
		out->cwd = sb_xstrdup(cwd);
	}
	const json_t *env = json_object_get(body, "env");
	if (env && !json_is_null(env)) {
		if (!json_is_object(env) || json_object_size(env) > SBS_EXEC_MAX_ENV) {
			err = sb_err_new(SB_E_INVAL,
			                 "\"env\" must be an object of at most %d "
			                 "string values",
			                 SBS_EXEC_MAX_ENV);
			goto fail;
		}
		const char *k;
		const json_t *v;
		json_object_foreach((json_t *)env, k, v)
		{
			if (!env_key_ok(k) || !json_is_string(v)) {
				err = sb_err_new(SB_E_INVAL,
				                 "\"env\": key \"%s\" must match "
				                 "[A-Za-z_][A-Za-z0-9_]* with a string value",
				                 k);
				goto fail;
			}
			char *kv = sb_strfmt("%s=%s", k, json_string_value(v));
			sb_strv_push(&out->env, kv);
			free(kv);
		}
	}
	if ((err = sb_json_get_bool(body, "clear_env", false, &out->clear_env)))
		goto fail;
	const char *in = NULL;
	if ((err = sb_json_get_str(body, "stdin", false, &in)))
		goto fail;
	if (in) {
		out->has_stdin = true;
		if ((err = sb_b64_decode(in, strlen(in), &out->stdin_data))) {
			err = sb_err_prefix(err, "\"stdin\" (base64)");
			goto fail;
		}
	}
	if ((err = sbs_exec_spec_input_from_json(body, out)))
		goto fail;
	if ((err = sb_json_get_int(body, "timeout_ms", false, 0, INT64_MAX / 2, &out->timeout_ms)))
		goto fail;
	const char *xid = NULL;
	if ((err = sb_json_get_str(body, "exec_id", false, &xid)))
		goto fail;
	if (xid) {
		if (!sbs_id_ok(xid)) {
			err = sb_err_new(SB_E_INVAL, "\"exec_id\" must match [A-Za-z0-9_-]{1,%d}",
			                 SB_SANDBOX_ID_MAX);
			goto fail;
		}
		out->exec_id = sb_xstrdup(xid);
	}
	return NULL;
fail:
	sbs_exec_spec_deinit(out);
	return err;
}
