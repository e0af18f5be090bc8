/* Daemon benchmarks: exec of `true` over HTTP on a warm lease (JSON and SSE, keep-alive client)
 * against a bare posix_spawn + waitpid and against the sandbox layer called directly, requests
 * per second for GET /v1/health and for an HMAC-signed GET /v1/leases/{id}, and the daemon's
 * resident memory while idle with 100 leases. The daemon runs in this process (its own
 * threads); the client is libcurl over the unix socket. */
#include <sandbar/auth.h>
#include <sandbar/server.h>

#include <curl/curl.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "benchutil.h"
#include "sb_json.h"

#define N_EXEC 200
#define N_REQ 3000
#define N_LEASES 100
#define TOKEN "bench-token-0123456789abcdef"
#define KEY "bench"
#define SECRET "bench-secret-0123456789abcdef"

static char *g_sock;

static size_t sink(char *p, size_t sz, size_t nm, void *ud)
{
	sb_buf_append(ud, p, sz * nm);
	return sz * nm;
}

/* One request on a reused handle (keep-alive). Returns the status. */
static long request(CURL *c, const char *method, const char *target, const char *body,
                    const char *accept, bool hmac, sb_buf *out)
{
	char url[512];
	snprintf(url, sizeof url, "http://localhost%s", target);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, g_sock);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	} else {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, NULL);
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	}
	struct curl_slist *h = curl_slist_append(NULL, "Expect:");
	char buf[512];
	if (accept) {
		snprintf(buf, sizeof buf, "Accept: %s", accept);
		h = curl_slist_append(h, buf);
	}
	if (hmac) {
		char digest[SB_SHA256_HEX_LEN];
		sb_sha256_hex(body ? body : "", body ? strlen(body) : 0, digest);
		sb_hmac_headers hh;
		sb_err *err = sb_hmac_sign_request(KEY, SECRET, strlen(SECRET), method, target,
		                                   "localhost", digest, 0, NULL, &hh);
		if (err) {
			fprintf(stderr, "%s\n", err->msg);
			exit(1);
		}
		snprintf(buf, sizeof buf, "Authorization: %s", hh.authorization);
		h = curl_slist_append(h, buf);
		snprintf(buf, sizeof buf, "X-Sandbar-Timestamp: %s", hh.timestamp);
		h = curl_slist_append(h, buf);
		snprintf(buf, sizeof buf, "X-Sandbar-Nonce: %s", hh.nonce);
		h = curl_slist_append(h, buf);
		snprintf(buf, sizeof buf, "X-Sandbar-Content-SHA256: %s", hh.content_sha256);
		h = curl_slist_append(h, buf);
	} else {
		h = curl_slist_append(h, "Authorization: Bearer " TOKEN);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	long st = 0;
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
	curl_slist_free_all(h);
	return st;
}

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	long kb = -1;
	while (f && fgets(line, sizeof line, f))
		if (!strncmp(line, "VmRSS:", 6))
			kb = atol(line + 6);
	if (f)
		fclose(f);
	return kb;
}

