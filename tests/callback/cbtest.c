/* Helpers for the callback bridge tests (see cbtest.h). */
#include "cbtest.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char cbt_client_script[] =
    "m=$1; p=$2; shift 2; f=$(mktemp); "
    "if [ \"$HAS_BODY\" = 1 ]; then set -- --data-binary @- \"$@\"; fi; "
    "c=$(curl -sS -o \"$f\" -w '%{http_code}' -X \"$m\" "
    "-H \"Authorization: Bearer ${TOK-$SANDBAR_CALLBACK_TOKEN}\" \"$@\" "
    "\"$SANDBAR_CALLBACK_URL$p\"); echo \"HTTP=$c\" >&2; cat \"$f\"; rm -f \"$f\"";

/* ------------------------------------------------------------ upstream */

typedef struct up_conn {
	cbt_upstream *u;
	int fd;
} up_conn;

static void send_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		c += w;
		n -= (size_t)w;
	}
}

static void *up_conn_main(void *arg)
{
	up_conn *k = arg;
	cbt_upstream *u = k->u;
	sb_buf b = SB_BUF_INIT;
	char tmp[65536];
	size_t hlen = 0;
	bool keep = true;
next:
	for (;;) {
		const char *e = b.len ? memmem(b.data, b.len, "\r\n\r\n", 4) : NULL;
		if (e) {
			hlen = (size_t)(e - b.data) + 4;
			break;
		}
		ssize_t n = recv(k->fd, tmp, sizeof tmp, 0);
		if (n <= 0)
			goto out;
		sb_buf_append(&b, tmp, (size_t)n);
	}
	cbt_seen s;
	memset(&s, 0, sizeof s);
	char target[8192] = "";
	sscanf(b.data, "%15s %8191s", s.method, target);
	s.target = sb_xstrdup(target);
	const char *hs = memchr(b.data, '\n', hlen);
	s.headers = sb_strfmt("%.*s", (int)(hlen - (size_t)(hs + 1 - b.data)), hs + 1);
	size_t clen = 0;
	const char *cl = strcasestr(s.headers, "\ncontent-length:");
	if (!cl && strncasecmp(s.headers, "content-length:", 15) == 0)
		cl = s.headers - 1;
	if (cl)
		clen = strtoul(cl + 16, NULL, 10);
	while (b.len - hlen < clen) {
		ssize_t n = recv(k->fd, tmp, sizeof tmp, 0);
		if (n <= 0)
			break;
		sb_buf_append(&b, tmp, (size_t)n);
	}
	sb_buf_append(&s.body, b.data + hlen, b.len - hlen < clen ? b.len - hlen : clen);
	size_t used = hlen + (b.len - hlen < clen ? b.len - hlen : clen);
	memmove(b.data, b.data + used, b.len - used);
	b.len -= used;
	keep = !strcasestr(s.headers, "\nconnection: close") &&
	       strncasecmp(s.headers, "connection: close", 17) != 0;
	char ctype[256] = "application/octet-stream";
	const char *ct = strcasestr(s.headers, "content-type:");
	if (ct) {
		ct += 13;
		while (*ct == ' ')
			ct++;
		snprintf(ctype, sizeof ctype, "%.*s", (int)strcspn(ct, "\r\n"), ct);
	}
	bool slow = strncmp(s.target, "/api/slow", 9) == 0;
	long ms = 0;
	const char *q = strstr(s.target, "ms=");
	if (q)
		ms = strtol(q + 3, NULL, 10);
	/* /api/drop*: read, then close without an answer; /api/closes*: answer as if the
	 * connection stayed open, then close it (a stale keep-alive connection) */
	bool drop = strncmp(s.target, "/api/drop", 9) == 0;
	bool closes = strncmp(s.target, "/api/closes", 11) == 0;
	bool echo =
	    strncmp(s.target, "/api/echo", 9) == 0 || strncmp(s.target, "/api/blobs", 10) == 0;
	char *path = sb_xstrdup(s.target);
	sb_buf reply_body = SB_BUF_INIT;
	if (echo)
		sb_buf_append(&reply_body, s.body.data ? s.body.data : "", s.body.len);
	pthread_mutex_lock(&u->mu);
	u->seen = sb_xrealloc(u->seen, (u->nseen + 1) * sizeof *u->seen);
	u->seen[u->nseen++] = s;
	if (slow)
		u->slow_arrived++;
	pthread_cond_broadcast(&u->cond);
	pthread_mutex_unlock(&u->mu);
	if (drop) {
		free(path);
		sb_buf_deinit(&reply_body);
		goto out;
	}
	if (slow && ms > 0) {
		/* the upstream being slow is what these tests are about */
		struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	if (!echo) {
		char *j = sb_strfmt("{\"ok\":true,\"path\":\"%s\"}", path);
		sb_buf_appends(&reply_body, j);
		free(j);
		snprintf(ctype, sizeof ctype, "application/json");
	}
	char *head = sb_strfmt("HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	                       "X-Upstream-Private: drop-me\r\n%s\r\n",
	                       ctype, reply_body.len, keep ? "" : "Connection: close\r\n");
	send_all(k->fd, head, strlen(head));
	send_all(k->fd, reply_body.data ? reply_body.data : "", reply_body.len);
	free(head);
	free(path);
	sb_buf_deinit(&reply_body);
	if (keep && !closes)
		goto next; /* HTTP/1.1 keep-alive: the next request on this connection */
out:
	sb_buf_deinit(&b);
	close(k->fd);
	free(k);
	return NULL;
}

static void *up_main(void *arg)
{
	cbt_upstream *u = arg;
	for (;;) {
		int fd = accept4(u->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return NULL; /* closed by cbt_upstream_stop */
		}
		pthread_mutex_lock(&u->mu);
		bool stop = u->stop;
		u->accepted++;
		pthread_mutex_unlock(&u->mu);
		if (stop) {
			close(fd);
			return NULL;
		}
		up_conn *k = sb_xcalloc(1, sizeof *k);
		k->u = u;
		k->fd = fd;
		pthread_t t;
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &a, up_conn_main, k) != 0) {
			close(fd);
			free(k);
		}
		pthread_attr_destroy(&a);
	}
}

