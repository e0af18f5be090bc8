/* Benchmark (#15): the warm pool of `sandbar serve --warm N`. Medians of 30, each against a bare
 * `bwrap --ro-bind / / --dev /dev --proc /proc --unshare-all true` measured interleaved in the
 * same run:
 *   - acquire from the warm pool: the POST /v1/leases round trip until the lease is ready to
 *     exec (target <= 0.4x), and the same acquire followed by an exec of `true`;
 *   - a cold acquire of the same configuration (a daemon without a pool), for comparison;
 *   - `sandbar run --bridge URL -- true` on a tiny workspace against a daemon with a warm pool
 *     (target <= 2x): its Paperclip-compat lease claims from the pool of the bridge's
 *     configuration (`--warm N` keeps N of each configuration).
 * The pool refills between samples (outside the timing): each sample is a claim. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include "benchdaemon.h"
#include "benchutil.h"

#define RUNS 30
#define WARM "2"

static char *bwrap_argv[] = {"bwrap", "--ro-bind",     "/",    "/", "--dev", "/dev", "--proc",
                             "/proc", "--unshare-all", "true", NULL};

static int health_int(const sbb_daemon *d, CURL *c, const char *key)
{
	sb_buf out = SB_BUF_INIT;
	long st = sbb_daemon_call(d, c, "GET", "/v1/health", NULL, &out);
	char pat[64];
	snprintf(pat, sizeof pat, "\"%s\":", key);
	const char *p = st == 200 && out.data ? strstr(out.data, pat) : NULL;
	int v = p ? atoi(p + strlen(pat)) : -1;
	sb_buf_deinit(&out);
	return v;
}

/* Until the pools are full again (at most 30 s): every sample below is a claim. warm_ready
 * and warm count every configuration's pool. */
static bool wait_pool_full(const sbb_daemon *d, CURL *c)
{
	for (int i = 0; i < 3000; i++) {
		int size = health_int(d, c, "warm");
		if (size > 0 && health_int(d, c, "warm_ready") == size)
			return true;
		sb_sleep_ms(10);
	}
	fprintf(stderr, "bench_warm: the warm pool did not refill in 30 s\n");
	return false;
}

/* Seconds for one acquire (and, with exec, an exec of `true` in it); the lease is destroyed
 * afterwards, outside the timing. Negative on failure. */
static double acquire_once(const sbb_daemon *d, CURL *c, int i, bool exec)
{
	char body[128], id[128], target[256];
	snprintf(body, sizeof body, "{\"acquisition_id\":\"bench-%d-%d\"}", (int)getpid(), i);
	sb_buf out = SB_BUF_INIT;
	double t0 = sbb_now();
	long st = sbb_daemon_call(d, c, "POST", "/v1/leases", body, &out);
	sbb_json_str(out.data, "id", id, sizeof id);
	if (st == 200 && exec) {
		snprintf(target, sizeof target, "/v1/leases/%s/exec", id);
		sb_buf_clear(&out);
		st = sbb_daemon_call(d, c, "POST", target, "{\"argv\":[\"true\"]}", &out);
	}
	double t = sbb_now() - t0;
	if (st != 200) {
		fprintf(stderr, "bench_warm: acquire%s failed (%ld): %.*s\n", exec ? "+exec" : "",
		        st, (int)out.len, out.data ? out.data : "");
		t = -1;
	}
	snprintf(target, sizeof target, "/v1/leases/%s?force=1", id);
	sb_buf_clear(&out);
	if (id[0])
		sbb_daemon_call(d, c, "DELETE", target, NULL, &out);
	sb_buf_deinit(&out);
	return t;
}

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	int port = -1;
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* `sandbar run --bridge` against a TCP `sandbar serve --warm` of our own (the bench daemon
 * listens on a unix socket only, which --bridge does not take). */
