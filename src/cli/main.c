/* sandbar: the command-line tool. Dispatches to one subcommand per file (cmd_*.c); this file
 * holds only the top-level usage, --version and the shared error printers. */
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

int cli_fail_err(const char *cmd, sb_err *err)
{
	fprintf(stderr, "sandbar %s: %s\n", cmd, err ? err->msg : "unknown error");
	sb_err_free(err);
	return SB_EXIT_FAILURE;
}

int cli_fail(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "sandbar %s: ", cmd);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return SB_EXIT_FAILURE;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "sandbar %s: ", cmd);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\nTry `sandbar %s --help`.\n", cmd);
	va_end(ap);
	return SB_EXIT_FAILURE;
}

void cli_catch_stop_signals(void (*handler)(int), bool quit)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = handler;
	sigemptyset(&sa.sa_mask);
	static const int stops[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
	for (size_t i = 0; i < (quit ? 4u : 3u); i++)
		sigaction(stops[i], &sa, NULL);
}

int cli_common_option(const char *cmd, int c, char **argv, cli_config *cfg, const char *help)
{
	switch (c) {
	case CLI_OPT_STATE_DIR:
		free(cfg->state_dir);
		cfg->state_dir = sb_xstrdup(optarg);
		return -1;
	case 'h':
		fputs(help, stdout);
		return 0;
	case ':':
		return cli_usage_error(cmd, "option %s needs a value", argv[optind - 1]);
	default:
		return cli_usage_error(cmd, "unknown option %s", argv[optind - 1]);
	}
}

struct command {
	const char *name;
	int (*fn)(int, char **);
};

static const struct command commands[] = {
    {"run", cmd_run},   {"serve", cmd_serve}, {"exec", cmd_exec}, {"lease", cmd_lease},
    {"push", cmd_push}, {"pull", cmd_pull},   {"logs", cmd_logs}, {"doctor", cmd_doctor},
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
