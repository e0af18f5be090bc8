/* Acquiring and releasing what `sandbar run` executes on (see target.h). The embedded sandbox
 * needs no daemon: the lease lives in the state directory like the daemon's leases do, so a
 * lease kept with --keep can be used later by `sandbar exec` or `sandbar serve`. */
#include "target.h"
#include "reuse.h"

#include "lease_store.h"

#include <stdlib.h>
#include <string.h>

#include "words.h"

sb_err *cli_via_parse(const char *s, cli_via *via, char ***prefix)
{
	*prefix = NULL;
	if (!strcmp(s, "sandbox")) {
		*via = CLI_VIA_SANDBOX;
		return NULL;
	}
	if (!strcmp(s, "local")) {
		*via = CLI_VIA_LOCAL;
		return NULL;
	}
	if (sb_str_has_prefix(s, "cmd:")) {
		sb_err *err = cli_split_words(s + 4, prefix);
		if (err)
			return sb_err_prefix(err, "--via %s", s);
		if (!(*prefix)[0]) {
			sb_strv_free(*prefix);
			*prefix = NULL;
			return sb_err_new(SB_E_INVAL, "--via cmd: needs a command prefix, e.g. "
			                              "'cmd:ssh -T host --'");
		}
		*via = CLI_VIA_PREFIX;
		return NULL;
	}
	return sb_err_new(SB_E_INVAL, "--via must be sandbox, local or 'cmd:PREFIX...', not \"%s\"",
	                  s);
}

/* A prefix that hands its arguments to a shell as one string (ssh, `sh -c`, `bash -c`) needs
 * the command line quoted once more than one that execs its arguments (kubectl, docker). */
static bool prefix_takes_shell_string(char *const *prefix)
{
	const char *prog = strrchr(prefix[0], '/') ? strrchr(prefix[0], '/') + 1 : prefix[0];
	if (!strcmp(prog, "ssh"))
		return true;
	size_t n = sb_strv_len(prefix);
	return n >= 2 && !strcmp(prefix[n - 1], "-c");
}

static sb_err *acquire_sandbox(const cli_target_opts *o, cli_target *t)
{
	cli_sandbox_env env; /* the state directory and the operator's defaults, as `lease` uses */
	cli_sandbox_env_init(&env, o->config);
	sb_sandbox_opts sopts;
	memset(&sopts, 0, sizeof sopts);
	sopts.network = o->network;
	sopts.limits.memory_bytes = o->memory_bytes;
	sopts.callback = o->callback; /* its relay runs in this process for the run */
	sopts.egress = o->egress;     /* so does the egress proxy */
	/* An explicit --memory must hold: refuse to run rather than run unlimited. */
	sopts.require_limits = o->memory_bytes > 0;
	/* The sandbox lives as long as this run: if it is killed outright, init stops the
	 * sandbox by itself (a kept lease is released from the watch on close). */
	sopts.watch_owner = true;
	sopts.mounts = o->mounts;
	sopts.nmounts = o->nmounts;
	sb_err *err = sb_fs_mkdir_p(env.state_dir, 0700);
	if (!err && o->reuse_key) {
		err = cli_reuse_acquire(&env, o->reuse_key, &sopts, o->reuse_idle_ms, &t->lease_id,
		                        &t->sandbox);
	} else if (!err) {
		t->lease_id = sb_random_id("run-");
		err = sb_sandbox_create(&env.cfg, t->lease_id, &sopts, &t->sandbox);
	}
	cli_sandbox_env_deinit(&env);
	if (err)
		return sb_err_prefix(err, "creating a sandbox");
	sb_sandbox_runner_opts ropts = {0};
	err = sb_sandbox_runner_new(t->sandbox, &ropts, &t->runner);
	if (err)
		return err;
	t->remote_dir =
	    sb_xstrdup(o->remote_dir ? o->remote_dir : sb_sandbox_workspace_mount(t->sandbox));
	return NULL;
}

