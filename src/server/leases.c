/* The lease service (leases.h). In memory: every lease that is not a tombstone, with its
 * sandbox handle and execution fences; on disk: the same records in the store, so that a
 * restarted daemon knows every acquisition, every tombstone and which sandboxes to re-adopt.
 * Slow sandbox work (create, destroy, liveness probes) runs outside the table mutex; the
 * PENDING and DESTROYING states keep other callers off a lease meanwhile. A destroyed lease's
 * handle stays open until its last reference is put, so a reader racing a destroy sees I/O
 * errors, never freed memory. */
#include "server/leases.h"

#include <ctype.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

typedef struct fence {
	char *id;
	int64_t expires_ms;
} fence;

struct sbs_lease {
	int refs; /* under ls->mu */
	sbs_leases *ls;
	sbs_lease_info info;
	sb_sandbox *sb; /* NULL while PENDING */
	fence *fences;
	size_t nfences;
	bool deferred; /* a destroy waits for the fences/execs to end */
	char *deferred_reason;
	bool removed; /* no longer in the table */
};

struct sbs_leases {
	pthread_mutex_t mu;
	const sb_sandbox_config *cfg;
	sbs_store *store;
	sbs_lease **v;
	size_t n;
	int64_t tombstones;
	int64_t last_probe_ms;
	void (*use_hook)(void *ud, const char *id);
	void *use_ud;
};

void sbs_leases_set_use_hook(sbs_leases *ls, void (*fn)(void *ud, const char *id), void *ud)
{
	ls->use_hook = fn;
	ls->use_ud = ud;
}

static const char *outcome_names[] = {"claimed",  "replayed",  "in_progress",
                                      "conflict", "completed", "destroying"};

const char *sbs_acquire_outcome_name(sbs_acquire_outcome o)
{
	return (unsigned)o < 6 ? outcome_names[o] : "unknown";
}

sb_err *sbs_leases_new(const sb_sandbox_config *sbcfg, sbs_store *store, sbs_leases **out)
{
	sbs_leases *ls = sb_xcalloc(1, sizeof *ls);
	pthread_mutex_init(&ls->mu, NULL);
	ls->cfg = sbcfg;
	ls->store = store;
	ls->tombstones = sbs_store_tombstone_count(store);
	*out = ls;
	return NULL;
}

static void lease_free(sbs_lease *l)
{
	if (l->sb)
		sb_sandbox_close(l->sb);
	for (size_t i = 0; i < l->nfences; i++)
		free(l->fences[i].id);
	free(l->fences);
	free(l->deferred_reason);
	sbs_lease_info_deinit(&l->info);
	free(l);
}

void sbs_leases_free(sbs_leases *ls)
{
	if (!ls)
		return;
	for (size_t i = 0; i < ls->n; i++)
		lease_free(ls->v[i]);
	free(ls->v);
	pthread_mutex_destroy(&ls->mu);
	free(ls);
}

static sbs_lease *find_locked(sbs_leases *ls, const char *id)
{
	for (size_t i = 0; i < ls->n; i++)
		if (strcmp(ls->v[i]->info.id, id) == 0)
			return ls->v[i];
	return NULL;
}

static sbs_lease *find_acq_locked(sbs_leases *ls, const char *acq)
{
	for (size_t i = 0; i < ls->n; i++)
		if (ls->v[i]->info.acquisition_id &&
		    strcmp(ls->v[i]->info.acquisition_id, acq) == 0)
			return ls->v[i];
	return NULL;
}

static sbs_lease *add_locked(sbs_leases *ls, const sbs_lease_info *info)
{
	sbs_lease *l = sb_xcalloc(1, sizeof *l);
	l->ls = ls;
	l->refs = 1; /* the table's */
	sbs_lease_info_copy(&l->info, info);
	ls->v = sb_xrealloc(ls->v, (ls->n + 1) * sizeof *ls->v);
	ls->v[ls->n++] = l;
	return l;
}

/* Drop from the table (the table's reference goes with it). Caller holds mu. */
static void remove_locked(sbs_leases *ls, sbs_lease *l)
{
	for (size_t i = 0; i < ls->n; i++) {
		if (ls->v[i] == l) {
			memmove(&ls->v[i], &ls->v[i + 1], (ls->n - i - 1) * sizeof *ls->v);
			ls->n--;
			break;
		}
	}
	l->removed = true;
	if (--l->refs == 0)
		lease_free(l);
}

void sbs_lease_put(sbs_lease *l)
{
	if (!l)
		return;
	sbs_leases *ls = l->ls;
	pthread_mutex_lock(&ls->mu);
	if (--l->refs == 0)
		lease_free(l);
	pthread_mutex_unlock(&ls->mu);
}

