/* The daemon's lifecycle (include/sandbar/server.h): configuration and secrets, the state
 * directory and its database, re-adoption of leases, one libmicrohttpd daemon per listening
 * socket (TCP, optionally TLS, and a unix socket), the reaper thread, signal handling and the
 * drain on SIGTERM. Connection threads inherit a mask with SIGTERM, SIGINT and SIGPIPE blocked,
 * so signals reach only run_until_signal's signalfd and broken pipes surface as EPIPE. */
#include "http_int.h"
#include "bridge.h"
#include "sleep.h"
#include "warm_pool.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "sb_sandbox_json.h"

#define MAX_DAEMONS 2

struct sb_server {
	sbs_server srv;
	char *listen;
	bool listen_tcp;
	char *socket_path;
	char *tls_cert, *tls_key;
	struct MHD_Daemon *d[MAX_DAEMONS];
	sbs_gate *gate[MAX_DAEMONS]; /* each daemon's front door (owns its listening socket) */
	size_t nd;
	int port;
	bool socket_bound; /* we created socket_path and remove it at stop */
	int stop_fd;       /* eventfd: request_stop */
	pthread_t reaper;
	bool reaper_running;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stopping;
	bool stopped;
};

void sb_server_config_init(sb_server_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->listen_tcp = true;
	cfg->access_log = true;
	sb_sandbox_config_init(&cfg->sandbox);
}

static void fill_limits(sb_server_limits *l)
{
	if (!l->max_connections)
		l->max_connections = SB_SERVER_MAX_CONNECTIONS_DEFAULT;
	if (!l->max_waiting)
		l->max_waiting = SB_SERVER_MAX_WAITING_DEFAULT;
	if (!l->max_waiting_per_peer) /* one peer never holds every waiting slot */
		l->max_waiting_per_peer = l->max_waiting - l->max_waiting / 4;
	if (l->max_waiting_per_peer > l->max_waiting)
		l->max_waiting_per_peer = l->max_waiting;
	if (!l->header_timeout_ms)
		l->header_timeout_ms = SB_SERVER_HEADER_TIMEOUT_MS_DEFAULT;
	if (!l->idle_timeout_s)
		l->idle_timeout_s = SB_SERVER_IDLE_TIMEOUT_S_DEFAULT;
	if (!l->max_header_bytes)
		l->max_header_bytes = SB_SERVER_MAX_HEADER_BYTES_DEFAULT;
	if (!l->max_json_bytes)
		l->max_json_bytes = SB_SERVER_MAX_JSON_BYTES_DEFAULT;
	if (!l->max_json_depth)
		l->max_json_depth = SB_SERVER_MAX_JSON_DEPTH_DEFAULT;
	if (!l->max_upload_bytes)
		l->max_upload_bytes = SB_SERVER_MAX_UPLOAD_BYTES_DEFAULT;
	if (!l->output_cap)
		l->output_cap = SB_SERVER_OUTPUT_CAP_DEFAULT;
	if (!l->keepalive_ms)
		l->keepalive_ms = SB_SERVER_KEEPALIVE_MS_DEFAULT;
	if (!l->reap_ms)
		l->reap_ms = SB_SERVER_REAP_MS_DEFAULT;
	if (!l->drain_ms)
		l->drain_ms = SB_SERVER_DRAIN_MS_DEFAULT;
	if (!l->nonce_cache)
		l->nonce_cache = SB_SERVER_NONCE_CACHE_DEFAULT;
}

static char *default_state_dir(void)
{
	if (geteuid() == 0)
		return sb_xstrdup("/var/lib/sandbar");
	const char *x = getenv("XDG_STATE_HOME");
	if (x && x[0] == '/')
		return sb_strfmt("%s/sandbar", x);
	const char *home = getenv("HOME");
	return sb_strfmt("%s/.local/state/sandbar", home && home[0] ? home : "/tmp");
}

static sb_err *persist_nonce(void *ud, const char *key, int64_t expires_s)
{
	return sbs_store_nonce_put(ud, key, expires_s);
}

static void remember_nonce(void *ud, const char *key, int64_t expires_s)
{
	sbs_auth_remember(ud, key, expires_s);
}

