/* Server test helpers (srvtest.h): daemon processes and a libcurl client that can sign
 * requests with the library's signer and tamper with every signed part. */
#include "srvtest.h"

#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Daemons still running when the test program exits (a failed assertion jumps past the
 * test's own sbt_daemon_stop): stopped at exit so no daemon or sandbox outlives the test. */
#define MAX_LIVE 16
static sbt_daemon g_live[MAX_LIVE];
static bool g_atexit;

static void stop_quietly(sbt_daemon *d);

static void stop_leftovers(void)
{
	for (size_t i = 0; i < MAX_LIVE; i++)
		if (g_live[i].pid > 0)
			stop_quietly(&g_live[i]);
}

static void untrack(pid_t pid)
{
	for (size_t i = 0; i < MAX_LIVE; i++) {
		if (g_live[i].pid == pid && pid > 0) {
			free(g_live[i].dir);
			free(g_live[i].sock);
			free(g_live[i].cert);
			memset(&g_live[i], 0, sizeof g_live[i]);
		}
	}
}

/* Copies what stopping needs: d itself may live on a stack frame a failure unwinds. */
static void track(const sbt_daemon *d)
{
	if (!g_atexit) {
		atexit(stop_leftovers);
		g_atexit = true;
	}
	for (size_t i = 0; i < MAX_LIVE; i++) {
		if (g_live[i].pid == 0) {
			g_live[i] = *d;
			g_live[i].dir = sb_xstrdup(d->dir);
			g_live[i].sock = sb_xstrdup(d->sock);
			g_live[i].state_dir = NULL;
			g_live[i].port_file = NULL;
			g_live[i].cert = d->cert ? sb_xstrdup(d->cert) : NULL;
			return;
		}
	}
}

static void spawn(sbt_daemon *d)
{
	char *prog = sbt_build_path("sandbar-serve-test");
	char *token = sbt_path(d->dir, "token");
	char *keys = sbt_path(d->dir, "keys");
	unlink(d->port_file);
	char *argv[40];
	int n = 0;
	char ka[32], mj[32], mu[32], mc[32], mw[32], ht[32];
	argv[n++] = prog;
	argv[n++] = "--listen";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "--socket";
	argv[n++] = d->sock;
	argv[n++] = "--state-dir";
	argv[n++] = d->state_dir;
	argv[n++] = "--port-file";
	argv[n++] = d->port_file;
	argv[n++] = "--expected-host";
	argv[n++] = SBT_HOST;
	argv[n++] = "--reap-ms";
	argv[n++] = "200";
	if (!d->opts.no_token) {
		argv[n++] = "--token-file";
		argv[n++] = token;
		argv[n++] = "--hmac-keys";
		argv[n++] = keys;
	}
	if (d->opts.keepalive_ms) {
		snprintf(ka, sizeof ka, "%d", d->opts.keepalive_ms);
		argv[n++] = "--keepalive-ms";
		argv[n++] = ka;
	}
	if (d->opts.max_json_bytes) {
		snprintf(mj, sizeof mj, "%ld", d->opts.max_json_bytes);
		argv[n++] = "--max-json-bytes";
		argv[n++] = mj;
	}
	if (d->opts.max_upload_bytes) {
		snprintf(mu, sizeof mu, "%ld", d->opts.max_upload_bytes);
		argv[n++] = "--max-upload-bytes";
		argv[n++] = mu;
	}
	if (d->opts.max_connections) {
		snprintf(mc, sizeof mc, "%d", d->opts.max_connections);
		argv[n++] = "--max-connections";
		argv[n++] = mc;
	}
	if (d->opts.max_waiting_per_peer) {
		snprintf(mw, sizeof mw, "%d", d->opts.max_waiting_per_peer);
		argv[n++] = "--max-waiting-per-peer";
		argv[n++] = mw;
	}
	if (d->opts.header_timeout_ms) {
		snprintf(ht, sizeof ht, "%ld", d->opts.header_timeout_ms);
		argv[n++] = "--header-timeout-ms";
		argv[n++] = ht;
	}
	char mo[32];
	if (d->opts.max_output) {
		snprintf(mo, sizeof mo, "%ld", d->opts.max_output);
		argv[n++] = "--max-output";
		argv[n++] = mo;
	}
	char wm[32];
	if (d->opts.warm) {
		snprintf(wm, sizeof wm, "%d", d->opts.warm);
		argv[n++] = "--warm";
		argv[n++] = wm;
	}
	char *cert = NULL, *key = NULL;
	if (d->opts.tls) {
		cert = sbt_path(d->dir, "cert.pem");
		key = sbt_path(d->dir, "key.pem");
		argv[n++] = "--tls-cert";
		argv[n++] = cert;
		argv[n++] = "--tls-key";
		argv[n++] = key;
	}
	argv[n] = NULL;
	char *log = sbt_path(d->dir, "daemon.log");
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd >= 0) {
			dup2(fd, 2);
			dup2(fd, 1);
		}
		execv(prog, argv);
		_exit(127);
	}
	d->pid = pid;
	/* Wait for the port file (written once both sockets listen). */
	for (int i = 0; i < 3000; i++) {
		size_t len = 0;
		char *p = sbt_read(d->dir, "port", &len);
		if (p) {
			d->port = atoi(p);
			free(p);
			break;
		}
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			char *l = sbt_read(d->dir, "daemon.log", NULL);
			print_error("daemon exited early: %s\n", l ? l : "");
			free(l);
			fail();
		}
		usleep(10000); /* poll interval: nothing notifies this condition */
	}
	assert_true(d->port > 0);
	track(d);
	free(prog);
	free(token);
	free(keys);
	free(cert);
	free(key);
	free(log);
}

