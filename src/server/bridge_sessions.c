/* Named sessions of the bridge protocol: a cwd and an environment per (lease, acquisition,
 * sessionId), kept in the state database (store_sessions.c) so they survive a restart. A
 * request's values replace the session's and persist; the least recently used session of a
 * lease goes first past SESSIONS_PER_LEASE. Read-merge-write is serialised by the daemon,
 * which alone owns the database. */
#include "bridge_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Sessions per lease (the least recently used goes first), and the size of one session's
 * environment: requests merge into it, so it is bounded here rather than per request. */
#define SESSIONS_PER_LEASE 256
#define SESSION_ENV_BYTES (1u << 20)

void bridge_session_drop(sbs_server *srv, const char *lease_id, const char *acq, const char *id)
{
	sb_err *err = sbs_store_session_drop(srv->store, lease_id, acq, id);
	if (err) {
		sb_warn("bridge session %s: %s", id ? id : "(all)", err->msg);
		sb_err_free(err);
	}
}

sb_err *bridge_session_apply(sbs_server *srv, const char *lease_id, const char *acq, const char *id,
                             char ***env, char **cwd)
{
	pthread_mutex_lock(&srv->bridge_sessions_mu);
	bool found = false;
	char *s_cwd = NULL;
	char **s_env = NULL, **merged = NULL;
	sb_err *err = sbs_store_session_get(srv->store, lease_id, acq, id, &found, &s_cwd, &s_env);
	if (err)
		goto out;
	/* Merge: session values first, request values replace them. */
	size_t n = 0, bytes = 0;
	for (char **e = s_env; e && *e; e++) {
		size_t kl = (size_t)(strchr(*e, '=') - *e);
		if (!sb_env_get(*env, *e, kl)) {
			sb_strv_push(&merged, *e);
			n++;
			bytes += strlen(*e);
		}
	}
	for (char **e = *env; e && *e; e++) {
		sb_strv_push(&merged, *e);
		n++;
		bytes += strlen(*e);
	}
	if (n > SBS_EXEC_MAX_ENV || bytes > SESSION_ENV_BYTES) {
		err =
		    sb_err_new(SB_E_INVAL,
		               "session %s of lease %s would hold %zu environment variables "
		               "(%zu bytes), over the limit of %d (%u bytes); use another session "
		               "or fewer variables",
		               id, lease_id, n, bytes, SBS_EXEC_MAX_ENV, SESSION_ENV_BYTES);
		goto out;
	}
	if (*cwd) {
		free(s_cwd);
		s_cwd = sb_xstrdup(*cwd);
	} else if (s_cwd) {
		*cwd = sb_xstrdup(s_cwd);
	}
	if ((err = sbs_store_session_put(srv->store, lease_id, acq, id, s_cwd, merged, sb_wall_ms(),
	                                 SESSIONS_PER_LEASE)))
		goto out;
	sb_strv_free(*env);
	*env = merged;
	merged = NULL;
out:
	pthread_mutex_unlock(&srv->bridge_sessions_mu);
	sb_strv_free(merged);
	sb_strv_free(s_env);
	free(s_cwd);
	return err;
}
