/* `sandbar run` options from config files, and --print-config (see run_config.c). */
#ifndef SANDBAR_CLI_RUN_CONFIG_H
#define SANDBAR_CLI_RUN_CONFIG_H

#include <stdio.h>

#include "cli.h"

/* What --print-config shows for one flag: its values (comma separated for repeatable flags)
 * and where they came from. */
typedef struct run_config_note {
	const char *flag; /* long option name, without "--" (static) */
	char *values;
	char *origin;
} run_config_note;

/* The command line with the config's run settings put first as long options. */
typedef struct run_config_argv {
	char **argv; /* argv[0], the config's options, then the command line's */
	int argc;
	int nconfig;          /* argv[1..nconfig] came from the config */
	const char **origins; /* of argv[1..nconfig]: "FILE:LINE" (borrowed from cfg) */
	int last_at;          /* where the option being parsed starts (names a bad setting) */
	run_config_note *notes;
	size_t nnotes;
} run_config_argv;

/* Build out from cfg's run settings and the command line; SB_E_INVAL for a bad boolean. */
sb_err *run_config_args(const cli_config *cfg, int argc, char **argv, run_config_argv *out);
void run_config_argv_deinit(run_config_argv *a);
/* Record that the option starting at argv[at] set flag to value (NULL: a boolean flag). */
void run_config_note_option(run_config_argv *a, const char *flag, int at, const char *value);
/* Print every run setting, resolved, with its origin (secrets' values are never printed). */
void run_config_print(const run_config_argv *a, const cli_config *cfg, FILE *f);

#endif