void sbt_daemon_start(sbt_daemon *d, const sbt_daemon_opts *o)
{
	memset(d, 0, sizeof *d);
	if (o)
		d->opts = *o;
	d->dir = sbt_mkdtemp("srv");
	/* d->dir stays 0700 (mkdtemp): sandboxes reach their lease directories wherever the state
	 * directory is (issue 12). */
	d->state_dir = sbt_path(d->dir, "state");
	d->sock = sbt_path(d->dir, "sock");
	d->port_file = sbt_path(d->dir, "port");
	/* secrets 0600: the daemon refuses anything readable by others */
	sbt_write(d->dir, "token", SBT_TOKEN "\n", strlen(SBT_TOKEN "\n"), 0600);
	const char *keys =
	    "# test keys\n" SBT_KEY1 " " SBT_SECRET1 "\n" SBT_KEY2 " " SBT_SECRET2 "\n";
	sbt_write(d->dir, "keys", keys, strlen(keys), 0600);
	if (d->opts.tls) {
		assert_int_equal(
		    sbt_sh("cd '%s' && openssl req -x509 -newkey rsa:2048 -nodes -days 2 "
		           "-subj /CN=localhost -addext "
		           "subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout key.pem "
		           "-out cert.pem >/dev/null 2>&1",
		           d->dir),
		    0);
		d->cert = sbt_path(d->dir, "cert.pem");
	}
	spawn(d);
}

void sbt_daemon_restart(sbt_daemon *d)
{
	d->port = 0;
	spawn(d);
}

int sbt_daemon_signal(sbt_daemon *d, int sig)
{
	if (d->pid <= 0)
		return -1;
	kill(d->pid, sig);
	int st = 0;
	while (waitpid(d->pid, &st, 0) < 0 && errno == EINTR)
		;
	untrack(d->pid);
	d->pid = 0;
	return st;
}

