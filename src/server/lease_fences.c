/* Execution fences: a lease with a live fence is not destroyed (unless forced); the last fence
 * to end runs a deferred destroy. */
#include "leases_int.h"

#include <assert.h>
#include <ctype.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include "sb_json.h"

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

size_t sbs_lt_live_fences(sbs_lease *l, int64_t now, char ***ids)
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

void sbs_lease_fence_end(sbs_lease *l, const char *fence_id)
{
	sbs_leases *ls = l->ls;
	pthread_mutex_lock(&ls->mu);
	for (size_t i = 0; i < l->nfences; i++) {
		if (strcmp(l->fences[i].id, fence_id) == 0) {
			free(l->fences[i].id);
			assert(l->nfences > 0);
			l->fences[i] = l->fences[--l->nfences];
			break;
		}
	}
	/* The last fence of a lease waiting to be destroyed: the destroy runs now, unless
	 * commands still run (then the reaper retries). */
	bool run_deferred = l->deferred && l->info.state == SBS_LEASE_DESTROYING &&
	                    sbs_lt_live_fences(l, sb_wall_ms(), NULL) == 0 && !l->removed;
	pthread_mutex_unlock(&ls->mu);
	if (!run_deferred)
		return;
	sbs_destroy_opts o = {.defer = true};
	sbs_destroy_outcome oc;
	sb_err *err = sbs_leases_destroy(ls, l->info.id, &o, &oc, NULL);
	if (err) {
		sb_warn("deferred destroy of lease %s: %s", l->info.id, err->msg);
		sb_err_free(err);
	}
}