int main(void)
{
	char tmpl[] = "/tmp/sbbench-XXXXXX";
	char *dir = mkdtemp(tmpl);
	if (!dir)
		return 1;
	chmod(dir, 0755);
	char *state = sb_strfmt("%s/state", dir);
	char *keys = sb_strfmt("%s/keys", dir);
	g_sock = sb_strfmt("%s/sock", dir);
	sb_err *err =
	    sb_fs_write_atomic(keys, KEY " " SECRET "\n", strlen(KEY " " SECRET "\n"), 0600);
	int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	sb_log_set_fd(devnull); /* the access log is formatted, just not kept */
	sb_server_config cfg;
	sb_server_config_init(&cfg);
	cfg.listen_tcp = false;
	cfg.socket_path = g_sock;
	cfg.state_dir = state;
	cfg.token = TOKEN;
	cfg.hmac_keys_file = keys;
	sb_server *s = NULL;
	if (!err)
		err = sb_server_new(&cfg, &s);
	if (!err)
		err = sb_server_start(s);
	if (err) {
		fprintf(stderr, "bench_server: %s\n", err->msg);
		return 1;
	}
	curl_global_init(CURL_GLOBAL_ALL);
	CURL *c = curl_easy_init();
	sb_buf out = SB_BUF_INIT;

	/* Requests per second. */
	double t0 = sbb_now();
	for (int i = 0; i < N_REQ; i++) {
		sb_buf_clear(&out);
		if (request(c, "GET", "/v1/health", NULL, NULL, false, &out) != 200)
			return 1;
	}
	double health_rps = N_REQ / (sbb_now() - t0);

	sb_buf_clear(&out);
	long st = request(c, "POST", "/v1/leases", "{\"acquisition_id\":\"bench-warm\"}", NULL,
	                  false, &out);
	if (st != 200) {
		printf("# bench_server: sandboxes unavailable here (%ld): %s\n", st,
		       sb_buf_cstr(&out));
		char r[64];
		snprintf(r, sizeof r, "%.0f req/s", health_rps);
		sbb_row("GET /v1/health, 1 keep-alive client", r, "-", "-");
		return 0;
	}
	json_t *j = json_loads(sb_buf_cstr(&out), 0, NULL);
	char *lease = sb_xstrdup(json_string_value(json_object_get(j, "id")));
	json_decref(j);
	char *get_t = sb_strfmt("/v1/leases/%s", lease);
	t0 = sbb_now();
	for (int i = 0; i < N_REQ; i++) {
		sb_buf_clear(&out);
		if (request(c, "GET", get_t, NULL, NULL, true, &out) != 200)
			return 1;
	}
	double hmac_rps = N_REQ / (sbb_now() - t0);

	/* Exec of `true`: JSON and SSE over HTTP, the sandbox layer directly, bare spawn. */
	char *exec_t = sb_strfmt("/v1/leases/%s/exec", lease);
	const char *body = "{\"argv\":[\"true\"]}";
	char *true_argv[] = {"true", NULL};
	double *js = calloc(N_EXEC, sizeof *js), *ss = calloc(N_EXEC, sizeof *ss),
	       *bs = calloc(N_EXEC, sizeof *bs);
	for (int i = 0; i < 20; i++) {
		sb_buf_clear(&out);
		request(c, "POST", exec_t, body, NULL, false, &out);
	}
	for (int i = 0; i < N_EXEC; i++) {
		sb_buf_clear(&out);
		double a = sbb_now();
		if (request(c, "POST", exec_t, body, NULL, false, &out) != 200)
			return 1;
		js[i] = sbb_now() - a;
		sb_buf_clear(&out);
		a = sbb_now();
		if (request(c, "POST", exec_t, body, "text/event-stream", false, &out) != 200 ||
		    !strstr(sb_buf_cstr(&out), "event: end"))
			return 1;
		ss[i] = sbb_now() - a;
		bs[i] = sbb_spawn_wait(true_argv);
	}
	double jm = sbb_median(js, N_EXEC), sm = sbb_median(ss, N_EXEC),
	       bm = sbb_median(bs, N_EXEC);

	/* The sandbox layer alone, to separate the HTTP cost from the sandbox cost. */
	sb_sandbox_config sc;
	sb_sandbox_config_init(&sc);
	sc.state_dir = state;
	sb_sandbox *sb = NULL;
	double *ds = calloc(N_EXEC, sizeof *ds);
	double dm = 0;
	if (!sb_sandbox_open(&sc, lease, &sb)) {
		char *argv[] = {"true", NULL};
		for (int i = 0; i < N_EXEC; i++) {
			double a = sbb_now();
			sb_sandbox_exec_req rq = {.argv = argv};
			sb_sandbox_exec *x = NULL;
			if (sb_sandbox_exec_start(sb, &rq, &x))
				return 1;
			sb_sandbox_exec_status xs;
			for (;;) {
				if (sb_sandbox_exec_status_of(x, &xs) || !xs.running)
					break;
				sb_sandbox_exec_wait(x, 1000, NULL);
			}
			ds[i] = sbb_now() - a;
			sb_sandbox_exec_free(x); /* closes an inotify fd: slow, and not exec cost */
		}
		dm = sbb_median(ds, N_EXEC);
		sb_sandbox_close(sb);
	}

	sbb_row_ms("exec `true` over HTTP, JSON (median)", jm, bm, "posix_spawn+waitpid");
	sbb_row_ms("exec `true` over HTTP, SSE (median)", sm, bm, "posix_spawn+waitpid");
	if (dm > 0) {
		sbb_row_ms("exec `true` via the sandbox layer, no HTTP (median)", dm, bm,
		           "posix_spawn+waitpid");
		sbb_row_ms("HTTP JSON exec vs the sandbox layer alone", jm, dm, "sandbox layer");
	}
	char r1[64], r2[64];
	snprintf(r1, sizeof r1, "%.0f req/s", health_rps);
	snprintf(r2, sizeof r2, "%.0f req/s", hmac_rps);
	sbb_row("GET /v1/health, 1 keep-alive client", r1, "-", "-");
	sbb_row("HMAC GET /v1/leases/{id}, 1 keep-alive client", r2, r1, "vs health");

	/* Idle RSS with 100 leases. */
	long rss0 = rss_kib();
	for (int i = 0; i < N_LEASES; i++) {
		char b[96];
		snprintf(b, sizeof b, "{\"acquisition_id\":\"bench-idle-%d\"}", i);
		sb_buf_clear(&out);
		if (request(c, "POST", "/v1/leases", b, NULL, false, &out) != 200)
			return 1;
	}
	sleep(1);
	long rss1 = rss_kib();
	char o[64], b0[64];
	snprintf(o, sizeof o, "%ld KiB", rss1);
	snprintf(b0, sizeof b0, "%ld KiB (1 lease)", rss0);
	char rr[32];
	snprintf(rr, sizeof rr, "%.2fx", (double)rss1 / (double)rss0);
	sbb_row("daemon RSS idle with 101 leases (in-process, incl. client)", o, b0, rr);

	/* Clean up every lease. */
	sb_buf_clear(&out);
	request(c, "GET", "/v1/leases", NULL, NULL, false, &out);
	j = json_loads(sb_buf_cstr(&out), 0, NULL);
	size_t i;
	json_t *l;
	json_array_foreach(json_object_get(j, "leases"), i, l)
	{
		char *t =
		    sb_strfmt("/v1/leases/%s?force=1", json_string_value(json_object_get(l, "id")));
		sb_buf_clear(&out);
		request(c, "DELETE", t, NULL, NULL, false, &out);
		free(t);
	}
	json_decref(j);
	curl_easy_cleanup(c);
	sb_server_request_stop(s);
	sb_server_run_until_signal(s);
	sb_server_free(s);
	sb_buf_deinit(&out);
	sb_fs_rm_rf(dir);
	return 0;
}