static void block_signals(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* The operator's callback for bridge leases, checked against the [callback NAME] entries at
 * start: a mistake stops the daemon instead of failing every Paperclip acquire. */
static sb_err *load_bridge_callback(sbs_server *srv, const sb_server_config *cfg)
{
	const char *v = cfg->compat_callback;
	if (!v || !*v)
		return NULL;
	char *text = NULL;
	if (v[0] == '{') {
		text = sb_xstrdup(v);
	} else {
		json_t *j = json_pack("{s:s, s:s}", "name", v, "preset", "paperclip");
		text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
		json_decref(j);
	}
	sb_err *err = sb_callback_config_from_json(text, strlen(text), srv->callbacks,
	                                           srv->ncallbacks, &srv->bridge_callback);
	if (err) {
		free(text);
		return sb_err_prefix(err, "compat_callback = %s", v);
	}
	srv->bridge_callback_json = text;
	return NULL;
}

sb_err *sb_server_new(const sb_server_config *cfg, sb_server **out)
{
	*out = NULL;
	if (!!cfg->tls_cert_file != !!cfg->tls_key_file)
		return sb_err_new(SB_E_INVAL, "--tls-cert and --tls-key go together");
	if (cfg->limits.output_cap > SB_SANDBOX_SPOOL_BYTES_DEFAULT)
		return sb_err_new(SB_E_INVAL,
		                  "--max-output %llu is over the %llu bytes a sandbox spools per "
		                  "stream: a larger result could never be complete",
		                  (unsigned long long)cfg->limits.output_cap,
		                  (unsigned long long)SB_SANDBOX_SPOOL_BYTES_DEFAULT);
	sb_server *s = sb_xcalloc(1, sizeof *s);
	sbs_server *srv = &s->srv;
	atomic_init(&srv->http_inflight, 0);
	s->stop_fd = -1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	pthread_mutex_init(&srv->bridge_sessions_mu, NULL);
	srv->limits = cfg->limits;
	fill_limits(&srv->limits);
	srv->access_log = cfg->access_log;
	srv->started_ms = sb_wall_ms();
	struct rlimit nof;
	srv->nofile = getrlimit(RLIMIT_NOFILE, &nof) == 0 ? (uint64_t)nof.rlim_cur : 0;
	uint64_t want = (uint64_t)srv->limits.max_connections + srv->limits.max_waiting + 1024;
	if (srv->nofile && srv->nofile < want)
		sb_warn(
		    "the open-file limit is %llu, below the %llu that --max-connections and the "
		    "waiting connections may need; raise it (ulimit -n, or LimitNOFILE= in the "
		    "systemd unit)",
		    (unsigned long long)srv->nofile, (unsigned long long)want);
	srv->state_dir = cfg->state_dir ? sb_xstrdup(cfg->state_dir) : default_state_dir();
	srv->tmp_dir = sb_strfmt("%s/tmp", srv->state_dir);
	srv->overlay_dir = sb_xstrdup(cfg->overlay_dir ? cfg->overlay_dir : ".paperclip-runtime");
	s->listen_tcp = cfg->listen_tcp || !cfg->socket_path;
	s->listen = sb_xstrdup(cfg->listen ? cfg->listen : SB_SERVER_LISTEN_DEFAULT);
	s->socket_path = cfg->socket_path ? sb_xstrdup(cfg->socket_path) : NULL;
	s->tls_cert = cfg->tls_cert_file ? sb_xstrdup(cfg->tls_cert_file) : NULL;
	s->tls_key = cfg->tls_key_file ? sb_xstrdup(cfg->tls_key_file) : NULL;

	/* Sandbox config: copy the strings we keep. */
	srv->sandbox = cfg->sandbox;
	srv->sandbox.state_dir = srv->state_dir;
	/* the daemon relays the callback bridges of the leases it holds, also re-adopted ones */
	srv->sandbox.run_callbacks = true;
	srv->sandbox.callback_stats = &srv->callback_stats;
	srv->callbacks = cfg->callbacks;
	srv->ncallbacks = cfg->ncallbacks;
	srv->warm_size = cfg->warm;
	/* and the egress proxies of its allowlist leases, named secrets read again by name */
	srv->secrets = cfg->secrets;
	srv->nsecrets = cfg->nsecrets;
	srv->sandbox.run_proxies = true;
	srv->sandbox.egress_secrets = cfg->secrets;
	srv->sandbox.negress_secrets = cfg->nsecrets;
	srv->sandbox.egress_denied = sbs_egress_denied_log;
	srv->sandbox.egress_denied_ud = srv;
	for (size_t i = 0; cfg->mount_allow && cfg->mount_allow[i]; i++)
		sb_strv_push(&srv->mount_allow, cfg->mount_allow[i]);
	if (cfg->egress_hosts_file)
		srv->egress_hosts_file = sb_xstrdup(cfg->egress_hosts_file);
	if (cfg->egress_upstream_ca)
		srv->egress_upstream_ca = sb_xstrdup(cfg->egress_upstream_ca);
	const char **strs[] = {&srv->sandbox.init_path, &srv->sandbox.bwrap_path,
	                       &srv->sandbox.rootfs, &srv->sandbox.workspace_mount,
	                       &srv->sandbox.cgroup_root};
	for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
		if (*strs[i])
			*strs[i] = sb_xstrdup(*strs[i]);
	/* no sandbox sees the daemon's state, socket or secrets (whatever their modes) */
	const char *hide[] = {srv->state_dir, cfg->socket_path, cfg->token_file,
	                      cfg->hmac_keys_file, cfg->tls_key_file};
	for (size_t i = 0; i < sizeof hide / sizeof hide[0]; i++)
		if (hide[i])
			sb_strv_push(&srv->hide_paths, hide[i]);
	for (size_t i = 0; cfg->sandbox.hide_paths && cfg->sandbox.hide_paths[i]; i++)
		sb_strv_push(&srv->hide_paths, cfg->sandbox.hide_paths[i]);
	srv->sandbox.hide_paths = (const char *const *)srv->hide_paths;

	char *token = NULL;
	sb_hmac_keyring keys = {0};
	sb_err *err = NULL;
	if ((err = sbs_read_token(cfg, &token)) || (err = load_bridge_callback(srv, cfg)))
		goto fail;
	for (size_t i = 0; i < cfg->nsecrets; i++)
		if ((err = sb_egress_secret_entry_check(&cfg->secrets[i])))
			goto fail;
	if (cfg->hmac_keys_file &&
	    ((err = sbs_secret_file_check("HMAC key file", cfg->hmac_keys_file,
	                                  sbs_sandbox_host_uid(&cfg->sandbox))) ||
	     (err = sb_hmac_keyring_load(cfg->hmac_keys_file, &keys))))
		goto fail;
	if (s->tls_cert && !MHD_is_feature_supported(MHD_FEATURE_TLS)) {
		err = sb_err_new(SB_E_UNSUPPORTED, "this libmicrohttpd was built without TLS");
		goto fail;
	}
	if ((err = sb_fs_mkdir_p(srv->state_dir, 0700)))
		goto fail;
	if ((err = sb_fs_rm_rf(srv->tmp_dir)) || (err = sb_fs_mkdir_p(srv->tmp_dir, 0700)))
		goto fail;
	char *db = sb_strfmt("%s/sandbar.db", srv->state_dir);
	err = sbs_store_open(db, &srv->store);
	free(db);
	if (err)
		goto fail;
	sbs_auth_config ac = {.token = token,
	                      .keys = &keys,
	                      .expected_host = cfg->expected_host,
	                      .nonce_cache = srv->limits.nonce_cache,
	                      .persist = persist_nonce,
	                      .persist_ud = srv->store};
	srv->auth = sbs_auth_new(&ac);
	if ((err =
	         sbs_store_nonces_load(srv->store, sb_wall_ms() / 1000, remember_nonce, srv->auth)))
		goto fail;
	if (token) {
		memset(token, 0, strlen(token));
		free(token);
		token = NULL;
	}
	if (keys.n && !cfg->expected_host)
		sb_warn(
		    "HMAC keys are configured without --expected-host: signed requests bind the "
		    "Host they name, but it is not pinned to this daemon's name");
	sb_hmac_keyring_deinit(&keys);
	if (sbs_auth_fail_closed(srv->auth))
		sb_warn("no token (--token-file, SANDBAR_TOKEN) and no HMAC keys (--hmac-keys) are "
		        "configured: every request except GET /v1/health will be refused");

	srv->metrics = sbs_metrics_new();
	if ((err = sbs_leases_new(&srv->sandbox, srv->store, &srv->leases)))
		goto fail;
	if ((err = sbs_leases_recover(srv->leases)))
		goto fail;
	if ((err = sbs_sleep_new(srv->leases, srv->store, &srv->sleep)))
		goto fail;
	srv->execs = sbs_execs_new(srv->metrics);
	srv->drain_cancel = sb_cancel_new();
	sb_sandbox_health h;
	sb_sandbox_health_check(&srv->sandbox, &h);
	srv->sandbox_health = sb_sandbox_health_json(&h);
	if (!h.ok)
		sb_warn("sandboxes cannot be created on this host: %s",
		        h.message ? h.message : "unknown reason");
	sb_sandbox_health_deinit(&h);
	srv->router = sbs_router_new();
	sbs_native_routes_register(srv);
	sbs_bridge_routes_register(srv); /* the Paperclip bridge (bridge_routes.c) */
	s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->stop_fd < 0) {
		err = sb_err_sys(errno, "eventfd");
		goto fail;
	}
	*out = s;
	return NULL;
fail:
	if (token) {
		memset(token, 0, strlen(token));
		free(token);
	}
	sb_hmac_keyring_deinit(&keys);
	sb_server_free(s);
	return sb_err_prefix(err, "starting the daemon");
}

