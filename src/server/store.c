/* SQLite state of the daemon (DESIGN.md §7): <state>/sandbar.db in WAL mode. A lease record is
 * kept as its JSON form (lease_info.c) next to the indexed columns the lookups need; the audit
 * table appends one row per lease event. One connection behind a mutex. */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>
#include "sb_json.h"

sb_err *sbs_store_db_err(sqlite3 *db, const char *what)
{
	return sb_err_new(SB_E_IO, "state database: %s: %s", what, sqlite3_errmsg(db));
}

sb_err *sbs_store_prepare(sbs_store *st, const char *sql, const char *what, sqlite3_stmt **out)
{
	if (sqlite3_prepare_v2(st->db, sql, -1, out, NULL) != SQLITE_OK)
		return sbs_store_db_err(st->db, what);
	return NULL;
}

#define db_err sbs_store_db_err

static const char *schema =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS leases ("
    "  id TEXT PRIMARY KEY,"
    "  acquisition_id TEXT,"
    "  state TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  finished_ms INTEGER NOT NULL DEFAULT 0,"
    "  record TEXT NOT NULL);"
    "CREATE UNIQUE INDEX IF NOT EXISTS leases_acq ON leases(acquisition_id) "
    "  WHERE acquisition_id IS NOT NULL;"
    "CREATE TABLE IF NOT EXISTS tombstones ("
    "  acquisition_id TEXT PRIMARY KEY,"
    "  id TEXT NOT NULL,"
    "  finished_ms INTEGER NOT NULL,"
    "  record TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS tombstones_id ON tombstones(id, finished_ms);"
    "CREATE TABLE IF NOT EXISTS sessions (" /* store_sessions.c */
    "  lease_id TEXT NOT NULL, acquisition_id TEXT NOT NULL, session_id TEXT NOT NULL,"
    "  cwd TEXT, env TEXT NOT NULL, used_ms INTEGER NOT NULL,"
    "  PRIMARY KEY(lease_id, acquisition_id, session_id));"
    "CREATE TABLE IF NOT EXISTS sleep (" /* sleep.c */
    "  lease_id TEXT PRIMARY KEY, after_ms INTEGER NOT NULL, asleep_ms INTEGER NOT NULL,"
    "  cgroup TEXT);"
    "CREATE TABLE IF NOT EXISTS nonces (key TEXT PRIMARY KEY, expires_s INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS audit ("
    "  ts_ms INTEGER NOT NULL, lease_id TEXT, action TEXT NOT NULL, detail TEXT);"
    "CREATE INDEX IF NOT EXISTS audit_ts ON audit(ts_ms);";

sb_err *sbs_store_open(const char *path, sbs_store **out)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(
	    path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
	if (rc != SQLITE_OK) {
		sb_err *err = sb_err_new(SB_E_IO, "opening state database %s: %s", path,
		                         db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return err;
	}
	sqlite3_busy_timeout(db, 5000);
	char *msg = NULL;
	if (sqlite3_exec(db, schema, NULL, NULL, &msg) != SQLITE_OK) {
		sb_err *err = sb_err_new(SB_E_IO, "initialising state database %s: %s", path,
		                         msg ? msg : "?");
		sqlite3_free(msg);
		sqlite3_close(db);
		return err;
	}
	sbs_store *st = sb_xcalloc(1, sizeof *st);
	st->db = db;
	pthread_mutex_init(&st->mu, NULL);
	*out = st;
	return NULL;
}

void sbs_store_close(sbs_store *st)
{
	if (!st)
		return;
	sqlite3_close(st->db);
	pthread_mutex_destroy(&st->mu);
	free(st);
}

sb_err *sbs_store_lease_put(sbs_store *st, const sbs_lease_info *li)
{
	json_t *j = sbs_lease_info_json(li);
	char *rec = sb_json_dumps(j);
	json_decref(j);
	sb_err *err = NULL;
	pthread_mutex_lock(&st->mu);
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(
	        st->db,
	        "INSERT OR REPLACE INTO leases(id, acquisition_id, state, created_ms, "
	        "finished_ms, record) VALUES(?,?,?,?,?,?)",
	        -1, &s, NULL) != SQLITE_OK) {
		err = db_err(st->db, "preparing lease write");
		goto out;
	}
	sqlite3_bind_text(s, 1, li->id, -1, SQLITE_STATIC);
	if (li->acquisition_id)
		sqlite3_bind_text(s, 2, li->acquisition_id, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, 2);
	sqlite3_bind_text(s, 3, sbs_lease_state_name(li->state), -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, li->created_ms);
	sqlite3_bind_int64(s, 5, li->finished_ms);
	sqlite3_bind_text(s, 6, rec, -1, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_DONE)
		err = db_err(st->db, "writing lease record");
out:
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->mu);
	free(rec);
	if (err)
		err = sb_err_prefix(err, "lease %s", li->id);
	return err;
}

