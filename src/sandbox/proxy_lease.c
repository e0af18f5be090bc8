/* A lease's egress proxy (network mode `allowlist`): the proxy runs in the process that created
 * the lease; sandbar-init's loopback forwarder (src/init/forward.c, DESIGN.md §9.14) hands it
 * every connection made to 127.0.0.1:<port> inside the sandbox, and the command gets
 * HTTP(S)_PROXY / ALL_PROXY pointing there. The proxy takes each connection over at once
 * (release), so a connection ends when the proxy closes it.
 *
 * What a restarted daemon needs to run the proxy again (sb_egress_resume) is kept in the
 * lease's run/egress.json, 0600, outside every sandbox: the config (secrets by reference and
 * entry name, never by value), the CA the sandbox trusts (certificate and key) and the port. */
#include "proxy_int.h"
#include "sandbox_int.h"
#include "sb_json.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define SBPX_CA_BUNDLE "/etc/ssl/certs/ca-certificates.crt"
#define SBPX_PLACEHOLDER_PREFIX "sandbar-placeholder-"

struct sbpx_lease {
	sb_egress_proxy *px;
	int attach;
	sbi_reader rd;
	int stop[2];
	pthread_t thread; /* the reader's first thread; the reading moves between threads */
	bool started, reading;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int pending_fd; /* a connection on_conn took, for the reading thread to serve */
	int port;
	char *lease_id;
	void (*denied)(void *ud, const char *lease_id, const char *what); /* cfg's hook */
	void *denied_ud;
	sb_egress_config *conf; /* what the proxy runs with (kept in egress.json) */
};

static void on_denied(void *ud, const char *what)
{
	struct sbpx_lease *l = ud;
	sb_info("egress %s: denied %s", l->lease_id, what);
	if (l->denied)
		l->denied(l->denied_ud, l->lease_id, what);
}

static void release(struct sbpx_lease *l, long long id)
{
	sbi_msg m;
	sbi_msg_init(&m);
	sbi_msg_add(&m, "op", "release");
	sbi_msg_add(&m, "name", SBPX_FORWARD_NAME);
	sbi_msg_addi(&m, "id", id);
	sbi_send(l->attach, &m, NULL, 0);
	sbi_msg_deinit(&m);
}

static bool on_conn(void *ud, const sbi_msg *m, int fd)
{
	struct sbpx_lease *l = ud;
	long long id = 0;
	if (sbi_msg_geti(m, "id", 1, (long long)(~0ull >> 1), &id) != 0) {
		close(fd);
		return true;
	}
	/* a connection another attachment already had is not resumed: its client sees it
	 * closed */
	long long handed = 0;
	sbi_msg_geti(m, "handed", 0, 1, &handed);
	release(l, id);
	if (handed) {
		close(fd);
		return true;
	}
	l->pending_fd = fd;
	return false; /* read_on serves it here and hands the reading on */
}

/* The reading of the proxy's channel: whichever thread receives a connection serves it and a
 * worker reads on (one thread wake-up less per connection than handing each one over). */
static void read_on(void *arg)
{
	struct sbpx_lease *l = arg;
	sb_fwd_end end;
	while ((end = sb_ctl_forward_loop(l->attach, &l->rd, l->stop[0], on_conn, l)) ==
	       SB_FWD_YIELDED) {
		int fd = l->pending_fd;
		l->pending_fd = -1;
		if (sbpx_proxy_serve_here(l->px, fd, read_on, l))
			return; /* l belongs to the worker reading on */
	}
	if (end == SB_FWD_CLOSED)
		sb_warn("egress proxy of lease %s: sandbar-init closed the proxy's channel; the "
		        "sandbox has no network from now on",
		        l->lease_id);
	pthread_mutex_lock(&l->mu);
	l->reading = false;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

static void *reader_main(void *arg)
{
	read_on(arg);
	return NULL;
}

static void lease_free(struct sbpx_lease *l)
{
	if (!l)
		return;
	if (l->started) {
		/* the reading ends, then the proxy and its connections (the reader's first
		 * thread may be serving one), then that thread is joined */
		(void)!write(l->stop[1], "x", 1);
		pthread_mutex_lock(&l->mu);
		while (l->reading)
			pthread_cond_wait(&l->cv, &l->mu);
		pthread_mutex_unlock(&l->mu);
	}
	sb_egress_proxy_free(l->px);
	if (l->started)
		pthread_join(l->thread, NULL);
	if (l->attach >= 0)
		close(l->attach);
	if (l->stop[0] >= 0) {
		close(l->stop[0]);
		close(l->stop[1]);
	}
	sbi_reader_deinit(&l->rd);
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cv);
	sb_egress_config_free(l->conf);
	free(l->lease_id);
	free(l);
}