static void mhd_log(void *cls, const char *fmt, va_list ap) SB_PRINTF(2, 0);

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char buf[512];
	vsnprintf(buf, sizeof buf, fmt, ap);
	size_t n = strlen(buf);
	while (n && buf[n - 1] == '\n')
		buf[--n] = '\0';
	sb_debug("libmicrohttpd: %s", buf);
}

static sb_err *start_daemon(sb_server *s, int fd, bool tls, const char *cert, const char *key)
{
	sbs_server *srv = &s->srv;
	/* No listening socket of its own: the gate hands it connections whose request head
	 * is complete, so no thread waits for a client that sends nothing. */
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
	                 MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET;
	if (tls)
		flags |= MHD_USE_TLS;
	/* A connection's memory pool also holds the write buffer of a streamed response (a JSON
	 * exec result, a file): 256 KiB moves a large result in a quarter of the sends (and of
	 * the client's wake-ups) that 64 KiB took. The pool's pages are touched only by a
	 * connection that streams that much. */
	size_t mem = srv->limits.max_header_bytes * 2;
	if (mem < SBS_HTTP_POOL_MIN)
		mem = SBS_HTTP_POOL_MIN;
	struct MHD_OptionItem opts[] = {
	    {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)srv->limits.max_connections, NULL},
	    {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)mem, NULL},
	    {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)srv->limits.idle_timeout_s, NULL},
	    {MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)sbs_http_uri_log, srv},
	    {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)sbs_http_completed, srv},
	    {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, NULL},
	    {tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, (void *)cert},
	    {tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, (void *)key},
	    {MHD_OPTION_END, 0, NULL},
	};
	struct MHD_Daemon *d = MHD_start_daemon(flags, 0, NULL, NULL, sbs_http_access, srv,
	                                        MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
	if (!d)
		return sb_err_new(SB_E_IO, "libmicrohttpd refused to start (%s)",
		                  tls ? "check the TLS certificate and key" : "see the log");
	sbs_gate_limits gl = {.max_connections = srv->limits.max_connections,
	                      .max_waiting = srv->limits.max_waiting,
	                      .max_waiting_per_peer = srv->limits.max_waiting_per_peer,
	                      .header_timeout_ms = srv->limits.header_timeout_ms,
	                      .max_header_bytes = srv->limits.max_header_bytes,
	                      .tls = tls};
	sbs_gate *g = NULL;
	sb_err *err = sbs_gate_start(fd, d, &gl, &g);
	if (err) {
		MHD_stop_daemon(d);
		return err;
	}
	s->d[s->nd] = d;
	s->gate[s->nd] = g;
	srv->gates[s->nd] = g;
	s->nd++;
	return NULL;
}

