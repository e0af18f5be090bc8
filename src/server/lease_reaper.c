/* The reaper (expired TTLs, sandboxes found dead) and recovery at start (re-adopting the
 * sandboxes of stored records). */
#include "leases_int.h"

#include <assert.h>
#include <ctype.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include "sb_json.h"

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
		sbs_lt_persist_lease(ls, l);
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
		sbs_lease_unref(l);
	}
	if (do_probe) {
		ls->last_probe_ms = now_ms;
		pthread_mutex_lock(&ls->tomb_mu);
		sb_err *err = sbs_store_prune_tombstones(ls->store, now_ms - SBS_RETENTION_MS);
		if (!err)
			err = sbs_store_prune_audit(ls->store, now_ms - SBS_RETENTION_MS);
		if (err) {
			sb_warn("%s", err->msg);
			sb_err_free(err);
		} else {
			int64_t n = sbs_store_tombstone_count(ls->store);
			pthread_mutex_lock(&ls->mu);
			ls->tombstones = n;
			pthread_mutex_unlock(&ls->mu);
		}
		pthread_mutex_unlock(&ls->tomb_mu);
	}
	sb_strv_free(expired);
	sb_strv_free(deferred);
	sb_strv_free(probe);
}

/* Open the sandbox of a record and put it in the table as ACTIVE or LOST. */
static void adopt(sbs_leases *ls, sbs_lease_info *rec)
{
	sb_sandbox *sb = NULL;
	const char *sid = sbs_lease_info_sandbox_id(rec);
	sb_err *err = sb_sandbox_open(ls->cfg, sid, &sb);
	if (err) {
		const char *why =
		    err->code == SB_E_NOTFOUND ? "lease directory missing" : "sandbox died";
		sb_warn("lease %s: %s; marked lost", rec->id, err->msg);
		sb_err_free(err);
		sb = NULL;
		sb_err *e2 = sb_sandbox_open_dead(ls->cfg, sid, &sb);
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
	sbs_lease *l = sbs_lt_add(ls, rec);
	l->sb = sb;
	pthread_mutex_unlock(&ls->mu);
	sbs_lt_persist(ls, rec);
}

/* Whether a lease owns the sandbox of id (by its id, or as the warm sandbox it claimed). */
static bool known_lease(void *ud, const char *id)
{
	sbs_leases *ls = ud;
	pthread_mutex_lock(&ls->mu);
	bool known = sbs_lt_find(ls, id) != NULL || sbs_lt_find_sandbox(ls, id) != NULL;
	pthread_mutex_unlock(&ls->mu);
	return known;
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
			sb_err *e =
			    sb_sandbox_open_dead(ls->cfg, sbs_lease_info_sandbox_id(rec), &h);
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
			sbs_lease *l = sbs_lt_add(ls, rec);
			assert(l->refs > 0); /* only a lease still referenced gains one */
			l->refs++;
			pthread_mutex_unlock(&ls->mu);
			sb_err *e = sbs_lt_destroy_now(ls, l, rec->reason ? rec->reason : "client");
			if (e) {
				sb_warn("%s", e->msg);
				sb_err_free(e);
			}
			sbs_lease_unref(l);
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
	/* Before the directories on disk are adopted: a warm sandbox never becomes a lease
	 * unless its record says it was claimed. */
	sbs_warm_recover(ls->cfg, known_lease, ls);

	char **ids = NULL;
	err = sb_sandbox_list(ls->cfg, &ids);
	if (err) {
		sb_warn("listing lease directories: %s", err->msg);
		sb_err_free(err);
		ids = NULL;
	}
	for (size_t i = 0; ids && ids[i]; i++) {
		if (known_lease(ls, ids[i]))
			continue;
		sbs_lease_info rec;
		sbs_lease_info_init(&rec);
		snprintf(rec.id, sizeof rec.id, "%s", ids[i]);
		rec.created_ms = rec.renewed_ms = sb_wall_ms();
		rec.reason = sb_xstrdup("adopted from disk");
		adopt(ls, &rec);
		sb_sandbox *sb = NULL;
		pthread_mutex_lock(&ls->mu);
		sbs_lease *l = sbs_lt_find(ls, ids[i]);
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