void cbt_upstream_start(cbt_upstream *u)
{
	memset(u, 0, sizeof *u);
	pthread_mutex_init(&u->mu, NULL);
	pthread_cond_init(&u->cond, NULL);
	u->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(u->fd >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(u->fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(u->fd, 512), 0);
	socklen_t len = sizeof a;
	assert_int_equal(getsockname(u->fd, (struct sockaddr *)&a, &len), 0);
	u->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&u->thread, NULL, up_main, u), 0);
}

void cbt_upstream_stop(cbt_upstream *u)
{
	pthread_mutex_lock(&u->mu);
	u->stop = true;
	pthread_mutex_unlock(&u->mu);
	shutdown(u->fd, SHUT_RDWR);
	pthread_join(u->thread, NULL);
	close(u->fd);
	for (size_t i = 0; i < u->nseen; i++) {
		free(u->seen[i].target);
		free(u->seen[i].headers);
		sb_buf_deinit(&u->seen[i].body);
	}
	free(u->seen);
	u->seen = NULL;
	u->nseen = 0;
}

size_t cbt_upstream_count(cbt_upstream *u, const char *prefix)
{
	size_t n = 0;
	pthread_mutex_lock(&u->mu);
	for (size_t i = 0; i < u->nseen; i++)
		n += !prefix || strncmp(u->seen[i].target, prefix, strlen(prefix)) == 0;
	pthread_mutex_unlock(&u->mu);
	return n;
}

int cbt_upstream_accepted(cbt_upstream *u)
{
	pthread_mutex_lock(&u->mu);
	int n = u->accepted;
	pthread_mutex_unlock(&u->mu);
	return n;
}

void cbt_upstream_wait_slow(cbt_upstream *u, int n)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 30;
	pthread_mutex_lock(&u->mu);
	while (u->slow_arrived < n)
		if (pthread_cond_timedwait(&u->cond, &u->mu, &dl) == ETIMEDOUT)
			break;
	int got = u->slow_arrived;
	pthread_mutex_unlock(&u->mu);
	if (got < n)
		fail_msg("the upstream saw %d slow requests within 30 s, wanted %d", got, n);
}

cbt_seen *cbt_upstream_last(cbt_upstream *u, const char *prefix)
{
	cbt_seen *out = NULL;
	pthread_mutex_lock(&u->mu);
	for (size_t i = u->nseen; i-- > 0 && !out;)
		if (strncmp(u->seen[i].target, prefix, strlen(prefix)) == 0) {
			out = sb_xcalloc(1, sizeof *out);
			memcpy(out->method, u->seen[i].method, sizeof out->method);
			out->target = sb_xstrdup(u->seen[i].target);
			out->headers = sb_xstrdup(u->seen[i].headers);
			sb_buf_append(&out->body, u->seen[i].body.data ? u->seen[i].body.data : "",
			              u->seen[i].body.len);
		}
	pthread_mutex_unlock(&u->mu);
	return out;
}