static void *reaper_main(void *arg)
{
	sb_server *s = arg;
	int64_t last_nonce_prune = 0, last_trim = 0;
	pthread_mutex_lock(&s->mu);
	while (!s->stopping) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		int64_t ns = ts.tv_nsec + (s->srv.limits.reap_ms % 1000) * 1000000;
		ts.tv_sec += s->srv.limits.reap_ms / 1000 + ns / 1000000000;
		ts.tv_nsec = ns % 1000000000;
		pthread_cond_timedwait(&s->cv, &s->mu, &ts);
		if (s->stopping)
			break;
		pthread_mutex_unlock(&s->mu);
		int64_t now = sb_wall_ms();
		sbs_leases_reap(s->srv.leases, now);
		sbs_execs_tick(s->srv.execs, s->srv.leases);
		sb_sandbox_reap_orphans(); /* bwrap processes of sandboxes that ended */
		if (now - last_trim >= 5000) {
			/* Give back what a burst of connection threads left in malloc's arenas:
			 * memory follows the work, not its high-water mark. */
			malloc_trim(0);
			last_trim = now;
		}
		sbs_sleep_tick(s->srv.sleep, now);
		if (now - last_nonce_prune >= 60000) {
			sb_err *err = sbs_store_nonces_prune(s->srv.store, now / 1000);
			if (err) {
				sb_warn("%s", err->msg);
				sb_err_free(err);
			}
			last_nonce_prune = now;
		}
		pthread_mutex_lock(&s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

sb_err *sb_server_start(sb_server *s)
{
	block_signals();
	sb_err *err = NULL;
	char *cert = NULL, *key = NULL;
	if (s->tls_cert) {
		sb_buf c = SB_BUF_INIT, k = SB_BUF_INIT;
		if ((err = sb_read_file(s->tls_cert, 1u << 20, &c)) ||
		    (err = sb_read_file(s->tls_key, 1u << 20, &k))) {
			sb_buf_deinit(&c);
			sb_buf_deinit(&k);
			return sb_err_prefix(err, "reading the TLS certificate/key");
		}
		cert = sb_buf_steal(&c, NULL);
		key = sb_buf_steal(&k, NULL);
	}
	if (s->srv.warm_size) {
		/* N of each configuration an acquire asks for by default: the native API's
		 * (network none, nothing else) and the Paperclip bridge's (bridge_routes.c). */
		sbs_warm_config wc[2] = {{.name = "default"}};
		sbs_bridge_warm_config(&s->srv, &wc[1]);
		if ((err = sbs_warm_start(&s->srv.sandbox, wc, 2, s->srv.warm_size, &s->srv.warm)))
			goto out;
		sbs_leases_set_warm(s->srv.leases, s->srv.warm);
	}
	if (s->listen_tcp) {
		int fd = -1;
		if ((err = sbs_listen_tcp(s->listen, &fd, &s->port)))
			goto out;
		if ((err = start_daemon(s, fd, cert != NULL, cert, key))) {
			close(fd);
			goto out;
		}
		sb_info("listening on %s://%s (port %d)", cert ? "https" : "http", s->listen,
		        s->port);
		s->srv.listen_port = s->port; /* never reachable through an egress proxy */
	}
	if (s->socket_path) {
		int fd = -1;
		if ((err = sbs_listen_unix(s->socket_path, &fd)))
			goto out;
		s->socket_bound = true;
		if ((err = start_daemon(s, fd, false, NULL, NULL))) {
			close(fd);
			goto out;
		}
		sb_info("listening on unix:%s", s->socket_path);
	}
	/* The detached bwrap of every sandbox we destroy comes back to us to be reaped, instead
	 * of piling up as zombies under a slow PID 1. */
	if ((err = sb_sandbox_adopt_orphans())) {
		sb_warn("%s: ended sandboxes are left to PID 1 to reap", err->msg);
		sb_err_free(err);
		err = NULL;
	}
	int rc = pthread_create(&s->reaper, NULL, reaper_main, s);
	if (rc) {
		err = sb_err_sys(rc, "starting the reaper thread");
		goto out;
	}
	s->reaper_running = true;
out:
	if (key) {
		memset(key, 0, strlen(key));
		free(key);
	}
	free(cert);
	return err;
}

int sb_server_port(const sb_server *s)
{
	return s->port;
}

void sb_server_request_stop(sb_server *s)
{
	uint64_t one = 1;
	ssize_t n = write(s->stop_fd, &one, sizeof one);
	(void)n;
}

sb_err *sb_server_run_until_signal(sb_server *s)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (sfd < 0)
		return sb_err_sys(errno, "signalfd");
	struct pollfd p[2] = {{.fd = sfd, .events = POLLIN}, {.fd = s->stop_fd, .events = POLLIN}};
	for (;;) {
		int rc = poll(p, 2, -1);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0) {
			sb_err *err = sb_err_sys(errno, "poll");
			close(sfd);
			return err;
		}
		if (p[0].revents) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
				sb_info("signal %u received: draining", si.ssi_signo);
			break;
		}
		if (p[1].revents)
			break;
	}
	close(sfd);
	sb_server_stop(s);
	return NULL;
}

