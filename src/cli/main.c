/* sandbar: the command-line tool. Dispatches to one subcommand per file (cmd_*.c); this file
 * holds only the top-level usage and --version (the shared error printers: cli_common.c). */
#include "cli.h"

#include <signal.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: sandbar <command> [options]\n"
    "\n"
    "Run AI coding agents' commands in isolated Linux sandboxes and bring their changes back.\n"
    "\n"
    "commands:\n"
    "  run      stage a workspace into a sandbox, run a command, merge the changes back\n"
    "  serve    run the authenticated sandbox daemon (HTTP, native and Paperclip APIs)\n"
    "  exec     run a command in a kept lease\n"
    "  lease    list, acquire, renew or destroy leases\n"
    "  push     stage a workspace into a kept lease\n"
    "  pull     merge a kept lease's workspace back\n"
    "  logs     print (or follow) an exec's output from any byte offset\n"
    "  doctor   check this host for sandboxes (prints the fix for each broken piece)\n"
    "\n"
    "`sandbar <command> --help` describes each command. See sandbar(1) for exit codes,\n"
    "configuration (flags, SANDBAR_* environment, ~/.config/sandbar/config) and examples.\n";

struct command {
	const char *name;
	int (*fn)(int, char **);
};

static const struct command commands[] = {
    {"run", cmd_run},   {"serve", cmd_serve_exec}, {"exec", cmd_exec}, {"lease", cmd_lease},
    {"push", cmd_push}, {"pull", cmd_pull},        {"logs", cmd_logs}, {"doctor", cmd_doctor},
};

int main(int argc, char **argv)
{
	/* A reader that goes away (`sandbar run ... | head`) must not kill us mid-run: the changes
	 * still have to come back and the lease be released. Writes then fail with EPIPE, which the
	 * output paths ignore. Commands we start get default signal handling back. */
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		fputs(usage_text, stderr);
		return SB_EXIT_FAILURE;
	}
	const char *name = argv[1];
	if (!strcmp(name, "help") && argc > 2) {
		/* `sandbar help run` = `sandbar run --help`. */
		for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
			if (!strcmp(commands[i].name, argv[2])) {
				char *hargv[] = {argv[2], "--help", NULL};
				return commands[i].fn(2, hargv);
			}
	}
	if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
		fputs(usage_text, stdout);
		return SB_EXIT_OK;
	}
	if (!strcmp(name, "--version") || !strcmp(name, "version")) {
		printf("sandbar %s\n", SB_VERSION);
		return SB_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
		if (!strcmp(commands[i].name, name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "sandbar: unknown command \"%s\"\n\n%s", name, usage_text);
	return SB_EXIT_FAILURE;
}
