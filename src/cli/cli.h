/* Private declarations of the sandbar command-line tool: exit codes, the resolved configuration
 * (flags, then environment, then ~/.config/sandbar/config) and the subcommand entry points. */
#ifndef SB_CLI_H
#define SB_CLI_H

#include <sandbar/base.h>
#include <sandbar/runner.h>
#include <sandbar/sandbox.h>

/* Exit codes (SB_EXIT_*, documented in sandbar(1)) and their one mapping: <sandbar/runner.h>. */

/* Settings that flags, the environment and the config file can all provide. NULL = unset. */
/* The smallest memory limit a sandbox can start a command in (init, a shell, the runtime's
 * tar). */
#define CLI_MEMORY_MIN (16ull << 20)
#define CLI_MEMORY_MIN_TEXT "16M"

/* A `sandbar run` option set in a config file: key as in run_config.c, value as written. */
typedef struct cli_setting {
	char *key, *value;
	char *origin; /* "FILE:LINE" */
} cli_setting;

#define CLI_CONFIG_SLOTS 16
/* Read after the user's config file, unless $SANDBAR_CONFIG names one ($SANDBAR_SYSTEM_CONFIG
 * moves it). */
#define CLI_SYSTEM_CONFIG "/etc/sandbar/config"

typedef struct cli_config {
	char *bridge_url;       /* SANDBAR_BRIDGE_URL, bridge_url = */
	char *token_file;       /* SANDBAR_TOKEN_FILE, token_file = */
	char *state_dir;        /* SANDBAR_STATE_DIR, state_dir = */
	char *hmac_key_id;      /* SANDBAR_HMAC_KEY_ID, hmac_key_id = */
	char *hmac_key_file;    /* SANDBAR_HMAC_KEY_FILE, hmac_key_file = (the secret, one line) */
	char *memory;           /* SANDBAR_MEMORY, memory = (default memory limit of a sandbox) */
	uint64_t memory_bytes;  /* memory, parsed by cli_config_resolve (0: none) */
	char *max_restore_size; /* SANDBAR_MAX_RESTORE_SIZE, max_restore_size = (SIZE or
	                         * "unlimited": the file data a restore may unpack) */
	int64_t max_restore_bytes; /* parsed by cli_config_resolve: 0 default, -1 unlimited */
	char *compat_callback; /* SANDBAR_COMPAT_CALLBACK, compat_callback = (serve: the callback
	                        * of every Paperclip-compat lease, JSON or a [callback NAME]) */
	char *config_path;     /* where the file was read from, for messages */
	/* Set by the command before cli_config_resolve: "run" or "serve" read their own section
	 * ([run], [serve]) besides the top level; others read only the top level. */
	const char *program;
	/* [callback NAME] sections (DESIGN.md §9.15), read by every program */
	sb_callback_entry *callbacks;
	size_t ncallbacks;
	/* [serve] only (program "serve", serve_config.c): mount_allow = PATH (repeatable) and the
	 * named secrets secret.NAME = env:VAR|file:PATH with .hosts, .header, .env */
	char **mount_allow;
	sb_egress_secret_entry *secrets;
	size_t nsecrets;
	/* [serve] warm = N: sandboxes kept started for acquires of the default configuration
	 * (serve_config.c; --warm overrides); warm_origin is NULL while unset */
	unsigned warm;
	const char *warm_origin;
	/* `sandbar run` options from the config files (program "run" only), file order */
	cli_setting *run_settings;
	size_t nrun_settings;
	/* where each key above got its value: "command line" (set before resolving),
	 * "$VAR", "FILE:LINE"; NULL while unset. Indexed like the key table in config.c. */
	char *slot_origins[CLI_CONFIG_SLOTS];
} cli_config;

/* Each key of the table above with its value and origin, for --print-config. */
typedef void (*cli_config_slot_fn)(void *ud, const char *key, const char *value,
                                   const char *origin);
