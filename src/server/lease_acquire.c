/* Acquiring a lease (idempotent by acquisition id, the sandbox created outside the table lock)
 * and destroying one (now, or deferred until its fences and executions end). */
#include "leases_int.h"

#include <assert.h>
#include <ctype.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include "sb_json.h"

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
	/* the normalised network object (DESIGN.md §9.9) */
	json_object_set_new(j, "network", sbs_lease_params_network_json(p));
	json_t *mounts = sbs_lease_params_mounts_json(p);
	if (mounts) /* only when given: fingerprints of other leases stay as they were */
		json_object_set_new(j, "mounts", mounts);
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
	if (p->callback_json) /* only when given: fingerprints of other leases stay as they were */
		json_object_set_new(j, "callback", json_string(p->callback_json));
	/* jansson keeps insertion order; JSON_SORT_KEYS makes the text canonical anyway. */
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(j);
	char hex[SB_SHA256_HEX_LEN];
	sb_sha256_hex(s, strlen(s), hex);
	free(s);
	return sb_xstrdup(hex);
}

/* What a reuse must match: the sandbox's configuration alone (not the audit fields, the TTL
 * or the ids, which differ from one run to the next). */
static char *reuse_fingerprint(const sbs_lease_params *p)
{
	sbs_lease_params c = {.network = p->network,
	                      .egress = p->egress,
	                      .secret_names = p->secret_names,
	                      .mounts = p->mounts,
	                      .nmounts = p->nmounts,
	                      .callback_json = p->callback_json,
	                      .limits = p->limits};
	return sbs_lease_params_fingerprint(&c);
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
	if (p->reuse_key && (!acq_ok(p->reuse_key) || p->lease_id))
		return sb_err_new(SB_E_INVAL,
		                  p->lease_id
		                      ? "reuse_key and lease_id cannot be combined: a reused "
		                        "lease keeps the id it was made with"
		                      : "reuse_key must be 1..%d printable characters",
		                  SBS_ACQUISITION_ID_MAX);
	if (p->lease_id && !sbs_id_ok(p->lease_id))
		return sb_err_new(SB_E_INVAL, "lease id \"%s\" must match [A-Za-z0-9_-]{1,%d}",
		                  p->lease_id, SB_SANDBOX_ID_MAX);
	char *fp = p->fingerprint ? sb_xstrdup(p->fingerprint) : sbs_lease_params_fingerprint(p);
	sb_err *err = NULL;
	sbs_lease_info rec;
	sbs_lease_info_init(&rec);

	pthread_mutex_lock(&ls->mu);
	sbs_lease *l = sbs_lt_find_acq(ls, p->acquisition_id);
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
	char *reuse_fp = p->reuse_key ? reuse_fingerprint(p) : NULL;
	if (p->reuse_key && (l = sbs_lt_find_reuse(ls, p->reuse_key))) {
		/* one past its TTL that the reaper has not destroyed yet is not handed out again */
		bool expired = l->info.expires_ms && l->info.expires_ms <= sb_wall_ms();
		bool same_config =
		    l->info.reuse_fingerprint && strcmp(l->info.reuse_fingerprint, reuse_fp) == 0;
		bool same = l->info.state == SBS_LEASE_ACTIVE && !expired && same_config;
		if (l->info.state == SBS_LEASE_PENDING || same) {
			*outcome = same ? SBS_ACQ_REUSED : SBS_ACQ_IN_PROGRESS;
			char id[SB_SANDBOX_ID_MAX + 1];
			snprintf(id, sizeof id, "%s", l->info.id);
			fill_out(out, &l->info);
			pthread_mutex_unlock(&ls->mu);
			free(reuse_fp);
			if (same && p->ttl_s > 0) {
				/* each reuse starts the TTL again: an idle reused lease expires
				 * ttl_s after its last acquire */
				sbs_lease_info renewed;
				sbs_lease_info_init(&renewed);
				err = sbs_leases_renew(ls, id, p->ttl_s, &renewed);
				if (!err)
					fill_out(out, &renewed);
				sbs_lease_info_deinit(&renewed);
			}
			goto done;
		}
		/* Another configuration, a lost sandbox or an expired lease: replaced by a fresh
		 * one. */
		const char *why = l->info.state != SBS_LEASE_ACTIVE ? "its sandbox is lost"
		                  : expired                         ? "it has expired"
		                                                    : "its configuration differs";
		char replaced[SB_SANDBOX_ID_MAX + 1];
		snprintf(replaced, sizeof replaced, "%s", l->info.id);
		pthread_mutex_unlock(&ls->mu);
		free(reuse_fp);
		sb_info("lease %s (reuse key \"%s\"): %s; replacing it", replaced, p->reuse_key,
		        why);
		sbs_destroy_opts dopts = {.force = true, .reason = "replaced (reuse_key)"};
		sbs_destroy_outcome doc;
		err = sbs_leases_destroy(ls, replaced, &dopts, &doc, NULL);
		if (err) {
			err = sb_err_prefix(err, "replacing lease %s (reuse key \"%s\")", replaced,
			                    p->reuse_key);
			goto done;
		}
		sbs_lease_info_deinit(&rec);
		free(fp);
		/* once: the replaced lease is gone or being destroyed, so it is not found again */
		return sbs_leases_acquire(ls, p, outcome, out);
	}
	/* A lease id is taken by a lease of that id, and by a lease whose (warm) sandbox has it:
	 * the sandbox layer would refuse the directory anyway. */
	if (p->lease_id &&
	    ((l = sbs_lt_find(ls, p->lease_id)) || (l = sbs_lt_find_sandbox(ls, p->lease_id)))) {
		*outcome =
		    l->info.state == SBS_LEASE_DESTROYING ? SBS_ACQ_DESTROYING : SBS_ACQ_CONFLICT;
		fill_out(out, &l->info);
		pthread_mutex_unlock(&ls->mu);
		goto done;
	}
	/* A sandbox of the warm pool, when the configuration is exactly one the pool keeps: it
	 * is ours alone from here on (never handed to another acquisition). Without a lease id
	 * of its own the lease takes the sandbox's; with one (the bridge's pc-acq-..., a client's)
	 * the record says which sandbox is its (sandbox_id). */
	const char *warm_config = NULL;
	sb_sandbox *warm = ls->warm ? sbs_warm_take(ls->warm, p, &warm_config) : NULL;
	/* Claim: the PENDING record makes concurrent replays answer "in progress". */
	if (warm && p->lease_id) {
		snprintf(rec.id, sizeof rec.id, "%s", p->lease_id);
		snprintf(rec.sandbox_id, sizeof rec.sandbox_id, "%s", sb_sandbox_id(warm));
	} else if (warm) {
		snprintf(rec.id, sizeof rec.id, "%s", sb_sandbox_id(warm));
	} else if (p->lease_id) {
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
	rec.reuse_key = p->reuse_key ? sb_xstrdup(p->reuse_key) : NULL;
	rec.reuse_fingerprint = reuse_fp; /* the record owns it */
	rec.metadata = p->metadata ? json_deep_copy(p->metadata) : NULL;
	rec.state = SBS_LEASE_PENDING;
	rec.network = p->network;
	rec.net = sbs_lease_params_network_json(p);
	rec.mounts = sbs_lease_params_mounts_json(p);
	rec.limits = p->limits;
	rec.limits.ttl_s = p->ttl_s;
	rec.ttl_s = p->ttl_s;
	rec.created_ms = rec.renewed_ms = sb_wall_ms();
	rec.expires_ms = p->ttl_s > 0 ? rec.created_ms + p->ttl_s * 1000 : 0;
	l = sbs_lt_add(ls, &rec);
	assert(l->refs > 0); /* only a lease still referenced gains one */
	l->refs++;           /* ours, while setting up */
	pthread_mutex_unlock(&ls->mu);
	sbs_lt_persist(ls, &rec);

	sb_sandbox_opts opts = {.network = p->network,
	                        .limits = p->limits,
	                        .callback = p->callback,
	                        .egress = p->egress,
	                        .mounts = p->mounts,
	                        .nmounts = p->nmounts,
	                        .mount_roots = p->mount_roots};
	opts.limits.ttl_s = p->ttl_s;
	sb_sandbox *sb = NULL;
	if (warm) {
		/* the record owns it now: recovery goes by the record, not the pool's marker */
		sbs_warm_claimed(ls->warm, sb_sandbox_id(warm));
		sb = warm;
		if (p->ttl_s) /* a warm sandbox waits without one */
			err = sb_sandbox_renew(sb, p->ttl_s);
	} else {
		err = sb_sandbox_create(ls->cfg, rec.id, &opts, &sb);
	}
	if (!err && p->setup)
		err = p->setup(p->setup_ud, sb);
	pthread_mutex_lock(&ls->mu);
	if (err) {
		sbs_lt_remove(ls, l);
		assert(l->refs > 0); /* a reference is dropped only once */
		l->refs--;
		if (l->refs == 0)
			sbs_lt_free(l);
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
	l->info.limits = si.limits; /* the limits in force: the defaults filled in */
	if (si.expires_at_ms)
		l->info.expires_ms = si.expires_at_ms;
	sbs_lease_info copy;
	sbs_lease_info_copy(&copy, &l->info);
	pthread_mutex_unlock(&ls->mu);
	sbs_lt_persist_lease(ls, l);
	sbs_lease_unref(l); /* the acquire's own reference */
	json_t *d = json_pack("{s:s, s:s?, s:s?}", "acquisition_id", copy.acquisition_id,
	                      "issue_id", copy.issue_id, "run_id", copy.run_id);
	sbs_lt_audit(ls, copy.id, "acquire", d);
	if (warm)
		sb_debug("lease %s: claimed warm sandbox %s (configuration %s)", copy.id,
		         sbs_lease_info_sandbox_id(&copy), warm_config);
	*outcome = SBS_ACQ_CLAIMED;
	fill_out(out, &copy);
	sbs_lease_info_deinit(&copy);
done:
	sbs_lease_info_deinit(&rec);
	free(fp);
	return err;
}

/* ------------------------------------------------------------------ destroy */

sb_err *sbs_lt_running_execs(sb_sandbox *sb, char ***ids, size_t *n)
{
	*n = 0;
	char **all = NULL;
	sb_err *err = sb_sandbox_exec_list(sb, &all);
	if (err)
		return err;
	for (size_t i = 0; all && all[i]; i++) {
		sb_sandbox_exec_status st;
		sb_err *e = sb_sandbox_exec_status_by_id(sb, all[i], &st);
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
sb_err *sbs_lt_destroy_now(sbs_leases *ls, sbs_lease *l, const char *reason)
{
	sbs_lease_info copy;
	pthread_mutex_lock(&ls->mu);
	sbs_lease_info_copy(&copy, &l->info);
	pthread_mutex_unlock(&ls->mu);
	sbs_lt_persist_lease(ls, l);
	/* A handle of our own: l->sb stays valid for readers holding references. */
	sb_sandbox *h = NULL;
	sb_err *err = sb_sandbox_open_dead(ls->cfg, sbs_lease_info_sandbox_id(&copy), &h);
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
	pthread_mutex_lock(&ls->persist_mu);
	pthread_mutex_lock(&ls->tomb_mu);
	pthread_mutex_lock(&ls->mu);
	l->info.state = SBS_LEASE_DESTROYED;
	l->info.finished_ms = sb_wall_ms();
	free(l->info.reason);
	l->info.reason = sb_xstrdup(reason);
	sbs_lease_info_deinit(&copy);
	sbs_lease_info_copy(&copy, &l->info);
	if (!l->removed) {
		sbs_lt_remove(ls, l);
		ls->tombstones++;
	}
	pthread_mutex_unlock(&ls->mu);
	err = sbs_store_lease_tombstone(ls->store, &copy);
	pthread_mutex_unlock(&ls->tomb_mu);
	pthread_mutex_unlock(&ls->persist_mu);
	if (err) {
		sb_error("%s", err->msg);
		sb_err_free(err);
	}
	sbs_lt_audit(ls, copy.id, "destroy", json_pack("{s:s}", "reason", reason));
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
	sbs_lease *l = sbs_lt_lock_find(ls, id, &err);
	if (!l) {
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
	/* A lease already waiting to be destroyed is checked again (not forced) by one thread at
	 * a time; it stays deferred meanwhile, so a forced destroy can take it over. */
	bool recheck = l->deferred && !o->force;
	if (recheck && l->rechecking) {
		*outcome = SBS_DESTROY_DEFERRED;
		pthread_mutex_unlock(&ls->mu);
		goto out;
	}
	sbs_lease_state prev = l->deferred ? SBS_LEASE_ACTIVE : l->info.state;
	l->info.state = SBS_LEASE_DESTROYING;
	if (recheck) {
		l->rechecking = true;
		reason = l->deferred_reason ? l->deferred_reason : reason;
	} else {
		l->deferred = false;
	}
	assert(l->refs > 0); /* only a lease still referenced gains one */
	l->refs++;
	size_t nbusy = o->force ? 0 : sbs_lt_live_fences(l, sb_wall_ms(), busy);
	sb_sandbox *sb = l->sb;
	char *reason_copy = sb_xstrdup(reason);
	pthread_mutex_unlock(&ls->mu);

	if (!o->force && sb && prev == SBS_LEASE_ACTIVE) {
		size_t nrun = 0;
		err = sbs_lt_running_execs(sb, busy, &nrun);
		nbusy += nrun;
	}
	pthread_mutex_lock(&ls->mu);
	if (recheck)
		l->rechecking = false;
	bool taken_over = recheck && !l->deferred; /* by a forced destroy, while we looked */
	if (taken_over) {
		*outcome = SBS_DESTROY_IN_PROGRESS;
	} else if (!err && nbusy) {
		if (o->defer || recheck) {
			if (!recheck) {
				l->deferred = true;
				free(l->deferred_reason);
				l->deferred_reason = sb_xstrdup(reason_copy);
			}
			*outcome = SBS_DESTROY_DEFERRED;
		} else {
			l->info.state = prev;
			*outcome = SBS_DESTROY_BUSY;
		}
	} else if (err) {
		/* Could not tell whether execs run: do not destroy blind (a deferred lease stays
		 * deferred, and the reaper asks again). */
		if (!recheck && l->info.state == SBS_LEASE_DESTROYING && !l->deferred)
			l->info.state = prev;
	} else {
		l->deferred = false; /* ours to destroy now */
	}
	bool destroy = !taken_over && !err && !nbusy;
	pthread_mutex_unlock(&ls->mu);
	if (destroy) {
		err = sbs_lt_destroy_now(ls, l, reason_copy);
		if (!err)
			*outcome = SBS_DESTROY_DONE;
	}
	free(reason_copy);
	sbs_lease_unref(l);
out:
	sb_strv_free(scratch);
	return err;
}