void sbs_lease_ref(sbs_lease *l)
{
	pthread_mutex_lock(&l->ls->mu);
	l->refs++;
	pthread_mutex_unlock(&l->ls->mu);
}

const char *sbs_lease_id(const sbs_lease *l)
{
	return l->info.id;
}

sb_sandbox *sbs_lease_sandbox(sbs_lease *l)
{
	return l->sb;
}

sbs_leases *sbs_lease_service(sbs_lease *l)
{
	return l->ls;
}

void sbs_lease_get_info(sbs_lease *l, sbs_lease_info *out)
{
	pthread_mutex_lock(&l->ls->mu);
	sbs_lease_info_copy(out, &l->info);
	pthread_mutex_unlock(&l->ls->mu);
}

static void audit(sbs_leases *ls, const char *id, const char *action, json_t *detail)
{
	sb_err *err = sbs_store_audit(ls->store, id, action, detail);
	if (err) {
		sb_warn("audit %s %s: %s", action, id, err->msg);
		sb_err_free(err);
	}
	json_decref(detail);
}

static void persist(sbs_leases *ls, const sbs_lease_info *li)
{
	sb_err *err = sbs_store_lease_put(ls->store, li);
	if (err) {
		/* The in-memory state stays authoritative for this run; a restart would lose the
		 * change, so say so loudly. */
		sb_error("%s", err->msg);
		sb_err_free(err);
	}
}

/* ------------------------------------------------------------------ acquire */

bool sbs_id_ok(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > SB_SANDBOX_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)id[i]) && id[i] != '_' && id[i] != '-')
			return false;
	return true;
}

static bool acq_ok(const char *a)
{
	size_t n = strlen(a);
	if (n == 0 || n > SBS_ACQUISITION_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)a[i] < 0x20 || a[i] == 0x7f)
			return false;
	return true;
}

char *sbs_lease_params_fingerprint(const sbs_lease_params *p)
{
	json_t *j = json_object();
	json_object_set_new(j, "network", json_boolean(p->network));
	json_object_set_new(j, "ttl_s", json_integer(p->ttl_s));
	json_object_set_new(j, "memory_bytes", json_integer((json_int_t)p->limits.memory_bytes));
	json_object_set_new(j, "pids", json_integer((json_int_t)p->limits.pids));
	json_object_set_new(j, "cpu_weight", json_integer((json_int_t)p->limits.cpu_weight));
	json_object_set_new(j, "nofile", json_integer((json_int_t)p->limits.nofile));
	json_object_set_new(j, "nproc", json_integer((json_int_t)p->limits.nproc));
	json_object_set_new(j, "issue_id", p->issue_id ? json_string(p->issue_id) : json_null());
	json_object_set_new(j, "run_id", p->run_id ? json_string(p->run_id) : json_null());
	json_object_set_new(j, "reuse_scope",
	                    p->reuse_scope ? json_string(p->reuse_scope) : json_null());
	json_object_set_new(j, "lease_id", p->lease_id ? json_string(p->lease_id) : json_null());
	/* jansson keeps insertion order; JSON_SORT_KEYS makes the text canonical anyway. */
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(j);
	char hex[SB_SHA256_HEX_LEN];
	sb_sha256_hex(s, strlen(s), hex);
	free(s);
	return sb_xstrdup(hex);
}

static void fill_out(sbs_lease_info *out, const sbs_lease_info *src)
{
	if (!out)
		return;
	sbs_lease_info_deinit(out);
	sbs_lease_info_copy(out, src);
}

