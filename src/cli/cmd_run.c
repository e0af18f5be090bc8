/* `sandbar run`: the main job. Acquire a lease, stage the workspace, run the command with its
 * output streamed live, merge the changes back, release the lease, and exit with the command's
 * exit code. Ctrl-C once stops the command and still brings back what it produced; twice
 * aborts at once and says which lease is left behind.
 *
 * Just over 600 lines: the run is one sequence (acquire, stage, run, restore, release) whose
 * every step must see the signal state and the lease to keep; its options are run_options.c. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sandbar/runtime.h>

#include "cli.h"
#include "progress_bar.h"
#include "run_report.h"
#include "lease_store.h"
#include "reuse.h"
#include "run_config.h"
#include "run_options.h"
#include "run_tty.h"
#include "target.h"

static sb_cancel *volatile g_cancel;
static sb_cancel *g_stage_cancel, *g_exec_cancel;
static volatile sig_atomic_t g_interrupts;
static volatile sig_atomic_t g_signo; /* the first stopping signal received */
static char g_abort_msg[512];
static size_t g_abort_len;

static void on_sigint(int signo)
{
	cli_tty_restore(); /* -t: the messages below, and the user, get the terminal back */
	if (++g_interrupts == 1) {
		g_signo = signo;
		sb_cancel_trigger(g_cancel);
		static const char msg_int[] =
		    "\nsandbar: SIGINT: stopping the command and bringing "
		    "its changes back (Ctrl-C again to abort at once)\n";
		static const char msg_term[] =
		    "\nsandbar: SIGTERM: stopping the command and bringing "
		    "its changes back\n";
		static const char msg_hup[] =
		    "\nsandbar: SIGHUP: stopping the command and bringing "
		    "its changes back\n";
		const char *m = signo == SIGTERM ? msg_term : signo == SIGHUP ? msg_hup : msg_int;
		size_t n = signo == SIGTERM  ? sizeof msg_term - 1
		           : signo == SIGHUP ? sizeof msg_hup - 1
		                             : sizeof msg_int - 1;
		(void)!write(2, m, n);
		return;
	}
	(void)!write(2, g_abort_msg, g_abort_len);
	_exit(SB_EXIT_SIGNAL_BASE + (g_signo ? g_signo : signo));
}

/* The exit status after a stopping signal: 128+N of the first one. */
static int signal_exit(void)
{
	return SB_EXIT_SIGNAL_BASE + (g_signo ? g_signo : SIGINT);
}

static void set_abort_message(const char *lease_id, const char *remote_dir, const char *bridge_url)
{
	int n;
	if (lease_id && bridge_url)
		/* `sandbar lease` manages local leases only: this one lives on the bridge. */
		n = snprintf(g_abort_msg, sizeof g_abort_msg,
		             "\nsandbar: aborted without restoring; lease %s is left behind on %s "
		             "(release it through that bridge)\n",
		             lease_id, bridge_url);
	else if (lease_id)
		n = snprintf(
		    g_abort_msg, sizeof g_abort_msg,
		    "\nsandbar: aborted without restoring; lease %s is left behind: bring the "
		    "changes back with `sandbar pull %s`, or drop them with `sandbar "
		    "lease destroy %s`\n",
		    lease_id, lease_id, lease_id);
	else
		n = snprintf(g_abort_msg, sizeof g_abort_msg,
		             "\nsandbar: aborted without restoring; the remote copy in %s is left "
		             "behind\n",
		             remote_dir ? remote_dir : "(none)");
	g_abort_len =
	    n > 0 ? ((size_t)n < sizeof g_abort_msg ? (size_t)n : sizeof g_abort_msg - 1) : 0;
}

static void install_sigint(void)
{
	cli_catch_stop_signals(on_sigint, false);
}

/* ---- streaming the command's output */

struct stream_ctx {
	int out_fd; /* where the command's stdout goes (2 with --json) */
	cli_bar *bar;
};

