/* The daemon object shared by route files: configuration, services and the router. Route files
 * register into srv->router from their *_routes_register() function, called by server.c. */
#ifndef SB_SERVER_SERVER_INT_H
#define SB_SERVER_SERVER_INT_H

#include <sandbar/server.h>
#include <pthread.h>
#include <stdatomic.h>

#include "authn.h"
#include "execs.h"
#include "gate.h"
#include "http.h"
#include "leases.h"
#include "metrics.h"
#include "store.h"
#include "sb_sandbox_json.h"

struct sbs_server {
	sb_server_limits limits; /* defaults filled in */
	char *state_dir;
	char *tmp_dir;             /* <state>/tmp: spooled uploads and downloads */
	char *overlay_dir;         /* ".paperclip-runtime" */
	char **hide_paths;         /* sandbox.hide_paths: state, socket, token, keys */
	sb_sandbox_config sandbox; /* strings owned by the server */
	sbs_router *router;
	sbs_auth *auth;
	sbs_store *store;
	sbs_leases *leases;
	sbs_execs *execs;
	struct sbs_sleep *sleep; /* idle sleep (sleep.h) */
	sbs_metrics *metrics;
	const sb_callback_entry *callbacks; /* the operator's, borrowed from the config */
	size_t ncallbacks;
	sb_callback_stats callback_stats; /* relays of this daemon's leases add to it */
	sb_callback_config
	    *bridge_callback; /* every bridge lease's (cfg->compat_callback), or NULL */
	char *bridge_callback_json;
	json_t *sandbox_health;                /* sb_sandbox_health_json at start */
	const sb_egress_secret_entry *secrets; /* the operator's named secrets, borrowed */
	size_t nsecrets;
	char **mount_allow;      /* host paths acquire's mounts may bind below, or NULL */
	char *egress_hosts_file; /* test options for the proxies, or NULL */
	char *egress_upstream_ca;
	bool access_log;
	int listen_port; /* the TCP listener's port, 0 = none (egress proxies deny it) */
	int64_t started_ms;
	volatile int draining;     /* set when SIGTERM arrived: streams end */
	sb_cancel *drain_cancel;   /* triggered with draining: for handlers that wait (collect) */
	atomic_long http_inflight; /* requests started and not completed (http.c; drain waits) */
	sbs_gate *gates[2];        /* the listeners' front doors (server.c owns them) */
	uint64_t nofile;           /* the soft RLIMIT_NOFILE in force at start */
	unsigned warm_size;        /* cfg->warm */
	struct sbs_warm *warm;     /* the warm pool while serving, or NULL (warm_pool.h) */
	pthread_mutex_t
	    bridge_sessions_mu; /* named sessions' read-merge-write (bridge_sessions.c) */
};

/* Route registration (one per route file). */
void sbs_native_routes_register(sbs_server *srv);
void sbs_exec_routes_register(sbs_server *srv); /* routes_execs.c */
/* Resolve the route's {id} to a referenced lease (flags: sbs_leases_get's, USE added), or
 * queue the error reply and return NULL. */
sbs_lease *sbs_route_lease(sbs_req *r, unsigned flags);
void sbs_file_routes_register(sbs_server *srv);
void sbs_exec_input_routes_register(sbs_server *srv); /* routes_exec_input.c */

/* lease_network.c: the sandbox config's egress_denied hook (ud = the sbs_server): a line in
 * the access log per destination a lease's proxy denies. */
void sbs_egress_denied_log(void *ud, const char *lease_id, const char *what);

/* server_secrets.c: a secret file readable by nobody but us (and not by the sandbox user,
 * sandbox_uid > 0); the host uid sandboxes run as (-1 when we are not root); the API token. */
sb_err *sbs_secret_file_check(const char *what, const char *path, int64_t sandbox_uid);
int64_t sbs_sandbox_host_uid(const sb_sandbox_config *sc);
sb_err *sbs_read_token(const sb_server_config *cfg, char **out);

/* server_listen.c: listening sockets (close-on-exec), the port actually bound. */
sb_err *sbs_listen_tcp(const char *spec, int *fd_out, int *port_out);
sb_err *sbs_listen_unix(const char *path, int *fd_out);

#endif