sb_err *sbs_leases_acquire(sbs_leases *ls, const sbs_lease_params *p, sbs_acquire_outcome *outcome,
                           sbs_lease_info *out)
{
	if (!p->acquisition_id || !acq_ok(p->acquisition_id))
		return sb_err_new(SB_E_INVAL, "acquisition_id must be 1..%d printable characters",
		                  SBS_ACQUISITION_ID_MAX);
	if (p->lease_id && !sbs_id_ok(p->lease_id))
		return sb_err_new(SB_E_INVAL, "lease id \"%s\" must match [A-Za-z0-9_-]{1,%d}",
		                  p->lease_id, SB_SANDBOX_ID_MAX);
	char *fp = p->fingerprint ? sb_xstrdup(p->fingerprint) : sbs_lease_params_fingerprint(p);
	sb_err *err = NULL;
	sbs_lease_info rec;
	sbs_lease_info_init(&rec);

	pthread_mutex_lock(&ls->mu);
	sbs_lease *l = find_acq_locked(ls, p->acquisition_id);
	if (l) {
		if (strcmp(l->info.fingerprint ? l->info.fingerprint : "", fp) != 0 ||
		    (p->lease_id && strcmp(p->lease_id, l->info.id) != 0))
			*outcome = SBS_ACQ_CONFLICT;
		else if (l->info.state == SBS_LEASE_PENDING)
			*outcome = SBS_ACQ_IN_PROGRESS;
		else if (l->info.state == SBS_LEASE_DESTROYING)
			*outcome = SBS_ACQ_DESTROYING;
		else
			*outcome = SBS_ACQ_REPLAYED;
		fill_out(out, &l->info);
		pthread_mutex_unlock(&ls->mu);
		goto done;
	}
	sbs_lease_info old;
	sbs_lease_info_init(&old);
	sb_err *e = sbs_store_lease_by_acquisition(ls->store, p->acquisition_id, &old);
	if (!e) {
		/* Not live, so a tombstone: a late replay must not revive it. */
		*outcome = SBS_ACQ_COMPLETED;
		fill_out(out, &old);
		sbs_lease_info_deinit(&old);
		pthread_mutex_unlock(&ls->mu);
		goto done;
	}
	if (e->code != SB_E_NOTFOUND) {
		pthread_mutex_unlock(&ls->mu);
		err = e;
		goto done;
	}
	sb_err_free(e);
	if (p->lease_id && (l = find_locked(ls, p->lease_id))) {
		*outcome =
		    l->info.state == SBS_LEASE_DESTROYING ? SBS_ACQ_DESTROYING : SBS_ACQ_CONFLICT;
		fill_out(out, &l->info);
		pthread_mutex_unlock(&ls->mu);
		goto done;
	}
	/* Claim: the PENDING record makes concurrent replays answer "in progress". */
	if (p->lease_id) {
		snprintf(rec.id, sizeof rec.id, "%s", p->lease_id);
	} else {
		char *gid = sb_random_id("lease_");
		snprintf(rec.id, sizeof rec.id, "%s", gid);
		free(gid);
	}
	rec.acquisition_id = sb_xstrdup(p->acquisition_id);
	rec.fingerprint = sb_xstrdup(fp);
	rec.issue_id = p->issue_id ? sb_xstrdup(p->issue_id) : NULL;
	rec.run_id = p->run_id ? sb_xstrdup(p->run_id) : NULL;
	rec.reuse_scope = p->reuse_scope ? sb_xstrdup(p->reuse_scope) : NULL;
	rec.metadata = p->metadata ? json_deep_copy(p->metadata) : NULL;
	rec.state = SBS_LEASE_PENDING;
	rec.network = p->network;
	rec.limits = p->limits;
	rec.limits.ttl_s = p->ttl_s;
	rec.ttl_s = p->ttl_s;
	rec.created_ms = rec.renewed_ms = sb_wall_ms();
	rec.expires_ms = p->ttl_s > 0 ? rec.created_ms + p->ttl_s * 1000 : 0;
	l = add_locked(ls, &rec);
	l->refs++; /* ours, while setting up */
	pthread_mutex_unlock(&ls->mu);
	persist(ls, &rec);

	sb_sandbox_opts opts = {.network = p->network, .limits = p->limits};
	opts.limits.ttl_s = p->ttl_s;
	sb_sandbox *sb = NULL;
	err = sb_sandbox_create(ls->cfg, rec.id, &opts, &sb);
	if (!err && p->setup)
		err = p->setup(p->setup_ud, sb);
	pthread_mutex_lock(&ls->mu);
	if (err) {
		remove_locked(ls, l);
		l->refs--;
		if (l->refs == 0)
			lease_free(l);
		pthread_mutex_unlock(&ls->mu);
		if (sb) {
			sb_err *de = sb_sandbox_destroy(sb);
			if (de) {
				sb_warn("cleaning up lease %s after a failed acquire: %s", rec.id,
				        de->msg);
				sb_err_free(de);
			}
		}
		sb_err *de = sbs_store_lease_delete(ls->store, rec.id);
		sb_err_free(de);
		err = sb_err_prefix(err, "acquiring lease %s", rec.id);
		goto done;
	}
	sb_sandbox_info si;
	sb_sandbox_get_info(sb, &si);
	l->sb = sb;
	l->info.state = SBS_LEASE_ACTIVE;
	l->info.enforced = si.enforced;
	if (si.expires_at_ms)
		l->info.expires_ms = si.expires_at_ms;
	sbs_lease_info copy;
	sbs_lease_info_copy(&copy, &l->info);
	l->refs--;
	pthread_mutex_unlock(&ls->mu);
	persist(ls, &copy);
	json_t *d = json_pack("{s:s, s:s?, s:s?}", "acquisition_id", copy.acquisition_id,
	                      "issue_id", copy.issue_id, "run_id", copy.run_id);
	audit(ls, copy.id, "acquire", d);
	*outcome = SBS_ACQ_CLAIMED;
	fill_out(out, &copy);
	sbs_lease_info_deinit(&copy);
done:
	sbs_lease_info_deinit(&rec);
	free(fp);
	return err;
}