static sb_err *on_output(void *ud, sb_stream stream, const char *data, size_t len)
{
	struct stream_ctx *s = ud;
	int fd = stream == SB_STREAM_STDOUT ? s->out_fd : 2;
	/* Our terminal is not the command's business: a closed stdout must not stop the run, the
	 * changes still come back. */
	sb_err_free(sb_write_all(fd, data, len));
	return NULL;
}

static void on_bytes(void *ud, uint64_t done, uint64_t total)
{
	cli_bar_update(ud, done, total);
}

static void progress_line(void *ud, const char *line)
{
	/* The bar shows progress on a terminal; the throttled text lines are for logs only. */
	(void)ud;
	(void)line;
}

/* ---- what is staged (issue 13) */

static void plan_line(void *ud, const char *relpath, bool is_dir, sb_rule_source src)
{
	(void)ud;
	if (src == SB_RULE_NONE) {
		fputs("stage ", stdout);
		run_report_put_name(stdout, relpath);
		fputs(is_dir ? "/\n" : "\n", stdout);
	} else {
		fputs("exclude ", stdout);
		run_report_put_name(stdout, relpath);
		fprintf(stdout, "%s (%s)\n", is_dir ? "/" : "", sb_rule_source_name(src));
	}
}

/* The top of the git repository holding dir when dir is below it (not its top), or NULL. */
static char *git_top_above(const char *dir)
{
	char *p = sb_xstrdup(dir);
	char *top = NULL;
	struct stat st;
	char *own = sb_strfmt("%s/.git", p);
	bool is_top = lstat(own, &st) == 0;
	free(own);
	while (!is_top && !top) {
		char *slash = strrchr(p, '/');
		if (!slash)
			break;
		*slash = '\0';
		char *g = sb_strfmt("%s/.git", *p ? p : "");
		if (lstat(g, &st) == 0)
			top = sb_xstrdup(*p ? p : "/");
		free(g);
		if (!*p)
			break;
	}
	free(p);
	return top;
}

/* ---- */

