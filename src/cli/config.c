/* Configuration for the CLI, in order of precedence: command-line flags, then the environment
 * (SANDBAR_BRIDGE_URL, SANDBAR_TOKEN_FILE, SANDBAR_STATE_DIR, ...), then the config file of
 * `key = value` lines. Unknown keys and malformed lines are errors that name the line, so a typo
 * never silently changes behaviour. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONFIG_MAX_BYTES (64 * 1024)

struct key_slot {
	const char *key;
	const char *env;
	size_t offset;
};

static const struct key_slot slots[] = {
    {"bridge_url", "SANDBAR_BRIDGE_URL", offsetof(cli_config, bridge_url)},
    {"token_file", "SANDBAR_TOKEN_FILE", offsetof(cli_config, token_file)},
    {"state_dir", "SANDBAR_STATE_DIR", offsetof(cli_config, state_dir)},
    {"hmac_key_id", "SANDBAR_HMAC_KEY_ID", offsetof(cli_config, hmac_key_id)},
    {"hmac_key_file", "SANDBAR_HMAC_KEY_FILE", offsetof(cli_config, hmac_key_file)},
    {"memory", "SANDBAR_MEMORY", offsetof(cli_config, memory)},
    {"max_restore_size", "SANDBAR_MAX_RESTORE_SIZE", offsetof(cli_config, max_restore_size)},
    {"compat_callback", "SANDBAR_COMPAT_CALLBACK", offsetof(cli_config, compat_callback)},
};

_Static_assert(sizeof slots / sizeof *slots <= CLI_CONFIG_SLOTS, "cli_config.slot_origins");

static char **slot_ptr(cli_config *cfg, const struct key_slot *s)
{
	return (char **)((char *)cfg + s->offset);
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

enum { SEC_TOP, SEC_SKIP, SEC_CALLBACK, SEC_SERVE };

/* A run option line: kept for `sandbar run` (its own parser checks the value), accepted and
 * ignored by other programs. A key another file already set is left to that file. */
static void run_setting_add(cli_config *cfg, const char *key, const char *value, const char *origin,
                            int lineno)
{
	if (!cfg->program || strcmp(cfg->program, "run") != 0)
		return;
	char *where = sb_strfmt("%s:%d", origin, lineno);
	for (size_t i = 0; i < cfg->nrun_settings; i++) {
		const cli_setting *s = &cfg->run_settings[i];
		size_t n = strlen(origin);
		if (!strcmp(s->key, key) &&
		    !(strncmp(s->origin, origin, n) == 0 && s->origin[n] == ':')) {
			free(where);
			return;
		}
	}
	cfg->run_settings =
	    sb_xrealloc(cfg->run_settings, (cfg->nrun_settings + 1) * sizeof *cfg->run_settings);
	cfg->run_settings[cfg->nrun_settings++] =
	    (cli_setting){.key = sb_xstrdup(key), .value = sb_xstrdup(value), .origin = where};
}

static sb_err *section_start(cli_config *cfg, char *line, const char *origin, int lineno,
                             int *section)
{
	size_t n = strlen(line);
	if (n < 3 || line[n - 1] != ']')
		return sb_err_new(SB_E_INVAL, "%s:%d: expected `[section]`", origin, lineno);
	line[n - 1] = '\0';
	char *name = trim(line + 1);
	if (strcmp(name, "run") == 0 || strcmp(name, "serve") == 0) {
		*section = !cfg->program || strcmp(cfg->program, name) != 0 ? SEC_SKIP
		           : strcmp(name, "serve") == 0                     ? SEC_SERVE
		                                                            : SEC_TOP;
		return NULL;
	}
	if (strncmp(name, "callback", 8) == 0 && isspace((unsigned char)name[8])) {
		char *cb = trim(name + 8);
		bool ok = *cb && strlen(cb) <= 64;
		for (char *c = cb; *c && ok; c++)
			ok = isalnum((unsigned char)*c) || *c == '-' || *c == '_';
		if (!ok)
			return sb_err_new(
			    SB_E_INVAL, "%s:%d: callback names are [A-Za-z0-9_-]{1,64}, not \"%s\"",
			    origin, lineno, cb);
		for (size_t i = 0; i < cfg->ncallbacks; i++)
			if (strcmp(cfg->callbacks[i].name, cb) == 0)
				return sb_err_new(SB_E_INVAL, "%s:%d: [callback %s] appears twice",
				                  origin, lineno, cb);
		cfg->callbacks =
		    sb_xrealloc(cfg->callbacks, (cfg->ncallbacks + 1) * sizeof *cfg->callbacks);
		memset(&cfg->callbacks[cfg->ncallbacks], 0, sizeof *cfg->callbacks);
		cfg->callbacks[cfg->ncallbacks++].name = sb_xstrdup(cb);
		*section = SEC_CALLBACK;
		return NULL;
	}
	return sb_err_new(SB_E_INVAL,
	                  "%s:%d: unknown section [%s] (known: [run], [serve], [callback NAME])",
	                  origin, lineno, name);
}