static void destroy_all_leases(sbt_daemon *d)
{
	long status = 0;
	json_t *j = sbt_call(d, "GET", "/v1/leases", NULL, &status);
	json_t *arr = json_object_get(j, "leases");
	size_t i;
	json_t *l;
	json_array_foreach(arr, i, l)
	{
		char *t =
		    sb_strfmt("/v1/leases/%s?force=1", json_string_value(json_object_get(l, "id")));
		json_decref(sbt_call(d, "DELETE", t, NULL, &status));
		free(t);
	}
	json_decref(j);
}

static void stop_quietly(sbt_daemon *d)
{
	destroy_all_leases(d);
	pid_t pid = d->pid;
	kill(pid, SIGTERM);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!getenv("SBT_KEEP"))
		sb_err_free(sb_fs_rm_rf(d->dir));
	untrack(pid);
}

void sbt_daemon_stop(sbt_daemon *d)
{
	if (d->pid > 0) {
		destroy_all_leases(d);
		/* A clean drain exits 0; a sanitizer report in the daemon would not. */
		int st = sbt_daemon_signal(d, SIGTERM);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			char *log = sbt_read(d->dir, "daemon.log", NULL);
			print_error("daemon did not exit cleanly (status %d):\n%s\n", st,
			            log ? log : "");
			free(log);
			fail();
		}
	}
	free(d->state_dir);
	free(d->sock);
	free(d->port_file);
	free(d->cert);
	if (getenv("SBT_KEEP"))
		print_message("kept %s\n", d->dir); /* debugging: the daemon log stays */
	else
		sbt_rmtree(d->dir);
	memset(d, 0, sizeof *d);
}

void sbt_group_start(sbt_daemon *d, const sbt_daemon_opts *o)
{
	curl_global_init(CURL_GLOBAL_ALL);
	sbt_daemon_start(d, o);
}

void sbt_group_stop(sbt_daemon *d)
{
	sbt_daemon_stop(d);
	curl_global_cleanup();
}

void sbt_resp_deinit(sbt_resp *r)
{
	sb_buf_deinit(&r->body);
	sb_buf_deinit(&r->headers);
	json_decref(r->json);
	memset(r, 0, sizeof *r);
}

typedef struct wctx {
	sbt_resp *out;
	size_t abort_after;
	FILE *file;
} wctx;

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
	wctx *w = ud;
	size_t n = sz * nm;
	if (w->file) {
		if (fwrite(p, 1, n, w->file) != n)
			return 0;
		w->out->body.len += 0;
		return n;
	}
	sb_buf_append(&w->out->body, p, n);
	if (w->abort_after && w->out->body.len >= w->abort_after)
		return 0;
	return n;
}

static size_t on_header(char *p, size_t sz, size_t nm, void *ud)
{
	wctx *w = ud;
	sb_buf_append(&w->out->headers, p, sz * nm);
	return sz * nm;
}

typedef struct easy_priv {
	wctx w;
	char *url;
	FILE *in;
} easy_priv;

static void sign(const sbt_req *rq, const void *body, size_t blen, struct curl_slist **h)
{
	const char *sbody = rq->sign_body ? rq->sign_body : NULL;
	char digest[SB_SHA256_HEX_LEN];
	if (sbody)
		sb_sha256_hex(sbody, strlen(sbody), digest);
	else if (rq->in_file) {
		unsigned char d[SB_SHA256_LEN];
		SB_ASSERT_OK(sb_sha256_file(rq->in_file, d));
		sb_hex_encode(d, sizeof d, digest);
	} else
		sb_sha256_hex(body ? body : "", blen, digest);
	const char *key = rq->key_id ? rq->key_id : SBT_KEY1;
	const char *secret = rq->secret ? rq->secret : SBT_SECRET1;
	sb_hmac_headers hh;
	SB_ASSERT_OK(sb_hmac_sign_request(key, secret, strlen(secret), rq->method, rq->target,
	                                  rq->host ? rq->host : SBT_HOST, digest,
	                                  sb_wall_ms() / 1000 + rq->ts_offset_s, rq->nonce, &hh));
	char *v;
	v = sb_strfmt("Authorization: %s", hh.authorization);
	*h = curl_slist_append(*h, v);
	free(v);
	v = sb_strfmt("X-Sandbar-Timestamp: %s", hh.timestamp);
	*h = curl_slist_append(*h, v);
	free(v);
	v = sb_strfmt("X-Sandbar-Nonce: %s", hh.nonce);
	*h = curl_slist_append(*h, v);
	free(v);
	v = sb_strfmt("X-Sandbar-Content-SHA256: %s", hh.content_sha256);
	*h = curl_slist_append(*h, v);
	free(v);
}

