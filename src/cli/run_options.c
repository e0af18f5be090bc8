/* `sandbar run`'s options: the help text, and the parser that turns the command line (with
 * the config file's settings put first, run_config.c) into struct run_opts, checking every
 * value where it is given so a mistake names its flag or its config line. */
#include "run_options.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char run_help[] =
    "usage: sandbar run [options] -- COMMAND [ARG...]\n"
    "\n"
    "Stage a workspace into a throwaway sandbox, run COMMAND there with its output streamed\n"
    "live, merge the changes back (three-way, against the state at staging), and exit with\n"
    "COMMAND's exit code.\n"
    "\n"
    "options:\n"
    "  -w, --workspace DIR    workspace to stage (default: the current directory)\n"
    "      --via WHERE        sandbox (default): an embedded local sandbox, no daemon needed;\n"
    "                         local: the host itself, in a fresh temporary directory (no\n"
    "                         isolation); 'cmd:PREFIX...': any machine a command reaches, e.g.\n"
    "                         'cmd:ssh -T host --' or 'cmd:kubectl exec -i pod --'\n"
    "      --bridge URL       a lease on a running `sandbar serve` or a Paperclip-compatible\n"
    "                         bridge (also SANDBAR_BRIDGE_URL; token: SANDBAR_TOKEN_FILE)\n"
    "      --remote-dir PATH  where the workspace goes on the far side (default: the\n"
    "                         sandbox's /workspace; through cmd: a fresh private\n"
    "                         /tmp/sandbar-run-<random> made by the staging command)\n"
    "      --exclude PATTERN  do not stage or restore what PATTERN matches (gitignore syntax:\n"
    "                         globs, **, trailing / for directories, leading / anchors,\n"
    "                         !PATTERN re-includes; repeat)\n"
    "      --exclude-preset NAME  add a named rule set: paperclip (node_modules vendor dist\n"
    "                         build out coverage .next .turbo .cache at any depth, and .git)\n"
    "      --gitignore        also leave out what the repository's .gitignore files,\n"
    "                         .git/info/exclude and core.excludesFile ignore, as git does\n"
    "      --branch NAME      branch for commits made in the sandbox (default:\n"
    "                         sandbar/<lease id>)\n"
    "      --dry-run          list what would be staged (and what each rule leaves out), run\n"
    "                         nothing\n"
    "      --force            allow --remote-dir to name a non-empty directory that sandbar\n"
    "                         did not create (its content is replaced)\n"
    "      --network[=MODE]   the sandbox's network: none (the default: only its own\n"
    "                         loopback), allowlist (an egress proxy outside the sandbox lets\n"
    "                         through the --allow-net hosts only) or full; --network alone\n"
    "                         means full\n"
    "      --allow-net HOST[:PORT]  allow HTTP(S) to HOST (repeat; *.example.com for its\n"
    "                         subdomains; an IP or CIDR lifts the private-address check;\n"
    "                         'HOST METHOD /path-prefix' allows only those requests);\n"
    "                         implies --network=allowlist\n"
    "      --secret HOST=HEADER:ENV  the proxy sets HEADER to this process's $ENV on every\n"
    "                         request to HOST (TLS terminated with a per-run CA); inside the\n"
    "                         sandbox ENV holds only a placeholder (repeat)\n"
    "      --callback FILE    give COMMAND a callback bridge to an upstream API: FILE holds the\n"
    "                         JSON of the API's `callback` field, naming a [callback NAME]\n"
    "                         section of the config file (see docs/api.md)\n"
    "      --memory SIZE      memory limit for the sandbox, e.g. 512M, 2G\n"
    "      --timeout DUR      stop COMMAND after DUR (e.g. 90s, 10m): TERM, then KILL\n"
    "  -e, --env K=V          set an environment variable for COMMAND (repeat); -e K passes\n"
    "                         this process's value of K\n"
    "  -i, --interactive      stream this process's stdin to COMMAND (embedded sandbox)\n"
    "  -t, --tty              run COMMAND on a terminal inside the sandbox, for TUIs (embedded\n"
    "                         sandbox; implies -i; stdin must be a terminal): your terminal is\n"
    "                         raw while it runs (keys, Ctrl-C too, go to COMMAND, whose own\n"
    "                         terminal sends it SIGINT), TERM and resizes are passed, its\n"
    "                         output is one stream (stdout), and your settings come back when\n"
    "                         it ends, before the summary\n"
    "      --env-file FILE    KEY=VALUE lines (and KEY alone: this process's value; # comments)\n";

