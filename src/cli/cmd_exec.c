/* `sandbar exec`: run one command in a kept lease, streaming its output, and exit with its
 * exit code. The exec id is printed so `sandbar logs` can reattach from any offset later. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "exec_follow.h"
#include "lease_store.h"
#include "run_tty.h"

static const char exec_help[] =
    "usage: sandbar exec --lease ID [options] -- COMMAND [ARG...]\n"
    "\n"
    "Run COMMAND in the kept lease ID (see `sandbar lease list`), stream its output and exit\n"
    "with its exit code (124 timed out, 128+N killed by signal N, 125 sandbar failed).\n"
    "\n"
    "options:\n"
    "  -l, --lease ID       the lease (required)\n"
    "  -C, --cwd DIR        working directory inside the sandbox (default /workspace)\n"
    "  -e, --env K=V        environment variable for COMMAND (repeat)\n"
    "      --timeout DUR    stop COMMAND after DUR (e.g. 30s, 5m): TERM, then KILL\n"
    "  -i, --interactive    pass our standard input to COMMAND\n"
    "  -t, --tty            run COMMAND on a terminal inside the sandbox (implies -i; stdin\n"
    "                       must be a terminal): ours is raw meanwhile (Ctrl-C is a key for\n"
    "                       COMMAND), TERM and resizes are passed, output is one stream\n"
    "  -q, --quiet          do not print the exec id\n"
    "      --state-dir DIR  where leases live (default: SANDBAR_STATE_DIR, the config file,\n"
    "                       then $XDG_STATE_HOME/sandbar or /var/lib/sandbar for root)\n"
    "  -h, --help           this text\n";

struct stdin_copy {
	sb_sandbox_exec *x;
	int fd;
	int resize_fd; /* -t: window changes (run_tty.c), else -1 */
};

/* -t: keys to the terminal's master (non-blocking: it is shared with sandbar-init) and
 * window changes to its size, until the command is over (the thread is cancelled). */
static void *copy_keys(void *arg)
{
	struct stdin_copy *c = arg;
	char buf[4096];
	bool in_open = true;
	for (;;) {
		struct pollfd p[2] = {{in_open ? 0 : -1, POLLIN, 0}, {c->resize_fd, POLLIN, 0}};
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		unsigned short rows, cols;
		if (p[1].revents && cli_tty_resize_pending(&rows, &cols))
			sb_err_free(sb_sandbox_tty_resize(c->fd, "the command", rows, cols));
		if (!p[0].revents)
			continue;
		ssize_t n = read(0, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			in_open = false; /* a terminal has no EOF to pass on */
			continue;
		}
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(c->fd, buf + off, (size_t)(n - off));
			if (w > 0) {
				off += w;
			} else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
				struct pollfd o = {c->fd, POLLOUT, 0};
				(void)poll(&o, 1, 100);
			} else {
				return NULL; /* the terminal is gone */
			}
		}
	}
	return NULL;
}