static int bench_run(double *warm_run, double *bare)
{
	char *root = sbb_tmpdir("sandbar-bench-warm", 0711);
	char state[512], ws[512], tok[512], url[64], listen[64], cmd[2600];
	snprintf(state, sizeof state, "%s/state", root);
	snprintf(ws, sizeof ws, "%s/ws", root);
	snprintf(tok, sizeof tok, "%s/token", root);
	snprintf(cmd, sizeof cmd,
	         "mkdir -p '%s' && echo hello > '%s/README' && echo " SBB_TOKEN
	         " > '%s' && chmod 600 '%s'",
	         ws, ws, tok, tok);
	if (system(cmd) != 0)
		return 1;
	int port = free_port();
	snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
	snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
	char *sandbar = SB_BENCH_BUILD_DIR "/sandbar";
	pid_t pid = fork();
	if (pid == 0) {
		freopen("/dev/null", "w", stderr);
		execl(sandbar, "sandbar", "serve", "--listen", listen, "--state-dir", state,
		      "--token-file", tok, "--warm", WARM, (char *)NULL);
		_exit(127);
	}
	setenv("SANDBAR_TOKEN_FILE", tok, 1);
	setenv("SANDBAR_CONFIG", "/nonexistent", 1);
	setenv("SANDBAR_STATE_DIR", state, 1);
	char *run_argv[] = {sandbar, "run", "-q", "-w", ws, "--bridge", url, "--", "true", NULL};
	int rc = 0;
	for (int i = 0; i < 200; i++) { /* until it listens */
		snprintf(cmd, sizeof cmd, "curl -sf %s/v1/health >/dev/null 2>&1", url);
		if (system(cmd) == 0)
			break;
		sb_sleep_ms(25);
	}
	sbb_spawn_wait(run_argv); /* warm-up */
	sbb_spawn_wait(bwrap_argv);
	double r[RUNS], b[RUNS];
	for (int i = 0; i < RUNS; i++) {
		r[i] = sbb_spawn_wait(run_argv);
		b[i] = sbb_spawn_wait(bwrap_argv);
	}
	*warm_run = sbb_median(r, RUNS);
	*bare = sbb_median(b, RUNS);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
	if (system(cmd) != 0)
		rc = 1;
	free(root);
	return rc;
}

int main(void)
{
	sbb_daemon warm, cold;
	const char *warm_args[] = {"--warm", WARM, NULL};
	if (!sbb_daemon_start(&warm, "warm", warm_args))
		return 1;
	if (!sbb_daemon_start(&cold, "cold", NULL)) {
		sbb_daemon_stop(&warm);
		return 1;
	}
	CURL *c = curl_easy_init();
	double w[RUNS], we[RUNS], k[RUNS], b[RUNS];
	int rc = 0;
	/* warm-up: page cache, seccomp compile, the first connection */
	acquire_once(&cold, c, -1, false);
	sbb_spawn_wait(bwrap_argv);
	for (int i = 0; i < RUNS && rc == 0; i++) {
		if (!wait_pool_full(&warm, c) ||
		    (w[i] = acquire_once(&warm, c, 2 * i, false)) < 0 ||
		    !wait_pool_full(&warm, c) ||
		    (we[i] = acquire_once(&warm, c, 2 * i + 1, true)) < 0 ||
		    (k[i] = acquire_once(&cold, c, i, false)) < 0)
			rc = 1;
		b[i] = sbb_spawn_wait(bwrap_argv);
	}
	curl_easy_cleanup(c);
	sbb_daemon_stop(&warm);
	sbb_daemon_stop(&cold);
	if (rc)
		return rc;
	double mb = sbb_median(b, RUNS);
	sbb_row_ms("warm: acquire from the warm pool (POST /v1/leases, ready to exec) vs bare "
	           "bwrap (target <= 0.4x)",
	           sbb_median(w, RUNS), mb, "bare bwrap");
	sbb_row_ms("warm: acquire from the warm pool + exec `true` vs bare bwrap",
	           sbb_median(we, RUNS), mb, "bare bwrap");
	sbb_row_ms("warm: cold acquire (no pool) vs bare bwrap", sbb_median(k, RUNS), mb,
	           "bare bwrap");
	double mr = 0, mb2 = 0;
	rc = bench_run(&mr, &mb2);
	sbb_row_ms("warm: `sandbar run --bridge -- true`, tiny workspace, daemon with --warm vs "
	           "bare bwrap (target <= 2x)",
	           mr, mb2, "bare bwrap");
	return rc;
}
