/* sandbar doctor: checks everything a sandbox needs on this host and prints, for each piece,
 * "ok" or the exact command that fixes it; then really creates (and destroys) a sandbox.
 * Exit 0 only when that sandbox could be created. */
#include "cli.h"

#include <sandbar/sandbox.h>

#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

static const char doctor_help[] =
    "usage: sandbar doctor [--state-dir DIR] [--token-file FILE] [--hmac-keys FILE]\n"
    "\n"
    "Check what sandboxes need on this host (bubblewrap, user namespaces, seccomp, cgroups,\n"
    "the sandbox user, the state directory, secret file modes, libmicrohttpd, full network,\n"
    "free space), print ok or the command that fixes each, then create a real sandbox.\n"
    "Exit status 0 only when that sandbox could be created.\n"
    "\n"
    "options:\n"
    "      --state-dir DIR   state directory to check (default: as `sandbar run`)\n"
    "      --token-file FILE the daemon's token file, checked for its mode\n"
    "      --hmac-keys FILE  the daemon's HMAC key file, checked for its mode\n"
    "  -h, --help            this text\n";

typedef struct report {
	int failed, warned;
} report;

static void ok(const char *what, const char *detail)
{
	printf("ok    %-18s %s\n", what, detail ? detail : "");
}

static void bad(report *r, const char *what, const char *problem, const char *fix)
{
	r->failed++;
	printf("FAIL  %-18s %s\n      fix: %s\n", what, problem, fix);
}

static void warn(report *r, const char *what, const char *problem, const char *fix)
{
	r->warned++;
	printf("warn  %-18s %s\n      fix: %s\n", what, problem, fix);
}