static struct sbpx_lease *lease_new(sb_sandbox *sb, const sb_sandbox_config *cfg)
{
	struct sbpx_lease *l = sb_xcalloc(1, sizeof *l);
	l->attach = l->stop[0] = l->stop[1] = l->pending_fd = -1;
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
	sbi_reader_init(&l->rd);
	l->lease_id = sb_xstrdup(sb->id);
	if (cfg) {
		l->denied = cfg->egress_denied;
		l->denied_ud = cfg->egress_denied_ud;
	}
	return l;
}

static void env_push(sb_sandbox *sb, const char *k, const char *v)
{
	size_t kl = strlen(k);
	for (size_t i = 0; sb->px_env && sb->px_env[i]; i++)
		if (strncmp(sb->px_env[i], k, kl) == 0 && sb->px_env[i][kl] == '=')
			return; /* a secret sent to two hosts: one placeholder */
	char *kv = sb_strfmt("%s=%s", k, v);
	sb_strv_push(&sb->px_env, kv);
	free(kv);
}

/* The exec environment: placeholders for the secrets, the CA variables when TLS is
 * terminated, and (port > 0) the proxy variables. */
static void set_env(sb_sandbox *sb, const sb_egress_config *c, bool tls, int port,
                    const char *callback_host)
{
	sb_strv_free(sb->px_env);
	sb->px_env = NULL;
	for (size_t i = 0; i < c->nsecrets; i++)
		if (c->secrets[i].placeholder_env) {
			char *lowered = sb_xstrdup(c->secrets[i].placeholder_env);
			for (char *ch = lowered; *ch; ch++)
				*ch = (char)tolower((unsigned char)*ch);
			char *v = sb_strfmt(SBPX_PLACEHOLDER_PREFIX "%s", lowered);
			env_push(sb, c->secrets[i].placeholder_env, v);
			free(v);
			free(lowered);
		}
	if (tls) {
		static const char *const vars[] = {"SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS",
		                                   "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
		                                   "GIT_SSL_CAINFO"};
		for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
			env_push(sb, vars[i], SBPX_CA_BUNDLE);
	}
	if (port <= 0)
		return;
	char *url = sb_strfmt("http://127.0.0.1:%d", port);
	static const char *const vars[] = {"HTTP_PROXY",  "http_proxy", "HTTPS_PROXY",
	                                   "https_proxy", "ALL_PROXY",  "all_proxy"};
	for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
		env_push(sb, vars[i], url);
	free(url);
	/* NO_PROXY always covers loopback and the callback name (DESIGN.md §9.14) */
	char *np = sb_strfmt("localhost,127.0.0.1,::1%s%s", callback_host ? "," : "",
	                     callback_host ? callback_host : "");
	env_push(sb, "NO_PROXY", np);
	env_push(sb, "no_proxy", np);
	free(np);
}

sb_err *sb_egress_prepare(sb_sandbox *sb, const sb_sandbox_config *cfg, const sb_egress_config *c,
                          char **ca_bundle)
{
	*ca_bundle = NULL;
	struct sbpx_lease *l = lease_new(sb, cfg);
	sb_err *err = sb_egress_proxy_new(c, sb->id, &l->px);
	if (err) {
		lease_free(l);
		return sb_err_prefix(err, "egress proxy of lease %s", sb->id);
	}
	sbpx_proxy_on_denied(l->px, on_denied, l);
	l->conf = sb_egress_config_copy(c);
	char *ca = sb_egress_proxy_ca_pem(l->px);
	if (ca) {
		/* the sandbox's view of the system bundle: the host's plus the lease's CA */
		const char *rootfs = cfg ? cfg->rootfs : NULL;
		char *path = sb_strfmt("%s%s", rootfs ? rootfs : "", SBPX_CA_BUNDLE);
		sb_buf b = SB_BUF_INIT;
		err = sb_read_file(path, 16u << 20, &b);
		free(path);
		if (err && err->sys_errno == ENOENT) {
			sb_err_free(err);
			err =
			    sb_err_new(SB_E_UNSUPPORTED,
			               "egress proxy of lease %s: terminating TLS needs %s in the "
			               "sandbox's root file system (install ca-certificates)",
			               sb->id, SBPX_CA_BUNDLE);
		}
		if (err) {
			sb_buf_deinit(&b);
			free(ca);
			lease_free(l);
			return err;
		}
		if (b.len && b.data[b.len - 1] != '\n')
			sb_buf_appendc(&b, '\n');
		sb_buf_appends(&b, ca);
		*ca_bundle = sb_xstrdup(sb_buf_cstr(&b));
		sb_buf_deinit(&b);
		free(ca);
	}
	sb->px = l;
	set_env(sb, c, *ca_bundle != NULL, 0, NULL);
	return NULL;
}

