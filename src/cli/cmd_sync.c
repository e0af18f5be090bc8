/* `sandbar push` and `sandbar pull`: the two halves of `sandbar run` against a kept lease.
 * push stages a workspace and saves the runtime state (the baseline) in the state directory;
 * pull merges the lease's workspace back against it and saves the new baseline, so pulls can
 * be repeated as the work in the lease goes on. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sandbar/runtime.h>

#include "cli.h"
#include "lease_store.h"
#include "progress_bar.h"
#include "run_report.h"

static const char push_help[] =
    "usage: sandbar push --lease ID [--workspace DIR] [--exclude PATH]... [--quiet]\n"
    "\n"
    "Stage DIR (default: the current directory) into the kept lease ID's workspace, replacing\n"
    "what was there, and remember its state so `sandbar pull` can merge the changes back.\n";

static const char pull_help[] =
    "usage: sandbar pull [--lease] ID [--conflict keep-local|take-remote|fail]\n"
    "                    [--max-restore-size SIZE|unlimited] [--json] [--quiet]\n"
    "\n"
    "Merge the kept lease ID's workspace back into the directory last pushed to it: changes\n"
    "made in the lease are applied, your own edits since the push are kept, and when both\n"
    "sides changed a file nothing is overwritten silently (see --conflict in `sandbar run`).\n"
    "--max-restore-size refuses a tree holding more file data than SIZE (default: 8 times\n"
    "the workspace, at least 4G; config max_restore_size). An orphaned lease (its `sandbar\n"
    "run` was killed and its sandbox stopped itself) is read on the host and removed once its\n"
    "work is home.\n";

struct sync_args {
	const char *lease;
	const char *workspace;
	char **excludes;
	sb_conflict_policy policy;
	bool quiet, json;
	cli_config cfg;
	char *remote_at; /* pull from a dead sandbox: its workspace on the host */
};

static int parse(const char *cmd, const char *help, int argc, char **argv, struct sync_args *a,
                 bool *done)
{
	enum { OPT_EXCLUDE = 256, OPT_CONFLICT, OPT_JSON, OPT_MAX_RESTORE };
	static const struct option longopts[] = {
	    {"lease", required_argument, NULL, 'l'},
	    {"workspace", required_argument, NULL, 'w'},
	    {"exclude", required_argument, NULL, OPT_EXCLUDE},
	    {"conflict", required_argument, NULL, OPT_CONFLICT},
	    {"max-restore-size", required_argument, NULL, OPT_MAX_RESTORE},
	    {"json", no_argument, NULL, OPT_JSON},
	    {"quiet", no_argument, NULL, 'q'},
	    {"state-dir", required_argument, NULL, CLI_OPT_STATE_DIR},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	bool is_push = !strcmp(cmd, "push");
	opterr = 0;
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, ":l:w:qh", longopts, NULL)) != -1) {
		sb_err *err = NULL;
		const char *flag = NULL; /* names the flag in a value error */
		switch (c) {
		case 'l':
			a->lease = optarg;
			break;
		case 'w':
			if (!is_push)
				return cli_usage_error(cmd,
				                       "--workspace is fixed by the last push");
			a->workspace = optarg;
			break;
		case OPT_EXCLUDE:
			if (!is_push)
				return cli_usage_error(cmd, "--exclude is fixed by the last push");
			flag = "--exclude";
			err = sb_excludes_check_user(optarg);
			if (!err)
				sb_strv_push(&a->excludes, optarg);
			break;
		case OPT_CONFLICT:
			if (is_push)
				return cli_usage_error(cmd, "--conflict belongs to `sandbar pull`");
			flag = "--conflict";
			err = sb_conflict_policy_parse(optarg, &a->policy);
			break;
		case OPT_MAX_RESTORE: /* checked by cli_config_resolve, with the config key */
			if (is_push)
				return cli_usage_error(
				    cmd, "--max-restore-size belongs to `sandbar pull`");
			free(a->cfg.max_restore_size);
			a->cfg.max_restore_size = sb_xstrdup(optarg);
			break;
		case OPT_JSON:
			a->json = true;
			break;
		case 'q':
			a->quiet = true;
			break;
		default: {
			int rc = cli_common_option(cmd, c, argv, &a->cfg, help);
			*done = c == 'h';
			if (rc >= 0)
				return rc;
			break;
		}
		}
		if (err) {
			/* Not argv[optind - 1]: that is the value when it came as its own word. */
			int rc = cli_usage_error(cmd, "%s %s: %s", flag, optarg, err->msg);
			sb_err_free(err);
			return rc;
		}
	}
	/* `sandbar pull LEASE`: the form `sandbar run` prints when it keeps a lease. */
	if (optind == argc - 1 && !a->lease && !is_push)
		a->lease = argv[optind++];
	if (optind < argc)
		return cli_usage_error(cmd, "unexpected argument \"%s\"", argv[optind]);
	if (!a->lease)
		return cli_usage_error(cmd, "--lease is required");
	return 0;
}

