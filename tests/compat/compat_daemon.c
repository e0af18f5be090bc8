/* See compat_daemon.h. */
#include "compat_daemon.h"

#include "testutil.h"

#include <sandbar/sandbox.h>
#include <sandbar/server.h>

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

void ct_daemon_start(ct_daemon *d, const char *token, const char *hmac_keys_file)
{
	ct_daemon_start_ex(d, token, hmac_keys_file, NULL, 0);
}

void ct_daemon_start_ex(ct_daemon *d, const char *token, const char *hmac_keys_file,
                        const char *expected_host, int64_t keepalive_ms)
{
	ct_daemon_opts o = {.token = token,
	                    .hmac_keys_file = hmac_keys_file,
	                    .expected_host = expected_host,
	                    .keepalive_ms = keepalive_ms};
	ct_daemon_start_opts(d, &o);
}

void ct_daemon_start_opts(ct_daemon *d, const ct_daemon_opts *o)
{
	const char *token = o->token;
	memset(d, 0, sizeof(*d));
	d->state_dir = o->state_dir ? sb_xstrdup(o->state_dir) : sbt_mkdtemp("compat-state");
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t parent = getpid();
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		/* A test program that crashes must not leave its daemon behind. */
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
			_exit(4);
		sigset_t set;
		sigemptyset(&set);
		sigaddset(&set, SIGTERM);
		sigaddset(&set, SIGINT);
		pthread_sigmask(SIG_BLOCK, &set, NULL);
		sb_server_config cfg;
		sb_server_config_init(&cfg);
		cfg.listen = "127.0.0.1:0";
		cfg.state_dir = d->state_dir;
		cfg.token = token;
		cfg.hmac_keys_file = o->hmac_keys_file;
		cfg.expected_host = o->expected_host;
		cfg.limits.keepalive_ms = o->keepalive_ms;
		cfg.limits.output_cap = o->max_output;
		cfg.access_log = false;
		if (!token)
			unsetenv("SANDBAR_TOKEN");
		sb_server *s = NULL;
		sb_err *err = sb_server_new(&cfg, &s);
		if (!err)
			err = sb_server_start(s);
		int port = err ? -1 : sb_server_port(s);
		if (err)
			fprintf(stderr, "compat test daemon: %s\n", err->msg);
		if (write(p[1], &port, sizeof(port)) != (ssize_t)sizeof(port))
			_exit(3);
		close(p[1]);
		if (err)
			_exit(2);
		err = sb_server_run_until_signal(s);
		sb_server_free(s);
		_exit(err ? 1 : 0);
	}
	close(p[1]);
	int port = -1;
	ssize_t got;
	do
		got = read(p[0], &port, sizeof(port));
	while (got < 0 && errno == EINTR);
	close(p[0]);
	d->pid = pid;
	if (got != (ssize_t)sizeof(port) || port <= 0) {
		waitpid(pid, NULL, 0);
		fail_msg("the test daemon did not start");
	}
	d->port = port;
	d->base_url = sb_strfmt("http://127.0.0.1:%d", port);
}

void ct_daemon_stop(ct_daemon *d)
{
	if (d->pid > 0) {
		kill(d->pid, SIGTERM);
		int st;
		while (waitpid(d->pid, &st, 0) < 0 && errno == EINTR)
			;
	}
	/* Sandboxes outlive the daemon by design: take them down with it here. */
	sb_sandbox_config cfg;
	sb_sandbox_config_init(&cfg);
	cfg.state_dir = d->state_dir;
	char **ids = NULL;
	sb_err *err = sb_sandbox_list(&cfg, &ids);
	for (char **id = ids; !err && id && *id; id++) {
		sb_sandbox *sb = NULL;
		sb_err *e = sb_sandbox_open_dead(&cfg, *id, &sb);
		if (!e)
			sb_err_free(sb_sandbox_destroy(sb));
		sb_err_free(e);
	}
	sb_err_free(err);
	sb_strv_free(ids);
	sbt_rmtree(d->state_dir);
	free(d->base_url);
	memset(d, 0, sizeof(*d));
}