static sb_err *row_to_info(sqlite3_stmt *s, int col, sbs_lease_info *out)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	int n = sqlite3_column_bytes(s, col);
	json_t *j = NULL;
	sb_err *err = sb_json_parse_object((const char *)t, (size_t)n, 16u << 20, 32, &j);
	if (err)
		return sb_err_prefix(err, "corrupt lease record");
	err = sbs_lease_info_from_json(j, out);
	json_decref(j);
	return err;
}

static sb_err *get_one(sbs_store *st, const char *sql, const char *key, sbs_lease_info *out)
{
	sb_err *err = NULL;
	pthread_mutex_lock(&st->mu);
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		err = db_err(st->db, "preparing lease read");
		goto out;
	}
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		err = row_to_info(s, 0, out);
	else if (rc == SQLITE_DONE)
		err = sb_err_new(SB_E_NOTFOUND, "no lease record for \"%s\"", key);
	else
		err = db_err(st->db, "reading lease record");
out:
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->mu);
	return err;
}

sb_err *sbs_store_lease_get(sbs_store *st, const char *id, sbs_lease_info *out)
{
	return get_one(
	    st,
	    "SELECT record FROM (SELECT record, 1 AS o, 0 AS f FROM leases WHERE id = ?1 "
	    "UNION ALL SELECT record, 2, finished_ms FROM tombstones WHERE id = ?1) "
	    "ORDER BY o, f DESC LIMIT 1",
	    id, out);
}

sb_err *sbs_store_lease_by_acquisition(sbs_store *st, const char *acquisition_id,
                                       sbs_lease_info *out)
{
	return get_one(st,
	               "SELECT record FROM (SELECT record, 1 AS o FROM leases WHERE "
	               "acquisition_id = ?1 UNION ALL SELECT record, 2 FROM tombstones WHERE "
	               "acquisition_id = ?1) ORDER BY o LIMIT 1",
	               acquisition_id, out);
}

sb_err *sbs_store_lease_tombstone(sbs_store *st, const sbs_lease_info *li)
{
	json_t *j = sbs_lease_info_json(li);
	char *rec = sb_json_dumps(j);
	json_decref(j);
	char *acq =
	    li->acquisition_id ? sb_xstrdup(li->acquisition_id) : sb_strfmt("adopted:%s", li->id);
	sb_err *err = NULL;
	pthread_mutex_lock(&st->mu);
	sqlite3_stmt *s = NULL, *d = NULL, *ds = NULL;
	if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		err = db_err(st->db, "starting tombstone transaction");
		goto out;
	}
	if (sqlite3_prepare_v2(st->db,
	                       "INSERT OR REPLACE INTO tombstones(acquisition_id, id, finished_ms, "
	                       "record) VALUES(?,?,?,?)",
	                       -1, &s, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(st->db, "DELETE FROM leases WHERE id = ?", -1, &d, NULL) !=
	        SQLITE_OK ||
	    sqlite3_prepare_v2(st->db, "DELETE FROM sessions WHERE lease_id = ?", -1, &ds, NULL) !=
	        SQLITE_OK) {
		err = db_err(st->db, "preparing tombstone write");
		goto rollback;
	}
	sqlite3_bind_text(s, 1, acq, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, li->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, li->finished_ms);
	sqlite3_bind_text(s, 4, rec, -1, SQLITE_STATIC);
	sqlite3_bind_text(d, 1, li->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(ds, 1, li->id, -1, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_DONE || sqlite3_step(d) != SQLITE_DONE ||
	    sqlite3_step(ds) != SQLITE_DONE) {
		err = db_err(st->db, "writing tombstone");
		goto rollback;
	}
	if (sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		err = db_err(st->db, "committing tombstone");
	goto out;
rollback:
	sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
out:
	sqlite3_finalize(s);
	sqlite3_finalize(d);
	sqlite3_finalize(ds);
	pthread_mutex_unlock(&st->mu);
	free(rec);
	free(acq);
	return err;
}

int64_t sbs_store_tombstone_count(sbs_store *st)
{
	int64_t n = 0;
	pthread_mutex_lock(&st->mu);
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db, "SELECT count(*) FROM tombstones", -1, &s, NULL) ==
	        SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->mu);
	return n;
}