/* ---- the kept state */

static char *state_path(const sb_sandbox *sb)
{
	return sb_strfmt("%s/egress.json", sb->run_dir);
}

static json_t *strv_json(char *const *v)
{
	json_t *a = json_array();
	for (size_t i = 0; v && v[i]; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static sb_err *save_state(sb_sandbox *sb, const char *callback_host)
{
	struct sbpx_lease *l = sb->px;
	const sb_egress_config *c = l->conf;
	json_t *cj = json_object();
	json_object_set_new(cj, "allow", strv_json(c->allow));
	json_object_set_new(cj, "deny_listeners", strv_json(c->deny_listeners));
	if (c->hosts_file)
		json_object_set_new(cj, "hosts_file", json_string(c->hosts_file));
	if (c->upstream_ca)
		json_object_set_new(cj, "upstream_ca", json_string(c->upstream_ca));
	json_t *secrets = json_array();
	for (size_t i = 0; i < c->nsecrets; i++) {
		const sb_egress_secret *x = &c->secrets[i];
		/* by reference only: env:VAR or file:PATH, never the value */
		json_array_append_new(secrets, json_pack("{s:s, s:s, s:s, s:s?, s:s?}", "host",
		                                         x->host, "header", x->header, "value_ref",
		                                         x->value_ref, "placeholder_env",
		                                         x->placeholder_env, "name", x->name));
	}
	json_object_set_new(cj, "secrets", secrets);
	json_t *st = json_pack("{s:o, s:i}", "config", cj, "port", l->port);
	if (callback_host)
		json_object_set_new(st, "callback_host", json_string(callback_host));
	char *cert = sb_egress_proxy_ca_pem(l->px), *key = sbpx_proxy_ca_key_pem(l->px);
	if (cert && key) {
		json_object_set_new(st, "ca_cert", json_string(cert));
		json_object_set_new(st, "ca_key", json_string(key));
	}
	free(cert);
	if (key) {
		memset(key, 0, strlen(key));
		free(key);
	}
	char *text = sb_json_dumps(st);
	json_decref(st);
	char *path = state_path(sb);
	sb_err *err = sb_fs_write_atomic(path, text, strlen(text), 0600);
	free(path);
	memset(text, 0, strlen(text));
	free(text);
	return err ? sb_err_prefix(err, "egress proxy of lease %s: keeping its state", sb->id)
	           : NULL;
}

static sb_err *strv_from(const json_t *a, const char *what, char ***out)
{
	if (a && !json_is_array(a))
		return sb_err_new(SB_E_INVAL, "%s is not an array", what);
	size_t i;
	const json_t *v;
	json_array_foreach(a, i, v)
	{
		if (!json_is_string(v))
			return sb_err_new(SB_E_INVAL, "%s[%zu] is not a string", what, i);
		sb_strv_push(out, json_string_value(v));
	}
	return NULL;
}

static char *str_or_null(const json_t *o, const char *k)
{
	const json_t *v = json_object_get(o, k);
	return json_is_string(v) ? sb_xstrdup(json_string_value(v)) : NULL;
}

/* The kept config, its named secrets read again through cfg's entries. */
static sb_err *load_config(sb_sandbox *sb, const sb_sandbox_config *cfg, const json_t *cj,
                           sb_egress_config **out)
{
	sb_egress_config *c = sb_xcalloc(1, sizeof *c);
	sb_err *err = NULL;
	if (!json_is_object(cj)) {
		err = sb_err_new(SB_E_INVAL, "no config");
		goto out;
	}
	if ((err = strv_from(json_object_get(cj, "allow"), "allow", &c->allow)) ||
	    (err = strv_from(json_object_get(cj, "deny_listeners"), "deny_listeners",
	                     &c->deny_listeners)))
		goto out;
	c->hosts_file = str_or_null(cj, "hosts_file");
	c->upstream_ca = str_or_null(cj, "upstream_ca");
	const json_t *secrets = json_object_get(cj, "secrets");
	size_t n = json_array_size(secrets);
	c->secrets = n ? sb_xcalloc(n, sizeof *c->secrets) : NULL;
	for (size_t i = 0; i < n; i++) {
		const json_t *x = json_array_get(secrets, i);
		sb_egress_secret s = {.host = str_or_null(x, "host"),
		                      .header = str_or_null(x, "header"),
		                      .value_ref = str_or_null(x, "value_ref"),
		                      .placeholder_env = str_or_null(x, "placeholder_env"),
		                      .name = str_or_null(x, "name")};
		if (!s.host || !s.header || !s.value_ref) {
			sb_egress_secret_deinit(&s);
			err = sb_err_new(SB_E_INVAL, "secret %zu is incomplete", i);
			goto out;
		}
		if (s.name) {
			/* re-resolved by name: the operator's entry as it is now */
			const sb_egress_secret_entry *e = NULL;
			for (size_t k = 0; cfg && k < cfg->negress_secrets && !e; k++)
				if (strcmp(cfg->egress_secrets[k].name, s.name) == 0)
					e = &cfg->egress_secrets[k];
			bool pinned = false;
			for (size_t k = 0; e && e->hosts && e->hosts[k] && !pinned; k++)
				pinned = strcasecmp(e->hosts[k], s.host) == 0;
			if (!pinned) {
				sb_warn(
				    "egress proxy of lease %s: the secret %s (for %s) is no longer "
				    "in the operator's config; requests to %s go without it",
				    sb->id, s.name, s.host, s.host);
				sb_egress_secret_deinit(&s);
				continue;
			}
			free(s.value_ref);
			s.value_ref = sb_xstrdup(e->value_ref);
			free(s.header);
			s.header = sb_xstrdup(e->header ? e->header : "authorization");
		}
		c->secrets[c->nsecrets++] = s;
	}
	err = sb_egress_config_check(c);
out:
	if (err) {
		sb_egress_config_free(c);
		return err;
	}
	*out = c;
	return NULL;
}

/* Attach to init's forwarder (port 0 = a new one) and serve its connections. */
static sb_err *attach(sb_sandbox *sb, struct sbpx_lease *l, int port)
{
	if (pipe2(l->stop, O_CLOEXEC) < 0)
		return sb_err_sys(errno, "egress proxy of lease %s: pipe", sb->id);
	sb_err *err =
	    sb_ctl_listen(sb, SBPX_FORWARD_NAME, port, "starting the egress proxy's endpoint",
	                  &l->attach, &l->rd, &l->port);
	if (err)
		return err;
	l->reading = true;
	int rc = pthread_create(&l->thread, NULL, reader_main, l);
	if (rc) {
		l->reading = false;
		return sb_err_sys(rc, "egress proxy of lease %s: starting its thread", sb->id);
	}
	l->started = true;
	return NULL;
}

sb_err *sb_egress_resume(sb_sandbox *sb, const sb_sandbox_config *cfg, bool run)
{
	json_t *j = NULL;
	sb_egress_config *c = NULL;
	int64_t port = 0;
	struct sbpx_lease *l = NULL;
	sb_err *err = sb_lease_state_read(sb, "egress.json", &j);
	if (!err && !j)
		return NULL; /* no proxy on this lease */
	if (err || (err = sb_json_get_int(j, "port", true, 1, 65535, &port)) ||
	    (err = load_config(sb, cfg, json_object_get(j, "config"), &c)))
		goto out;
	const char *cert = json_string_value(json_object_get(j, "ca_cert"));
	const char *key = json_string_value(json_object_get(j, "ca_key"));
	const char *cb_host = json_string_value(json_object_get(j, "callback_host"));
	set_env(sb, c, cert != NULL, (int)port, cb_host);
	if (!run || !cfg || !cfg->run_proxies || sb->dead)
		goto out;
	l = lease_new(sb, cfg);
	if ((err = sbpx_proxy_new(c, sb->id, cert, key, &l->px)))
		goto out;
	sbpx_proxy_on_denied(l->px, on_denied, l);
	l->conf = c;
	c = NULL;
	if ((err = attach(sb, l, (int)port)))
		goto out;
	sb->px = l;
	l = NULL;
out:
	if (err)
		err = sb_err_prefix(err, "resuming the egress proxy of lease %s", sb->id);
	lease_free(l);
	sb_egress_config_free(c);
	json_decref(j);
	return err;
}

sb_err *sb_egress_start(sb_sandbox *sb, const char *callback_host)
{
	struct sbpx_lease *l = sb->px;
	if (!l)
		return NULL;
	sb_err *err = attach(sb, l, 0);
	if (err)
		return err;
	char *ca = sb_egress_proxy_ca_pem(l->px);
	set_env(sb, l->conf, ca != NULL, l->port, callback_host);
	free(ca);
	return save_state(sb, callback_host);
}

void sb_egress_stop(sb_sandbox *sb)
{
	struct sbpx_lease *l = sb->px;
	sb->px = NULL;
	sb_strv_free(sb->px_env);
	sb->px_env = NULL;
	lease_free(l);
}

bool sb_sandbox_egress_stats(sb_sandbox *sb, sb_egress_stats *out)
{
	memset(out, 0, sizeof *out);
	if (!sb->px)
		return false;
	sb_egress_proxy_stats(sb->px->px, out);
	return true;
}