static bool tool(const char *name)
{
	const char *path = getenv("PATH");
	char *all = sb_strfmt("%s:/usr/sbin:/sbin", path ? path : "");
	char *save = NULL;
	bool found = false;
	for (char *d = strtok_r(all, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
		char *p = sb_strfmt("%s/%s", d, name);
		found = *d && access(p, X_OK) == 0;
		free(p);
	}
	free(all);
	return found;
}

static long read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;
	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static void check_secret(report *r, const char *what, const char *path)
{
	if (!path)
		return;
	struct stat st;
	char *fix = NULL, *msg = NULL;
	if (stat(path, &st) < 0) {
		msg = sb_strfmt("%s: %s", path, strerror(errno));
		fix = sb_strfmt("create it: (umask 077; head -c 32 /dev/urandom | od -An -tx1 | "
		                "tr -d ' \\n' > %s)",
		                path);
		bad(r, what, msg, fix);
	} else if (st.st_mode & 0066) {
		msg = sb_strfmt("%s is accessible by group or others (mode %04o)", path,
		                (unsigned)(st.st_mode & 07777));
		fix = sb_strfmt("chmod 600 %s", path);
		bad(r, what, msg, fix);
	} else {
		ok(what, path);
	}
	free(msg);
	free(fix);
}

int cmd_doctor(int argc, char **argv)
{
	enum { OPT_STATE = 256, OPT_TOKEN, OPT_HMAC };
	static const struct option opts[] = {{"state-dir", required_argument, NULL, OPT_STATE},
	                                     {"token-file", required_argument, NULL, OPT_TOKEN},
	                                     {"hmac-keys", required_argument, NULL, OPT_HMAC},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	cli_config cfg = {0};
	const char *hmac = NULL;
	int c, rc = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_STATE:
			free(cfg.state_dir);
			cfg.state_dir = sb_xstrdup(optarg);
			break;
		case OPT_TOKEN:
			free(cfg.token_file);
			cfg.token_file = sb_xstrdup(optarg);
			break;
		case OPT_HMAC:
			hmac = optarg;
			break;
		case 'h':
			fputs(doctor_help, stdout);
			goto out;
		default:
			rc = cli_usage_error("doctor", "unknown option or missing value: %s",
			                     argv[optind - 1]);
			goto out;
		}
	}
	sb_err *err = cli_config_resolve(&cfg);
	if (err) {
		rc = cli_fail_err("doctor", err);
		goto out;
	}
	report r = {0};
	char *state = cli_state_dir(&cfg);
	sb_sandbox_config sc;
	sb_sandbox_config_init(&sc);
	sc.state_dir = state;
	sb_sandbox_health h;
	sb_sandbox_health_check(&sc, &h);

	/* bubblewrap */
	if (h.bwrap_version)
		ok("bubblewrap", h.bwrap_version);
	else
		bad(&r, "bubblewrap", "bwrap not found in PATH or does not run",
		    "apt-get install bubblewrap (or put bwrap on PATH)");
	/* user namespaces */
	long clone = read_long("/proc/sys/kernel/unprivileged_userns_clone");
	long maxns = read_long("/proc/sys/user/max_user_namespaces");
	if (clone == 0)
		bad(&r, "user namespaces", "unprivileged user namespaces are disabled",
		    "sysctl -w kernel.unprivileged_userns_clone=1");
	else if (maxns == 0)
		bad(&r, "user namespaces", "user.max_user_namespaces is 0",
		    "sysctl -w user.max_user_namespaces=15000");
	else
		ok("user namespaces", NULL);
	/* seccomp */
	if (h.enforceable.seccomp)
		ok("seccomp", "filter compiles and loads");
	else
		bad(&r, "seccomp", "the seccomp filter cannot be built",
		    "apt-get install libseccomp2 (and a kernel with CONFIG_SECCOMP_FILTER)");
	/* cgroups */
	if (h.enforceable.memory && h.enforceable.pids) {
		char *d = sb_strfmt("%s: memory, pids%s", h.cgroup_version,
		                    h.enforceable.cpu ? ", cpu" : "");
		ok("cgroups", d);
		free(d);
	} else {
		warn(&r, "cgroups",
		     "memory/pids limits cannot be enforced (no writable controller)",
		     geteuid() == 0 ? "mount the cgroup controllers (memory, pids) writable"
		                    : "run sandbar as root, or delegate a cgroup to this user "
		                      "(systemd-run --user -p Delegate=yes)");
	}
	/* the sandbox user */
	if (geteuid() == 0) {
		struct passwd *pw = getpwnam(SB_SANDBOX_USER_DEFAULT);
		if (pw) {
			char *d =
			    sb_strfmt("%s (uid %u)", SB_SANDBOX_USER_DEFAULT, (unsigned)pw->pw_uid);
			ok("sandbox user", d);
			free(d);
		} else {
			bad(&r, "sandbox user",
			    "running as root, sandboxes need the user \"sandbar\"",
			    "useradd --system --no-create-home --shell /usr/sbin/nologin sandbar "
			    "(scripts/create-sandbar-user)");
		}
	} else {
		ok("sandbox user", "not root: sandboxes run as you");
	}
	/* the state directory */
	err = sb_fs_mkdir_p(state, 0700);
	if (!err && access(state, W_OK) < 0)
		err = sb_err_sys(errno, "%s", state);
	if (err) {
		char *fix = sb_strfmt("use a writable state directory: --state-dir DIR or "
		                      "SANDBAR_STATE_DIR (%s)",
		                      err->msg);
		bad(&r, "state directory", state, fix);
		free(fix);
		sb_err_free(err);
	} else {
		ok("state directory", state);
	}
	/* free space */
	struct statvfs vfs;
	if (statvfs(state, &vfs) == 0) {
		unsigned long long free_b = (unsigned long long)vfs.f_bavail * vfs.f_frsize;
		char *d = sb_strfmt("%llu MiB free in %s", free_b >> 20, state);
		if (free_b < (256ull << 20))
			warn(&r, "free space", d,
			     "free space on that file system, or move the state "
			     "directory (--state-dir)");
		else
			ok("free space", d);
		free(d);
	}
	/* secrets */
	check_secret(&r, "token file", cfg.token_file);
	check_secret(&r, "HMAC key file", hmac ? hmac : cfg.hmac_key_file);
	/* the daemon's program, and its HTTP library */
	{
		char *prog = cli_serve_program();
		char *q = sb_shell_quoted(prog);
		char *cmd = sb_strfmt("%s --libmicrohttpd-info 2>/dev/null", q);
		FILE *f = popen(cmd, "r");
		char line[256] = "";
		bool got = f && fgets(line, sizeof line, f) != NULL;
		int st = f ? pclose(f) : -1;
		line[strcspn(line, "\n")] = '\0';
		if (got && st == 0) {
			char *d = sb_strfmt("%s (libmicrohttpd %s)", prog, line);
			ok("daemon program", d);
			free(d);
		} else {
			warn(&r, "daemon program", prog,
			     "`sandbar serve` cannot start without it: reinstall sandbar, or set "
			     "SANDBAR_SERVE to its path");
		}
		free(q);
		free(cmd);
		free(prog);
	}
	/* full network */
	bool slirp = tool("slirp4netns"), nft = geteuid() != 0 || tool("nft");
	if (slirp && nft)
		ok("full network", geteuid() == 0 ? "slirp4netns, nftables" : "slirp4netns");
	else
		warn(&r, "full network", "--network sandboxes cannot be created",
		     "apt-get install slirp4netns nftables (or run scripts/bootstrap)");

	/* the proof: a real sandbox */
	char *id = sb_random_id("doctor-");
	if (strlen(id) > SB_SANDBOX_ID_MAX)
		id[SB_SANDBOX_ID_MAX] = '\0';
	sb_sandbox *sb = NULL;
	int64_t t0 = sb_mono_ms();
	err = sb_sandbox_create(&sc, id, NULL, &sb);
	if (err) {
		bad(&r, "sandbox", err->msg,
		    "fix the failures above, then run sandbar doctor again");
		sb_err_free(err);
	} else {
		bool alive = sb_sandbox_alive(sb);
		char *d =
		    sb_strfmt("created and answered in %lld ms", (long long)(sb_mono_ms() - t0));
		if (alive)
			ok("sandbox", d);
		else
			bad(&r, "sandbox", "created but sandbar-init does not answer",
			    "see the lease's run/init.log, then run sandbar doctor again");
		free(d);
		sb_err_free(sb_sandbox_destroy(sb));
	}
	free(id);
	printf("%s: %d failed, %d warning(s)\n", r.failed ? "NOT READY" : "ready", r.failed,
	       r.warned);
	rc = r.failed ? SB_EXIT_FAILURE : 0;
	sb_sandbox_health_deinit(&h);
	free(state);
out:
	cli_config_deinit(&cfg);
	return rc;
}
