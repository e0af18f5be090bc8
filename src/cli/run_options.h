/* `sandbar run`'s options: the help text, the parsed options and their parser (run_options.c),
 * for cmd_run.c. */
#ifndef SANDBAR_CLI_RUN_OPTIONS_H
#define SANDBAR_CLI_RUN_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <sandbar/runtime.h>

#include "run_config.h"

struct run_opts {
	char *workspace;
	char *via;
	char *bridge;
	char *remote_dir;
	char *state_dir;
	char *max_restore_size;
	char *callback;
	/* network (issue 14) */
	int net_mode; /* sb_net_mode, -1 = not given */
	char **allow_net;
	char **secrets;
	sb_sandbox_mount *mounts; /* --mount, parsed */
	size_t nmounts;
	bool interactive; /* -i */
	bool tty;         /* -t (implies -i) */
	char **excludes;
	/* ---- what is staged (issue 13) */
	char **exclude_patterns;
	char *exclude_preset;
	bool gitignore;
	char *branch;
	bool dry_run;
	bool force;
	bool checksum; /* restore by manifest, every file hashed (#15) */
	bool print_config;
	/* ---- */
	bool network;
	uint64_t memory;
	int64_t timeout_ms;
	char **env;
	bool keep;
	char *reuse;           /* --reuse KEY: keep the lease and find it again next run */
	int64_t reuse_idle_ms; /* --reuse-idle: a reused lease idle longer is replaced */
	sb_conflict_policy policy;
	bool quiet;
	bool json;
	char **command;
};

/* Parse rca's arguments (the config's settings first, see run_config.c) into o, noting each
 * option for --print-config. 0, or the exit status of a usage error already printed; *help is
 * set by -h. o->command is a copy, freed by run_opts_free. */
int run_opts_parse(run_config_argv *rca, struct run_opts *o, bool *help);
void run_opts_free(struct run_opts *o);
/* The whole `sandbar run --help` text. */
void run_opts_print_help(FILE *f);

#endif
