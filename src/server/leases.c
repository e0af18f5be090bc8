/* The lease service (leases.h). In memory: every lease that is not a tombstone, with its
 * sandbox handle and execution fences; on disk: the same records in the store, so that a
 * restarted daemon knows every acquisition, every tombstone and which sandboxes to re-adopt.
 * Slow sandbox work (create, destroy, liveness probes) runs outside the table mutex; the
 * PENDING and DESTROYING states keep other callers off a lease meanwhile. A destroyed lease's
 * handle stays open until its last reference is dropped, so a reader racing a destroy sees I/O
 * errors, never freed memory.
 *
 * This file: the lease table and its references, lookups and renewal (acquire and destroy:
 * lease_acquire.c; fences: lease_fences.c; the reaper and recovery: lease_reaper.c). */
#include "leases_int.h"

#include <assert.h>
#include <ctype.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include "sb_json.h"

static const char *outcome_names[] = {"claimed",   "replayed",   "in_progress", "conflict",
                                      "completed", "destroying", "reused"};

const char *sbs_acquire_outcome_name(sbs_acquire_outcome o)
{
	return (unsigned)o < sizeof outcome_names / sizeof *outcome_names ? outcome_names[o]
	                                                                  : "unknown";
}

sb_err *sbs_leases_new(const sb_sandbox_config *sbcfg, sbs_store *store, sbs_leases **out)
{
	sbs_leases *ls = sb_xcalloc(1, sizeof *ls);
	pthread_mutex_init(&ls->mu, NULL);
	pthread_mutex_init(&ls->tomb_mu, NULL);
	pthread_mutex_init(&ls->persist_mu, NULL);
	ls->cfg = sbcfg;
	ls->store = store;
	ls->tombstones = sbs_store_tombstone_count(store);
	*out = ls;
	return NULL;
}

void sbs_lt_free(sbs_lease *l)
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
		sbs_lt_free(ls->v[i]);
	free(ls->v);
	pthread_mutex_destroy(&ls->mu);
	pthread_mutex_destroy(&ls->tomb_mu);
	pthread_mutex_destroy(&ls->persist_mu);
	free(ls);
}

sbs_lease *sbs_lt_find(sbs_leases *ls, const char *id)
{
	for (size_t i = 0; i < ls->n; i++)
		if (strcmp(ls->v[i]->info.id, id) == 0)
			return ls->v[i];
	return NULL;
}

sbs_lease *sbs_lt_find_acq(sbs_leases *ls, const char *acq)
{
	for (size_t i = 0; i < ls->n; i++)
		if (ls->v[i]->info.acquisition_id &&
		    strcmp(ls->v[i]->info.acquisition_id, acq) == 0)
			return ls->v[i];
	return NULL;
}

sbs_lease *sbs_lt_find_sandbox(sbs_leases *ls, const char *sid)
{
	for (size_t i = 0; i < ls->n; i++)
		if (strcmp(sbs_lease_info_sandbox_id(&ls->v[i]->info), sid) == 0)
			return ls->v[i];
	return NULL;
}

sbs_lease *sbs_lt_find_reuse(sbs_leases *ls, const char *key)
{
	for (size_t i = 0; i < ls->n; i++)
		if (ls->v[i]->info.reuse_key && ls->v[i]->info.state != SBS_LEASE_DESTROYING &&
		    strcmp(ls->v[i]->info.reuse_key, key) == 0)
			return ls->v[i];
	return NULL;
}

sbs_lease *sbs_lt_add(sbs_leases *ls, const sbs_lease_info *info)
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
void sbs_lt_remove(sbs_leases *ls, sbs_lease *l)
{
	for (size_t i = 0; i < ls->n; i++) {
		if (ls->v[i] == l) {
			memmove(&ls->v[i], &ls->v[i + 1], (ls->n - i - 1) * sizeof *ls->v);
			ls->n--;
			break;
		}
	}
	l->removed = true;
	assert(l->refs > 0); /* a reference is dropped only once */
	if (--l->refs == 0)
		sbs_lt_free(l);
}

void sbs_lease_unref(sbs_lease *l)
{
	if (!l)
		return;
	sbs_leases *ls = l->ls;
	pthread_mutex_lock(&ls->mu);
	assert(l->refs > 0); /* a reference is dropped only once */
	if (--l->refs == 0)
		sbs_lt_free(l);
	pthread_mutex_unlock(&ls->mu);
}

