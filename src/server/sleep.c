/* See sleep.h. One entry per lease with a policy; a mutex serialises decisions and freezer
 * operations, so a request that arrives while its lease is being frozen waits for the freeze
 * and then thaws it. */
#include "sleep.h"

#include "store_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
	char *id;
	int64_t after_ms;
	int64_t last_use_ms; /* monotonic */
	int64_t asleep_ms;   /* wall clock; 0 = awake */
} entry;

struct sbs_sleep {
	pthread_mutex_t mu;
	sbs_leases *ls;
	sbs_store *st;
	entry *v;
	size_t n;
	/* A sb_freezer_hold reference, held while any lease may sleep (has a policy, or
	 * sleeps): wakes stay cheap, and the kernel's code rewrite that taking or dropping it
	 * costs (milliseconds, felt by every CPU) happens rarely and off the request path. */
	bool held;
	bool hold_failed; /* warned once; the reaper stops retrying */
};

static entry *find(sbs_sleep *z, const char *id)
{
	for (size_t i = 0; i < z->n; i++)
		if (strcmp(z->v[i].id, id) == 0)
			return &z->v[i];
	return NULL;
}

/* Called with z->mu held. */
static entry *find_or_add(sbs_sleep *z, const char *id)
{
	entry *e = find(z, id);
	if (!e) {
		z->v = sb_xrealloc(z->v, (z->n + 1) * sizeof *z->v);
		e = &z->v[z->n++];
		memset(e, 0, sizeof *e);
		e->id = sb_xstrdup(id);
	}
	return e;
}

static void drop(sbs_sleep *z, entry *e)
{
	free(e->id);
	*e = z->v[--z->n];
}

static sb_err *persist(sbs_sleep *z, const entry *e)
{
	sbs_store *st = z->st;
	sb_err *err = NULL;
	pthread_mutex_lock(&st->mu);
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db,
	                       "INSERT OR REPLACE INTO sleep(lease_id, after_ms, asleep_ms) "
	                       "VALUES(?,?,?)",
	                       -1, &s, NULL) != SQLITE_OK) {
		err = sbs_store_db_err(st->db, "preparing sleep write");
		goto out;
	}
	sqlite3_bind_text(s, 1, e->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, e->after_ms);
	sqlite3_bind_int64(s, 3, e->asleep_ms);
	if (sqlite3_step(s) != SQLITE_DONE)
		err = sbs_store_db_err(st->db, "writing sleep state");
out:
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->mu);
	return err ? sb_err_prefix(err, "lease %s", e->id) : NULL;
}

static void forget(sbs_sleep *z, const char *id)
{
	sbs_store *st = z->st;
	pthread_mutex_lock(&st->mu);
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db, "DELETE FROM sleep WHERE lease_id = ?", -1, &s, NULL) ==
	    SQLITE_OK) {
		sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
		sqlite3_step(s);
	}
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->mu);
}

static void warn(sb_err *err)
{
	if (err) {
		sb_warn("%s", err->msg);
		sb_err_free(err);
	}
}

/* Take the freezer hold at the latest before a lease sleeps; the caller holds z->mu. Without
 * it a wake only costs more, so a failure is a warning (once). */
static void hold(sbs_sleep *z)
{
	if (z->held)
		return;
	sb_err *err = sb_freezer_hold(true);
	bool failed = err != NULL;
	z->held = !failed;
	if (failed && !z->hold_failed)
		warn(err);
	else
		sb_err_free(err);
	z->hold_failed = failed;
}

static bool wants_hold(const sbs_sleep *z)
{
	for (size_t i = 0; i < z->n; i++)
		if (z->v[i].asleep_ms || z->v[i].after_ms > 0)
			return true;
	return false;
}

/* Freeze or thaw the lease's sandbox; the caller holds z->mu. */
static sb_err *apply(sbs_sleep *z, entry *e, bool freeze, bool require_idle)
{
	sbs_lease *l = NULL;
	sb_err *err = sbs_leases_get(z->ls, e->id, 0, &l);
	if (err)
		return err;
	sb_sandbox *sb = sbs_lease_sandbox(l);
	if (freeze && require_idle) {
		char **ids = NULL;
		err = sb_sandbox_exec_list(sb, &ids);
		for (size_t i = 0; !err && ids && ids[i]; i++) {
			sb_sandbox_exec_status st;
			sb_err *e2 = sb_sandbox_exec_status_by_id(sb, ids[i], &st);
			if (!e2 && st.running)
				err =
				    sb_err_new(SB_E_BUSY,
				               "lease %s is running command %s; it sleeps once no "
				               "command runs",
				               e->id, ids[i]);
			sb_err_free(e2);
		}
		sb_strv_free(ids);
	}
	if (!err && freeze)
		hold(z);
	if (!err)
		err = sb_sandbox_freeze(sb, freeze, NULL);
	sbs_lease_unref(l);
	if (err)
		return err;
	e->asleep_ms = freeze ? sb_wall_ms() : 0;
	return persist(z, e);
}