static char *state_path(const cli_sandbox_env *env, const char *lease)
{
	return sb_strfmt("%s/runtime/%s.json", env->state_dir, lease);
}

static void on_bytes(void *ud, uint64_t done, uint64_t total)
{
	cli_bar_update(ud, done, total);
}

static void ignore_line(void *ud, const char *line)
{
	(void)ud;
	(void)line;
}

/* A path below dir (relative) that is a symlink or not a directory, or NULL. */
static sb_err *check_real_dirs(const char *dir, const char *rel)
{
	char *p = sb_xstrdup(rel);
	sb_err *err = NULL;
	for (char *c = p; !err && *c;) {
		char *slash = strchr(c, '/');
		if (slash)
			*slash = '\0';
		char *full = sb_strfmt("%s/%s", dir, p);
		struct stat st;
		if (lstat(full, &st) == 0 && !S_ISDIR(st.st_mode))
			err = sb_err_new(SB_E_ESCAPE,
			                 "%s is not a directory (a symlink?): refusing "
			                 "to read the lease's workspace on the host",
			                 full);
		free(full);
		if (!slash)
			break;
		*slash = '/';
		c = slash + 1;
	}
	free(p);
	return err;
}

/* Pull from a lease whose sandbox is gone: no process of the sandbox is left to race us, so
 * its workspace is read on the host by a local runner, after checking that the runtime's own
 * directory in it holds no symlink planted to redirect our writes. */
static sb_err *open_orphan(cli_sandbox_env *env, const char *lease, char **at, sb_runner **out)
{
	sb_sandbox *sb = NULL;
	sb_err *err = sb_sandbox_open_dead(&env->cfg, lease, &sb);
	if (err)
		return err;
	char *ws = sb_xstrdup(sb_sandbox_workspace_dir(sb));
	sb_sandbox_close(sb);
	err = check_real_dirs(ws, SB_RUNTIME_OVERLAY_DEFAULT "/sandbar");
	if (err) {
		free(ws);
		return err;
	}
	sb_local_runner_opts lo = {.file_transfer = true, .default_cwd = ws};
	*out = sb_local_runner_new(&lo);
	*at = ws;
	return NULL;
}

/* The shared frame: parse, resolve, open the lease and its runner, call fn, clean up. */
typedef int (*sync_fn)(struct sync_args *a, cli_sandbox_env *env, sb_runner *runner, cli_bar *bar);

static int with_lease(const char *cmd, const char *help, int argc, char **argv, sync_fn fn)
{
	struct sync_args a;
	memset(&a, 0, sizeof a);
	bool done = false;
	int rc = parse(cmd, help, argc, argv, &a, &done);
	if (rc || done)
		goto out;
	sb_err *err = cli_config_resolve(&a.cfg);
	if (err) {
		rc = cli_fail_err(cmd, err);
		goto out;
	}
	cli_sandbox_env env;
	cli_sandbox_env_init(&env, &a.cfg);
	sb_sandbox *sb = NULL;
	sb_runner *runner = NULL;
	err = cli_open_lease(&env, a.lease, &sb);
	if (err && err->code == SB_E_STATE_LOST && strcmp(cmd, "pull") == 0) {
		/* an orphaned lease (its `sandbar run` was killed and its sandbox stopped itself):
		 * its workspace is read on the host */
		sb_err_free(err);
		err = open_orphan(&env, a.lease, &a.remote_at, &runner);
	} else if (!err) {
		sb_sandbox_runner_opts ro = {.own_sandbox = true};
		err = sb_sandbox_runner_new(sb, &ro, &runner);
		if (err)
			sb_sandbox_close(sb);
	}
	if (err) {
		rc = cli_fail_err(cmd, err);
	} else {
		cli_bar bar;
		cli_bar_init(&bar, 2, !a.quiet && isatty(2));
		rc = fn(&a, &env, runner, &bar);
		sb_runner_free(runner);
	}
	cli_sandbox_env_deinit(&env);
out:
	sb_strv_free(a.excludes);
	free(a.remote_at);
	cli_config_deinit(&a.cfg);
	return rc;
}

static int do_push(struct sync_args *a, cli_sandbox_env *env, sb_runner *runner, cli_bar *bar)
{
	char *workspace = realpath(a->workspace ? a->workspace : ".", NULL);
	if (!workspace)
		return cli_fail("push", "workspace %s does not exist",
		                a->workspace ? a->workspace : ".");
	sb_runtime_prepare_opts o;
	memset(&o, 0, sizeof o);
	o.runner = runner;
	o.spec.remote_cwd = SB_SANDBOX_WORKSPACE_DEFAULT;
	o.adapter_key = "sandbar";
	o.workspace_local_dir = workspace;
	o.excludes = a->excludes;
	o.progress = (sb_runtime_progress_sink){.fn = ignore_line, .bytes = on_bytes, .ud = bar};
	cli_bar_phase(bar, "staging");
	sb_runtime *rt = NULL;
	sb_err *err = sb_runtime_prepare(&o, &rt);
	cli_bar_clear(bar);
	char *path = state_path(env, a->lease);
	char *dir = sb_strfmt("%s/runtime", env->state_dir);
	if (!err)
		err = sb_fs_mkdir_p(dir, 0700);
	if (!err)
		err = sb_runtime_save(rt, path);
	int rc = 0;
	if (err)
		rc = cli_fail_err("push", err);
	else if (!a->quiet)
		fprintf(stderr, "sandbar push: %s staged into lease %s (%llu bytes)\n", workspace,
		        a->lease, (unsigned long long)sb_runtime_bytes_up(rt));
	sb_runtime_free(rt);
	free(dir);
	free(path);
	free(workspace);
	return rc;
}