sb_err *sbs_store_lease_all(sbs_store *st, sbs_lease_info **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	sb_err *err = NULL;
	pthread_mutex_lock(&st->mu);
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(
	        st->db,
	        "SELECT record FROM (SELECT record, created_ms, id FROM leases UNION ALL "
	        "SELECT record, 0, id FROM tombstones) ORDER BY created_ms, id",
	        -1, &s, NULL) != SQLITE_OK) {
		err = db_err(st->db, "preparing lease list");
		goto out;
	}
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		*out = sb_xrealloc(*out, (*n + 1) * sizeof **out);
		sbs_lease_info_init(&(*out)[*n]);
		if ((err = row_to_info(s, 0, &(*out)[*n]))) {
			sbs_lease_info_deinit(&(*out)[*n]);
			goto out;
		}
		(*n)++;
	}
	if (rc != SQLITE_DONE)
		err = db_err(st->db, "listing leases");
out:
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->mu);
	if (err) {
		sbs_store_leases_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return err;
}

void sbs_store_leases_free(sbs_lease_info *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sbs_lease_info_deinit(&v[i]);
	free(v);
}

static sb_err *exec1(sbs_store *st, const char *sql, const char *text, int64_t num,
                     const char *what)
{
	sb_err *err = NULL;
	pthread_mutex_lock(&st->mu);
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		err = db_err(st->db, what);
		goto out;
	}
	if (text)
		sqlite3_bind_text(s, 1, text, -1, SQLITE_STATIC);
	else
		sqlite3_bind_int64(s, 1, num);
	if (sqlite3_step(s) != SQLITE_DONE)
		err = db_err(st->db, what);
out:
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->mu);
	return err;
}

sb_err *sbs_store_lease_delete(sbs_store *st, const char *id)
{
	return exec1(st, "DELETE FROM leases WHERE id = ?", id, 0, "deleting lease record");
}

sb_err *sbs_store_prune_tombstones(sbs_store *st, int64_t cutoff_ms)
{
	return exec1(st, "DELETE FROM tombstones WHERE finished_ms < ?", NULL, cutoff_ms,
	             "pruning tombstones");
}

sb_err *sbs_store_prune_audit(sbs_store *st, int64_t cutoff_ms)
{
	return exec1(st, "DELETE FROM audit WHERE ts_ms < ?", NULL, cutoff_ms,
	             "pruning the audit trail");
}

int64_t sbs_store_audit_count(sbs_store *st)
{
	int64_t n = 0;
	pthread_mutex_lock(&st->mu);
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db, "SELECT count(*) FROM audit", -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->mu);
	return n;
}

sb_err *sbs_store_nonce_put(sbs_store *st, const char *key, int64_t expires_s)
{
	sb_err *err = NULL;
	pthread_mutex_lock(&st->mu);
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO nonces(key, expires_s) VALUES(?,?)",
	                       -1, &s, NULL) != SQLITE_OK) {
		err = db_err(st->db, "preparing nonce write");
		goto out;
	}
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, expires_s);
	if (sqlite3_step(s) != SQLITE_DONE)
		err = db_err(st->db, "writing nonce");
out:
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->mu);
	return err;
}

sb_err *sbs_store_nonces_load(sbs_store *st, int64_t now_s,
                              void (*fn)(void *ud, const char *key, int64_t expires_s), void *ud)
{
	sb_err *err = NULL;
	pthread_mutex_lock(&st->mu);
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db, "SELECT key, expires_s FROM nonces WHERE expires_s >= ?", -1,
	                       &s, NULL) != SQLITE_OK) {
		err = db_err(st->db, "preparing nonce read");
		goto out;
	}
	sqlite3_bind_int64(s, 1, now_s);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		fn(ud, (const char *)sqlite3_column_text(s, 0), sqlite3_column_int64(s, 1));
	if (rc != SQLITE_DONE)
		err = db_err(st->db, "reading nonces");
out:
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->mu);
	return err;
}

sb_err *sbs_store_nonces_prune(sbs_store *st, int64_t now_s)
{
	return exec1(st, "DELETE FROM nonces WHERE expires_s < ?", NULL, now_s, "pruning nonces");
}

sb_err *sbs_store_audit(sbs_store *st, const char *lease_id, const char *action,
                        const json_t *detail)
{
	char *d = detail ? sb_json_dumps(detail) : NULL;
	sb_err *err = NULL;
	pthread_mutex_lock(&st->mu);
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db,
	                       "INSERT INTO audit(ts_ms, lease_id, action, detail) VALUES(?,?,?,?)",
	                       -1, &s, NULL) != SQLITE_OK) {
		err = db_err(st->db, "preparing audit write");
		goto out;
	}
	sqlite3_bind_int64(s, 1, sb_wall_ms());
	sqlite3_bind_text(s, 2, lease_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, action, -1, SQLITE_STATIC);
	if (d)
		sqlite3_bind_text(s, 4, d, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, 4);
	if (sqlite3_step(s) != SQLITE_DONE)
		err = db_err(st->db, "writing audit record");
out:
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->mu);
	free(d);
	return err;
}