static void on_use(void *ud, const char *id)
{
	sbs_sleep *z = ud;
	pthread_mutex_lock(&z->mu);
	entry *e = find(z, id);
	if (e) {
		e->last_use_ms = sb_mono_ms();
		if (e->asleep_ms)
			warn(apply(z, e, false, false));
	}
	pthread_mutex_unlock(&z->mu);
}

sb_err *sbs_sleep_new(sbs_leases *ls, sbs_store *st, sbs_sleep **out)
{
	sbs_sleep *z = sb_xcalloc(1, sizeof *z);
	pthread_mutex_init(&z->mu, NULL);
	z->ls = ls;
	z->st = st;
	sb_err *err = NULL;
	pthread_mutex_lock(&st->mu);
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db, "SELECT lease_id, after_ms, asleep_ms FROM sleep", -1, &s,
	                       NULL) != SQLITE_OK)
		err = sbs_store_db_err(st->db, "preparing sleep read");
	int rc;
	int64_t now = sb_mono_ms();
	while (!err && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		z->v = sb_xrealloc(z->v, (z->n + 1) * sizeof *z->v);
		entry *e = &z->v[z->n++];
		e->id = sb_xstrdup((const char *)sqlite3_column_text(s, 0));
		e->after_ms = sqlite3_column_int64(s, 1);
		e->asleep_ms = sqlite3_column_int64(s, 2);
		e->last_use_ms = now;
	}
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->mu);
	if (err) {
		sbs_sleep_free(z);
		return err;
	}
	if (wants_hold(z))
		hold(z); /* before the first wake after a restart */
	sbs_leases_set_use_hook(ls, on_use, z);
	*out = z;
	return NULL;
}

void sbs_sleep_free(sbs_sleep *z)
{
	if (!z)
		return;
	for (size_t i = 0; i < z->n; i++)
		free(z->v[i].id);
	free(z->v);
	if (z->held)
		warn(sb_freezer_hold(false));
	pthread_mutex_destroy(&z->mu);
	free(z);
}

sb_err *sbs_sleep_set_policy(sbs_sleep *z, const char *id, int64_t after_ms)
{
	pthread_mutex_lock(&z->mu);
	entry *e = find_or_add(z, id);
	e->after_ms = after_ms;
	e->last_use_ms = sb_mono_ms();
	sb_err *err = persist(z, e);
	pthread_mutex_unlock(&z->mu);
	return err;
}

void sbs_sleep_tick(sbs_sleep *z, int64_t now_ms)
{
	(void)now_ms;
	pthread_mutex_lock(&z->mu);
	int64_t now = sb_mono_ms();
	for (size_t i = 0; i < z->n;) {
		entry *e = &z->v[i];
		sbs_lease_info li;
		sbs_lease_info_init(&li);
		sb_err *err = sbs_leases_info(z->ls, e->id, &li);
		bool gone =
		    (err && err->code == SB_E_NOTFOUND) ||
		    (!err && (li.state == SBS_LEASE_DESTROYED || li.state == SBS_LEASE_LOST));
		bool active = !err && li.state == SBS_LEASE_ACTIVE;
		sb_err_free(err);
		sbs_lease_info_deinit(&li);
		if (gone) {
			forget(z, e->id);
			drop(z, e);
			continue;
		}
		if (active && !e->asleep_ms && e->after_ms > 0 &&
		    now - e->last_use_ms >= e->after_ms) {
			err = apply(z, e, true, true);
			if (err && err->code == SB_E_BUSY)
				e->last_use_ms = now; /* a command ran: idle from now on */
			else if (err)
				e->last_use_ms =
				    now; /* retried after another period, not every tick */
			if (err && err->code != SB_E_BUSY)
				warn(err);
			else
				sb_err_free(err);
		}
		i++;
	}
	/* Take or let go of the hold outside the mutex: the kernel's code rewrite takes
	 * milliseconds, and every request to a lease takes the mutex. */
	bool want = wants_hold(z);
	bool take = want && !z->held && !z->hold_failed;
	bool release = !want && z->held;
	if (release)
		z->held = false;
	pthread_mutex_unlock(&z->mu);
	if (release)
		warn(sb_freezer_hold(false));
	if (take) {
		sb_err *err = sb_freezer_hold(true);
		bool failed = err != NULL;
		pthread_mutex_lock(&z->mu);
		bool extra = !failed && z->held; /* a sleep took one meanwhile */
		if (!failed)
			z->held = true;
		else if (!z->hold_failed)
			warn(sb_err_prefix(err, "leases will wake more slowly"));
		else
			sb_err_free(err);
		z->hold_failed = failed;
		pthread_mutex_unlock(&z->mu);
		if (extra)
			warn(sb_freezer_hold(false));
	}
}