void cbt_seen_free(cbt_seen *s)
{
	if (!s)
		return;
	free(s->target);
	free(s->headers);
	sb_buf_deinit(&s->body);
	free(s);
}

bool cbt_upstream_saw(cbt_upstream *u, const char *needle)
{
	bool hit = false;
	pthread_mutex_lock(&u->mu);
	for (size_t i = 0; i < u->nseen && !hit; i++)
		hit = strstr(u->seen[i].target, needle) || strstr(u->seen[i].headers, needle) ||
		      (u->seen[i].body.len &&
		       memmem(u->seen[i].body.data, u->seen[i].body.len, needle, strlen(needle)));
	pthread_mutex_unlock(&u->mu);
	return hit;
}

char *cbt_write_config(clit *t, const cbt_upstream *u)
{
	char *text = sb_strfmt("# written by the callback tests\n"
	                       "[serve]\n"
	                       "[callback up]\n"
	                       "upstream = http://127.0.0.1:%d\n"
	                       "credential = env:" CBT_SECRET_ENV "\n"
	                       "timeout_ms = 30000\n"
	                       "[run]\n",
	                       u->port);
	sbt_write_str(t->root, "config", text);
	free(text);
	return sbt_path(t->root, "config");
}

/* ------------------------------------------------------------ daemon */

static bool daemon_healthy(cbt_daemon *d)
{
	sb_buf out = SB_BUF_INIT;
	long st = cbt_api(d, "GET", "/v1/health", NULL, &out);
	sb_buf_deinit(&out);
	return st == 200;
}

static void daemon_spawn(cbt_daemon *d)
{
	char *bin = sbt_build_path("sandbar");
	char listen[64];
	snprintf(listen, sizeof listen, "127.0.0.1:%d", d->port);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		FILE *f = freopen(d->log, "a", stderr);
		(void)f;
		setenv("SANDBAR_TOKEN", CBT_TOKEN, 1);
		setenv("SANDBAR_CONFIG", d->config, 1);
		setenv(CBT_SECRET_ENV, CBT_SECRET, 1);
		unsetenv("SANDBAR_TOKEN_FILE");
		execl(bin, bin, "serve", "--listen", listen, "--state-dir", d->state, (char *)NULL);
		_exit(127);
	}
	free(bin);
	d->pid = pid;
	for (int i = 0; i < 600; i++) {
		if (daemon_healthy(d))
			return;
		int ws;
		if (waitpid(pid, &ws, WNOHANG) == pid) {
			d->pid = 0;
			fail_msg("sandbar serve exited at start; see %s", d->log);
		}
		struct timespec ts = {0, 50 * 1000000L};
		nanosleep(&ts, NULL);
	}
	fail_msg("sandbar serve did not answer /v1/health within 30 s; see %s", d->log);
}

void cbt_daemon_start(cbt_daemon *d, clit *t, const char *config)
{
	memset(d, 0, sizeof *d);
	d->t = t;
	d->config = sb_xstrdup(config);
	d->state = sbt_path(t->root, "dstate");
	d->log = sbt_path(t->root, "daemon.log");
	d->port = sbt_free_port();
	daemon_spawn(d);
}

void cbt_daemon_kill(cbt_daemon *d)
{
	if (d->pid > 0) {
		kill(d->pid, SIGKILL);
		waitpid(d->pid, NULL, 0);
		d->pid = 0;
	}
}

void cbt_daemon_restart(cbt_daemon *d)
{
	daemon_spawn(d);
}

void cbt_daemon_stop(cbt_daemon *d)
{
	if (!d->state)
		return;
	if (d->pid > 0) {
		kill(d->pid, SIGTERM);
		waitpid(d->pid, NULL, 0);
		d->pid = 0;
	}
	clit_destroy_leases(d->t, d->state);
	free(d->config);
	free(d->state);
	free(d->log);
	memset(d, 0, sizeof *d);
}

static size_t on_data(char *p, size_t s, size_t n, void *ud)
{
	sb_buf_append(ud, p, s * n);
	return s * n;
}

long cbt_api(cbt_daemon *d, const char *method, const char *target, const char *json, sb_buf *out)
{
	CURL *c = curl_easy_init();
	char *url = sb_strfmt("http://127.0.0.1:%d%s", d->port, target);
	struct curl_slist *h = curl_slist_append(NULL, "Authorization: Bearer " CBT_TOKEN);
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "Accept: application/json");
	sb_buf sink = SB_BUF_INIT;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
	if (json)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out ? out : &sink);
	long st = 0;
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	free(url);
	sb_buf_deinit(&sink);
	return st;
}