void ct_daemon_restart(ct_daemon *d)
{
	kill(d->pid, SIGTERM);
	int st;
	while (waitpid(d->pid, &st, 0) < 0 && errno == EINTR)
		;
	char *dir = d->state_dir;
	free(d->base_url);
	ct_daemon_opts o = {.token = CT_TOKEN, .state_dir = dir};
	ct_daemon_start_opts(d, &o);
	free(dir);
}

ct_daemon ct_shared;

int ct_group_setup(void **state)
{
	(void)state;
	ct_daemon_start(&ct_shared, CT_TOKEN, NULL);
	return 0;
}

int ct_group_teardown(void **state)
{
	(void)state;
	ct_daemon_stop(&ct_shared);
	return 0;
}

void ct_resp_deinit(ct_resp *r)
{
	sb_buf_deinit(&r->body);
	json_decref(r->json);
	memset(r, 0, sizeof(*r));
}

typedef struct sink {
	ct_resp *r;
	ct_piece_fn fn;
	void *ud;
} sink;

static size_t on_data(char *p, size_t size, size_t nmemb, void *ud)
{
	sink *s = ud;
	size_t n = size * nmemb;
	sb_buf_append(&s->r->body, p, n);
	if (s->fn)
		s->fn(s->ud, p, n);
	return n;
}

void ct_http(const ct_daemon *d, const char *method, const char *path, const char *token,
             const char *body, ct_piece_fn on_body, void *ud, ct_resp *out)
{
	ct_http_h(d, method, path, token, NULL, body, on_body, ud, out);
}

void ct_http_h(const ct_daemon *d, const char *method, const char *path, const char *token,
               const char *const *headers, const char *body, ct_piece_fn on_body, void *ud,
               ct_resp *out)
{
	memset(out, 0, sizeof(*out));
	sb_buf_init(&out->body);
	CURL *h = curl_easy_init();
	assert_non_null(h);
	char *url = sb_strfmt("%s%s", d->base_url, path);
	struct curl_slist *hdrs = NULL;
	char *auth = token ? sb_strfmt("Authorization: Bearer %s", token) : NULL;
	if (auth)
		hdrs = curl_slist_append(hdrs, auth);
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	hdrs = curl_slist_append(hdrs, "Expect:");
	for (const char *const *h2 = headers; h2 && *h2; h2++)
		hdrs = curl_slist_append(hdrs, *h2);
	sink s = {out, on_body, ud};
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	CURLcode rc = curl_easy_perform(h);
	if (rc != CURLE_OK)
		fail_msg("%s %s: %s", method, path, curl_easy_strerror(rc));
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
	char *ct = NULL;
	curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
	snprintf(out->content_type, sizeof(out->content_type), "%s", ct ? ct : "");
	if (strncmp(out->content_type, "application/json", 16) == 0) {
		json_error_t e;
		out->json = json_loadb(out->body.data ? out->body.data : "", out->body.len, 0, &e);
	}
	curl_slist_free_all(hdrs);
	free(auth);
	free(url);
	curl_easy_cleanup(h);
}

void ct_call(const ct_daemon *d, const char *method, const char *path, json_t *body, ct_resp *out)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	ct_http(d, method, path, CT_TOKEN, text, NULL, NULL, out);
	free(text);
}

char *ct_workspace(const ct_daemon *d, const char *lease_id)
{
	return sb_strfmt("%s/leases/%s/workspace", d->state_dir, lease_id);
}

void ct_kill_sandbox(const ct_daemon *d, const char *lease_id)
{
	sb_sandbox_config cfg;
	sb_sandbox_config_init(&cfg);
	cfg.state_dir = d->state_dir;
	sb_sandbox *sb = NULL;
	SB_ASSERT_OK(sb_sandbox_open(&cfg, lease_id, &sb));
	sb_sandbox_info info;
	sb_sandbox_get_info(sb, &info);
	assert_true(info.init_pid > 0);
	assert_int_equal(kill(info.init_pid, SIGKILL), 0);
	sb_sandbox_close(sb);
	/* Until the kernel has reaped it, the control socket may still look alive. */
	for (int i = 0; i < 500 && kill(info.init_pid, 0) == 0; i++)
		usleep(10000); /* poll interval: nothing notifies this condition */
}
