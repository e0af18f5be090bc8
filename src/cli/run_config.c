/* A config key for every `sandbar run` option (issue 14), and `sandbar run --print-config`.
 *
 * A run key in a config file ([run] section or top level) is the long option's name with '_'
 * for '-': `timeout = 10m` is `--timeout=10m`, `allow_net = api.example.com` is one
 * `--allow-net`, a boolean (`keep = true`) is the bare flag. The settings are turned into
 * options placed before the command line's, so one parser checks both, the command line wins
 * for single values, and repeatable ones (allow_net, exclude, env, secret, ...) add up. The
 * keys every program shares (bridge_url, state_dir, memory, max_restore_size, ...) are
 * cli_config's own and keep their environment variables. */
#include "run_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { RK_VALUE, RK_BOOL, RK_LIST } run_key_kind;

static const struct run_key {
	const char *key;  /* config key */
	const char *flag; /* long option, without "--" */
	run_key_kind kind;
	const char *dflt; /* shown by --print-config when unset */
} run_keys[] = {
    {"workspace", "workspace", RK_VALUE, "the current directory"},
    {"via", "via", RK_VALUE, "an embedded sandbox"},
    {"remote_dir", "remote-dir", RK_VALUE, "/workspace"},
    {"exclude", "exclude", RK_LIST, "none"},
    {"exclude_preset", "exclude-preset", RK_VALUE, "none"},
    {"gitignore", "gitignore", RK_BOOL, "false"},
    {"branch", "branch", RK_VALUE, "sandbar/<lease id>"},
    {"network", "network", RK_VALUE, "none (allowlist with allow_net or secret)"},
    {"allow_net", "allow-net", RK_LIST, "none"},
    {"secret", "secret", RK_LIST, "none"},
    {"callback", "callback", RK_VALUE, "none"},
    {"timeout", "timeout", RK_VALUE, "none"},
    {"env", "env", RK_LIST, "none"},
    {"env_file", "env-file", RK_LIST, "none"},
    {"mount", "mount", RK_LIST, "none"},
    {"interactive", "interactive", RK_BOOL, "false"},
    {"tty", "tty", RK_BOOL, "false"},
    {"keep", "keep", RK_BOOL, "false"},
    {"reuse", "reuse", RK_VALUE, "none"},
    {"reuse_idle", "reuse-idle", RK_VALUE, "1h"},
    {"conflict", "conflict", RK_VALUE, "keep-local"},
    {"quiet", "quiet", RK_BOOL, "false"},
    {"json", "json", RK_BOOL, "false"},
    {"dry_run", "dry-run", RK_BOOL, "false"},
    {"force", "force", RK_BOOL, "false"},
};
#define NKEYS (sizeof run_keys / sizeof *run_keys)

/* Run flags that are cli_config keys shared with other programs. */
static const struct {
	const char *flag, *key;
} slot_flags[] = {{"bridge", "bridge_url"},
                  {"state-dir", "state_dir"},
                  {"memory", "memory"},
                  {"max-restore-size", "max_restore_size"}};

static const struct run_key *find_key(const char *key)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (!strcmp(run_keys[i].key, key))
			return &run_keys[i];
	return NULL;
}

bool cli_run_key_known(const char *key)
{
	return find_key(key) != NULL;
}

static sb_err *parse_bool(const cli_setting *s, bool *out)
{
	const char *v = s->value;
	if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "1"))
		*out = true;
	else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "0"))
		*out = false;
	else
		return sb_err_new(SB_E_INVAL, "%s: %s = %s: want true or false", s->origin, s->key,
		                  v);
	return NULL;
}

sb_err *run_config_args(const cli_config *cfg, int argc, char **argv, run_config_argv *out)
{
	memset(out, 0, sizeof *out);
	sb_strv_push(&out->argv, argv[0]);
	for (size_t i = 0; i < cfg->nrun_settings; i++) {
		const cli_setting *s = &cfg->run_settings[i];
		const struct run_key *k = find_key(s->key);
		if (!k)
			continue; /* cannot happen: the config parser checked the key */
		char *arg = NULL;
		if (k->kind == RK_BOOL) {
			bool on = false;
			sb_err *err = parse_bool(s, &on);
			if (err) {
				run_config_argv_deinit(out);
				return err;
			}
			if (on)
				arg = sb_strfmt("--%s", k->flag);
		} else {
			arg = sb_strfmt("--%s=%s", k->flag, s->value);
		}
		if (!arg)
			continue;
		sb_strv_push(&out->argv, arg);
		free(arg);
		out->origins =
		    sb_xrealloc(out->origins, (size_t)(out->nconfig + 1) * sizeof(char *));
		out->origins[out->nconfig++] = s->origin;
	}
	for (int i = 1; i < argc; i++)
		sb_strv_push(&out->argv, argv[i]);
	out->argc = (int)sb_strv_len(out->argv);
	return NULL;
}

