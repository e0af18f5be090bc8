/* The bridge protocol's named sessions in the state database: one row per (lease, acquisition,
 * session id) with the session's cwd and environment (a JSON array of "K=V"), so that a session
 * survives a daemon restart as the Cloudflare bridge's Durable Objects keep it. Rows go with
 * their lease's tombstone (store.c), and each lease keeps at most max_per_lease sessions, the
 * least recently used going first. */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

/* A session's key: parameters 1 to 3 of s. */
static void bind_key(sqlite3_stmt *s, const char *lease_id, const char *acquisition_id,
                     const char *session_id)
{
	sqlite3_bind_text(s, 1, lease_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, acquisition_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, session_id, -1, SQLITE_STATIC);
}

sb_err *sbs_store_session_get(sbs_store *st, const char *lease_id, const char *acquisition_id,
                              const char *session_id, bool *found, char **cwd, char ***env)
{
	*found = false;
	*cwd = NULL;
	*env = NULL;
	sb_err *err = NULL;
	pthread_mutex_lock(&st->mu);
	sqlite3_stmt *s = NULL;
	err = sbs_store_prepare(st,
	                        "SELECT cwd, env FROM sessions WHERE lease_id = ? AND "
	                        "acquisition_id = ? AND session_id = ?",
	                        "preparing session read", &s);
	if (err)
		goto out;
	bind_key(s, lease_id, acquisition_id, session_id);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_DONE)
		goto out;
	if (rc != SQLITE_ROW) {
		err = sbs_store_db_err(st->db, "reading session");
		goto out;
	}
	const char *c = (const char *)sqlite3_column_text(s, 0);
	const char *e = (const char *)sqlite3_column_text(s, 1);
	json_error_t jerr;
	json_t *j = json_loads(e ? e : "", 0, &jerr);
	if (!json_is_array(j)) {
		json_decref(j);
		err = sb_err_new(SB_E_IO,
		                 "state database: session %s of lease %s has a corrupt "
		                 "environment",
		                 session_id, lease_id);
		goto out;
	}
	size_t i;
	json_t *v;
	json_array_foreach(j, i, v)
	{
		if (json_is_string(v))
			sb_strv_push(env, json_string_value(v));
	}
	json_decref(j);
	*cwd = c ? sb_xstrdup(c) : NULL;
	*found = true;
out:
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->mu);
	if (err)
		err = sb_err_prefix(err, "lease %s", lease_id);
	return err;
}

sb_err *sbs_store_session_put(sbs_store *st, const char *lease_id, const char *acquisition_id,
                              const char *session_id, const char *cwd, char *const *env,
                              int64_t used_ms, size_t max_per_lease)
{
	json_t *j = json_array();
	for (char *const *e = env; e && *e; e++)
		json_array_append_new(j, json_string(*e));
	char *text = sb_json_dumps(j);
	json_decref(j);
	sb_err *err = NULL;
	pthread_mutex_lock(&st->mu);
	sqlite3_stmt *s = NULL, *ev = NULL;
	if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		err = sbs_store_db_err(st->db, "starting session transaction");
		goto out;
	}
	if ((err = sbs_store_prepare(st,
	                             "INSERT OR REPLACE INTO sessions(lease_id, acquisition_id, "
	                             "session_id, cwd, env, used_ms) VALUES(?,?,?,?,?,?)",
	                             "preparing session write", &s)) ||
	    (err = sbs_store_prepare(st,
	                             "DELETE FROM sessions WHERE rowid IN (SELECT rowid FROM "
	                             "sessions WHERE lease_id = ? ORDER BY used_ms DESC, rowid "
	                             "DESC LIMIT -1 OFFSET ?)",
	                             "preparing session eviction", &ev)))
		goto rollback;
	bind_key(s, lease_id, acquisition_id, session_id);
	if (cwd)
		sqlite3_bind_text(s, 4, cwd, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, 4);
	sqlite3_bind_text(s, 5, text, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 6, used_ms);
	sqlite3_bind_text(ev, 1, lease_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(ev, 2, (sqlite3_int64)max_per_lease);
	if (sqlite3_step(s) != SQLITE_DONE || sqlite3_step(ev) != SQLITE_DONE) {
		err = sbs_store_db_err(st->db, "writing session");
		goto rollback;
	}
	if (sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		err = sbs_store_db_err(st->db, "committing session");
	goto out;
rollback:
	sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
out:
	sqlite3_finalize(s);
	sqlite3_finalize(ev);
	pthread_mutex_unlock(&st->mu);
	free(text);
	if (err)
		err = sb_err_prefix(err, "session %s of lease %s", session_id, lease_id);
	return err;
}

sb_err *sbs_store_session_drop(sbs_store *st, const char *lease_id, const char *acquisition_id,
                               const char *session_id)
{
	sb_err *err = NULL;
	pthread_mutex_lock(&st->mu);
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db,
	                       session_id ? "DELETE FROM sessions WHERE lease_id = ? AND "
	                                    "acquisition_id = ? AND session_id = ?"
	                                  : "DELETE FROM sessions WHERE lease_id = ? AND "
	                                    "acquisition_id = ?",
	                       -1, &s, NULL) != SQLITE_OK) {
		err = sbs_store_db_err(st->db, "preparing session delete");
		goto out;
	}
	sqlite3_bind_text(s, 1, lease_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, acquisition_id, -1, SQLITE_STATIC);
	if (session_id)
		sqlite3_bind_text(s, 3, session_id, -1, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_DONE)
		err = sbs_store_db_err(st->db, "deleting session");
out:
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->mu);
	if (err)
		err = sb_err_prefix(err, "lease %s", lease_id);
	return err;
}

int64_t sbs_store_session_count(sbs_store *st, const char *lease_id)
{
	int64_t n = 0;
	pthread_mutex_lock(&st->mu);
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db, "SELECT count(*) FROM sessions WHERE lease_id = ?", -1, &s,
	                       NULL) == SQLITE_OK) {
		sqlite3_bind_text(s, 1, lease_id, -1, SQLITE_STATIC);
		if (sqlite3_step(s) == SQLITE_ROW)
			n = sqlite3_column_int64(s, 0);
	}
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->mu);
	return n;
}