/* ------------------------------------------------------------------ lookups */

/* The stored record of id (tombstones included); SB_E_NOTFOUND names the id when there is none. */
static sb_err *stored_record(sbs_leases *ls, const char *id, sbs_lease_info *out)
{
	sb_err *err = sbs_store_lease_get(ls->store, id, out);
	if (err && err->code == SB_E_NOTFOUND) {
		sb_err_free(err);
		return sb_err_new(SB_E_NOTFOUND, "no lease \"%s\"", id);
	}
	return err;
}

sb_err *sbs_leases_info(sbs_leases *ls, const char *id, sbs_lease_info *out)
{
	pthread_mutex_lock(&ls->mu);
	sbs_lease *l = find_locked(ls, id);
	if (l) {
		sbs_lease_info_copy(out, &l->info);
		pthread_mutex_unlock(&ls->mu);
		return NULL;
	}
	pthread_mutex_unlock(&ls->mu);
	return stored_record(ls, id, out);
}

sb_err *sbs_leases_list(sbs_leases *ls, bool include_destroyed, json_t **out)
{
	json_t *arr = json_array();
	if (include_destroyed) {
		sbs_lease_info *all = NULL;
		size_t n = 0;
		sb_err *err = sbs_store_lease_all(ls->store, &all, &n);
		if (err) {
			json_decref(arr);
			return err;
		}
		for (size_t i = 0; i < n; i++)
			if (all[i].state == SBS_LEASE_DESTROYED)
				json_array_append_new(arr, sbs_lease_info_json(&all[i]));
		sbs_store_leases_free(all, n);
	}
	pthread_mutex_lock(&ls->mu);
	for (size_t i = 0; i < ls->n; i++)
		json_array_append_new(arr, sbs_lease_info_json(&ls->v[i]->info));
	pthread_mutex_unlock(&ls->mu);
	*out = arr;
	return NULL;
}

void sbs_leases_counts(sbs_leases *ls, uint64_t counts[5])
{
	memset(counts, 0, 5 * sizeof *counts);
	pthread_mutex_lock(&ls->mu);
	for (size_t i = 0; i < ls->n; i++)
		counts[ls->v[i]->info.state]++;
	counts[SBS_LEASE_DESTROYED] = (uint64_t)ls->tombstones;
	pthread_mutex_unlock(&ls->mu);
}

/* For an id not among the live leases: NULL when the store still holds its record (the tombstone
 * of a destroyed lease), SB_E_NOTFOUND when it never existed, else the store's error. */
static sb_err *find_tombstone(sbs_leases *ls, const char *id)
{
	sbs_lease_info old;
	sbs_lease_info_init(&old);
	sb_err *err = stored_record(ls, id, &old);
	if (!err)
		sbs_lease_info_deinit(&old);
	return err;
}

sb_err *sbs_leases_get(sbs_leases *ls, const char *id, unsigned flags, sbs_lease **out)
{
	sb_err *err = NULL;
	pthread_mutex_lock(&ls->mu);
	sbs_lease *l = find_locked(ls, id);
	if (!l) {
		pthread_mutex_unlock(&ls->mu);
		err = find_tombstone(ls, id);
		if (!err)
			err = sb_err_new(SB_E_NOTFOUND, "lease \"%s\" was destroyed", id);
		return err;
	}
	switch (l->info.state) {
	case SBS_LEASE_ACTIVE:
		break;
	case SBS_LEASE_LOST:
		if ((flags & SBS_GET_ALLOW_LOST) && l->sb)
			break;
		err = sb_err_new(SB_E_STATE_LOST, "the sandbox of lease \"%s\" is gone (%s)", id,
		                 l->info.reason ? l->info.reason : "lost");
		break;
	case SBS_LEASE_PENDING:
		err = sb_err_new(SB_E_BUSY, "lease \"%s\" is still being set up", id);
		break;
	default:
		err = sb_err_new(SB_E_CONFLICT, "lease \"%s\" is being destroyed", id);
		break;
	}
	if (!err) {
		l->refs++;
		*out = l;
	}
	pthread_mutex_unlock(&ls->mu);
	if (!err && ls->use_hook && (flags & SBS_GET_USE))
		ls->use_hook(ls->use_ud, id);
	return err;
}

/* ------------------------------------------------------------------ fences */

static fence *find_fence(sbs_lease *l, const char *id)
{
	for (size_t i = 0; i < l->nfences; i++)
		if (strcmp(l->fences[i].id, id) == 0)
			return &l->fences[i];
	return NULL;
}