/* After a pull from a dead sandbox: its staged state and then the lease itself go. A failure
 * to remove is said, not fatal: the work is home, and `sandbar lease prune` removes the rest. */
static void remove_finished(cli_sandbox_env *env, const char *lease, bool quiet)
{
	cli_lease_forget_state(env, lease);
	sb_sandbox *sb = NULL;
	sb_err *err = sb_sandbox_open_dead(&env->cfg, lease, &sb);
	if (!err)
		err = sb_sandbox_destroy(sb);
	if (err)
		fprintf(stderr, "sandbar pull: removing lease %s: %s\n", lease, err->msg);
	else if (!quiet)
		fprintf(stderr,
		        "sandbar pull: lease %s removed (its sandbox was gone; its work is "
		        "home)\n",
		        lease);
	sb_err_free(err);
}

static int do_pull(struct sync_args *a, cli_sandbox_env *env, sb_runner *runner, cli_bar *bar)
{
	char *path = state_path(env, a->lease);
	sb_runtime_load_opts lo = {
	    .runner = runner,
	    .progress = {.fn = ignore_line, .bytes = on_bytes, .ud = bar},
	    .remote_dir_at = a->remote_at,
	};
	sb_runtime *rt = NULL;
	sb_err *err = sb_runtime_load(path, &lo, &rt);
	if (err && err->code == SB_E_NOTFOUND && a->remote_at)
		/* its run was killed before staging ended, or after its work came home */
		err = sb_err_prefix(err,
		                    "lease %s holds no staged work to bring back (its sandbox is "
		                    "gone); remove it with `sandbar lease prune` or `sandbar lease "
		                    "destroy %s`",
		                    a->lease, a->lease);
	else if (err && err->code == SB_E_NOTFOUND)
		err = sb_err_prefix(
		    err, "nothing was pushed to lease %s (run `sandbar push` first)", a->lease);
	run_report report;
	run_report_init(&report);
	report.lease_id = sb_xstrdup(a->lease);
	int rc = 0;
	if (!err) {
		sb_runtime_restore_opts ro = {.policy = a->policy,
		                              .max_extracted_bytes = a->cfg.max_restore_bytes,
		                              .progress = lo.progress};
		sb_restore_report rr;
		sb_restore_report_init(&rr);
		cli_bar_phase(bar, "restoring");
		int64_t t0 = sb_mono_ms();
		err = sb_runtime_restore(rt, &ro, &rr);
		report.phases.restore_ms = sb_mono_ms() - t0;
		cli_bar_clear(bar);
		run_report_set_changes(&report, &rr);
		sb_restore_report_deinit(&rr);
		/* The merged state is the next pull's baseline; a dead sandbox has nothing more
		 * to give: its work is home, so the lease goes (§9.6). The state file first: a
		 * pull killed in between leaves a lease without work, which prune removes. */
		if (!err && a->remote_at) {
			remove_finished(env, a->lease, a->quiet);
		} else if (!err) {
			err = sb_runtime_save(rt, path);
			/* `sandbar lease list` offers a pull only while one has work to bring */
			sb_err *merr = err ? NULL : cli_lease_mark_pulled(env, a->lease);
			if (merr)
				fprintf(stderr,
				        "sandbar pull: lease %s: recording the pull failed (%s); "
				        "`sandbar lease list` will still offer to pull it\n",
				        a->lease, merr->msg);
			sb_err_free(merr);
		}
	}
	if (err) {
		char *hint = sb_xstrdup(run_report_restore_hint(err));
		rc = cli_fail_err("pull", err);
		if (*hint)
			fprintf(stderr, "sandbar pull: %s\n", hint);
		free(hint);
	}
	if (!a->quiet && !a->json)
		run_report_print_summary(&report, stderr);
	if (a->json)
		run_report_print_json(&report, stdout);
	run_report_deinit(&report);
	sb_runtime_free(rt);
	free(path);
	return rc;
}

int cmd_push(int argc, char **argv)
{
	return with_lease("push", push_help, argc, argv, do_push);
}

int cmd_pull(int argc, char **argv)
{
	return with_lease("pull", pull_help, argc, argv, do_pull);
}