void run_config_argv_deinit(run_config_argv *a)
{
	sb_strv_free(a->argv);
	free(a->origins);
	for (size_t i = 0; i < a->nnotes; i++) {
		free(a->notes[i].values);
		free(a->notes[i].origin);
	}
	free(a->notes);
	memset(a, 0, sizeof *a);
}

/* The note for a flag, created on first use. */
static run_config_note *note_for(run_config_argv *a, const char *flag)
{
	for (size_t i = 0; i < a->nnotes; i++)
		if (!strcmp(a->notes[i].flag, flag))
			return &a->notes[i];
	a->notes = sb_xrealloc(a->notes, (a->nnotes + 1) * sizeof *a->notes);
	run_config_note *n = &a->notes[a->nnotes++];
	memset(n, 0, sizeof *n);
	n->flag = flag;
	return n;
}

void run_config_note_option(run_config_argv *a, const char *flag, int at, const char *value)
{
	bool list = false;
	for (size_t i = 0; i < NKEYS; i++)
		if (!strcmp(run_keys[i].flag, flag))
			list = run_keys[i].kind == RK_LIST;
	run_config_note *n = note_for(a, flag);
	const char *origin = at >= 1 && at <= a->nconfig ? a->origins[at - 1] : "command line";
	/* -e K=V: the value may be a secret, shown by name only */
	char *shown = !value                 ? sb_xstrdup("true")
	              : !strcmp(flag, "env") ? sb_strfmt("%.*s", (int)strcspn(value, "="), value)
	                                     : sb_xstrdup(value);
	if (list && n->values) {
		char *joined = sb_strfmt("%s, %s", n->values, shown);
		free(n->values);
		n->values = joined;
		char *o = strstr(n->origin, origin) ? sb_xstrdup(n->origin)
		                                    : sb_strfmt("%s + %s", n->origin, origin);
		free(n->origin);
		n->origin = o;
	} else {
		free(n->values);
		free(n->origin);
		n->values = sb_xstrdup(shown);
		n->origin = sb_xstrdup(origin);
	}
	free(shown);
}

struct slot_print {
	FILE *f;
	const run_config_argv *a;
};

static void print_slot(void *ud, const char *key, const char *value, const char *origin)
{
	struct slot_print *p = ud;
	for (size_t i = 0; i < sizeof slot_flags / sizeof *slot_flags; i++)
		if (!strcmp(slot_flags[i].key, key))
			for (size_t j = 0; j < p->a->nnotes; j++)
				if (!strcmp(p->a->notes[j].flag, slot_flags[i].flag))
					return; /* a run flag: printed with the run options */
	if (value)
		fprintf(p->f, "%-17s = %s  # %s\n", key, value, origin ? origin : "");
	else
		fprintf(p->f, "%-17s = (unset)  # default\n", key);
}

void run_config_print(const run_config_argv *a, const cli_config *cfg, FILE *f)
{
	fputs("# sandbar run: resolved settings (key = value  # where it came from)\n", f);
	fprintf(f, "# config files: %s%s\n", cfg->config_path ? cfg->config_path : "none found",
	        getenv("SANDBAR_CONFIG") ? " ($SANDBAR_CONFIG)" : "");
	for (size_t i = 0; i < NKEYS; i++) {
		const run_config_note *n = NULL;
		for (size_t j = 0; j < a->nnotes; j++)
			if (!strcmp(a->notes[j].flag, run_keys[i].flag))
				n = &a->notes[j];
		if (n)
			fprintf(f, "%-17s = %s  # %s\n", run_keys[i].key, n->values, n->origin);
		else
			fprintf(f, "%-17s = %s  # default\n", run_keys[i].key, run_keys[i].dflt);
	}
	for (size_t i = 0; i < sizeof slot_flags / sizeof *slot_flags; i++)
		for (size_t j = 0; j < a->nnotes; j++)
			if (!strcmp(a->notes[j].flag, slot_flags[i].flag))
				fprintf(f, "%-17s = %s  # %s\n", slot_flags[i].key,
				        a->notes[j].values, a->notes[j].origin);
	struct slot_print p = {.f = f, .a = a};
	cli_config_each_slot(cfg, print_slot, &p);
}