static sb_err *acquire_local(const cli_target_opts *o, cli_target *t)
{
	sb_local_runner_opts lopts = {.file_transfer = true, .default_cwd = NULL};
	t->runner = sb_local_runner_new(&lopts);
	if (o->remote_dir) {
		t->remote_dir = sb_xstrdup(o->remote_dir);
		return NULL;
	}
	sb_err *err = sb_fs_mkdtemp("sandbar-run", &t->local_tmp);
	if (err)
		return err;
	t->remote_dir = sb_strfmt("%s/workspace", t->local_tmp);
	return NULL;
}

/* Runs a short helper script on the far side and returns its trimmed stdout. */
static sb_err *remote_capture(sb_runner *r, const char *script, char **out)
{
	char *argv[] = {"sh", "-c", (char *)script, NULL};
	sb_exec_request req = {.argv = argv, .cwd = "/", .timeout_ms = 60000};
	sb_exec_result res;
	sb_exec_result_init(&res);
	sb_err *err = sb_runner_execute(r, &req, NULL, NULL, &res);
	if (!err && !sb_exec_result_ok(&res))
		err = sb_err_new(SB_E_COMMAND, "`%s` failed on the remote side: %s", script,
		                 sb_buf_cstr(&res.err));
	if (!err) {
		char *s = sb_xstrdup(sb_buf_cstr(&res.out));
		size_t n = strlen(s);
		while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
			s[--n] = '\0';
		*out = s;
	}
	sb_exec_result_deinit(&res);
	return err;
}

static sb_err *acquire_prefix(const cli_target_opts *o, cli_target *t)
{
	sb_prefix_runner_opts popts = {.prefix = o->prefix,
	                               .prefix_is_shell = prefix_takes_shell_string(o->prefix)};
	sb_err *err = sb_prefix_runner_new(&popts, &t->runner);
	if (err)
		return err;
	if (o->remote_dir) {
		t->remote_dir = sb_xstrdup(o->remote_dir);
		return NULL;
	}
	/* A name nobody can guess, made by the first staging command itself (mkdir without -p,
	 * refused when anything is there): what mktemp gives, without a command of its own (#15:
	 * at most 4 remote commands per run). */
	t->remote_dir = sb_random_id("/tmp/sandbar-run-");
	t->remote_tmp = true;
	return NULL;
}

sb_err *cli_target_acquire(const cli_target_opts *opts, cli_target *t)
{
	memset(t, 0, sizeof *t);
	t->via = opts->via;
	switch (opts->via) {
	case CLI_VIA_SANDBOX:
		return acquire_sandbox(opts, t);
	case CLI_VIA_LOCAL:
		return acquire_local(opts, t);
	case CLI_VIA_PREFIX:
		return acquire_prefix(opts, t);
	case CLI_VIA_BRIDGE:
		return cli_bridge_acquire(opts, t);
	}
	return sb_err_new(SB_E_INTERNAL, "unknown target");
}

sb_err *cli_target_release(cli_target *t, bool keep)
{
	sb_err *err = NULL;
	if (t->via == CLI_VIA_PREFIX && t->remote_tmp && !keep && t->runner) {
		char *q = sb_shell_quoted(t->remote_dir);
		char *script = sb_strfmt("rm -rf -- %s", q);
		char *ignored = NULL;
		err = remote_capture(t->runner, script, &ignored);
		free(ignored);
		free(script);
		free(q);
	}
	if (t->via == CLI_VIA_BRIDGE) {
		sb_err *e = cli_bridge_release(t, keep);
		if (!err)
			err = e;
		else
			sb_err_free(e);
	}
	sb_runner_free(t->runner);
	t->runner = NULL;
	if (t->sandbox) {
		if (keep) {
			sb_sandbox_close(t->sandbox);
		} else {
			sb_err *e = sb_sandbox_destroy(t->sandbox);
			if (!err)
				err = e;
			else
				sb_err_free(e);
		}
		t->sandbox = NULL;
	}
	if (t->local_tmp && !keep) {
		sb_err *e = sb_fs_rm_rf(t->local_tmp);
		if (!err)
			err = e;
		else
			sb_err_free(e);
	}
	free(t->local_tmp);
	free(t->remote_dir);
	free(t->lease_id);
	memset(t, 0, sizeof *t);
	return err;
}