void sb_server_stop(sb_server *s)
{
	if (!s || s->stopped)
		return;
	s->stopped = true;
	s->srv.draining = 1;
	if (s->srv.drain_cancel)
		sb_cancel_trigger(s->srv.drain_cancel);
	for (size_t i = 0; i < s->nd; i++) { /* no new connections */
		sbs_gate_stop(s->gate[i]);
		s->gate[i] = NULL;
		s->srv.gates[i] = NULL;
	}
	int64_t deadline = sb_mono_ms() + s->srv.limits.drain_ms;
	while (sbs_http_inflight(&s->srv) > 0 && sb_mono_ms() < deadline)
		sb_sleep_ms(20);
	if (sbs_http_inflight(&s->srv) > 0)
		sb_warn("drain: %ld request(s) still running after %lld ms; closing them",
		        sbs_http_inflight(&s->srv), (long long)s->srv.limits.drain_ms);
	for (size_t i = 0; i < s->nd; i++) {
		MHD_stop_daemon(s->d[i]);
		s->d[i] = NULL;
	}
	s->nd = 0;
	if (s->socket_bound)
		unlink(s->socket_path);
	if (s->srv.warm) { /* no acquire runs any more: the waiting sandboxes go */
		sbs_leases_set_warm(s->srv.leases, NULL);
		sbs_warm_stop(s->srv.warm);
		s->srv.warm = NULL;
	}
	pthread_mutex_lock(&s->mu);
	s->stopping = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	if (s->reaper_running) {
		pthread_join(s->reaper, NULL);
		s->reaper_running = false;
	}
	sb_info("stopped; leased sandboxes keep running");
}