/* Options of the way back, and the output (C99 promises 4095 characters per literal). */
static const char run_help_back[] =
    "      --checksum         restore incrementally comparing every file by content; without\n"
    "                         it (SANDBAR_SYNC=incremental) a remote file with the staged\n"
    "                         size and mtime counts as unchanged unless written after staging\n"
    "      --mount HOST:PATH[:ro|rw]  bind HOST into the sandbox at PATH, read-only unless\n"
    "                         :rw (repeat); never at the workspace, never staged or restored\n"
    "      --keep             keep the lease afterwards and print its id\n"
    "      --reuse KEY        keep the lease for the next run with the same KEY and settings\n"
    "                         (a changed setting or a lost lease starts fresh, said on stderr)\n"
    "      --reuse-idle DUR   a reused lease idle longer than DUR is replaced, or removed by\n"
    "                         the next run or `sandbar lease prune` (default 1h)\n"
    "      --conflict POLICY  when both sides changed a file: keep-local (default: yours stays,\n"
    "                         theirs is written beside it as NAME.sandbar-remote),\n"
    "                         take-remote, or fail (apply nothing)\n"
    "      --max-restore-size SIZE  refuse to bring back a tree holding more file data than\n"
    "                         SIZE, or `unlimited' (default: 8 times the workspace, at least\n"
    "                         4G; config max_restore_size)\n"
    "  -q, --quiet            no progress bar and no summary\n"
    "      --json             print one JSON result object on stdout at the end instead of\n"
    "                         the summary; COMMAND's own output then goes to stderr\n"
    "      --print-config     print every setting, resolved, and where it came from; run\n"
    "                         nothing\n"
    "  -h, --help             this text\n"
    "\n"
    "config: every option is also a config key, its long name with _ for - (timeout = 10m,\n"
    "allow_net = api.example.com, one line per value; keep = true), in [run] or at the top of\n"
    "$SANDBAR_CONFIG, else ~/.config/sandbar/config and then /etc/sandbar/config (the first\n"
    "file to set a key wins). The command line wins over them; repeatable options add up.\n";

/* The rules behind the options (a separate string: C99 promises 4095 characters per literal). */
static const char run_help_rules[] =
    "\n"
    "what is staged: the whole workspace, .git included (so git works inside), except the\n"
    "overlay directory .paperclip-runtime, sandbar's own .sandbar-restore, and what the rules\n"
    "exclude: the repository's ignore files (--gitignore), then --exclude-preset, then a\n"
    ".sandbarignore file in the workspace (gitignore syntax), then --exclude; a later rule wins.\n"
    "Excluded entries are neither staged nor restored, and the summary counts them. .git is\n"
    "never copied back: commits made inside come back as the branch sandbar/<lease id> (or\n"
    "--branch), leaving your HEAD, index and other branches alone.\n"
    "\n"
    "stopping: SIGINT (Ctrl-C), SIGTERM and SIGHUP stop COMMAND (TERM, then KILL), bring back\n"
    "what it produced and release the lease; a second signal aborts at once. If the changes\n"
    "cannot be brought back, the lease is kept and the message gives the `sandbar pull`\n"
    "command that finishes the job.\n"
    "\n"
    "exit status: 128+N when sandbar run received signal N; else 125 when sandbar itself\n"
    "failed (nothing was run, or the changes could not be brought back: the message says which\n"
    "and names the lease); else COMMAND's exit code: 128+N when it was killed by signal N,\n"
    "124 when it timed out, 127 when it was not found, 126 when it could not be started.\n";

