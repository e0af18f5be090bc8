/* The prefix runner: a request run elsewhere through a command prefix (`ssh -T host --`,
 * `kubectl exec -i pod --`, `docker exec -i c`, `sh -c`). The request becomes one POSIX sh
 * command line, every word single-quoted, and the prefix runs through an inner local runner, so
 * timeouts, streaming, stdin and cancellation behave exactly as for local commands (they act on
 * the local prefix process; what the far side does when its client goes away is up to it).
 *
 * The command line is `[cd '<cwd>' && ]exec [env [-i] 'K=V'... ]'<argv>'...`. Environment
 * changes go through env(1) because a shell assignment cannot name every variable a caller may
 * pass (e.g. "dotted.name"). A command name env(1) would misread (containing '=', or starting
 * with '-') is run through an extra `sh -c 'exec "$@"' sh` hop; that shell drops variables whose
 * names are not shell names and adds PWD, the one case where the environment is not exact.
 */
#include "runner_int.h"

#include <stdlib.h>
#include <string.h>

typedef struct prefix_runner {
	sb_runner base;
	char **prefix;
	bool is_shell;
	sb_runner *inner;
} prefix_runner;

static bool has_key(char *const *env, const char *key)
{
	size_t n = strlen(key);
	for (char *const *e = env; e && *e; e++)
		if (strncmp(*e, key, n) == 0 && (*e)[n] == '=')
			return true;
	return false;
}

static sb_err *command_line(const sb_exec_request *req, char **out)
{
	sb_buf b = SB_BUF_INIT;
	if (req->cwd) {
		sb_buf_appends(&b, "cd ");
		/* A directory named "-x" would read as an option to cd. */
		if (req->cwd[0] == '-') {
			char *dotted = sb_strfmt("./%s", req->cwd);
			sb_shell_quote(&b, dotted);
			free(dotted);
		} else {
			sb_shell_quote(&b, req->cwd);
		}
		sb_buf_appends(&b, " && ");
	}
	sb_buf_appends(&b, "exec ");
	if (req->clear_env || req->env) {
		sb_buf_appends(&b, req->clear_env ? "env -i " : "env ");
		for (char *const *e = req->env; e && *e; e++) {
			if ((*e)[0] == '-') {
				sb_buf_deinit(&b);
				return sb_err_new(
				    SB_E_INVAL,
				    "environment entry \"%s\" cannot be passed through "
				    "a command prefix: env(1) would read it as an option",
				    *e);
			}
			sb_shell_quote(&b, *e);
			sb_buf_appendc(&b, ' ');
		}
		/* Same rule as the local runner: a cleared environment still gets a PATH. */
		if (req->clear_env && !has_key(req->env, "PATH")) {
			sb_shell_quote(&b, "PATH=" SB_RUNNER_DEFAULT_PATH);
			sb_buf_appendc(&b, ' ');
		}
		/* env(1) would read a command name with '=' as one more assignment, or one
		 * starting with '-' as an option: those go through a shell hop. */
		const char *cmd = req->argv[0];
		if (strchr(cmd, '=') || cmd[0] == '-')
			sb_buf_appends(&b, "sh -c 'exec \"$@\"' sh ");
	}
	char *words = sb_shell_join(req->argv);
	sb_buf_appends(&b, words);
	free(words);
	*out = sb_buf_steal(&b, NULL);
	return NULL;
}

/* The argv the inner local runner starts: the prefix plus the command line in the shape the
 * prefix expects. */
static char **prefix_argv(const prefix_runner *pr, const char *line)
{
	char **argv = sb_strv_dup(pr->prefix);
	if (pr->is_shell) {
		char *quoted = sb_shell_quoted(line);
		char *word = sb_strfmt("sh -c %s", quoted);
		sb_strv_push(&argv, word);
		free(word);
		free(quoted);
	} else {
		sb_strv_push(&argv, "sh");
		sb_strv_push(&argv, "-c");
		sb_strv_push(&argv, line);
	}
	return argv;
}

/* The far side's pid is unknown; the local prefix process's pid would mislead (signalling it
 * does not reach the command), so callers see 0. */
typedef struct callback_relay {
	const sb_exec_callbacks *outer;
} callback_relay;

static sb_err *relay_spawn(void *ud, int pid, const char *started_at)
{
	(void)pid;
	const callback_relay *s = ud;
	return s->outer->on_spawn(s->outer->ud, 0, started_at);
}

static sb_err *relay_output(void *ud, sb_stream stream, const char *data, size_t len)
{
	const callback_relay *s = ud;
	return s->outer->on_output(s->outer->ud, stream, data, len);
}

static void relay_stdin_progress(void *ud, uint64_t done, uint64_t total)
{
	const callback_relay *s = ud;
	s->outer->on_stdin_progress(s->outer->ud, done, total);
}

static sb_err *prefix_execute(sb_runner *base, const sb_exec_request *req,
                              const sb_exec_callbacks *cb, sb_cancel *cancel, sb_exec_result *res)
{
	prefix_runner *pr = base->impl;
	char *line = NULL;
	sb_err *err = command_line(req, &line);
	if (err)
		return err;
	char **argv = prefix_argv(pr, line);
	free(line);

	sb_exec_request inner = {
	    .argv = argv,
	    .has_stdin = req->has_stdin,
	    .stdin_data = req->stdin_data,
	    .stdin_len = req->stdin_len,
	    .stdin_stream = req->stdin_stream,
	    .stdin_fd = req->stdin_fd,
	    .timeout_ms = req->timeout_ms,
	    .grace_ms = req->grace_ms,
	    .output_cap = req->output_cap,
	};
	callback_relay relay = {.outer = cb};
	sb_exec_callbacks inner_cb = {
	    .on_spawn = cb->on_spawn ? relay_spawn : NULL,
	    .on_output = cb->on_output ? relay_output : NULL,
	    .on_stdin_progress = cb->on_stdin_progress ? relay_stdin_progress : NULL,
	    .ud = &relay,
	};
	err = sb_runner_execute(pr->inner, &inner, &inner_cb, cancel, res);
	res->pid = 0;
	sb_strv_free(argv);
	return err;
}

static void prefix_destroy(sb_runner *base)
{
	prefix_runner *pr = base->impl;
	sb_runner_free(pr->inner);
	sb_strv_free(pr->prefix);
	free(pr);
}

static const sb_runner_ops prefix_ops = {
    .name = "prefix",
    .execute = prefix_execute,
    .destroy = prefix_destroy,
};

sb_err *sb_prefix_runner_new(const sb_prefix_runner_opts *opts, sb_runner **out)
{
	*out = NULL;
	if (!opts || !opts->prefix || !opts->prefix[0] || !opts->prefix[0][0])
		return sb_err_new(SB_E_INVAL, "prefix runner: the prefix must name a command (e.g. "
		                              "ssh -T host --)");
	prefix_runner *pr = sb_xcalloc(1, sizeof(*pr));
	pr->base.ops = &prefix_ops;
	pr->base.impl = pr;
	/* The prefix's stdin is a byte pipe to the far command (ssh -T, kubectl exec -i, docker
	 * exec -i), so a stream of any bytes and any length goes through it. */
	pr->base.caps = opts->no_stdin ? 0
	                               : SB_RUNNER_CAP_STDIN | SB_RUNNER_CAP_STDIN_PROGRESS |
	                                     SB_RUNNER_CAP_STDIN_STREAM;
	pr->prefix = sb_strv_dup(opts->prefix);
	pr->is_shell = opts->prefix_is_shell;
	pr->inner = sb_local_runner_new(NULL);
	*out = &pr->base;
	return NULL;
}