void sb_server_free(sb_server *s)
{
	if (!s)
		return;
	sb_server_stop(s);
	sbs_server *srv = &s->srv;
	atomic_init(&srv->http_inflight, 0);
	sbs_router_free(srv->router);
	sbs_execs_free(srv->execs);
	if (srv->leases)
		sbs_leases_set_use_hook(srv->leases, NULL, NULL);
	sbs_sleep_free(srv->sleep);
	sbs_leases_free(srv->leases);
	sbs_store_close(srv->store);
	sbs_auth_free(srv->auth);
	sbs_metrics_free(srv->metrics);
	json_decref(srv->sandbox_health);
	sb_cancel_free(srv->drain_cancel);
	const char *strs[] = {srv->sandbox.init_path, srv->sandbox.bwrap_path, srv->sandbox.rootfs,
	                      srv->sandbox.workspace_mount, srv->sandbox.cgroup_root};
	for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
		free((char *)strs[i]);
	free(srv->state_dir);
	free(srv->tmp_dir);
	free(srv->overlay_dir);
	sb_strv_free(srv->hide_paths);
	sb_strv_free(srv->mount_allow);
	free(srv->egress_hosts_file);
	free(srv->egress_upstream_ca);
	sb_callback_config_free(srv->bridge_callback);
	free(srv->bridge_callback_json);
	free(s->listen);
	free(s->socket_path);
	free(s->tls_cert);
	free(s->tls_key);
	sb_close(&s->stop_fd);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->srv.bridge_sessions_mu);
	free(s);
}
