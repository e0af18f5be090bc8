/* Paperclip bridge benchmarks (issue 17): the latency a sleeping lease adds to the request that
 * wakes it (exec `true` through /exec right after POST /v1/leases/{id}/sleep, against the same
 * exec on an awake lease; and POST .../wake alone), and the throughput of a 100 MiB JSON exec
 * result (`cat` of 100 MiB of base64 text in the sandbox, through the bridge's /exec and the
 * native exec route, whose document also carries the base64 of the output: 233 MiB) against
 * the same bytes served by a plain loopback HTTP responder (sendfile) to the same libcurl
 * client, in the same run. Throughput counts MiB of command output per second, with the
 * command's run (the bytes spooled into the sandbox's spool) and without it (the result
 * streamed, after the first response byte). The daemon runs in this process on 127.0.0.1. */
#include <sandbar/server.h>

#include <curl/curl.h>
#include <jansson.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "benchutil.h"

#define TOKEN "bench-token-0123456789abcdef"
#define N_WAKE 40
#define GAP_US 150000
#define N_BIG 5
#define BIG (100u * 1024u * 1024u)

static int g_port;

static size_t count_sink(char *p, size_t sz, size_t nm, void *ud)
{
	(void)p;
	*(size_t *)ud += sz * nm;
	return sz * nm;
}

static size_t buf_sink(char *p, size_t sz, size_t nm, void *ud)
{
	sb_buf_append(ud, p, sz * nm);
	return sz * nm;
}

static double g_ttfb; /* seconds to the first response byte of the last request */

static long post(CURL *c, int port, const char *path, const char *body, sb_buf *out, size_t *n)
{
	char url[256];
	snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	struct curl_slist *h = curl_slist_append(NULL, "Expect:");
	h = curl_slist_append(h, "Authorization: Bearer " TOKEN);
	h = curl_slist_append(h, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	} else {
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	}
	if (out) {
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, buf_sink);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	} else {
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, count_sink);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, n);
	}
	long st = 0;
	if (curl_easy_perform(c) == CURLE_OK) {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
		curl_easy_getinfo(c, CURLINFO_STARTTRANSFER_TIME, &g_ttfb);
	}
	curl_slist_free_all(h);
	return st;
}

/* The baseline responder: one connection at a time, any request answered with the file. */
typedef struct responder {
	int lfd;
	const char *path;
} responder;

static void *respond(void *ud)
{
	responder *r = ud;
	for (;;) {
		int fd = accept(r->lfd, NULL, NULL);
		if (fd < 0)
			return NULL;
		char req[4096];
		size_t got = 0;
		while (got < sizeof req - 1) {
			ssize_t k = read(fd, req + got, sizeof req - 1 - got);
			if (k <= 0)
				break;
			got += (size_t)k;
			req[got] = '\0';
			if (strstr(req, "\r\n\r\n"))
				break;
		}
		int f = open(r->path, O_RDONLY | O_CLOEXEC);
		struct stat st;
		fstat(f, &st);
		char hdr[256];
		int hl = snprintf(hdr, sizeof hdr,
		                  "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
		                  "Content-Length: %lld\r\nConnection: close\r\n\r\n",
		                  (long long)st.st_size);
		if (write(fd, hdr, (size_t)hl) == hl) {
			off_t off = 0;
			while (off < st.st_size &&
			       sendfile(fd, f, &off, (size_t)(st.st_size - off)) > 0)
				;
		}
		close(f);
		close(fd);
	}
}

/* POST .../sleep until accepted (the last exec's process may still be being reaped). */
static bool put_to_sleep(CURL *c, const char *sleep_p, sb_buf *out)
{
	for (int k = 0; k < 200; k++) {
		sb_buf_clear(out);
		if (post(c, g_port, sleep_p, "", out, NULL) == 200)
			break;
		usleep(5000);
	}
	if (strstr(sb_buf_cstr(out), "\"sleeping\""))
		return true;
	fprintf(stderr, "bench_paperclip: POST .../sleep failed: %.300s\n", sb_buf_cstr(out));
	return false;
}

static char *exec_body(const char *id, const char *script)
{
	json_t *j = json_pack("{s:s, s:s, s:s, s:[ss]}", "providerLeaseId", id, "acquisitionId",
	                      "bench-pc", "command", "sh", "args", "-c", script);
	char *t = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return t;
}