int cmd_run(int argc, char **argv)
{
	struct run_opts o;
	memset(&o, 0, sizeof o);
	o.net_mode = -1;
	bool help = false;
	/* The config's run settings go first, as options, so one parser checks both. */
	cli_config cfg = {.program = "run"};
	run_config_argv rca;
	sb_err *err = cli_config_resolve(&cfg);
	if (!err)
		err = run_config_args(&cfg, argc, argv, &rca);
	if (err) {
		cli_config_deinit(&cfg);
		run_opts_free(&o);
		return cli_fail_err("run", err);
	}
	int rc = run_opts_parse(&rca, &o, &help);
	if (rc && rca.last_at >= 1 && rca.last_at <= rca.nconfig)
		fprintf(stderr, "sandbar run: that setting comes from %s\n",
		        rca.origins[rca.last_at - 1]);
	if (rc || help) {
		if (help) {
			run_opts_print_help(stdout);
		}
		run_config_argv_deinit(&rca);
		cli_config_deinit(&cfg);
		run_opts_free(&o);
		return rc;
	}

	/* The flags that are shared config keys win over the environment and the files. */
	sb_callback_config *callback = NULL;
	const char *const flag_keys[][2] = {{"bridge_url", o.bridge},
	                                    {"state_dir", o.state_dir},
	                                    {"max_restore_size", o.max_restore_size}};
	for (size_t i = 0; i < sizeof flag_keys / sizeof *flag_keys && !err; i++)
		if (flag_keys[i][1])
			err = cli_config_override(&cfg, flag_keys[i][0], flag_keys[i][1]);
	if (!err && o.print_config)
		run_config_print(&rca, &cfg, stdout);
	run_config_argv_deinit(&rca);
	if (err || o.print_config) {
		cli_config_deinit(&cfg); /* what the environment already set */
		run_opts_free(&o);
		return err ? cli_fail_err("run", err) : 0;
	}

	/* ---- network (issue 14): --allow-net / --secret imply allowlist */
	sb_egress_config *egress = NULL;
	if (o.net_mode < 0)
		o.net_mode = o.allow_net || o.secrets ? SB_NET_ALLOWLIST : SB_NET_NONE;
	if (o.net_mode != SB_NET_ALLOWLIST && (o.allow_net || o.secrets)) {
		rc = cli_usage_error("run",
		                     "--allow-net and --secret need --network=allowlist, not "
		                     "--network=%s",
		                     sb_net_mode_name((sb_net_mode)o.net_mode));
		cli_config_deinit(&cfg);
		run_opts_free(&o);
		return rc;
	}
	o.network = o.net_mode == SB_NET_FULL;
	if (o.net_mode == SB_NET_ALLOWLIST) {
		egress = sb_xcalloc(1, sizeof *egress);
		for (size_t i = 0; o.allow_net && o.allow_net[i]; i++)
			sb_strv_push(&egress->allow, o.allow_net[i]);
		size_t ns = sb_strv_len(o.secrets);
		egress->secrets = ns ? sb_xcalloc(ns, sizeof *egress->secrets) : NULL;
		for (size_t i = 0; i < ns; i++, egress->nsecrets++)
			sb_err_free(sb_egress_secret_parse(o.secrets[i], &egress->secrets[i]));
		/* test options: a hosts file for the proxy's resolver, a CA for upstreams */
		const char *hf = getenv("SANDBAR_TEST_PROXY_HOSTS"),
		           *ca = getenv("SANDBAR_TEST_PROXY_UPSTREAM_CA");
		egress->hosts_file = hf && *hf ? sb_xstrdup(hf) : NULL;
		egress->upstream_ca = ca && *ca ? sb_xstrdup(ca) : NULL;
	}

	cli_target_opts topts = {.via = CLI_VIA_SANDBOX,
	                         .config = &cfg,
	                         .remote_dir = o.remote_dir,
	                         .network = o.network,
	                         .egress = egress,
	                         .memory_bytes = o.memory,
	                         .mounts = o.mounts,
	                         .nmounts = o.nmounts,
	                         .reuse_key = o.reuse,
	                         .reuse_idle_ms = o.reuse_idle_ms > 0 ? o.reuse_idle_ms : 3600000};
	if (o.via) {
		err = cli_via_parse(o.via, &topts.via, &topts.prefix);
		if (err) {
			rc = cli_usage_error("run", "%s", err->msg);
			sb_err_free(err);
			goto out_cfg;
		}
		if (o.bridge) {
			rc = cli_usage_error("run", "--via and --bridge cannot be used together");
			goto out_cfg;
		}
	} else if (cfg.bridge_url) {
		/* --bridge, else SANDBAR_BRIDGE_URL or bridge_url in the config file. */
		topts.via = CLI_VIA_BRIDGE;
		topts.bridge_url = cfg.bridge_url;
	}
	if (o.memory && topts.via != CLI_VIA_SANDBOX && topts.via != CLI_VIA_BRIDGE) {
		rc = cli_usage_error("run", "--memory applies to sandboxes only (not --via %s)",
		                     o.via);
		goto out_cfg;
	}
	/* The bridge protocol carries neither: the daemon's own settings decide, so a flag the
	 * user gave would silently not hold. */
	if ((o.memory || o.net_mode != SB_NET_NONE) && topts.via == CLI_VIA_BRIDGE) {
		rc = cli_usage_error("run",
		                     "%s cannot be passed to a bridge (%s): its daemon sets "
		                     "sandbox limits and network; drop the flag or use the "
		                     "embedded sandbox (--via sandbox)",
		                     o.memory ? "--memory" : "--network/--allow-net",
		                     topts.bridge_url);
		goto out_cfg;
	}
	if (o.net_mode != SB_NET_NONE &&
	    (topts.via == CLI_VIA_LOCAL || topts.via == CLI_VIA_PREFIX)) {
		rc = cli_usage_error("run",
		                     "--network/--allow-net apply to sandboxes only: --via "
		                     "%s has whatever network its machine has",
		                     o.via);
		goto out_cfg;
	}

	if (o.tty && (topts.via != CLI_VIA_SANDBOX || !isatty(0))) {
		rc =
		    cli_usage_error("run", "%s",
		                    topts.via != CLI_VIA_SANDBOX
		                        ? "-t needs the embedded sandbox (--via sandbox)"
		                        : "-t needs a terminal on stdin, and stdin is not one (use "
		                          "-i to stream a pipe or a file to the command)");
		goto out_cfg;
	}
	if (o.reuse && (topts.via != CLI_VIA_SANDBOX || o.callback || egress)) {
		/* The callback relay and the egress proxy live in this process for one run. */
		rc = cli_usage_error("run", "--reuse needs the embedded sandbox (--via sandbox) "
		                            "without --callback, --allow-net or --secret");
		goto out_cfg;
	}
	if (o.nmounts && topts.via != CLI_VIA_SANDBOX) {
		rc =
		    cli_usage_error("run", "--mount needs the embedded sandbox (--via sandbox): %s",
		                    topts.via == CLI_VIA_BRIDGE
		                        ? "a daemon binds only the host paths its operator allows"
		                        : "the far side has no access to this machine's files");
		goto out_cfg;
	}
	if (o.callback) {
		if (topts.via != CLI_VIA_SANDBOX) {
			rc = cli_usage_error("run",
			                     "--callback needs the embedded sandbox (--via "
			                     "sandbox): the bridge's relay runs in this process");
			goto out_cfg;
		}
		sb_buf cb = SB_BUF_INIT;
		err = sb_read_file(o.callback, 256 * 1024, &cb);
		if (!err)
			err =
			    sb_callback_config_from_json(cb.data ? cb.data : "", cb.len,
			                                 cfg.callbacks, cfg.ncallbacks, &callback);
		sb_buf_deinit(&cb);
		if (err) {
			rc = cli_fail_err("run", sb_err_prefix(err, "--callback %s", o.callback));
			goto out_cfg;
		}
		topts.callback = callback;
	}

	char *workspace = NULL;
	{
		char *ws = o.workspace ? o.workspace : ".";
		workspace = realpath(ws, NULL);
		struct stat st;
		if (!workspace || stat(workspace, &st) != 0 || !S_ISDIR(st.st_mode)) {
			rc = cli_fail("run",
			              "workspace %s is not a directory (%s); pass an existing "
			              "one with --workspace",
			              ws, workspace ? "not a directory" : strerror(errno));
			free(workspace);
			goto out_cfg;
		}
	}

	if (o.dry_run) {
		sb_runtime_prepare_opts plan = {.workspace_local_dir = workspace,
		                                .exclude_patterns = o.exclude_patterns,
		                                .exclude_preset = o.exclude_preset,
		                                .gitignore = o.gitignore};
		err = sb_runtime_plan(&plan, plan_line, NULL);
		fflush(stdout);
		rc = err ? cli_fail_err("run",
		                        sb_err_prefix(err, "planning the staging of %s", workspace))
		         : 0;
		free(workspace);
		goto out_cfg;
	}

	/* Git support starts while the sandbox does: the staging reads HEAD, the restore imports
	 * commits, --gitignore matches with it (whether or not there is a repository). */
	sb_git_prewarm(o.gitignore ? NULL : workspace);

	if (!o.quiet && !o.json) {
		/* From a subdirectory of a repository, say what is staged: that directory only,
		 * without the repository's .git. */
		char *top = git_top_above(workspace);
		if (top)
			fprintf(stderr,
			        "sandbar run: staging %s only, a subdirectory of the git "
			        "repository %s (its .git is not staged; use --workspace %s to "
			        "stage the whole repository)\n",
			        workspace, top, top);
		free(top);
	}

	g_stage_cancel = sb_cancel_new();
	g_exec_cancel = sb_cancel_new();
	g_cancel = g_stage_cancel;
	install_sigint();
	run_report report;
	run_report_init(&report);
	cli_bar bar;
	cli_bar_init(&bar, 2, !o.quiet && isatty(2));

	bool staged = false; /* a summary of changes only when something was staged */
	report.timeout_ms = o.timeout_ms;
	/* 1. Acquire, after removing what killed runs left (their sandboxes stopped themselves;
	 * leases holding work stay). */
	if (topts.via == CLI_VIA_SANDBOX) {
		cli_sandbox_env penv;
		cli_sandbox_env_init(&penv, &cfg);
		(void)cli_lease_prune(&penv, "run-", o.quiet ? NULL : stderr);
		(void)cli_reuse_reap(&penv, o.reuse, o.quiet ? NULL : stderr); /* idle --reuse */
		cli_sandbox_env_deinit(&penv);
	}
	int64_t t0 = sb_mono_ms();
	cli_target target;
	err = cli_target_acquire(&topts, &target);
	report.phases.acquire_ms = sb_mono_ms() - t0;
	if (err) {
		sb_err_free(cli_target_release(&target, false));
		rc = cli_fail_err("run", sb_err_prefix(err, "acquiring a lease"));
		goto out_report;
	}
	report.lease_id = target.lease_id ? sb_xstrdup(target.lease_id) : NULL;
	set_abort_message(target.lease_id, target.remote_dir,
	                  topts.via == CLI_VIA_BRIDGE ? topts.bridge_url : NULL);

	/* --remote-dir never deletes what sandbar did not create: the staging itself refuses a
	 * non-empty directory without sandbar's overlay (one remote command less). */

	/* 2. Stage. */
	t0 = sb_mono_ms();
	cli_bar_phase(&bar, "staging");
	sb_runtime_prepare_opts popts;
	memset(&popts, 0, sizeof popts);
	popts.runner = target.runner;
	popts.spec.remote_cwd = target.remote_dir;
	popts.adapter_key = "sandbar";
	popts.workspace_local_dir = workspace;
	popts.refuse_foreign_remote = o.remote_dir && !o.force;
	popts.create_remote_dir = target.remote_tmp;
	popts.excludes = o.excludes;
	popts.exclude_patterns = o.exclude_patterns;
	popts.exclude_preset = o.exclude_preset;
	popts.gitignore = o.gitignore;
	popts.spec.lease_id = target.lease_id;
	popts.progress.fn = progress_line;
	popts.progress.bytes = on_bytes;
	popts.progress.ud = &bar;
	popts.cancel = g_stage_cancel;
	/* The workspace's file hashes, kept for the next run (not with --checksum: every file is
	 * hashed then). One file per workspace path in the state directory. */
	char *hash_cache = NULL;
	if (!o.checksum) {
		char hex[SB_SHA256_HEX_LEN];
		sb_sha256_hex(workspace, strlen(workspace), hex);
		char *sd = cli_state_dir(&cfg);
		hash_cache = sb_strfmt("%s/hashes/%.32s", sd, hex);
		free(sd);
	}
	popts.hash_cache_file = hash_cache;
	sb_runtime *rt = NULL;
	err = sb_runtime_prepare(&popts, &rt);
	free(hash_cache);
	cli_bar_clear(&bar);
	report.phases.prepare_ms = sb_mono_ms() - t0;
	g_cancel = g_exec_cancel;
	if (!err && sb_cancel_is_set(g_stage_cancel)) {
		/* The Ctrl-C landed as the staging finished: the restore would be cancelled too. */
		sb_runtime_free(rt);
		rt = NULL;
		err = sb_err_new(SB_E_CANCELED, "staging cancelled");
	}
	if (err && g_interrupts > 0) {
		/* Ctrl-C cancelled the staging: an interrupt, not a sandbar failure. */
		sb_err_free(err);
		fprintf(stderr, "sandbar run: interrupted while staging; nothing was run\n");
		rc = signal_exit();
		goto out_release;
	}
	if (err) {
		rc = cli_fail_err("run", sb_err_prefix(err, "staging %s", workspace));
		goto out_release;
	}
	staged = true;
	report.bytes_up = sb_runtime_bytes_up(rt);
	run_report_set_excluded(&report, sb_runtime_excluded_stats(rt));
	/* What `sandbar pull LEASE` needs to finish the job if the restore cannot: saved now, so
	 * it holds after a failed restore, a signal or a kill. */
	char *state_file = NULL;
	if (target.lease_id && topts.via == CLI_VIA_SANDBOX) {
		char *sd = cli_state_dir(&cfg);
		char *rdir = sb_strfmt("%s/runtime", sd);
		state_file = sb_strfmt("%s/%s.json", rdir, target.lease_id);
		err = sb_fs_mkdir_p(rdir, 0700);
		if (!err)
			err = sb_runtime_save(rt, state_file);
		if (err) {
			fprintf(stderr,
			        "sandbar run: lease %s: saving the staging state failed (%s); "
			        "`sandbar pull` will not be able to finish a failed restore\n",
			        target.lease_id, err->msg);
			sb_err_free(err);
			free(state_file);
			state_file = NULL;
		}
		free(rdir);
		free(sd);
	}

	/* 3. Run. */
	t0 = sb_mono_ms();
	struct stream_ctx sctx = {.out_fd = o.json ? 2 : 1, .bar = &bar};
	sb_exec_callbacks cbs = {.on_output = on_output, .ud = &sctx};
	sb_exec_request req = {
	    .argv = o.command, .cwd = target.remote_dir, .env = o.env, .timeout_ms = o.timeout_ms};
	if (o.interactive) { /* -i: stdin streams to the command until its EOF */
		req.has_stdin = true;
		req.stdin_stream = true;
		req.stdin_fd = 0;
	}
	sb_exec_result res;
	sb_exec_result_init(&res);
	sb_err *exec_err = NULL;
	/* -t: a terminal inside, ours raw until the command is done (run_tty.c) */
	if (o.tty && !(exec_err = cli_tty_prepare(0, &req)))
		exec_err = cli_tty_begin(&req);
	if (!exec_err && !sb_cancel_is_set(g_exec_cancel))
		exec_err = sb_runner_execute(target.runner, &req, &cbs, g_exec_cancel, &res);
	cli_tty_end();
	report.phases.exec_ms = sb_mono_ms() - t0;
	bool interrupted = g_interrupts > 0;
	if (exec_err) {
		if (exec_err->code == SB_E_SPAWN) {
			fprintf(stderr, "sandbar run: %s\n", exec_err->msg);
			rc = sb_exit_status_for_start_error(exec_err);
		} else if (interrupted) {
			rc = signal_exit();
		} else {
			fprintf(stderr, "sandbar run: running the command: %s\n", exec_err->msg);
			rc = SB_EXIT_FAILURE;
		}
		sb_err_free(exec_err);
	} else {
		rc = interrupted ? signal_exit() : sb_exec_result_exit_status(&res);
		run_report_set_result(&report, &res);
	}

	/* 4. Restore, even after a failed or interrupted command: its work is still the user's. */
	t0 = sb_mono_ms();
	cli_bar_phase(&bar, "restoring");
	sb_runtime_restore_opts ropts = {
	    .policy = o.policy,
	    .max_extracted_bytes = cfg.max_restore_bytes,
	    .branch = o.branch,
	    .checksum = o.checksum,
	    .progress = {.fn = progress_line, .bytes = on_bytes, .ud = &bar}};
	sb_restore_report rr;
	sb_restore_report_init(&rr);
	err = sb_runtime_restore(rt, &ropts, &rr);
	cli_bar_clear(&bar);
	report.phases.restore_ms = sb_mono_ms() - t0;
	run_report_set_changes(&report, &rr);
	if (err) {
		/* A failed restore never throws the work away: the lease stays, with the command
		 * that finishes the job. */
		const char *hint = run_report_restore_hint(err);
		char *why = *hint ? sb_strfmt(" (%s)", hint) : sb_xstrdup("");
		if (target.lease_id) {
			fprintf(stderr,
			        "sandbar run: lease %s: bringing the changes back failed%s: %s\n",
			        target.lease_id, why, err->msg);
			if (state_file)
				fprintf(
				    stderr,
				    "sandbar run: lease %s is kept; finish with `sandbar pull "
				    "%s%s%s`\n",
				    target.lease_id, target.lease_id,
				    o.policy == SB_CONFLICT_FAIL ? " --conflict keep-local" : "",
				    err->code == SB_E_FILE_TOO_LARGE ? " --max-restore-size SIZE"
				                                     : "");
			else
				fprintf(stderr,
				        "sandbar run: lease %s is kept so you can inspect it\n",
				        target.lease_id);
		} else {
			fprintf(stderr, "sandbar run: bringing the changes back failed%s: %s\n",
			        why, err->msg);
		}
		free(why);
		o.keep = true;
		sb_err_free(err);
		rc = interrupted ? signal_exit() : SB_EXIT_FAILURE;
	} else if (state_file && !o.keep) {
		(void)unlink(state_file);
	} else if (state_file) {
		/* A kept lease whose work came back: the saved state moves on to the new baseline
		 * (what a later `sandbar pull` compares with), and nothing waits to be pulled. */
		cli_sandbox_env kenv;
		cli_sandbox_env_init(&kenv, &cfg);
		sb_err *serr = sb_runtime_save(rt, state_file);
		if (!serr)
			serr = cli_lease_mark_pulled(&kenv, target.lease_id);
		if (serr) {
			fprintf(stderr, "sandbar run: lease %s: recording the restored state: %s\n",
			        target.lease_id, serr->msg);
			sb_err_free(serr);
		}
		cli_sandbox_env_deinit(&kenv);
	}
	free(state_file);
	sb_restore_report_deinit(&rr);
	sb_exec_result_deinit(&res);
	sb_runtime_free(rt);

out_release:
	if (target.sandbox) {
		sb_sandbox_info sinfo;
		sb_sandbox_get_info(target.sandbox, &sinfo);
		report.memory_limit = sinfo.limits.memory_bytes;
		report.net_mode = sb_net_mode_name((sb_net_mode)o.net_mode);
		report.has_egress = sb_sandbox_egress_stats(target.sandbox, &report.net);
	}
	t0 = sb_mono_ms();
	/* Without a lease id (--via local, 'cmd:...') the kept thing is the remote directory. */
	char *kept_dir =
	    o.keep && !target.lease_id && target.remote_dir ? sb_xstrdup(target.remote_dir) : NULL;
	err = cli_target_release(&target, o.keep || o.reuse);
	if (o.reuse && topts.via == CLI_VIA_SANDBOX) {
		cli_sandbox_env renv; /* the lease's idle time starts when this run ends */
		cli_sandbox_env_init(&renv, &cfg);
		cli_reuse_release(&renv, o.reuse);
		cli_sandbox_env_deinit(&renv);
	}
	report.phases.release_ms = sb_mono_ms() - t0;
	if (err) {
		fprintf(stderr, "sandbar run: releasing the lease: %s\n", err->msg);
		sb_err_free(err);
		if (rc == 0)
			rc = SB_EXIT_FAILURE;
	}
	if (o.keep && report.lease_id)
		fprintf(stderr, "sandbar run: lease %s kept\n", report.lease_id);
	else if (kept_dir)
		fprintf(stderr, "sandbar run: remote copy kept in %s\n", kept_dir);
	free(kept_dir);
	/* With --json the object is the summary (as in `sandbar pull` and sandbar(1)): stderr
	 * then carries only the command's own output and sandbar's errors. */
	if (!o.quiet && !o.json && staged)
		run_report_print_summary(&report, stderr);
	else if (o.quiet && staged)
		run_report_print_warnings(&report, stderr); /* -q hides progress, never conflicts */
	if (o.json)
		run_report_print_json(&report, stdout);
out_report:
	run_report_deinit(&report);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	g_cancel = NULL;
	sb_cancel_free(g_stage_cancel);
	sb_cancel_free(g_exec_cancel);
	g_stage_cancel = g_exec_cancel = NULL;
	free(workspace);
out_cfg:
	sb_strv_free(topts.prefix);
	sb_callback_config_free(callback);
	sb_egress_config_free(egress);
	cli_config_deinit(&cfg);
	run_opts_free(&o);
	return rc;
}
