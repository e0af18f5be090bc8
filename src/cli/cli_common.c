/* What every command shares (cli.h): the error printers, the stop signals and the options every
 * command takes. In the cli library rather than in main.c, so that both programs, sandbar and
 * sandbar-serve, have them. */
#include "cli.h"

#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