int main(void)
{
	char tmpl[] = "/tmp/sbbench-pc-XXXXXX";
	char *dir = mkdtemp(tmpl);
	if (!dir)
		return 1;
	chmod(dir, 0755);
	char *state = sb_strfmt("%s/state", dir);
	int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	sb_log_set_fd(devnull);
	sb_server_config cfg;
	sb_server_config_init(&cfg);
	cfg.listen = "127.0.0.1:0";
	cfg.state_dir = state;
	cfg.token = TOKEN;
	cfg.access_log = false;
	sb_server *s = NULL;
	sb_err *err = sb_server_new(&cfg, &s);
	if (!err)
		err = sb_server_start(s);
	if (err) {
		fprintf(stderr, "bench_paperclip: %s\n", err->msg);
		return 1;
	}
	g_port = sb_server_port(s);
	curl_global_init(CURL_GLOBAL_ALL);
	CURL *c = curl_easy_init();
	sb_buf out = SB_BUF_INIT;
	long st = post(c, g_port, "/api/paperclip-sandbox/v2/leases/acquire",
	               "{\"acquisitionId\":\"bench-pc\",\"environmentId\":\"e\",\"runId\":\"r\","
	               "\"keepAlive\":false,\"sleepAfter\":\"1h\"}",
	               &out, NULL);
	if (st != 200) {
		printf("# bench_paperclip: sandboxes unavailable here (%ld): %s\n", st,
		       sb_buf_cstr(&out));
		return 0;
	}
	json_t *j = json_loads(sb_buf_cstr(&out), 0, NULL);
	char *id = sb_xstrdup(json_string_value(json_object_get(j, "providerLeaseId")));
	json_decref(j);

	/* Wake-on-request: a background process to freeze, then exec `true` awake and asleep. */
	char *bg = exec_body(id, "setsid sleep 99999 </dev/null >/dev/null 2>&1 &");
	sb_buf_clear(&out);
	post(c, g_port, "/api/paperclip-sandbox/v2/exec", bg, &out, NULL);
	usleep(200000);
	char *tb = exec_body(id, "true");
	char *sleep_p = sb_strfmt("/v1/leases/%s/sleep", id);
	char *wake_p = sb_strfmt("/v1/leases/%s/wake", id);
	/* Pairs measured back to back (the machine's load drifts): exec `true` awake, then on
	 * the lease put to sleep; POST .../wake on the awake lease, then on the sleeping one (no
	 * command: the wake itself, with far less noise than an exec). */
	double awake[N_WAKE], woken[N_WAKE], dexec[N_WAKE], wa[N_WAKE], ws_[N_WAKE], dwake[N_WAKE];
	for (int i = 0; i < 5; i++) {
		sb_buf_clear(&out);
		post(c, g_port, "/api/paperclip-sandbox/v2/exec", tb, &out, NULL);
	}
	for (int i = 0; i < N_WAKE; i++) {
		/* A lease sleeps a while before a request wakes it: the same idle gap (no request)
		 * precedes each measured request, so that the freeze's own after-effects (page
		 * and cache churn of the freezing request) are not counted as the wake's. */
		sb_buf_clear(&out);
		usleep(GAP_US);
		double a = sbb_now();
		if (post(c, g_port, "/api/paperclip-sandbox/v2/exec", tb, &out, NULL) != 200) {
			fprintf(stderr, "bench_paperclip: exec on the awake lease failed: %.300s\n",
			        sb_buf_cstr(&out));
			return 1;
		}
		awake[i] = sbb_now() - a;
		if (!put_to_sleep(c, sleep_p, &out))
			return 1;
		sb_buf_clear(&out);
		usleep(GAP_US);
		a = sbb_now();
		if (post(c, g_port, "/api/paperclip-sandbox/v2/exec", tb, &out, NULL) != 200) {
			fprintf(stderr,
			        "bench_paperclip: exec on the sleeping lease failed: %.300s\n",
			        sb_buf_cstr(&out));
			return 1;
		}
		woken[i] = sbb_now() - a;
		dexec[i] = woken[i] - awake[i];

		sb_buf_clear(&out);
		usleep(GAP_US);
		a = sbb_now();
		long st1 = post(c, g_port, wake_p, "", &out, NULL);
		wa[i] = sbb_now() - a;
		if (!put_to_sleep(c, sleep_p, &out))
			return 1;
		sb_buf_clear(&out);
		usleep(GAP_US);
		a = sbb_now();
		long st2 = post(c, g_port, wake_p, "", &out, NULL);
		ws_[i] = sbb_now() - a;
		if (st1 != 200 || st2 != 200 || !strstr(sb_buf_cstr(&out), "\"active\"")) {
			fprintf(stderr, "bench_paperclip: POST .../wake failed: %.300s\n",
			        sb_buf_cstr(&out));
			return 1;
		}
		dwake[i] = ws_[i] - wa[i];
	}
	double am = sbb_median(awake, N_WAKE), wm = sbb_median(woken, N_WAKE);
	sbb_row_ms("bridge exec `true` on a sleeping lease (wake included, median)", wm, am,
	           "awake lease");
	char add[64];
	snprintf(add, sizeof add, "%+.2f ms", sbb_median(dexec, N_WAKE) * 1000);
	sbb_row("  added by the wake (median of paired differences; target <= 2 ms)", add, "-",
	        "-");
	sbb_row_ms("POST /v1/leases/{id}/wake on a sleeping lease (median)",
	           sbb_median(ws_, N_WAKE), sbb_median(wa, N_WAKE), "awake lease");
	snprintf(add, sizeof add, "%+.2f ms", sbb_median(dwake, N_WAKE) * 1000);
	sbb_row("  added by the thaw (median of paired differences; target <= 2 ms)", add, "-",
	        "-");

	/* 100 MiB of base64 text in the workspace (JSON escapes none of it) and on the host. */
	char *big = sb_strfmt("%s/big.b64", dir);
	char *wsp = sb_strfmt("%s/leases/%s/workspace/big.b64", state, id);
	{
		char *raw = malloc(BIG / 4 * 3);
		for (size_t i = 0; i < BIG / 4 * 3; i++)
			raw[i] = (char)(i * 2654435761u >> 13);
		sb_buf b = SB_BUF_INIT;
		sb_b64_encode(raw, BIG / 4 * 3, &b);
		free(raw);
		if (sb_fs_write_atomic(big, b.data, b.len, 0644) ||
		    sb_fs_write_atomic(wsp, b.data, b.len, 0644)) {
			fprintf(stderr, "bench_paperclip: step at line 217 failed: %.300s\n",
			        sb_buf_cstr(&out));
			return 1;
		}
		sb_buf_deinit(&b);
	}
	char *cb = exec_body(id, "cat /workspace/big.b64");
	double ours[N_BIG], base[N_BIG];
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof sa;
	if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) || listen(lfd, 4) ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl)) {
		fprintf(stderr, "bench_paperclip: step at line 227 failed: %.300s\n",
		        sb_buf_cstr(&out));
		return 1;
	}
	responder rsp = {.lfd = lfd, .path = big};
	pthread_t th;
	pthread_create(&th, NULL, respond, &rsp);
	int bport = ntohs(sa.sin_port);
	/* The same 100 MiB as the native API's JSON result (text and base64 of each stream:
	 * 233 MiB of JSON) and as the bridge's (text only). ttfb: the command's run and the
	 * result's preparation (UTF-8 check); the rest is the result streamed. */
	char *nb = sb_strfmt("{\"argv\":[\"cat\",\"/workspace/big.b64\"]}");
	char *npath = sb_strfmt("/v1/leases/%s/exec", id);
	double nat[N_BIG], cstream[N_BIG], nstream[N_BIG];
	for (int i = 0; i < N_BIG; i++) {
		size_t n = 0;
		double a = sbb_now();
		if (post(c, g_port, "/api/paperclip-sandbox/v2/exec", cb, NULL, &n) != 200 ||
		    n < BIG) {
			fprintf(stderr, "bench_paperclip: the bridge's 100 MiB exec failed\n");
			return 1;
		}
		ours[i] = sbb_now() - a;
		cstream[i] = ours[i] - g_ttfb;
		n = 0;
		a = sbb_now();
		if (post(c, g_port, npath, nb, NULL, &n) != 200 || n < 2 * BIG) {
			fprintf(stderr, "bench_paperclip: the native 100 MiB exec failed\n");
			return 1;
		}
		nat[i] = sbb_now() - a;
		nstream[i] = nat[i] - g_ttfb;
		n = 0;
		a = sbb_now();
		if (post(c, bport, "/big", NULL, NULL, &n) != 200 || n != BIG) {
			fprintf(stderr, "bench_paperclip: the baseline responder failed\n");
			return 1;
		}
		base[i] = sbb_now() - a;
	}
	double bmed = sbb_median(base, N_BIG);
	char b[64];
	snprintf(b, sizeof b, "%.0f MiB/s (cat via loopback HTTP)", 100.0 / bmed);
	const struct {
		const char *figure;
		double *v;
	} rows[] = {
	    {"100 MiB bridge JSON exec result throughput, exec included (median of 5)", ours},
	    {"  of which the result streamed (after the first byte)", cstream},
	    {"100 MiB native JSON exec result throughput (text + base64), exec included", nat},
	    {"  of which the result streamed (after the first byte)", nstream},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		double m = sbb_median(rows[i].v, N_BIG);
		char o[64], r[64];
		snprintf(o, sizeof o, "%.0f MiB/s", 100.0 / m);
		snprintf(r, sizeof r, "%.2fx (target >= 0.5x)", bmed / m);
		sbb_row(rows[i].figure, o, b, r);
	}

	/* Destroyed, not released: its sandbox and freezer group go now. */
	sb_buf_clear(&out);
	char *dpath = sb_strfmt("/v1/leases/%s", id);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE");
	post(c, g_port, dpath, NULL, &out, NULL);
	curl_easy_cleanup(c);
	sb_server_free(s);
	sb_buf_deinit(&out);
	char *rm = sb_strfmt("rm -rf '%s'", dir);
	if (system(rm) != 0)
		return 1;
	return 0;
}