sb_err *sbs_lease_fence_begin(sbs_lease *l, const char *fence_id, int64_t expires_at_ms,
                              bool *replayed)
{
	sb_err *err = NULL;
	pthread_mutex_lock(&l->ls->mu);
	if (l->info.state != SBS_LEASE_ACTIVE || l->deferred) {
		err = sb_err_new(SB_E_CONFLICT, "lease \"%s\" is %s", l->info.id,
		                 l->deferred ? "waiting to be destroyed"
		                             : sbs_lease_state_name(l->info.state));
	} else {
		fence *f = find_fence(l, fence_id);
		if (replayed)
			*replayed = f != NULL;
		if (f) {
			f->expires_ms = expires_at_ms;
		} else {
			l->fences = sb_xrealloc(l->fences, (l->nfences + 1) * sizeof *l->fences);
			l->fences[l->nfences].id = sb_xstrdup(fence_id);
			l->fences[l->nfences].expires_ms = expires_at_ms;
			l->nfences++;
		}
	}
	pthread_mutex_unlock(&l->ls->mu);
	return err;
}

sb_err *sbs_lease_fence_renew(sbs_lease *l, const char *fence_id, int64_t expires_at_ms)
{
	sb_err *err = NULL;
	pthread_mutex_lock(&l->ls->mu);
	fence *f = find_fence(l, fence_id);
	if (f)
		f->expires_ms = expires_at_ms;
	else
		err = sb_err_new(SB_E_NOTFOUND, "no fence \"%s\" on lease \"%s\"", fence_id,
		                 l->info.id);
	pthread_mutex_unlock(&l->ls->mu);
	return err;
}

static size_t live_fences_locked(sbs_lease *l, int64_t now, char ***ids)
{
	size_t n = 0;
	for (size_t i = 0; i < l->nfences; i++) {
		if (l->fences[i].expires_ms && l->fences[i].expires_ms <= now)
			continue;
		if (ids)
			sb_strv_push(ids, l->fences[i].id);
		n++;
	}
	return n;
}

static sb_err *destroy_now(sbs_leases *ls, sbs_lease *l, const char *reason);
static sb_err *running_execs(sb_sandbox *sb, char ***ids, size_t *n);

void sbs_lease_fence_end(sbs_lease *l, const char *fence_id)
{
	sbs_leases *ls = l->ls;
	bool run_deferred = false;
	pthread_mutex_lock(&ls->mu);
	for (size_t i = 0; i < l->nfences; i++) {
		if (strcmp(l->fences[i].id, fence_id) == 0) {
			free(l->fences[i].id);
			l->fences[i] = l->fences[--l->nfences];
			break;
		}
	}
	if (l->deferred && l->info.state == SBS_LEASE_DESTROYING &&
	    live_fences_locked(l, sb_wall_ms(), NULL) == 0 && !l->removed) {
		l->deferred = false; /* we take the destroy over */
		run_deferred = true;
	}
	pthread_mutex_unlock(&ls->mu);
	if (!run_deferred)
		return;
	size_t nrun = 0;
	char **ids = NULL;
	sb_err *err = l->sb ? running_execs(l->sb, &ids, &nrun) : NULL;
	sb_strv_free(ids);
	if (!err && nrun) {
		/* Still running commands: the reaper retries. */
		pthread_mutex_lock(&ls->mu);
		l->deferred = true;
		pthread_mutex_unlock(&ls->mu);
		return;
	}
	sb_err_free(err);
	err = destroy_now(ls, l, l->deferred_reason ? l->deferred_reason : "client");
	if (err) {
		sb_warn("deferred destroy of lease %s: %s", l->info.id, err->msg);
		sb_err_free(err);
	}
}

/* ------------------------------------------------------------------ renew */

sb_err *sbs_leases_renew(sbs_leases *ls, const char *id, int64_t ttl_s, sbs_lease_info *out)
{
	if (ttl_s < 0)
		return sb_err_new(SB_E_INVAL, "ttl_s must be >= 0");
	sbs_lease *l = NULL;
	sb_err *err = sbs_leases_get(ls, id, 0, &l);
	if (err)
		return err;
	pthread_mutex_lock(&ls->mu);
	err = sb_sandbox_renew(l->sb, ttl_s);
	if (!err) {
		int64_t now = sb_wall_ms();
		l->info.ttl_s = ttl_s;
		l->info.limits.ttl_s = ttl_s;
		l->info.renewed_ms = now;
		l->info.expires_ms = ttl_s ? now + ttl_s * 1000 : 0;
	}
	sbs_lease_info copy;
	sbs_lease_info_copy(&copy, &l->info);
	pthread_mutex_unlock(&ls->mu);
	if (!err) {
		persist(ls, &copy);
		if (out)
			sbs_lease_info_copy(out, &copy);
	}
	sbs_lease_info_deinit(&copy);
	sbs_lease_put(l);
	return err;
}

