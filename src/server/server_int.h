/* The daemon object shared by route files: configuration, services and the router. Route files
 * register into srv->router from their *_routes_register() function, called by server.c. */
#ifndef SB_SERVER_SERVER_INT_H
#define SB_SERVER_SERVER_INT_H

#include <sandbar/server.h>

#include "server/authn.h"
#include "server/execs.h"
#include "server/http.h"
#include "server/leases.h"
#include "server/metrics.h"
#include "server/store.h"

struct sbs_server {
	sb_server_limits limits; /* defaults filled in */
	char *state_dir;
	char *tmp_dir;             /* <state>/tmp: spooled uploads and downloads */
	char *overlay_dir;         /* ".paperclip-runtime" */
	sb_sandbox_config sandbox; /* strings owned by the server */
	sbs_router *router;
	sbs_auth *auth;
	sbs_store *store;
	sbs_leases *leases;
	sbs_execs *execs;
	struct sbs_sleep *sleep; /* idle sleep (sleep.h) */
	sbs_metrics *metrics;
	json_t *sandbox_health; /* sb_sandbox_health_json at start */
	bool access_log;
	int64_t started_ms;
	volatile int draining;   /* set when SIGTERM arrived: streams end */
	sb_cancel *drain_cancel; /* triggered with draining: for handlers that wait (collect) */
};

/* Route registration (one per route file). */
void sbs_native_routes_register(sbs_server *srv);
void sbs_file_routes_register(sbs_server *srv);

/* Temp file under tmp_dir, already unlinked, O_RDWR|O_CLOEXEC. */
sb_err *sbs_server_tmpfile(sbs_server *srv, int *fd_out);

#endif
