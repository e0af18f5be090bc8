/* The [serve] keys that only the daemon reads (issue 14, DESIGN.md §9.11, §9.15):
 *
 *   mount_allow = /srv/shared          host paths below which API clients may mount (repeatable)
 *   secret.NAME = env:VAR | file:PATH  a secret API clients name in network.secrets
 *   secret.NAME.hosts = HOST[, HOST]   the hosts it is sent to (required)
 *   secret.NAME.header = x-api-key     the header it is sent in (default Authorization: Bearer)
 *   secret.NAME.env = VAR              the variable holding a placeholder inside the sandbox
 *                                      (default VAR of env:VAR)
 *   warm = N                           sandboxes kept started for each default acquire
 *                                      configuration, native and Paperclip (0..64, like --warm)
 *
 * The file holds references, never values. The first file to set a key wins (the user's before
 * the system's), like every other key. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static sb_egress_secret_entry *entry(cli_config *cfg, const char *name, size_t len)
{
	for (size_t i = 0; i < cfg->nsecrets; i++)
		if (strlen(cfg->secrets[i].name) == len &&
		    !strncmp(cfg->secrets[i].name, name, len))
			return &cfg->secrets[i];
	cfg->secrets = sb_xrealloc(cfg->secrets, (cfg->nsecrets + 1) * sizeof *cfg->secrets);
	sb_egress_secret_entry *e = &cfg->secrets[cfg->nsecrets++];
	memset(e, 0, sizeof *e);
	e->name = sb_xstrndup(name, len);
	return e;
}

static void set_once(char **dst, const char *value)
{
	if (!*dst)
		*dst = sb_xstrdup(value);
}

bool cli_serve_key(cli_config *cfg, const char *key, const char *value, const char *origin,
                   int lineno, sb_err **err)
{
	*err = NULL;
	if (strcmp(key, "mount_allow") == 0) {
		if (value[0] != '/')
			*err = sb_err_new(SB_E_INVAL, "%s:%d: mount_allow takes an absolute path",
			                  origin, lineno);
		else
			sb_strv_push(&cfg->mount_allow, value);
		return true;
	}
	if (strcmp(key, "warm") == 0) {
		unsigned v = 0;
		if (!cli_parse_warm(value, &v))
			*err = sb_err_new(SB_E_INVAL, "%s:%d: warm takes 0..%d, not \"%s\"", origin,
			                  lineno, CLI_WARM_MAX, value);
		else if (!cfg->warm_origin) {
			cfg->warm = v;
			cfg->warm_origin = "config";
		}
		return true;
	}
	if (strncmp(key, "secret.", 7) != 0)
		return false;
	const char *name = key + 7, *dot = strchr(name, '.');
	size_t len = dot ? (size_t)(dot - name) : strlen(name);
	bool ok = len > 0 && len <= 64;
	for (size_t i = 0; ok && i < len; i++)
		ok = isalnum((unsigned char)name[i]) || name[i] == '-' || name[i] == '_';
	if (!ok) {
		*err = sb_err_new(SB_E_INVAL, "%s:%d: secret names are [A-Za-z0-9_-]{1,64}: \"%s\"",
		                  origin, lineno, key);
		return true;
	}
	sb_egress_secret_entry *e = entry(cfg, name, len);
	if (!dot) {
		if (strncmp(value, "env:", 4) != 0 && strncmp(value, "file:", 5) != 0)
			*err = sb_err_new(SB_E_INVAL,
			                  "%s:%d: %s must be env:VAR or file:PATH (the config file "
			                  "holds no secret values)",
			                  origin, lineno, key);
		else
			set_once(&e->value_ref, value);
	} else if (strcmp(dot, ".hosts") == 0) {
		if (!e->hosts) {
			char *v = sb_xstrdup(value), *save = NULL;
			for (char *t = strtok_r(v, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
				sb_strv_push(&e->hosts, t);
			free(v);
		}
	} else if (strcmp(dot, ".header") == 0) {
		set_once(&e->header, value);
	} else if (strcmp(dot, ".env") == 0) {
		set_once(&e->placeholder_env, value);
	} else {
		*err = sb_err_new(SB_E_INVAL,
		                  "%s:%d: unknown key \"%s\" (a secret has secret.%.*s, "
		                  "secret.%.*s.hosts, .header and .env)",
		                  origin, lineno, key, (int)len, name, (int)len, name);
	}
	return true;
}

bool cli_parse_warm(const char *s, unsigned *out)
{
	char *end = NULL;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (!isdigit((unsigned char)s[0]) || !end || *end || errno || v > CLI_WARM_MAX)
		return false;
	*out = (unsigned)v;
	return true;
}

sb_err *cli_serve_config_check(cli_config *cfg)
{
	for (size_t i = 0; i < cfg->nsecrets; i++) {
		sb_err *err = sb_egress_secret_entry_check(&cfg->secrets[i]);
		if (err)
			return sb_err_prefix(err, "[serve] in %s",
			                     cfg->config_path ? cfg->config_path
			                                      : "the config file");
	}
	return NULL;
}

void cli_serve_config_deinit(cli_config *cfg)
{
	sb_strv_free(cfg->mount_allow);
	cfg->mount_allow = NULL;
	for (size_t i = 0; i < cfg->nsecrets; i++)
		sb_egress_secret_entry_deinit(&cfg->secrets[i]);
	free(cfg->secrets);
	cfg->secrets = NULL;
	cfg->nsecrets = 0;
}