static sb_err *callback_key(sb_callback_entry *e, const char *key, const char *value,
                            const char *origin, int lineno)
{
	if (strcmp(key, "upstream") == 0) {
		/* one or more allowed origins, comma separated; the first is the default */
		char *v = sb_xstrdup(value), *save = NULL;
		for (char *tok = strtok_r(v, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
			sb_strv_push(&e->origins, tok);
		free(v);
		return NULL;
	}
	if (strcmp(key, "credential") == 0) {
		if (strncmp(value, "env:", 4) != 0 && strncmp(value, "file:", 5) != 0)
			return sb_err_new(
			    SB_E_INVAL,
			    "%s:%d: credential must be env:VAR or file:PATH (the config "
			    "file holds no secret values)",
			    origin, lineno);
		free(e->credential);
		e->credential = sb_xstrdup(value);
		return NULL;
	}
	if (strcmp(key, "credential_header") == 0) {
		free(e->credential_header);
		e->credential_header = sb_xstrdup(value);
		return NULL;
	}
	char *end = NULL;
	errno = 0;
	unsigned long long n = strtoull(value, &end, 10);
	bool num = *value && !*end && !errno && isdigit((unsigned char)*value);
	if (strcmp(key, "max_body_bytes") == 0 && num) {
		e->max_body_bytes = n;
		return NULL;
	}
	if (strcmp(key, "queue_depth") == 0 && num && n > 0 && n <= 100000) {
		e->queue_depth = (uint32_t)n;
		return NULL;
	}
	if (strcmp(key, "timeout_ms") == 0 && num && n > 0 && n <= 3600000) {
		e->timeout_ms = (int64_t)n;
		return NULL;
	}
	return sb_err_new(SB_E_INVAL,
	                  "%s:%d: [callback %s]: unknown key or bad value \"%s = %s\" (known: "
	                  "upstream, credential, credential_header, max_body_bytes, queue_depth, "
	                  "timeout_ms)",
	                  origin, lineno, e->name, key, value);
}

sb_err *cli_config_parse(cli_config *cfg, const char *text, const char *origin)
{
	char *copy = sb_xstrdup(text);
	int section = SEC_TOP;
	int lineno = 0;
	sb_err *err = NULL;
	char *p = copy;
	while (p && !err) {
		char *nl = strchr(p, '\n');
		if (nl)
			*nl = '\0';
		lineno++;
		char *line = trim(p);
		p = nl ? nl + 1 : NULL;
		if (*line == '\0' || *line == '#')
			continue;
		if (*line == '[') {
			err = section_start(cfg, line, origin, lineno, &section);
			continue;
		}
		if (section == SEC_SKIP)
			continue;
		char *eq = strchr(line, '=');
		if (!eq) {
			err =
			    sb_err_new(SB_E_INVAL, "%s:%d: expected `key = value`", origin, lineno);
			break;
		}
		*eq = '\0';
		char *key = trim(line), *value = trim(eq + 1);
		if (section == SEC_CALLBACK) {
			err = callback_key(&cfg->callbacks[cfg->ncallbacks - 1], key, value, origin,
			                   lineno);
			continue;
		}
		if (section == SEC_SERVE && cli_serve_key(cfg, key, value, origin, lineno, &err))
			continue;
		const struct key_slot *slot = NULL;
		for (size_t i = 0; i < sizeof slots / sizeof *slots; i++)
			if (!strcmp(slots[i].key, key))
				slot = &slots[i];
		if (!slot && cli_run_key_known(key)) {
			run_setting_add(cfg, key, value, origin, lineno);
			continue;
		}
		if (!slot) {
			sb_buf known = SB_BUF_INIT;
			for (size_t i = 0; i < sizeof slots / sizeof *slots; i++)
				sb_buf_appendf(&known, "%s%s", i ? ", " : "", slots[i].key);
			err = sb_err_new(SB_E_INVAL,
			                 "%s:%d: unknown key \"%s\" (known: %s, and every `sandbar "
			                 "run` option, e.g. timeout, allow_net, conflict)",
			                 origin, lineno, key, sb_buf_cstr(&known));
			sb_buf_deinit(&known);
			break;
		}
		char **dst = slot_ptr(cfg, slot);
		if (!*dst && *value) {
			*dst = sb_xstrdup(value);
			char **o = &cfg->slot_origins[slot - slots];
			free(*o);
			*o = sb_strfmt("%s:%d", origin, lineno);
		}
	}
	free(copy);
	return err;
}

/* The config files in precedence order (NULL-terminated): $SANDBAR_CONFIG alone, else the
 * user's file and then the system's. */
static char **config_file_paths(void)
{
	char **v = NULL;
	const char *explicit_path = getenv("SANDBAR_CONFIG");
	if (explicit_path && *explicit_path) {
		sb_strv_push(&v, explicit_path);
		return v;
	}
	const char *xdg = getenv("XDG_CONFIG_HOME");
	const char *home = getenv("HOME");
	char *user = xdg && *xdg     ? sb_strfmt("%s/sandbar/config", xdg)
	             : home && *home ? sb_strfmt("%s/.config/sandbar/config", home)
	                             : NULL;
	if (user)
		sb_strv_push(&v, user);
	free(user);
	const char *system_path = getenv("SANDBAR_SYSTEM_CONFIG"); /* packagers, tests */
	sb_strv_push(&v, system_path && *system_path ? system_path : CLI_SYSTEM_CONFIG);
	return v;
}

/* The operator's default memory limit of a sandbox (DESIGN.md: safe defaults): checked once
 * here, so a typo fails every command instead of running unlimited. */
static sb_err *resolve_memory(cli_config *cfg, const char *path)
{
	cfg->memory_bytes = 0;
	if (!cfg->memory)
		return NULL;
	sb_err *err = sb_parse_size(cfg->memory, &cfg->memory_bytes);
	if (!err && cfg->memory_bytes < CLI_MEMORY_MIN)
		err =
		    sb_err_new(SB_E_INVAL, "%llu bytes is too small to run anything (at least %s)",
		               (unsigned long long)cfg->memory_bytes, CLI_MEMORY_MIN_TEXT);
	if (err)
		err = sb_err_prefix(err, "memory = %s (from $SANDBAR_MEMORY or %s)", cfg->memory,
		                    path ? path : "the config file");
	return err;
}

/* How much file data a restore may unpack (sb_runtime_restore_opts.max_extracted_bytes). */
static sb_err *resolve_max_restore(cli_config *cfg, const char *path)
{
	cfg->max_restore_bytes = 0;
	if (!cfg->max_restore_size)
		return NULL;
	if (strcmp(cfg->max_restore_size, "unlimited") == 0) {
		cfg->max_restore_bytes = -1;
		return NULL;
	}
	uint64_t n = 0;
	sb_err *err = sb_parse_size(cfg->max_restore_size, &n);
	if (!err && (n == 0 || n > INT64_MAX))
		err = sb_err_new(SB_E_INVAL, "must be more than zero and at most 8E, or unlimited");
	if (err)
		return sb_err_prefix(err,
		                     "max_restore_size = %s (from --max-restore-size, "
		                     "$SANDBAR_MAX_RESTORE_SIZE or %s)",
		                     cfg->max_restore_size, path ? path : "the config file");
	cfg->max_restore_bytes = (int64_t)n;
	return NULL;
}

static sb_err *resolve_values(cli_config *cfg, const char *path)
{
	sb_err *err = resolve_memory(cfg, path);
	return err ? err : resolve_max_restore(cfg, path);
}

sb_err *cli_config_resolve(cli_config *cfg)
{
	for (size_t i = 0; i < sizeof slots / sizeof *slots; i++) {
		char **dst = slot_ptr(cfg, &slots[i]);
		const char *v = getenv(slots[i].env);
		if (*dst && !cfg->slot_origins[i])
			cfg->slot_origins[i] = sb_xstrdup("command line");
		if (!*dst && v && *v) {
			*dst = sb_xstrdup(v);
			cfg->slot_origins[i] = sb_strfmt("$%s", slots[i].env);
		}
	}
	char **paths = config_file_paths();
	sb_err *err = NULL;
	const char *used = NULL; /* the first file that exists, named in value errors */
	for (size_t i = 0; paths[i] && !err; i++) {
		sb_buf text = SB_BUF_INIT;
		err = sb_read_file(paths[i], CONFIG_MAX_BYTES, &text);
		if (err && err->code == SB_E_NOTFOUND) {
			sb_err_free(err);
			err = NULL;
		} else if (!err) {
			err = cli_config_parse(cfg, sb_buf_cstr(&text), paths[i]);
			if (!err && !cfg->config_path) {
				cfg->config_path = sb_xstrdup(paths[i]);
				used = paths[i];
			}
		}
		sb_buf_deinit(&text);
	}
	if (!err)
		err = resolve_values(cfg, used);
	if (!err)
		err = cli_serve_config_check(cfg);
	sb_strv_free(paths);
	return err;
}

sb_err *cli_config_override(cli_config *cfg, const char *key, const char *value)
{
	for (size_t i = 0; i < sizeof slots / sizeof *slots; i++) {
		if (strcmp(slots[i].key, key) != 0)
			continue;
		char **dst = slot_ptr(cfg, &slots[i]);
		free(*dst);
		*dst = sb_xstrdup(value);
		free(cfg->slot_origins[i]);
		cfg->slot_origins[i] = sb_xstrdup("command line");
		return resolve_values(cfg, cfg->config_path);
	}
	return sb_err_new(SB_E_INTERNAL, "no config key \"%s\"", key);
}

void cli_config_each_slot(const cli_config *cfg, cli_config_slot_fn fn, void *ud)
{
	for (size_t i = 0; i < sizeof slots / sizeof *slots; i++) {
		char *const *v = (char *const *)((const char *)cfg + slots[i].offset);
		fn(ud, slots[i].key, *v, cfg->slot_origins[i]);
	}
}

void cli_config_deinit(cli_config *cfg)
{
	for (size_t i = 0; i < sizeof slots / sizeof *slots; i++) {
		char **dst = slot_ptr(cfg, &slots[i]);
		free(*dst);
		*dst = NULL;
	}
	free(cfg->config_path);
	cfg->config_path = NULL;
	for (size_t i = 0; i < CLI_CONFIG_SLOTS; i++) {
		free(cfg->slot_origins[i]);
		cfg->slot_origins[i] = NULL;
	}
	for (size_t i = 0; i < cfg->nrun_settings; i++) {
		free(cfg->run_settings[i].key);
		free(cfg->run_settings[i].value);
		free(cfg->run_settings[i].origin);
	}
	free(cfg->run_settings);
	cfg->run_settings = NULL;
	cfg->nrun_settings = 0;
	for (size_t i = 0; i < cfg->ncallbacks; i++)
		sb_callback_entry_deinit(&cfg->callbacks[i]);
	free(cfg->callbacks);
	cfg->callbacks = NULL;
	cfg->ncallbacks = 0;
	cli_serve_config_deinit(cfg);
}

char *cli_state_dir(const cli_config *cfg)
{
	if (cfg->state_dir)
		return sb_xstrdup(cfg->state_dir);
	const char *xdg = getenv("XDG_STATE_HOME");
	if (xdg && *xdg)
		return sb_strfmt("%s/sandbar", xdg);
	if (geteuid() == 0)
		return sb_xstrdup("/var/lib/sandbar");
	const char *home = getenv("HOME");
	return sb_strfmt("%s/.local/state/sandbar", home && *home ? home : "/tmp");
}

sb_err *cli_read_token(const cli_config *cfg, char **token_out)
{
	*token_out = NULL;
	if (cfg->token_file) {
		sb_buf b = SB_BUF_INIT;
		sb_err *err = sb_read_file(cfg->token_file, 4096, &b);
		if (err) {
			sb_buf_deinit(&b);
			return sb_err_prefix(err, "reading the token file");
		}
		char *t = trim((char *)sb_buf_cstr(&b));
		if (*t == '\0') {
			sb_buf_deinit(&b);
			return sb_err_new(SB_E_INVAL, "token file %s is empty", cfg->token_file);
		}
		*token_out = sb_xstrdup(t);
		sb_buf_deinit(&b);
		return NULL;
	}
	const char *env = getenv("SANDBAR_TOKEN");
	if (env && *env)
		*token_out = sb_xstrdup(env);
	return NULL;
}
