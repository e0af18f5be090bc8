/* The pure parts of the bridge protocol: input coercion with the bridge's defaults (§2.1), lease
 * ids (§2.4), the ownership-mirror script, the exec script (§2.6) and UTF-8 repair of command
 * output for JSON strings. No daemon state here, so all of it is unit-tested and fuzzed.
 */
#include "bridge.h"
#include "leases.h"

#include <sandbar/sandbox.h>

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "sb_json.h"

/* ---------------------------------------------------------------- coercion */

bool bridge_bool(const json_t *o, const char *key, bool def)
{
	json_t *v = json_object_get(o, key);
	if (!v)
		return def;
	return json_is_true(v);
}

static char *trimmed(const char *s, size_t n)
{
	while (n > 0 && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	return n ? sb_xstrndup(s, n) : NULL;
}

char *bridge_str(const json_t *o, const char *key, const char *def)
{
	json_t *v = json_object_get(o, key);
	char *s = json_is_string(v) ? trimmed(json_string_value(v), json_string_length(v)) : NULL;
	if (s)
		return s;
	return def ? sb_xstrdup(def) : NULL;
}

int64_t bridge_int(const json_t *o, const char *key, int64_t def)
{
	json_t *v = json_object_get(o, key);
	double d;
	if (json_is_integer(v))
		return (int64_t)json_integer_value(v);
	if (json_is_real(v)) {
		d = json_real_value(v);
	} else if (json_is_string(v)) {
		char *s = trimmed(json_string_value(v), json_string_length(v));
		if (!s)
			return def;
		char *end = NULL;
		d = strtod(s, &end);
		bool whole = end && *end == '\0';
		free(s);
		if (!whole)
			return def;
	} else {
		return def;
	}
	if (!isfinite(d) || d > 9.0e15 || d < -9.0e15)
		return def;
	return (int64_t)trunc(d);
}

static sb_err *check_len(const char *field, const char *s)
{
	if (s && strlen(s) > BRIDGE_STR_MAX)
		return sb_err_new(SB_E_INVAL, "%s is longer than %d bytes", field, BRIDGE_STR_MAX);
	return NULL;
}

sb_err *bridge_opts_parse(const json_t *body, bridge_opts *out)
{
	memset(out, 0, sizeof(*out));
	out->remote_cwd = bridge_str(body, "requestedCwd", BRIDGE_DEFAULT_CWD);
	size_t n = strlen(out->remote_cwd);
	while (n > 1 && out->remote_cwd[n - 1] == '/')
		out->remote_cwd[--n] = '\0';
	char *strategy = bridge_str(body, "sessionStrategy", NULL);
	out->named = !(strategy && strcmp(strategy, "default") == 0);
	free(strategy);
	out->session_id = bridge_str(body, "sessionId", BRIDGE_DEFAULT_SESSION);
	out->keep_alive = bridge_bool(body, "keepAlive", false);
	out->sleep_after = bridge_str(body, "sleepAfter", BRIDGE_DEFAULT_SLEEP_AFTER);
	out->normalize_id = bridge_bool(body, "normalizeId", true);
	out->timeout_ms = bridge_int(body, "timeoutMs", BRIDGE_DEFAULT_TIMEOUT_MS);
	if (out->timeout_ms <= 0)
		out->timeout_ms = BRIDGE_DEFAULT_TIMEOUT_MS;
	if (out->timeout_ms > BRIDGE_MAX_TIMEOUT_MS)
		out->timeout_ms = BRIDGE_MAX_TIMEOUT_MS;
	sb_err *err = NULL;
	if (out->remote_cwd[0] != '/')
		err = sb_err_new(SB_E_INVAL, "requestedCwd \"%s\" must be an absolute path",
		                 out->remote_cwd);
	if (!err)
		err = check_len("requestedCwd", out->remote_cwd);
	if (!err)
		err = check_len("sessionId", out->session_id);
	if (!err)
		err = check_len("sleepAfter", out->sleep_after);
	if (err)
		bridge_opts_deinit(out);
	return err;
}

void bridge_opts_deinit(bridge_opts *o)
{
	free(o->remote_cwd);
	free(o->session_id);
	free(o->sleep_after);
	memset(o, 0, sizeof(*o));
}

/* ---------------------------------------------------------------- ids */

char *bridge_normalize_id(const char *s)
{
	sb_buf b = SB_BUF_INIT;
	bool dash = true; /* suppresses leading and repeated '-' */
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		unsigned char c = (unsigned char)tolower(*p);
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
			sb_buf_appendc(&b, (char)c);
			dash = false;
		} else if (!dash) {
			sb_buf_appendc(&b, '-');
			dash = true;
		}
	}
	while (b.len > 0 && b.data[b.len - 1] == '-')
		b.data[--b.len] = '\0';
	return sb_buf_steal(&b, NULL);
}