sb_err *sbs_leases_set_metadata(sbs_leases *ls, const char *id, const json_t *metadata)
{
	pthread_mutex_lock(&ls->mu);
	sbs_lease *l = find_locked(ls, id);
	if (!l) {
		pthread_mutex_unlock(&ls->mu);
		return sb_err_new(SB_E_NOTFOUND, "no live lease \"%s\"", id);
	}
	json_decref(l->info.metadata);
	l->info.metadata = metadata ? json_deep_copy(metadata) : NULL;
	sbs_lease_info copy;
	sbs_lease_info_copy(&copy, &l->info);
	pthread_mutex_unlock(&ls->mu);
	persist(ls, &copy);
	sbs_lease_info_deinit(&copy);
	return NULL;
}

/* ------------------------------------------------------------------ destroy */

static sb_err *running_execs(sb_sandbox *sb, char ***ids, size_t *n)
{
	*n = 0;
	char **all = NULL;
	sb_err *err = sb_sandbox_exec_list(sb, &all);
	if (err)
		return err;
	for (size_t i = 0; all && all[i]; i++) {
		sb_sandbox_exec_status st;
		sb_err *e = sb_sandbox_exec_status_get(sb, all[i], &st);
		if (e) {
			sb_err_free(e);
			continue;
		}
		if (st.running) {
			sb_strv_push(ids, all[i]);
			(*n)++;
		}
	}
	sb_strv_free(all);
	return NULL;
}

/* The lease is DESTROYING and ours to finish. */
static sb_err *destroy_now(sbs_leases *ls, sbs_lease *l, const char *reason)
{
	sbs_lease_info copy;
	pthread_mutex_lock(&ls->mu);
	sbs_lease_info_copy(&copy, &l->info);
	pthread_mutex_unlock(&ls->mu);
	persist(ls, &copy);
	/* A handle of our own: l->sb stays valid for readers holding references. */
	sb_sandbox *h = NULL;
	sb_err *err = sb_sandbox_open_dead(ls->cfg, copy.id, &h);
	if (!err) {
		err = sb_sandbox_destroy(h);
	} else if (err->code == SB_E_NOTFOUND) {
		sb_err_free(err);
		err = NULL; /* nothing left on disk */
	}
	if (err) {
		sbs_lease_info_deinit(&copy);
		return sb_err_prefix(err, "destroying lease %s (state kept \"destroying\"; retry)",
		                     l->info.id);
	}
	pthread_mutex_lock(&ls->mu);
	l->info.state = SBS_LEASE_DESTROYED;
	l->info.finished_ms = sb_wall_ms();
	free(l->info.reason);
	l->info.reason = sb_xstrdup(reason);
	sbs_lease_info_deinit(&copy);
	sbs_lease_info_copy(&copy, &l->info);
	if (!l->removed) {
		remove_locked(ls, l);
		ls->tombstones++;
	}
	pthread_mutex_unlock(&ls->mu);
	err = sbs_store_lease_tombstone(ls->store, &copy);
	if (err) {
		sb_error("%s", err->msg);
		sb_err_free(err);
	}
	audit(ls, copy.id, "destroy", json_pack("{s:s}", "reason", reason));
	sbs_lease_info_deinit(&copy);
	return NULL;
}

sb_err *sbs_leases_destroy(sbs_leases *ls, const char *id, const sbs_destroy_opts *o,
                           sbs_destroy_outcome *outcome, char ***busy)
{
	static const sbs_destroy_opts defaults = {0};
	if (!o)
		o = &defaults;
	char **scratch = NULL;
	if (!busy)
		busy = &scratch; /* callers that do not care still get the check */
	sb_err *err = NULL;
	const char *reason = o->reason ? o->reason : "client";
	pthread_mutex_lock(&ls->mu);
	sbs_lease *l = find_locked(ls, id);
	if (!l) {
		pthread_mutex_unlock(&ls->mu);
		err = find_tombstone(ls, id);
		if (!err)
			*outcome = SBS_DESTROY_ALREADY;
		goto out;
	}
	if (o->acquisition_id &&
	    (!l->info.acquisition_id || strcmp(o->acquisition_id, l->info.acquisition_id) != 0)) {
		*outcome = SBS_DESTROY_CONFLICT;
		pthread_mutex_unlock(&ls->mu);
		goto out;
	}
	if (l->info.state == SBS_LEASE_PENDING ||
	    (l->info.state == SBS_LEASE_DESTROYING && !l->deferred)) {
		*outcome = SBS_DESTROY_IN_PROGRESS;
		pthread_mutex_unlock(&ls->mu);
		goto out;
	}
	bool was_deferred = l->deferred;
	sbs_lease_state prev = was_deferred ? SBS_LEASE_ACTIVE : l->info.state;
	l->info.state = SBS_LEASE_DESTROYING;
	l->deferred = false;
	l->refs++;
	size_t nbusy = o->force ? 0 : live_fences_locked(l, sb_wall_ms(), busy);
	sb_sandbox *sb = l->sb;
	pthread_mutex_unlock(&ls->mu);

	if (!o->force && sb && prev == SBS_LEASE_ACTIVE) {
		size_t nrun = 0;
		err = running_execs(sb, busy, &nrun);
		nbusy += nrun;
	}
	if (!err && nbusy) {
		pthread_mutex_lock(&ls->mu);
		if (o->defer || was_deferred) {
			l->deferred = true;
			free(l->deferred_reason);
			l->deferred_reason = sb_xstrdup(reason);
			*outcome = SBS_DESTROY_DEFERRED;
		} else {
			l->info.state = prev;
			*outcome = SBS_DESTROY_BUSY;
		}
		pthread_mutex_unlock(&ls->mu);
		sbs_lease_put(l);
		goto out;
	}
	if (!err) {
		err = destroy_now(ls, l, reason);
		if (!err)
			*outcome = SBS_DESTROY_DONE;
	} else {
		/* Could not tell whether execs run: do not destroy blind. */
		pthread_mutex_lock(&ls->mu);
		if (l->info.state == SBS_LEASE_DESTROYING && !l->deferred)
			l->info.state = prev;
		pthread_mutex_unlock(&ls->mu);
	}
	sbs_lease_put(l);
out:
	sb_strv_free(scratch);
	return err;
}