void sbs_lease_ref(sbs_lease *l)
{
	pthread_mutex_lock(&l->ls->mu);
	assert(l->refs > 0); /* only a lease still referenced gains one */
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

void sbs_lt_audit(sbs_leases *ls, const char *id, const char *action, json_t *detail)
{
	sb_err *err = sbs_store_audit(ls->store, id, action, detail);
	if (err) {
		sb_warn("audit %s %s: %s", action, id, err->msg);
		sb_err_free(err);
	}
	json_decref(detail);
}

void sbs_lt_persist(sbs_leases *ls, const sbs_lease_info *li)
{
	sb_err *err = sbs_store_lease_put(ls->store, li);
	if (err) {
		/* The in-memory state stays authoritative for this run; a restart would lose the
		 * change, so say so loudly. */
		sb_error("%s", err->msg);
		sb_err_free(err);
	}
}

/* Each write takes the info as it is when its turn comes, so a writer that was slower never
 * puts an older state over a newer one: a renew that copied ACTIVE and stored it after the
 * destroy's tombstone brought a destroyed lease back to life in the store. A removed lease's
 * record belongs to its tombstone. */
void sbs_lt_persist_lease(sbs_leases *ls, sbs_lease *l)
{
	pthread_mutex_lock(&ls->persist_mu);
	pthread_mutex_lock(&ls->mu);
	bool gone = l->removed || l->info.state == SBS_LEASE_DESTROYED;
	sbs_lease_info copy;
	if (!gone)
		sbs_lease_info_copy(&copy, &l->info);
	pthread_mutex_unlock(&ls->mu);
	if (!gone) {
		sbs_lt_persist(ls, &copy);
		sbs_lease_info_deinit(&copy);
	}
	pthread_mutex_unlock(&ls->persist_mu);
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
	sbs_lease *l = sbs_lt_find(ls, id);
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
sb_err *sbs_lt_find_tombstone(sbs_leases *ls, const char *id)
{
	sbs_lease_info old;
	sbs_lease_info_init(&old);
	sb_err *err = stored_record(ls, id, &old);
	if (!err)
		sbs_lease_info_deinit(&old);
	return err;
}

sbs_lease *sbs_lt_lock_find(sbs_leases *ls, const char *id, sb_err **gone)
{
	*gone = NULL;
	pthread_mutex_lock(&ls->mu);
	sbs_lease *l = sbs_lt_find(ls, id);
	if (!l) {
		pthread_mutex_unlock(&ls->mu);
		*gone = sbs_lt_find_tombstone(ls, id);
	}
	return l;
}

void sbs_leases_set_warm(sbs_leases *ls, struct sbs_warm *w)
{
	ls->warm = w;
}

void sbs_leases_set_use_hook(sbs_leases *ls, void (*fn)(void *ud, const char *id), void *ud)
{
	ls->use_hook = fn;
	ls->use_ud = ud;
}

sb_err *sbs_leases_get(sbs_leases *ls, const char *id, unsigned flags, sbs_lease **out)
{
	sb_err *err = NULL;
	sbs_lease *l = sbs_lt_lock_find(ls, id, &err);
	if (!l)
		return err ? err : sb_err_new(SB_E_NOTFOUND, "lease \"%s\" was destroyed", id);
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
		assert(l->refs > 0); /* only a lease still referenced gains one */
		l->refs++;
		*out = l;
	}
	pthread_mutex_unlock(&ls->mu);
	if (!err && ls->use_hook && (flags & SBS_GET_USE))
		ls->use_hook(ls->use_ud, id);
	return err;
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
		sbs_lt_persist_lease(ls, l);
		if (out)
			sbs_lease_info_copy(out, &copy);
	}
	sbs_lease_info_deinit(&copy);
	sbs_lease_unref(l);
	return err;
}

sb_err *sbs_leases_set_metadata(sbs_leases *ls, const char *id, const json_t *metadata)
{
	pthread_mutex_lock(&ls->mu);
	sbs_lease *l = sbs_lt_find(ls, id);
	if (!l) {
		pthread_mutex_unlock(&ls->mu);
		return sb_err_new(SB_E_NOTFOUND, "no live lease \"%s\"", id);
	}
	json_decref(l->info.metadata);
	l->info.metadata = metadata ? json_deep_copy(metadata) : NULL;
	l->refs++; /* l outlives the unlock until it is stored */
	pthread_mutex_unlock(&ls->mu);
	sbs_lt_persist_lease(ls, l);
	sbs_lease_unref(l);
	return NULL;
}

sb_err *sbs_lease_processes_json(sbs_lease *l, json_t **out)
{
	*out = NULL;
	sb_sandbox_process *p = NULL;
	size_t n = 0;
	sb_err *err = sb_sandbox_list_processes(sbs_lease_sandbox(l), &p, &n);
	if (err)
		return err;
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++) {
		char st[2] = {p[i].state, 0};
		json_array_append_new(
		    arr, json_pack("{s:i, s:i, s:i, s:s, s:I, s:s?, s:s}", "pid", p[i].pid, "ppid",
		                   p[i].ppid, "pgid", p[i].pgid, "state", st, "rss_bytes",
		                   (json_int_t)p[i].rss_bytes, "exec_id", p[i].exec_id, "cmdline",
		                   p[i].cmdline ? p[i].cmdline : ""));
	}
	sb_sandbox_processes_free(p, n);
	*out = arr;
	return NULL;
}