char *cbt_acquire(cbt_daemon *d, const char *callback_json, long *status)
{
	char *aid = sb_random_id("acq-");
	char *body = sb_strfmt("{\"acquisition_id\":\"%s\",\"callback\":%s}", aid, callback_json);
	sb_buf out = SB_BUF_INIT;
	long st = cbt_api(d, "POST", "/v1/leases", body, &out);
	if (status)
		*status = st;
	char *id = NULL;
	if (st == 200) {
		json_t *j = clit_json(sb_buf_cstr(&out));
		const char *s = json_string_value(json_object_get(j, "id"));
		if (!s)
			s = json_string_value(json_object_get(j, "lease_id"));
		assert_non_null(s);
		id = sb_xstrdup(s);
		json_decref(j);
	} else if (!status) {
		fail_msg("acquire answered %ld: %s", st, sb_buf_cstr(&out));
	}
	sb_buf_deinit(&out);
	free(body);
	free(aid);
	return id;
}

void cbt_result_deinit(cbt_result *r)
{
	sb_buf_deinit(&r->body);
	sb_buf_deinit(&r->err);
}

void cbt_call(cbt_daemon *d, const char *lease, const char *method, const char *path,
              const void *body, size_t blen, const char *const *curl_args, const char *const *env,
              const char *exec_id, cbt_result *res)
{
	memset(res, 0, sizeof *res);
	json_t *argv =
	    json_pack("[s,s,s,s,s,s]", "sh", "-c", cbt_client_script, "sh", method, path);
	for (size_t i = 0; curl_args && curl_args[i]; i++)
		json_array_append_new(argv, json_string(curl_args[i]));
	json_t *envj = json_object();
	for (size_t i = 0; env && env[i]; i++) {
		const char *eq = strchr(env[i], '=');
		char *k = sb_strfmt("%.*s", (int)(eq - env[i]), env[i]);
		json_object_set_new(envj, k, json_string(eq + 1));
		free(k);
	}
	json_t *req = json_pack("{s:o,s:o}", "argv", argv, "env", envj);
	if (body) {
		json_object_set_new(envj, "HAS_BODY", json_string("1"));
		sb_buf b64 = SB_BUF_INIT;
		sb_b64_encode(body, blen, &b64);
		json_object_set_new(req, "stdin", json_string(sb_buf_cstr(&b64)));
		sb_buf_deinit(&b64);
	}
	if (exec_id)
		json_object_set_new(req, "exec_id", json_string(exec_id));
	char *text = sb_json_dumps(req);
	json_decref(req);
	char *target = sb_strfmt("/v1/leases/%s/exec", lease);
	sb_buf out = SB_BUF_INIT;
	long st = cbt_api(d, "POST", target, text, &out);
	free(target);
	free(text);
	if (st != 200) {
		res->daemon_failed = true;
		sb_buf_deinit(&out);
		return;
	}
	json_t *j = clit_json(sb_buf_cstr(&out));
	sb_buf_deinit(&out);
	const char *o = json_string_value(json_object_get(j, "stdout_b64"));
	const char *e = json_string_value(json_object_get(j, "stderr_b64"));
	if (o)
		SB_ASSERT_OK(sb_b64_decode(o, strlen(o), &res->body));
	if (e)
		SB_ASSERT_OK(sb_b64_decode(e, strlen(e), &res->err));
	json_decref(j);
	const char *h = res->err.len ? strstr(sb_buf_cstr(&res->err), "HTTP=") : NULL;
	res->http = h ? atoi(h + 5) : 0;
}

char *cbt_sh(cbt_daemon *d, const char *lease, const char *script)
{
	json_t *req = json_pack("{s:[s,s,s]}", "argv", "sh", "-c", script);
	char *text = sb_json_dumps(req);
	json_decref(req);
	char *target = sb_strfmt("/v1/leases/%s/exec", lease);
	sb_buf out = SB_BUF_INIT;
	long st = cbt_api(d, "POST", target, text, &out);
	free(target);
	free(text);
	if (st != 200)
		fail_msg("exec answered %ld: %s", st, sb_buf_cstr(&out));
	json_t *j = clit_json(sb_buf_cstr(&out));
	sb_buf_deinit(&out);
	const char *o = json_string_value(json_object_get(j, "stdout_b64"));
	sb_buf b = SB_BUF_INIT;
	if (o)
		SB_ASSERT_OK(sb_b64_decode(o, strlen(o), &b));
	json_decref(j);
	char *s = sb_xstrdup(sb_buf_cstr(&b));
	sb_buf_deinit(&b);
	return s;
}