/* ------------------------------------------------------------------ reaper, recovery */

void sbs_lease_mark_lost(sbs_lease *l, const char *reason)
{
	sbs_leases *ls = l->ls;
	pthread_mutex_lock(&ls->mu);
	bool changed = l->info.state == SBS_LEASE_ACTIVE;
	if (changed) {
		l->info.state = SBS_LEASE_LOST;
		free(l->info.reason);
		l->info.reason = sb_xstrdup(reason);
	}
	sbs_lease_info copy;
	sbs_lease_info_copy(&copy, &l->info);
	pthread_mutex_unlock(&ls->mu);
	if (changed) {
		persist(ls, &copy);
		sb_warn("lease %s: sandbox is gone (%s), marked lost", copy.id, reason);
	}
	sbs_lease_info_deinit(&copy);
}

void sbs_leases_reap(sbs_leases *ls, int64_t now_ms)
{
	char **expired = NULL, **deferred = NULL, **probe = NULL;
	bool do_probe = now_ms - ls->last_probe_ms >= 10000;
	pthread_mutex_lock(&ls->mu);
	for (size_t i = 0; i < ls->n; i++) {
		sbs_lease *l = ls->v[i];
		if (l->info.state == SBS_LEASE_ACTIVE && l->info.expires_ms &&
		    l->info.expires_ms <= now_ms)
			sb_strv_push(&expired, l->info.id);
		else if (l->deferred)
			sb_strv_push(&deferred, l->info.id);
		else if (do_probe && l->info.state == SBS_LEASE_ACTIVE)
			sb_strv_push(&probe, l->info.id);
	}
	pthread_mutex_unlock(&ls->mu);
	for (size_t i = 0; expired && expired[i]; i++) {
		sbs_destroy_opts o = {.reason = "expired"};
		sbs_destroy_outcome oc;
		sb_err *err = sbs_leases_destroy(ls, expired[i], &o, &oc, NULL);
		if (err) {
			sb_warn("reaper: %s", err->msg);
			sb_err_free(err);
		} else if (oc == SBS_DESTROY_DONE) {
			sb_info("reaper: lease %s expired and was destroyed", expired[i]);
		}
	}
	for (size_t i = 0; deferred && deferred[i]; i++) {
		sbs_destroy_opts o = {.defer = true};
		sbs_destroy_outcome oc;
		sb_err *err = sbs_leases_destroy(ls, deferred[i], &o, &oc, NULL);
		if (err) {
			sb_warn("reaper: %s", err->msg);
			sb_err_free(err);
		}
	}
	for (size_t i = 0; probe && probe[i]; i++) {
		sbs_lease *l = NULL;
		sb_err *err = sbs_leases_get(ls, probe[i], 0, &l);
		if (err) {
			sb_err_free(err);
			continue;
		}
		if (!sb_sandbox_alive(l->sb))
			sbs_lease_mark_lost(l, "sandbar-init stopped answering");
		sbs_lease_put(l);
	}
	if (do_probe) {
		ls->last_probe_ms = now_ms;
		sb_err *err =
		    sbs_store_prune_tombstones(ls->store, now_ms - 7LL * 24 * 3600 * 1000);
		if (err) {
			sb_warn("%s", err->msg);
			sb_err_free(err);
		} else {
			int64_t n = sbs_store_tombstone_count(ls->store);
			pthread_mutex_lock(&ls->mu);
			ls->tombstones = n;
			pthread_mutex_unlock(&ls->mu);
		}
	}
	sb_strv_free(expired);
	sb_strv_free(deferred);
	sb_strv_free(probe);
}

