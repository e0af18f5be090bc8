/* `--via 'cmd:ssh ...'` (#15): a 100 MiB / 5,000-file workspace staged through a private sshd
 * on loopback and brought back with every file changed on the far side, against the same bytes
 * moved by `tar c | ssh host tar x` and back, measured interleaved in the same run (target:
 * <= 1.3x). Ours is the runtime `sandbar run --via cmd:` uses (prepare, then restore), in both
 * sync modes; the far-side rewrite of every file is not timed. The sshd runs as this user with
 * a throwaway host key and client key; nothing of the host's ssh set-up is read. */
#include "benchutil.h"

#include <sandbar/runner.h>
#include <sandbar/runtime.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define NFILES 5000
#define NLARGE 50
#define TOTAL_BYTES (100u << 20)
#define RUNS 3

static void die(const char *what)
{
	fprintf(stderr, "bench_ssh: %s\n", what);
	exit(1);
}

static void sh(const char *cmd)
{
	if (system(cmd) != 0) {
		fprintf(stderr, "bench_ssh: failed: %s\n", cmd);
		exit(1);
	}
}

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof sa;
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) != 0)
		die("no free port");
	close(fd);
	return ntohs(sa.sin_port);
}

/* A private sshd on 127.0.0.1:port, keys and config in dir; its pid. */
static pid_t start_sshd(const char *dir, int port)
{
	mkdir("/run/sshd", 0755); /* its privilege separation directory, when root */
	char *cmd = sb_strfmt(
	    "cd '%s' && ssh-keygen -q -t ed25519 -N '' -f host_key && "
	    "ssh-keygen -q -t ed25519 -N '' -f client_key && cp client_key.pub authorized_keys && "
	    "printf 'Port %d\\nListenAddress 127.0.0.1\\nHostKey %s/host_key\\n"
	    "AuthorizedKeysFile %s/authorized_keys\\nStrictModes no\\nUsePAM no\\n"
	    "PasswordAuthentication no\\nPermitRootLogin prohibit-password\\n"
	    "PidFile %s/sshd.pid\\n' > sshd_config && "
	    "/usr/sbin/sshd -f %s/sshd_config -E %s/sshd.log && "
	    "i=0; until [ -s sshd.pid ]; do i=$((i+1)); [ $i -gt 500 ] && exit 1; sleep 0.01; "
	    "done", /* sshd goes to the background once it listens, then writes its pid file */
	    dir, port, dir, dir, dir, dir, dir);
	sh(cmd);
	free(cmd);
	char *pidf = sb_strfmt("%s/sshd.pid", dir);
	FILE *f = fopen(pidf, "r");
	int pid = 0;
	if (!f || fscanf(f, "%d", &pid) != 1)
		die("sshd wrote no pid");
	fclose(f);
	free(pidf);
	return (pid_t)pid;
}

/* ssh's words for the private sshd; the prefix is the words up to "--". */
static char **ssh_words(const char *dir, int port)
{
	struct passwd *pw = getpwuid(getuid());
	if (!pw)
		die("no user name");
	char **v = NULL;
	const char *fixed[] = {"ssh", "-T",
	                       "-F",  "/dev/null",
	                       "-o",  "BatchMode=yes",
	                       "-o",  "IdentitiesOnly=yes",
	                       "-o",  "StrictHostKeyChecking=no",
	                       "-o",  "UserKnownHostsFile=/dev/null",
	                       "-o",  "LogLevel=ERROR"};
	for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
		sb_strv_push(&v, fixed[i]);
	char *p = sb_strfmt("%d", port), *key = sb_strfmt("%s/client_key", dir);
	char *target = sb_strfmt("%s@127.0.0.1", pw->pw_name);
	sb_strv_push(&v, "-p");
	sb_strv_push(&v, p);
	sb_strv_push(&v, "-i");
	sb_strv_push(&v, key);
	sb_strv_push(&v, target);
	free(p);
	free(key);
	free(target);
	return v;
}

static char *joined(char *const *words)
{
	sb_buf b = SB_BUF_INIT;
	for (size_t i = 0; words[i]; i++) {
		if (i)
			sb_buf_appendc(&b, ' ');
		sb_shell_quote(&b, words[i]);
	}
	return sb_buf_steal(&b, NULL);
}

