/* `sandbar logs`: print an exec's output from any byte offset, optionally following it until
 * the exec finishes, from the lease's spool: works after disconnects and restarts alike. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "exec_follow.h"
#include "lease_store.h"

static const char logs_help[] =
    "usage: sandbar logs --lease ID --exec EXEC [--follow] [--offset N] [--stream S]\n"
    "\n"
    "Print the output of exec EXEC in lease ID, from byte offset N (default 0), stdout to\n"
    "stdout and stderr to stderr. With --follow, keep printing until the exec finishes and\n"
    "exit with its exit code.\n"
    "\n"
    "options:\n"
    "  -l, --lease ID       the lease (required)\n"
    "  -x, --exec EXEC      the exec id printed by `sandbar exec` (required)\n"
    "  -f, --follow         follow until the exec finishes\n"
    "      --offset N       start at byte N of each selected stream\n"
    "      --stream S       stdout, stderr or both (default both)\n"
    "      --state-dir DIR  where leases live\n"
    "  -h, --help           this text\n";

int cmd_logs(int argc, char **argv)
{
	enum { OPT_OFFSET = 256, OPT_STREAM };
	static const struct option longopts[] = {
	    {"lease", required_argument, NULL, 'l'},
	    {"exec", required_argument, NULL, 'x'},
	    {"follow", no_argument, NULL, 'f'},
	    {"offset", required_argument, NULL, OPT_OFFSET},
	    {"stream", required_argument, NULL, OPT_STREAM},
	    {"state-dir", required_argument, NULL, CLI_OPT_STATE_DIR},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *lease = NULL, *exec_id = NULL;
	bool follow = false;
	int64_t offset = 0;
	unsigned streams = 3;
	cli_config cfg = {0};
	int rc = 0, c;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":l:x:fh", longopts, NULL)) != -1) {
		switch (c) {
		case 'l':
			lease = optarg;
			break;
		case 'x':
			exec_id = optarg;
			break;
		case 'f':
			follow = true;
			break;
		case OPT_OFFSET: {
			sb_err *err = sb_parse_int64(optarg, 0, INT64_MAX, &offset);
			if (err) {
				rc = cli_usage_error("logs", "--offset %s: %s", optarg, err->msg);
				sb_err_free(err);
				goto out;
			}
			break;
		}
		case OPT_STREAM:
			if (!strcmp(optarg, "stdout"))
				streams = 1;
			else if (!strcmp(optarg, "stderr"))
				streams = 2;
			else if (!strcmp(optarg, "both"))
				streams = 3;
			else {
				rc = cli_usage_error("logs",
				                     "--stream must be stdout, stderr or both");
				goto out;
			}
			break;
		default: {
			int done = cli_common_option("logs", c, argv, &cfg, logs_help);
			if (done >= 0) {
				rc = done;
				goto out;
			}
			break;
		}
		}
	}
	if (!lease || !exec_id) {
		rc = cli_usage_error("logs", "--lease and --exec are required");
		goto out;
	}
	sb_err *err = cli_config_resolve(&cfg);
	if (err) {
		rc = cli_fail_err("logs", err);
		goto out;
	}
	cli_sandbox_env senv;
	cli_sandbox_env_init(&senv, &cfg);
	sb_sandbox *sb = NULL;
	/* A dead sandbox's spool is still readable: logs of a lost lease still print. */
	err = sb_sandbox_open_dead(&senv.cfg, lease, &sb);
	sb_sandbox_exec *x = NULL;
	if (!err)
		err = sb_sandbox_exec_attach(sb, exec_id, &x);
	if (!err) {
		sb_sandbox_exec_status st;
		err = cli_exec_follow(x, streams, (uint64_t)offset, (uint64_t)offset, follow, &st);
		if (!err && follow)
			rc = sb_sandbox_exec_exit_status(&st);
	}
	if (err)
		rc = cli_fail_err("logs", err);
	sb_sandbox_exec_free(x);
	if (sb)
		sb_sandbox_close(sb);
	cli_sandbox_env_deinit(&senv);
out:
	cli_config_deinit(&cfg);
	return rc;
}