/* Ctrl-C state, touched from the signal handler: only async-signal-safe operations.
 * g_cancel is the token of the phase a Ctrl-C stops: the staging, then the command. They are
 * separate because the runtime checks the staging token again during the restore, which
 * must still run after the command was stopped. */
void run_opts_free(struct run_opts *o)
{
	free(o->workspace);
	free(o->via);
	free(o->reuse);
	free(o->bridge);
	free(o->remote_dir);
	free(o->state_dir);
	free(o->max_restore_size);
	free(o->callback);
	sb_strv_free(o->allow_net);
	sb_strv_free(o->secrets);
	for (size_t i = 0; i < o->nmounts; i++)
		sb_sandbox_mount_deinit(&o->mounts[i]);
	free(o->mounts);
	sb_strv_free(o->excludes);
	sb_strv_free(o->exclude_patterns);
	free(o->exclude_preset);
	free(o->branch);
	sb_strv_free(o->env);
	sb_strv_free(o->command);
}

enum {
	OPT_VIA = 256,
	OPT_BRIDGE,
	OPT_REMOTE_DIR,
	OPT_EXCLUDE,
	OPT_NETWORK,
	OPT_MEMORY,
	OPT_TIMEOUT,
	OPT_KEEP,
	OPT_CONFLICT,
	OPT_JSON,
	OPT_STATE_DIR,
	OPT_CALLBACK,
	OPT_ALLOW_NET,
	OPT_SECRET,
	OPT_ENV_FILE,
	OPT_MOUNT
};

/* -e KEY=VALUE, or -e KEY: this process's value of KEY (an unset KEY is an error, never
 * skipped quietly). The values stay out of every log and report. */
static sb_err *env_add(const char *spec, char ***env)
{
	const char *eq = strchr(spec, '=');
	size_t klen = eq ? (size_t)(eq - spec) : strlen(spec);
	if (klen == 0 || klen > 256)
		return sb_err_new(SB_E_INVAL, "wants KEY=VALUE or KEY");
	for (size_t i = 0; i < klen; i++)
		if (!(spec[i] == '_' || (spec[i] >= 'A' && spec[i] <= 'Z') ||
		      (spec[i] >= 'a' && spec[i] <= 'z') ||
		      (i && spec[i] >= '0' && spec[i] <= '9')))
			return sb_err_new(SB_E_INVAL, "\"%.*s\" is not a variable name", (int)klen,
			                  spec);
	if (eq) {
		sb_strv_push(env, spec);
		return NULL;
	}
	const char *v = getenv(spec);
	if (!v)
		return sb_err_new(SB_E_INVAL,
		                  "%s is not set in this environment (set it, or write "
		                  "%s=VALUE)",
		                  spec, spec);
	char *kv = sb_strfmt("%s=%s", spec, v);
	sb_strv_push(env, kv);
	memset(kv, 0, strlen(kv));
	free(kv);
	return NULL;
}

/* --env-file: KEY=VALUE or KEY lines, blank lines and # comments; no quoting, no expansion. */
static sb_err *env_file_read(const char *path, char ***env)
{
	sb_buf b = SB_BUF_INIT;
	sb_err *err = sb_read_file(path, 1u << 20, &b);
	if (err) {
		sb_buf_deinit(&b);
		return err;
	}
	char *save = NULL;
	int lineno = 0;
	for (char *line = strtok_r(b.data ? b.data : (char[]){""}, "\n", &save); line && !err;
	     line = strtok_r(NULL, "\n", &save)) {
		lineno++;
		size_t n = strlen(line);
		if (n && line[n - 1] == '\r')
			line[--n] = '\0';
		while (*line == ' ' || *line == '\t')
			line++;
		if (!*line || *line == '#')
			continue;
		if ((err = env_add(line, env)))
			err = sb_err_prefix(err, "line %d", lineno);
	}
	if (b.data)
		memset(b.data, 0, b.len);
	sb_buf_deinit(&b);
	return err;
}