/* Copies our stdin into the command's, then closes it, so the command sees EOF. */
static void *copy_stdin(void *arg)
{
	struct stdin_copy *c = arg;
	char buf[64 * 1024];
	for (;;) {
		ssize_t n = read(0, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		sb_err *err = sb_write_all(c->fd, buf, (size_t)n);
		if (err) {
			sb_err_free(err);
			break;
		}
	}
	/* The main thread leaves the exec's stdin alone until it has joined us. */
	sb_sandbox_exec_close_stdin(c->x);
	return NULL;
}

int cmd_exec(int argc, char **argv)
{
	enum { OPT_TIMEOUT = 256 };
	static const struct option longopts[] = {
	    {"lease", required_argument, NULL, 'l'},
	    {"cwd", required_argument, NULL, 'C'},
	    {"env", required_argument, NULL, 'e'},
	    {"timeout", required_argument, NULL, OPT_TIMEOUT},
	    {"interactive", no_argument, NULL, 'i'},
	    {"tty", no_argument, NULL, 't'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"state-dir", required_argument, NULL, CLI_OPT_STATE_DIR},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *lease = NULL, *cwd = NULL;
	char **env = NULL;
	int64_t timeout_ms = 0;
	bool interactive = false, quiet = false, tty = false;
	cli_config cfg = {0};
	int rc = 0, c;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+:l:C:e:itqh", longopts, NULL)) != -1) {
		switch (c) {
		case 'l':
			lease = optarg;
			break;
		case 'C':
			cwd = optarg;
			break;
		case 'e':
			if (!strchr(optarg, '=') || optarg[0] == '=') {
				rc = cli_usage_error("exec", "--env wants KEY=VALUE, not \"%s\"",
				                     optarg);
				goto out;
			}
			sb_strv_push(&env, optarg);
			break;
		case OPT_TIMEOUT: {
			sb_err *err = sb_parse_duration_ms(optarg, &timeout_ms);
			if (err) {
				rc = cli_usage_error("exec", "--timeout %s: %s", optarg, err->msg);
				sb_err_free(err);
				goto out;
			}
			break;
		}
		case 'i':
			interactive = true;
			break;
		case 't':
			tty = interactive = true;
			break;
		case 'q':
			quiet = true;
			break;
		default: {
			int done = cli_common_option("exec", c, argv, &cfg, exec_help);
			if (done >= 0) {
				rc = done;
				goto out;
			}
			break;
		}
		}
	}
	if (!lease) {
		rc = cli_usage_error("exec", "--lease is required");
		goto out;
	}
	if (optind >= argc) {
		rc = cli_usage_error("exec", "no command given (put it after --)");
		goto out;
	}
	if (tty && !isatty(0)) {
		rc = cli_usage_error("exec", "-t needs a terminal on stdin, and stdin is not one "
		                             "(use -i to stream a pipe or a file to the command)");
		goto out;
	}
	sb_err *err = cli_config_resolve(&cfg);
	if (err) {
		rc = cli_fail_err("exec", err);
		goto out;
	}
	cli_sandbox_env senv;
	cli_sandbox_env_init(&senv, &cfg);
	sb_sandbox *sb = NULL;
	err = cli_open_lease(&senv, lease, &sb);
	if (err) {
		rc = cli_fail_err("exec", err);
		cli_sandbox_env_deinit(&senv);
		goto out;
	}
	sb_sandbox_exec_req req = {.argv = argv + optind,
	                           .cwd = cwd,
	                           .env = env,
	                           .timeout_ms = timeout_ms,
	                           .stdin_mode =
	                               interactive ? SB_SANDBOX_STDIN_PIPE : SB_SANDBOX_STDIN_NULL};
	sb_exec_request treq = {0}; /* -t: the terminal's size and TERM, and the resize pipe */
	if (tty && !(err = cli_tty_prepare(0, &treq))) {
		req.tty = true;
		req.tty_rows = treq.tty_rows;
		req.tty_cols = treq.tty_cols;
		req.tty_term = treq.tty_term;
		cli_tty_restore_on_signals();
		err = cli_tty_begin(&treq);
	}
	sb_sandbox_exec *x = NULL;
	if (!err)
		err = sb_sandbox_exec_start(sb, &req, &x);
	if (err) {
		cli_tty_end();
		/* As in `sandbar run`: 127 only when exec said ENOENT, 126 for any other start
		 * failure (not executable, bad --cwd). */
		rc = sb_exit_status_for_start_error(err);
		fprintf(stderr, "sandbar exec: %s\n", err->msg);
		sb_err_free(err);
	} else {
		if (!quiet)
			fprintf(stderr, "sandbar exec: exec %s in lease %s%s",
			        sb_sandbox_exec_id(x), lease, tty ? "\r\n" : "\n");
		pthread_t t;
		struct stdin_copy sc = {
		    .x = x, .fd = sb_sandbox_exec_stdin_fd(x), .resize_fd = treq.tty_resize_fd};
		bool copying = interactive && sc.fd >= 0 &&
		               pthread_create(&t, NULL, tty ? copy_keys : copy_stdin, &sc) == 0;
		sb_sandbox_exec_status st;
		err = cli_exec_follow(x, 3, 0, 0, true, &st);
		if (copying) {
			/* The command is over: stop reading our stdin, it may never reach EOF. */
			pthread_cancel(t);
			pthread_join(t, NULL);
		}
		cli_tty_end();
		if (err)
			rc = cli_fail_err("exec", err);
		else
			rc = sb_sandbox_exec_exit_status(&st);
		sb_sandbox_exec_free(x);
	}
	sb_sandbox_close(sb);
	cli_sandbox_env_deinit(&senv);
out:
	sb_strv_free(env);
	cli_config_deinit(&cfg);
	return rc;
}