bool bridge_is_hex32(const char *s)
{
	if (!s || strlen(s) != 32)
		return false;
	for (; *s; s++)
		if (!isxdigit((unsigned char)*s))
			return false;
	return true;
}

sb_err *bridge_lease_id(const char *acquisition_id, const char *reuse_scope_id, bool normalize,
                        char **out)
{
	*out = NULL;
	char *raw = reuse_scope_id ? sb_strfmt("pc-scope-%s", reuse_scope_id)
	                           : sb_strfmt("pc-acq-%s", acquisition_id);
	char *id = normalize ? bridge_normalize_id(raw) : sb_xstrdup(raw);
	free(raw);
	if (!sbs_id_ok(id)) {
		sb_err *err = sb_err_new(SB_E_INVAL,
		                         "the lease id \"%.80s\" derived from %s is not a valid "
		                         "sandbox id ([A-Za-z0-9_-], 1 to %d characters); use a "
		                         "shorter acquisitionId or normalizeId",
		                         id, reuse_scope_id ? "reuseScopeId" : "acquisitionId",
		                         SB_SANDBOX_ID_MAX);
		free(id);
		return err;
	}
	*out = id;
	return NULL;
}

bool bridge_env_key_ok(const char *k)
{
	if (!k || !(isalpha((unsigned char)k[0]) || k[0] == '_'))
		return false;
	for (const char *p = k + 1; *p; p++)
		if (!(isalnum((unsigned char)*p) || *p == '_'))
			return false;
	return (unsigned char)k[0] < 0x80;
}

/* ---------------------------------------------------------------- the mirror */

char *bridge_sentinel_path(const char *cwd)
{
	size_t n = strlen(cwd);
	while (n > 0 && cwd[n - 1] == '/')
		n--;
	return sb_strfmt("%.*s/%s", (int)n, cwd, BRIDGE_SENTINEL_NAME);
}

char *bridge_sentinel_write_script(const char *cwd, const char *json, const char *pending_tag)
{
	char *path = bridge_sentinel_path(cwd);
	char *pending = sb_strfmt("%s.pending.%s", path, pending_tag);
	sb_buf s = SB_BUF_INIT;
	sb_buf_appends(&s, "set -eu\nmkdir -p ");
	sb_shell_quote(&s, cwd);
	sb_buf_appends(&s, "\npending_path=");
	sb_shell_quote(&s, pending);
	sb_buf_appends(&s, "\ntrap 'rm -f \"$pending_path\"' EXIT\nprintf '%s\\n' ");
	sb_shell_quote(&s, json);
	sb_buf_appends(&s, " > \"$pending_path\"\nmv -f \"$pending_path\" ");
	sb_shell_quote(&s, path);
	sb_buf_appendc(&s, '\n');
	free(pending);
	free(path);
	return sb_buf_steal(&s, NULL);
}

/* ---------------------------------------------------------------- exec script */

char *bridge_exec_script(const bridge_cmd *c)
{
	sb_buf s = SB_BUF_INIT;
	if (c->stdin_tag) {
		/* Staged whole before the command starts (as the bridge does), in a file only we
		 * can read, and unlinked as soon as it is open on fd 3. */
		char *path = sb_strfmt("/tmp/.paperclip-bridge-stdin-%s", c->stdin_tag);
		sb_buf_appends(&s, "__sb_in=");
		sb_shell_quote(&s, path);
		sb_buf_appends(&s, "; (umask 077 && cat > \"$__sb_in\") || exit 125; "
		                   "exec 3<\"$__sb_in\" || exit 125; rm -f \"$__sb_in\"; ");
		free(path);
	}
	/* The profile may reset PATH and friends; the client's values win, as they do with the
	 * bridge's `exec env K=v`. Only names appear here: values stay out of argv. */
	for (char *const *k = c->env_keys; k && *k; k++)
		sb_buf_appendf(&s, "__sb_e_%s=\"${%s-}\"; ", *k, *k);
	sb_buf_appends(&s, "[ -r /etc/profile ] && . /etc/profile >/dev/null 2>&1; ");
	for (char *const *k = c->env_keys; k && *k; k++)
		sb_buf_appendf(&s, "export %s=\"$__sb_e_%s\"; unset __sb_e_%s; ", *k, *k, *k);
	if (c->cwd) {
		sb_buf_appends(&s, "cd ");
		sb_shell_quote(&s, c->cwd);
		sb_buf_appends(&s, " && ");
	}
	sb_buf_appends(&s, "exec ");
	sb_shell_quote(&s, c->command);
	for (char *const *a = c->args; a && *a; a++) {
		sb_buf_appendc(&s, ' ');
		sb_shell_quote(&s, *a);
	}
	if (c->stdin_tag)
		sb_buf_appends(&s, " <&3 3<&-");
	return sb_buf_steal(&s, NULL);
}