/* What is staged (issue 13). */
enum {
	OPT_EXCLUDE_PRESET = 400,
	OPT_GITIGNORE,
	OPT_BRANCH,
	OPT_DRY_RUN,
	OPT_FORCE,
	OPT_MAX_RESTORE,
	OPT_PRINT_CONFIG,
	OPT_CHECKSUM,
	OPT_REUSE,
	OPT_REUSE_IDLE,
};

/* The long name of a short option, for --print-config. */
static const char *short_flag_name(int c)
{
	switch (c) {
	case 'w':
		return "workspace";
	case 'e':
		return "env";
	case 'i':
		return "interactive";
	case 't':
		return "tty";
	case 'q':
		return "quiet";
	default:
		return NULL;
	}
}

/* rca: the command line with the config's settings first (run_config.c); every option applied
 * is noted there for --print-config. */
int run_opts_parse(run_config_argv *rca, struct run_opts *o, bool *help)
{
	int argc = rca->argc;
	char **argv = rca->argv;
	static const struct option longopts[] = {
	    {"workspace", required_argument, NULL, 'w'},
	    {"via", required_argument, NULL, OPT_VIA},
	    {"bridge", required_argument, NULL, OPT_BRIDGE},
	    {"remote-dir", required_argument, NULL, OPT_REMOTE_DIR},
	    {"exclude", required_argument, NULL, OPT_EXCLUDE},
	    {"network", optional_argument, NULL, OPT_NETWORK},
	    {"allow-net", required_argument, NULL, OPT_ALLOW_NET},
	    {"secret", required_argument, NULL, OPT_SECRET},
	    {"env-file", required_argument, NULL, OPT_ENV_FILE},
	    {"mount", required_argument, NULL, OPT_MOUNT},
	    {"interactive", no_argument, NULL, 'i'},
	    {"tty", no_argument, NULL, 't'},
	    {"memory", required_argument, NULL, OPT_MEMORY},
	    {"timeout", required_argument, NULL, OPT_TIMEOUT},
	    {"env", required_argument, NULL, 'e'},
	    {"keep", no_argument, NULL, OPT_KEEP},
	    {"reuse", required_argument, NULL, OPT_REUSE},
	    {"reuse-idle", required_argument, NULL, OPT_REUSE_IDLE},
	    {"state-dir", required_argument, NULL, OPT_STATE_DIR},
	    {"callback", required_argument, NULL, OPT_CALLBACK},
	    {"conflict", required_argument, NULL, OPT_CONFLICT},
	    {"quiet", no_argument, NULL, 'q'},
	    {"json", no_argument, NULL, OPT_JSON},
	    {"help", no_argument, NULL, 'h'},
	    {"exclude-preset", required_argument, NULL, OPT_EXCLUDE_PRESET},
	    {"gitignore", no_argument, NULL, OPT_GITIGNORE},
	    {"branch", required_argument, NULL, OPT_BRANCH},
	    {"max-restore-size", required_argument, NULL, OPT_MAX_RESTORE},
	    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
	    {"force", no_argument, NULL, OPT_FORCE},
	    {"checksum", no_argument, NULL, OPT_CHECKSUM},
	    {"print-config", no_argument, NULL, OPT_PRINT_CONFIG},
	    {NULL, 0, NULL, 0},
	};
	opterr = 0;
	optind = 1;
	int c, at = optind, li = -1;
	/* '+': stop at the first non-option, so COMMAND's own flags are never ours. */
	while ((c = getopt_long(argc, argv, "+:w:e:itqh", longopts, &li)) != -1) {
		const char *name = li >= 0 ? longopts[li].name : short_flag_name(c);
		rca->last_at = at;
		if (name && c != OPT_PRINT_CONFIG)
			run_config_note_option(rca, name, at,
			                       c == OPT_NETWORK && !optarg ? "full" : optarg);
		if (c == 't') /* -t implies -i: --print-config says so */
			run_config_note_option(rca, "interactive", at, NULL);
		at = optind;
		li = -1;
		sb_err *err = NULL;
		const char *flag = NULL; /* names the flag in a value error */
		switch (c) {
		case 'w':
			free(o->workspace);
			o->workspace = sb_xstrdup(optarg);
			break;
		case OPT_VIA:
			free(o->via);
			o->via = sb_xstrdup(optarg);
			break;
		case OPT_BRIDGE:
			free(o->bridge);
			o->bridge = sb_xstrdup(optarg);
			break;
		case OPT_REMOTE_DIR:
			if (optarg[0] != '/')
				return cli_usage_error("run",
				                       "--remote-dir must be an absolute path, "
				                       "not \"%s\"",
				                       optarg);
			free(o->remote_dir);
			o->remote_dir = sb_xstrdup(optarg);
			break;
		/* ---- what is staged (issue 13) */
		case OPT_EXCLUDE:
			if (!optarg[0] || strpbrk(optarg, "\r\n"))
				return cli_usage_error("run",
				                       "--exclude wants one gitignore pattern "
				                       "on one line, not \"%s\"",
				                       optarg);
			if (!strcmp(optarg, "..") || !strncmp(optarg, "../", 3) ||
			    strstr(optarg, "/../") || sb_str_has_suffix(optarg, "/.."))
				return cli_usage_error("run",
				                       "--exclude %s: patterns match inside the "
				                       "workspace; \"..\" never matches",
				                       optarg);
			sb_strv_push(&o->exclude_patterns, optarg);
			break;
		/* ---- network (issue 14) */
		case OPT_NETWORK:
			o->net_mode = optarg ? sb_net_mode_parse(optarg) : SB_NET_FULL;
			if (o->net_mode < 0)
				return cli_usage_error("run",
				                       "--network wants none, allowlist or full, "
				                       "not \"%s\"",
				                       optarg);
			break;
		case OPT_ALLOW_NET: {
			sb_egress_config one = {.allow = (char *[]){optarg, NULL}};
			err = sb_egress_config_check(&one);
			if (err) {
				int rc = cli_usage_error("run", "--allow-net: %s", err->msg);
				sb_err_free(err);
				return rc;
			}
			sb_strv_push(&o->allow_net, optarg);
			break;
		}
		case OPT_SECRET: {
			sb_egress_secret sec;
			err = sb_egress_secret_parse(optarg, &sec);
			if (err) {
				int rc = cli_usage_error("run", "--secret: %s", err->msg);
				sb_err_free(err);
				return rc;
			}
			sb_egress_secret_deinit(&sec);
			sb_strv_push(&o->secrets, optarg);
			break;
		}
		case 'i':
			o->interactive = true;
			break;
		case 't':
			o->tty = o->interactive = true;
			break;
		case OPT_MOUNT: {
			sb_sandbox_mount m;
			err = sb_sandbox_mount_parse(optarg, &m);
			if (err) {
				int rc = cli_usage_error("run", "--mount: %s", err->msg);
				sb_err_free(err);
				return rc;
			}
			o->mounts = sb_xrealloc(o->mounts, (o->nmounts + 1) * sizeof *o->mounts);
			o->mounts[o->nmounts++] = m;
			break;
		}
		case OPT_ENV_FILE:
			if ((err = env_file_read(optarg, &o->env))) {
				int rc =
				    cli_usage_error("run", "--env-file %s: %s", optarg, err->msg);
				sb_err_free(err);
				return rc;
			}
			break;
		case OPT_EXCLUDE_PRESET:
			if (!sb_matcher_preset_rules(optarg))
				return cli_usage_error("run",
				                       "--exclude-preset %s: unknown preset "
				                       "(known: paperclip)",
				                       optarg);
			free(o->exclude_preset);
			o->exclude_preset = sb_xstrdup(optarg);
			break;
		case OPT_GITIGNORE:
			o->gitignore = true;
			break;
		case OPT_BRANCH:
			if (!optarg[0] || strpbrk(optarg, " ~^:?*[\\") || optarg[0] == '-')
				return cli_usage_error(
				    "run", "--branch %s: not a valid branch name", optarg);
			free(o->branch);
			o->branch = sb_xstrdup(optarg);
			break;
		case OPT_DRY_RUN:
			o->dry_run = true;
			break;
		case OPT_MAX_RESTORE: /* checked by cli_config_resolve, with the config key */
			free(o->max_restore_size);
			o->max_restore_size = sb_xstrdup(optarg);
			break;
		case OPT_FORCE:
			o->force = true;
			break;
		case OPT_CHECKSUM:
			o->checksum = true;
			break;
		case OPT_PRINT_CONFIG:
			o->print_config = true;
			break;
		case OPT_MEMORY:
			flag = "--memory";
			err = sb_parse_size(optarg, &o->memory);
			if (!err && o->memory < 16u * 1024 * 1024)
				err = sb_err_new(SB_E_INVAL,
				                 "too small: a sandbox needs at least 16M "
				                 "(sizes take a unit: 512M, 2G)");
			break;
		case OPT_TIMEOUT:
			flag = "--timeout";
			err = sb_parse_duration_ms(optarg, &o->timeout_ms);
			if (!err && o->timeout_ms <= 0)
				err = sb_err_new(SB_E_INVAL, "must be more than zero");
			break;
		case 'e':
			if ((err = env_add(optarg, &o->env))) {
				int rc = cli_usage_error("run", "--env %s: %s", optarg, err->msg);
				sb_err_free(err);
				return rc;
			}
			break;
		case OPT_KEEP:
			o->keep = true;
			break;
		case OPT_REUSE:
			flag = "--reuse";
			free(o->reuse);
			o->reuse = sb_xstrdup(optarg);
			break;
		case OPT_REUSE_IDLE:
			flag = "--reuse-idle";
			err = sb_parse_duration_ms(optarg, &o->reuse_idle_ms);
			if (!err && o->reuse_idle_ms <= 0)
				err = sb_err_new(SB_E_INVAL, "must be more than zero");
			break;
		case OPT_CONFLICT:
			flag = "--conflict";
			err = sb_conflict_policy_parse(optarg, &o->policy);
			break;
		case 'q':
			o->quiet = true;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_STATE_DIR:
			free(o->state_dir);
			o->state_dir = sb_xstrdup(optarg);
			break;
		case OPT_CALLBACK:
			free(o->callback);
			o->callback = sb_xstrdup(optarg);
			break;
		case 'h':
			*help = true;
			return 0;
		case ':':
			return cli_usage_error("run", "option %s needs a value", argv[optind - 1]);
		default:
			return cli_usage_error("run", "unknown option %s", argv[optind - 1]);
		}
		if (err) {
			int rc = cli_usage_error("run", "%s %s: %s", flag, optarg, err->msg);
			sb_err_free(err);
			return rc;
		}
	}
	if (optind >= argc && !o->dry_run && !o->print_config)
		return cli_usage_error("run", "no command given (put it after --)");
	o->command = sb_strv_dup(argv + optind); /* argv is rebuilt, freed before the run */
	return 0;
}

void run_opts_print_help(FILE *f)
{
	fputs(run_help, f);
	fputs(run_help_back, f);
	fputs(run_help_rules, f);
}