void cli_config_each_slot(const cli_config *cfg, cli_config_slot_fn fn, void *ud);

/* ---- serve_config.c: the [serve] keys of the daemon's own (mounts and secrets for the API) */
/* Handle key in the [serve] section: true when it is one of these (*err set when its value is
 * wrong), false to let the common keys have it. */
bool cli_serve_key(cli_config *cfg, const char *key, const char *value, const char *origin,
                   int lineno, sb_err **err);
/* Check the entries once every file is read (secrets need their hosts). */
sb_err *cli_serve_config_check(cli_config *cfg);
/* The value of --warm and [serve] warm: a decimal 0..CLI_WARM_MAX (the server's limit). */
#define CLI_WARM_MAX 64
bool cli_parse_warm(const char *s, unsigned *out);
void cli_serve_config_deinit(cli_config *cfg);

/* ---- run_config.c: a config key for every `sandbar run` option */
/* Whether key names a `sandbar run` option settable in a config file. */
bool cli_run_key_known(const char *key);

/* Fill unset fields from the environment, then from the config files: $SANDBAR_CONFIG alone
 * when it is set, else $XDG_CONFIG_HOME/sandbar/config (or ~/.config/sandbar/config) and then
 * /etc/sandbar/config, the first file to set a key winning. Fields already set (from flags) are
 * kept. A missing file is fine; a malformed one is an error naming the line. */
sb_err *cli_config_resolve(cli_config *cfg);
void cli_config_deinit(cli_config *cfg);
/* After cli_config_resolve: key takes value from a command-line flag (its origin says so) and
 * is checked again like one from a file. */
sb_err *cli_config_override(cli_config *cfg, const char *key, const char *value);
/* Parse one `key = value` config text with [run], [serve] and [callback NAME] sections
 * (exported for tests). */
sb_err *cli_config_parse(cli_config *cfg, const char *text, const char *origin);
/* The state directory to use: cfg->state_dir, else $XDG_STATE_HOME/sandbar, else
 * /var/lib/sandbar for root, else ~/.local/state/sandbar. malloc'd. */
char *cli_state_dir(const cli_config *cfg);
/* Read the bearer token named by cfg->token_file (or $SANDBAR_TOKEN); NULL when none. */
sb_err *cli_read_token(const cli_config *cfg, char **token_out);

/* Print "sandbar <cmd>: <message>" and a hint to stderr; returns SB_EXIT_FAILURE. */
int cli_fail(const char *cmd, const char *fmt, ...) SB_PRINTF(2, 3);
/* Same for an error (frees it). */
int cli_fail_err(const char *cmd, sb_err *err);
/* The long-option value of --state-dir, the same in every command. */
#define CLI_OPT_STATE_DIR 0x1000
/* What a command's option loop does with an option it did not handle itself: --state-dir (into
 * cfg), -h (prints help), a missing value or an unknown option (a usage error). Returns -1 when
 * parsing goes on, else the command's exit status. */
int cli_common_option(const char *cmd, int c, char **argv, cli_config *cfg, const char *help);
/* handler for SIGINT, SIGTERM and SIGHUP (and SIGQUIT when quit), no flags, nothing masked. */
void cli_catch_stop_signals(void (*handler)(int), bool quit);
/* A usage error: names the offending flag and points at --help. */
int cli_usage_error(const char *cmd, const char *fmt, ...) SB_PRINTF(2, 3);

int cmd_run(int argc, char **argv);
/* The daemon, in the sandbar-serve program (serve_main.c); `sandbar serve` runs
 * cmd_serve_exec, which execs that program (serve_exec.c). */
int cmd_serve(int argc, char **argv);
int cmd_serve_exec(int argc, char **argv);
/* The path of the sandbar-serve program (malloc'd). */
char *cli_serve_program(void);
int cmd_exec(int argc, char **argv);
int cmd_lease(int argc, char **argv);
int cmd_push(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_doctor(int argc, char **argv);

#endif