sb_err *sbs_sleep_now(sbs_sleep *z, const char *id)
{
	sbs_lease *l = NULL;
	sb_err *err = sbs_leases_get(z->ls, id, 0, &l);
	if (err)
		return err;
	sbs_lease_unref(l);
	pthread_mutex_lock(&z->mu);
	entry *e = find_or_add(z, id);
	err = e->asleep_ms ? NULL : apply(z, e, true, true);
	pthread_mutex_unlock(&z->mu);
	return err;
}

sb_err *sbs_sleep_wake(sbs_sleep *z, const char *id)
{
	sbs_lease *l = NULL;
	/* A use: the hook wakes it. */
	sb_err *err = sbs_leases_get(z->ls, id, SBS_GET_USE, &l);
	if (!err)
		sbs_lease_unref(l);
	return err;
}

void sbs_sleep_annotate(sbs_sleep *z, json_t *lease)
{
	const char *id = json_string_value(json_object_get(lease, "id"));
	const char *state = json_string_value(json_object_get(lease, "state"));
	if (!id)
		return;
	pthread_mutex_lock(&z->mu);
	entry *e = find(z, id);
	if (e && e->after_ms > 0)
		json_object_set_new(lease, "sleep_after_ms", json_integer(e->after_ms));
	if (e && e->asleep_ms && state && strcmp(state, "active") == 0) {
		json_object_set_new(lease, "state", json_string("sleeping"));
		char iso[SB_ISO8601_LEN];
		sb_iso8601(e->asleep_ms, iso);
		json_object_set_new(lease, "sleeping_since", json_string(iso));
	}
	pthread_mutex_unlock(&z->mu);
}

size_t sbs_sleep_count(sbs_sleep *z)
{
	size_t n = 0;
	pthread_mutex_lock(&z->mu);
	for (size_t i = 0; i < z->n; i++)
		n += z->v[i].asleep_ms != 0;
	pthread_mutex_unlock(&z->mu);
	return n;
}

sb_err *sbs_parse_duration_ms(const json_t *v, int64_t *ms)
{
	const int64_t max_ms = 365LL * 24 * 3600 * 1000;
	if (json_is_integer(v) || json_is_real(v)) {
		double s = json_number_value(v);
		if (s < 0 || s * 1000 > (double)max_ms)
			return sb_err_new(SB_E_INVAL, "a duration must be 0 to 365 days");
		*ms = (int64_t)(s * 1000);
		return NULL;
	}
	const char *t = json_string_value(v);
	if (!t)
		return sb_err_new(SB_E_INVAL, "a duration is a number of seconds or a string "
		                              "like \"10m\"");
	char *end = NULL;
	double n = strtod(t, &end);
	if (end == t || n < 0)
		return sb_err_new(SB_E_INVAL, "duration \"%.40s\" is not <n>[ms|s|m|h|d]", t);
	while (isspace((unsigned char)*end))
		end++;
	double unit = 1000;
	if (strcmp(end, "ms") == 0)
		unit = 1;
	else if (*end == '\0' || strcmp(end, "s") == 0)
		unit = 1000;
	else if (strcmp(end, "m") == 0)
		unit = 60000;
	else if (strcmp(end, "h") == 0)
		unit = 3600000;
	else if (strcmp(end, "d") == 0)
		unit = 86400000;
	else
		return sb_err_new(SB_E_INVAL, "duration \"%.40s\" is not <n>[ms|s|m|h|d]", t);
	if (n * unit > (double)max_ms)
		return sb_err_new(SB_E_INVAL, "duration \"%.40s\" is over 365 days", t);
	*ms = (int64_t)(n * unit);
	return NULL;
}