CURL *sbt_easy(sbt_daemon *d, const sbt_req *rq, sbt_resp *out, struct curl_slist **hdrs)
{
	memset(out, 0, sizeof *out);
	CURL *c = curl_easy_init();
	assert_non_null(c);
	easy_priv *p = sb_xcalloc(1, sizeof *p);
	p->w.out = out;
	p->w.abort_after = rq->abort_after;
	if (rq->out_file) {
		p->w.file = fopen(rq->out_file, "wbe");
		assert_non_null(p->w.file);
	}
	bool tcp = rq->tcp || d->opts.tls;
	if (tcp)
		p->url = sb_strfmt("%s://127.0.0.1:%d%s", d->opts.tls ? "https" : "http", d->port,
		                   rq->target);
	else
		p->url = sb_strfmt("http://localhost%s", rq->target);
	curl_easy_setopt(c, CURLOPT_URL, p->url);
	if (!tcp)
		curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, d->sock);
	if (d->opts.tls) {
		curl_easy_setopt(c, CURLOPT_CAINFO, d->cert);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST,
		                 0L); /* CN=localhost vs 127.0.0.1 SAN ok */
	}
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq->method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &p->w);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &p->w);
	curl_easy_setopt(c, CURLOPT_PRIVATE, p);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
	size_t blen = rq->body ? (rq->body_len ? rq->body_len : strlen(rq->body)) : 0;
	if (rq->in_file) {
		p->in = fopen(rq->in_file, "rbe");
		assert_non_null(p->in);
		struct stat st;
		assert_int_equal(fstat(fileno(p->in), &st), 0);
		curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c, CURLOPT_READDATA, p->in);
		curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)st.st_size);
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq->method);
	} else if (rq->body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
	}
	struct curl_slist *h = NULL;
	h = curl_slist_append(h, "Expect:");
	if (rq->body)
		h = curl_slist_append(h, "Content-Type: application/json");
	if (rq->accept) {
		char *v = sb_strfmt("Accept: %s", rq->accept);
		h = curl_slist_append(h, v);
		free(v);
	}
	if (rq->auth != SBT_AUTH_NONE || rq->host) {
		char *v = sb_strfmt("Host: %s", rq->host ? rq->host : SBT_HOST);
		h = curl_slist_append(h, v);
		free(v);
	}
	if (rq->auth == SBT_AUTH_BEARER) {
		char *v = sb_strfmt("Authorization: Bearer %s", rq->token ? rq->token : SBT_TOKEN);
		h = curl_slist_append(h, v);
		free(v);
	} else if (rq->auth == SBT_AUTH_HMAC) {
		sign(rq, rq->body, blen, &h);
	}
	for (size_t i = 0; rq->headers && rq->headers[i]; i++)
		h = curl_slist_append(h, rq->headers[i]);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	*hdrs = h;
	return c;
}

static void easy_done(CURL *c, sbt_resp *out, struct curl_slist *h)
{
	easy_priv *p = NULL;
	curl_easy_getinfo(c, CURLINFO_PRIVATE, (char **)&p);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
	if (p->w.file)
		fclose(p->w.file);
	if (p->in)
		fclose(p->in);
	free(p->url);
	free(p);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	char *ct = sbt_resp_header(out, "Content-Type");
	if (ct && strstr(ct, "application/json") && out->body.len)
		out->json = json_loadb(out->body.data, out->body.len, 0, NULL);
	free(ct);
}

