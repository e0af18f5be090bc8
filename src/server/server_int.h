/* The daemon object shared by route files: configuration, services and the router. Route files
 * register into srv->router from their *_routes_register() function, called by server.c. */
#ifndef SB_SERVER_SERVER_INT_H
#define SB_SERVER_SERVER_INT_H

#include <sandbar/server.h>
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
	sb_callback_stats callback_stats;    /* relays of this daemon's leases add to it */
	sb_callback_config *compat_callback; /* every compat lease's, or NULL (compat_routes.c) */
	char *compat_callback_json;
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
};

/* Route registration (one per route file). */
void sbs_native_routes_register(sbs_server *srv);
void sbs_file_routes_register(sbs_server *srv);

/* lease_network.c: the sandbox config's egress_denied hook (ud = the sbs_server): a line in
 * the access log per destination a lease's proxy denies. */
void sbs_egress_denied_log(void *ud, const char *lease_id, const char *what);

#endif