/* The baseline: the tree to the far side and back with tar over ssh. */
static double tar_round_trip(const char *ssh, const char *src, const char *far, const char *back)
{
	char *out = sb_strfmt("tar c -C '%s' . | %s 'rm -rf %s && mkdir -p %s && tar x -C %s'", src,
	                      ssh, far, far, far);
	char *in = sb_strfmt("rm -rf '%s' && mkdir -p '%s' && %s 'tar c -C %s .' | tar x -C '%s'",
	                     back, back, ssh, far, back);
	double t0 = sbb_now();
	sh(out);
	sh(in);
	double t = sbb_now() - t0;
	free(out);
	free(in);
	return t;
}

/* Ours: prepare into far, every far file rewritten (untimed), restore into a copy of src. */
static double sandbar_round_trip(sb_runner *r, const char *src, const char *local, const char *far,
                                 bool incremental)
{
	char *cmd = sb_strfmt("rm -rf '%s' '%s' && cp -a '%s' '%s'", local, far, src, local);
	sh(cmd);
	free(cmd);
	setenv("SANDBAR_SYNC", incremental ? "incremental" : "full", 1);
	sb_runtime_prepare_opts o = {.runner = r,
	                             .spec = {.remote_cwd = far},
	                             .adapter_key = "bench",
	                             .workspace_local_dir = local};
	sb_runtime *rt = NULL;
	double t0 = sbb_now();
	sb_err *err = sb_runtime_prepare(&o, &rt);
	double staged = sbb_now() - t0;
	if (err)
		die(err->msg);
	/* every file changed by the command (the far side is this host: one byte appended to each)
	 */
	cmd =
	    sb_strfmt("cd '%s' && find . -path ./.paperclip-runtime -prune -o -type f -exec sh -c "
	              "'for f; do printf x >> \"$f\"; done' sh {} +",
	              far);
	sh(cmd);
	free(cmd);
	sb_restore_report rep;
	sb_restore_report_init(&rep);
	t0 = sbb_now();
	err = sb_runtime_restore(rt, NULL, &rep);
	double restored = sbb_now() - t0;
	if (err)
		die(err->msg);
	if (rep.n_changed < NFILES) {
		fprintf(stderr, "bench_ssh: restore changed %zu files, expected %d\n",
		        rep.n_changed, NFILES);
		exit(1);
	}
	sb_restore_report_deinit(&rep);
	sb_runtime_free(rt);
	return staged + restored;
}

int main(void)
{
	if (access("/usr/sbin/sshd", X_OK) != 0)
		die("/usr/sbin/sshd is missing (scripts/bootstrap installs openssh-server)");
	char *root = sbb_tmpdir("sandbar-bench-ssh", 0700);
	char *src = sb_strfmt("%s/src", root), *local = sb_strfmt("%s/local", root);
	char *far = sb_strfmt("%s/far", root), *back = sb_strfmt("%s/back", root);
	sb_err *err = sbb_make_tree(src, NFILES, NLARGE, TOTAL_BYTES);
	if (err)
		die(err->msg);
	int port = free_port();
	pid_t sshd = start_sshd(root, port);
	char **words = ssh_words(root, port);
	char *ssh = joined(words);
	sb_strv_push(&words, "--");
	sb_prefix_runner_opts po = {.prefix = words, .prefix_is_shell = true};
	sb_runner *r = NULL;
	if ((err = sb_prefix_runner_new(&po, &r)))
		die(err->msg);
	double base[RUNS], full[RUNS], inc[RUNS];
	for (int i = 0; i < RUNS; i++) { /* interleaved: the same load for each */
		base[i] = tar_round_trip(ssh, src, far, back);
		full[i] = sandbar_round_trip(r, src, local, far, false);
		inc[i] = sandbar_round_trip(r, src, local, far, true);
	}
	printf("# bench_ssh: %d files, %u MiB, every file changed on the far side, %d runs, "
	       "medians\n",
	       NFILES, TOTAL_BYTES >> 20, RUNS);
	double b = sbb_median(base, RUNS);
	sbb_row_ms("cmd:ssh round trip (stage + restore, all changed), full",
	           sbb_median(full, RUNS), b, "tar | ssh tar, both ways");
	sbb_row_ms("cmd:ssh round trip (stage + restore, all changed), incremental",
	           sbb_median(inc, RUNS), b, "tar | ssh tar, both ways");
	sb_runner_free(r);
	kill(sshd, SIGTERM);
	char *rm = sb_strfmt("rm -rf '%s'", root);
	sh(rm);
	free(rm);
	free(ssh);
	sb_strv_free(words);
	free(src);
	free(local);
	free(far);
	free(back);
	free(root);
	return 0;
}