long sbt_http(sbt_daemon *d, const sbt_req *rq, sbt_resp *out)
{
	struct curl_slist *h = NULL;
	CURL *c = sbt_easy(d, rq, out, &h);
	out->curl_rc = curl_easy_perform(c);
	easy_done(c, out, h);
	return out->curl_rc == CURLE_OK || rq->abort_after ? out->status : 0;
}

void sbt_easy_finish(CURL *c, sbt_resp *out, struct curl_slist *h)
{
	easy_done(c, out, h);
}

json_t *sbt_call(sbt_daemon *d, const char *method, const char *target, const char *body,
                 long *status)
{
	sbt_req rq = {.method = method, .target = target, .body = body};
	sbt_resp r;
	*status = sbt_http(d, &rq, &r);
	json_t *j = r.json;
	r.json = NULL;
	sbt_resp_deinit(&r);
	return j;
}

char *sbt_resp_header(const sbt_resp *r, const char *name)
{
	const char *p = r->headers.data;
	size_t nl = strlen(name);
	char *found = NULL;
	while (p && *p) {
		const char *e = strstr(p, "\r\n");
		if (!e)
			break;
		if ((size_t)(e - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;
			while (*v == ' ')
				v++;
			free(found);
			found = sb_xstrndup(v, (size_t)(e - v));
		}
		p = e + 2;
	}
	return found;
}

size_t sbt_sse_parse(const char *text, size_t len, sbt_event **out, size_t *keepalives)
{
	*out = NULL;
	size_t n = 0, ka = 0;
	size_t i = 0;
	while (i < len) {
		const char *end = NULL;
		for (size_t k = i; k + 1 < len; k++)
			if (text[k] == '\n' && text[k + 1] == '\n') {
				end = text + k;
				break;
			}
		if (!end)
			break;
		char *block = sb_xstrndup(text + i, (size_t)(end - (text + i)));
		i = (size_t)(end - text) + 2;
		if (block[0] == ':') {
			ka++;
			free(block);
			continue;
		}
		sbt_event ev = {0};
		char *save = NULL;
		for (char *line = strtok_r(block, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save)) {
			if (!strncmp(line, "event: ", 7))
				ev.type = sb_xstrdup(line + 7);
			else if (!strncmp(line, "id: ", 4))
				ev.id = sb_xstrdup(line + 4);
			else if (!strncmp(line, "data: ", 6))
				ev.data = json_loads(line + 6, 0, NULL);
		}
		free(block);
		*out = sb_xrealloc(*out, (n + 1) * sizeof **out);
		(*out)[n++] = ev;
	}
	if (keepalives)
		*keepalives = ka;
	return n;
}

void sbt_events_free(sbt_event *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].type);
		free(v[i].id);
		json_decref(v[i].data);
	}
	free(v);
}

const char *sbt_jstr(const json_t *j, const char *k)
{
	return json_string_value(json_object_get(j, k));
}

char *sbt_acquire(sbt_daemon *d, const char *acquisition_id)
{
	char *body = sb_strfmt("{\"acquisition_id\":\"%s\",\"ttl_s\":600}", acquisition_id);
	long st = 0;
	json_t *j = sbt_call(d, "POST", "/v1/leases", body, &st);
	free(body);
	if (st != 200) {
		char *s = j ? json_dumps(j, 0) : NULL;
		print_error("acquire failed: %ld %s\n", st, s ? s : "");
		free(s);
		fail();
	}
	char *id = sb_xstrdup(json_string_value(json_object_get(j, "id")));
	json_decref(j);
	return id;
}

bool sbt_sandbox_ok(sbt_daemon *d)
{
	long st = 0;
	json_t *j = sbt_call(d, "GET", "/v1/health", NULL, &st);
	bool ok = json_is_true(json_object_get(json_object_get(j, "sandbox"), "ok"));
	json_decref(j);
	return ok;
}

int sbt_tcp_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	return fd;
}