/* Open the sandbox of a record and put it in the table as ACTIVE or LOST. */
static void adopt(sbs_leases *ls, sbs_lease_info *rec)
{
	sb_sandbox *sb = NULL;
	sb_err *err = sb_sandbox_open(ls->cfg, rec->id, &sb);
	if (err) {
		const char *why =
		    err->code == SB_E_NOTFOUND ? "lease directory missing" : "sandbox died";
		sb_warn("lease %s: %s; marked lost", rec->id, err->msg);
		sb_err_free(err);
		sb = NULL;
		sb_err *e2 = sb_sandbox_open_dead(ls->cfg, rec->id, &sb);
		sb_err_free(e2);
		if (e2)
			sb = NULL;
		rec->state = SBS_LEASE_LOST;
		free(rec->reason);
		rec->reason = sb_xstrdup(why);
	} else {
		rec->state = SBS_LEASE_ACTIVE;
	}
	pthread_mutex_lock(&ls->mu);
	sbs_lease *l = add_locked(ls, rec);
	l->sb = sb;
	pthread_mutex_unlock(&ls->mu);
	persist(ls, rec);
}

sb_err *sbs_leases_recover(sbs_leases *ls)
{
	sbs_lease_info *all = NULL;
	size_t n = 0;
	sb_err *err = sbs_store_lease_all(ls->store, &all, &n);
	if (err)
		return sb_err_prefix(err, "re-adopting leases");
	size_t adopted = 0, lost = 0;
	for (size_t i = 0; i < n; i++) {
		sbs_lease_info *rec = &all[i];
		switch (rec->state) {
		case SBS_LEASE_DESTROYED:
			break;
		case SBS_LEASE_PENDING: {
			/* Setup never finished: undo it; the client's retry claims afresh. */
			sb_sandbox *h = NULL;
			sb_err *e = sb_sandbox_open_dead(ls->cfg, rec->id, &h);
			if (!e)
				e = sb_sandbox_destroy(h);
			if (e && e->code != SB_E_NOTFOUND)
				sb_warn("lease %s: cleaning up an unfinished acquire: %s", rec->id,
				        e->msg);
			sb_err_free(e);
			sb_err_free(sbs_store_lease_delete(ls->store, rec->id));
			break;
		}
		case SBS_LEASE_DESTROYING: {
			pthread_mutex_lock(&ls->mu);
			sbs_lease *l = add_locked(ls, rec);
			l->refs++;
			pthread_mutex_unlock(&ls->mu);
			sb_err *e = destroy_now(ls, l, rec->reason ? rec->reason : "client");
			if (e) {
				sb_warn("%s", e->msg);
				sb_err_free(e);
			}
			sbs_lease_put(l);
			break;
		}
		default:
			adopt(ls, rec);
			if (rec->state == SBS_LEASE_LOST)
				lost++;
			else
				adopted++;
		}
	}
	sbs_store_leases_free(all, n);

	char **ids = NULL;
	err = sb_sandbox_list(ls->cfg, &ids);
	if (err) {
		sb_warn("listing lease directories: %s", err->msg);
		sb_err_free(err);
		ids = NULL;
	}
	for (size_t i = 0; ids && ids[i]; i++) {
		pthread_mutex_lock(&ls->mu);
		bool known = find_locked(ls, ids[i]) != NULL;
		pthread_mutex_unlock(&ls->mu);
		if (known)
			continue;
		sbs_lease_info rec;
		sbs_lease_info_init(&rec);
		snprintf(rec.id, sizeof rec.id, "%s", ids[i]);
		rec.created_ms = rec.renewed_ms = sb_wall_ms();
		rec.reason = sb_xstrdup("adopted from disk");
		adopt(ls, &rec);
		sb_sandbox *sb = NULL;
		pthread_mutex_lock(&ls->mu);
		sbs_lease *l = find_locked(ls, ids[i]);
		if (l && (sb = l->sb)) {
			sb_sandbox_info si;
			sb_sandbox_get_info(sb, &si);
			l->info.created_ms = si.created_at_ms;
			l->info.expires_ms = si.expires_at_ms;
			l->info.network = si.network;
			l->info.limits = si.limits;
			l->info.ttl_s = si.limits.ttl_s;
			l->info.enforced = si.enforced;
		}
		pthread_mutex_unlock(&ls->mu);
		if (rec.state == SBS_LEASE_LOST)
			lost++;
		else
			adopted++;
		sbs_lease_info_deinit(&rec);
	}
	sb_strv_free(ids);
	if (adopted || lost)
		sb_info("re-adopted %zu lease(s), %zu lost", adopted, lost);
	return NULL;
}
