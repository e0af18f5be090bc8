/* The warm pool (warm_pool.h): sandboxes of the default configuration started ahead of time.
 *
 * Each warm sandbox is created under its final lease id ("lease_<32 hex>", like any other) with
 * a marker <state>/warm/<id> written before the sandbox exists and removed only once a lease
 * record owns it (sbs_warm_claimed). So after a crash every sandbox is owned by a record or by
 * a marker, never by nothing: recovery destroys the marked ones no record claims
 * (sbs_warm_recover), and they never surface as leases adopted from disk.
 *
 * One thread refills: it starts sandboxes while fewer than n wait, outside the pool's lock, and
 * backs off (1 s doubling to 30 s) when creation fails. take() never waits for it. */
#include "warm_pool.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 30000

struct sbs_warm {
	const sb_sandbox_config *cfg;
	unsigned n;         /* the pool's size, 1..SBS_WARM_MAX */
	pthread_mutex_t mu; /* guards the fields below */
	pthread_cond_t cv;  /* a take or the stop: the refill thread looks again */
	sb_sandbox **ready; /* started and waiting, oldest first; nready <= n */
	unsigned nready;
	bool stopping;      /* set once, by sbs_warm_stop */
	int64_t retry_ms;   /* after a failed creation: no new attempt before (monotonic) */
	int64_t backoff_ms; /* the next failure's delay */
	pthread_t thread;
};

static char *marker_dir(const sb_sandbox_config *cfg)
{
	return sb_strfmt("%s/warm", cfg->state_dir);
}

static char *marker_path(const sb_sandbox_config *cfg, const char *id)
{
	return sb_strfmt("%s/warm/%s", cfg->state_dir, id);
}

static void marker_remove(const sb_sandbox_config *cfg, const char *id)
{
	char *p = marker_path(cfg, id);
	if (unlink(p) < 0 && errno != ENOENT)
		sb_warn("warm pool: removing %s: %s", p, strerror(errno));
	free(p);
}

static sb_err *marker_create(const sb_sandbox_config *cfg, const char *id)
{
	char *p = marker_path(cfg, id);
	sb_err *err = NULL;
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		err = sb_err_sys(errno, "creating the warm-pool marker %s", p);
	else
		close(fd);
	free(p);
	return err;
}

/* Destroy a sandbox the pool (or an earlier daemon's pool) owns, then its marker. */
static void destroy_warm(const sb_sandbox_config *cfg, sb_sandbox *sb, const char *id)
{
	sb_err *err = NULL;
	if (!sb) {
		err = sb_sandbox_open_dead(cfg, id, &sb);
		if (err && err->code == SB_E_NOTFOUND) {
			sb_err_free(err); /* never started, or gone already */
			err = NULL;
			sb = NULL;
		}
	}
	if (!err && sb)
		err = sb_sandbox_destroy(sb);
	if (err) {
		/* the marker stays: the next start tries again */
		sb_warn("warm pool: destroying sandbox %s: %s", id, err->msg);
		sb_err_free(err);
		return;
	}
	marker_remove(cfg, id);
}

/* Start one sandbox of the default configuration; NULL (and a log line) on failure. */
static sb_sandbox *start_one(sbs_warm *w)
{
	char *id = sb_random_id("lease_");
	sb_sandbox *sb = NULL;
	sb_err *err = marker_create(w->cfg, id);
	if (!err) {
		sb_sandbox_opts opts = {0}; /* network none, default limits, no TTL until claimed */
		err = sb_sandbox_create(w->cfg, id, &opts, &sb);
		if (err)
			marker_remove(w->cfg, id); /* sb_sandbox_create cleaned up after itself */
	}
	if (err) {
		sb_warn("warm pool: starting a sandbox: %s", err->msg);
		sb_err_free(err);
	}
	free(id);
	return sb;
}

static void *refill_main(void *arg)
{
	sbs_warm *w = arg;
	pthread_mutex_lock(&w->mu);
	while (!w->stopping) {
		int64_t now = sb_mono_ms();
		if (w->nready < w->n && now >= w->retry_ms) {
			pthread_mutex_unlock(&w->mu);
			sb_sandbox *sb = start_one(w);
			pthread_mutex_lock(&w->mu);
			if (!sb) {
				w->retry_ms = sb_mono_ms() + w->backoff_ms;
				w->backoff_ms = w->backoff_ms * 2 > BACKOFF_MAX_MS
				                    ? BACKOFF_MAX_MS
				                    : w->backoff_ms * 2;
				continue;
			}
			w->backoff_ms = BACKOFF_MIN_MS;
			assert(w->nready < w->n); /* only this thread adds */
			w->ready[w->nready++] = sb;
			continue;
		}
		if (w->nready < w->n) { /* backing off */
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			int64_t wait = w->retry_ms - now;
			int64_t ns = ts.tv_nsec + (wait % 1000) * 1000000;
			ts.tv_sec += (time_t)(wait / 1000 + ns / 1000000000);
			ts.tv_nsec = (long)(ns % 1000000000);
			pthread_cond_timedwait(&w->cv, &w->mu, &ts);
		} else {
			pthread_cond_wait(&w->cv, &w->mu);
		}
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

sb_err *sbs_warm_start(const sb_sandbox_config *cfg, unsigned n, sbs_warm **out)
{
	*out = NULL;
	if (n < 1 || n > SBS_WARM_MAX)
		return sb_err_new(SB_E_INVAL, "the warm pool takes 1..%d sandboxes, not %u",
		                  SBS_WARM_MAX, n);
	char *dir = marker_dir(cfg);
	sb_err *err = sb_fs_mkdir_p(dir, 0700);
	free(dir);
	if (err)
		return sb_err_prefix(err, "starting the warm pool");
	sbs_warm *w = sb_xcalloc(1, sizeof *w);
	w->cfg = cfg;
	w->n = n;
	w->ready = sb_xcalloc(n, sizeof *w->ready);
	w->backoff_ms = BACKOFF_MIN_MS;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	int rc = pthread_create(&w->thread, NULL, refill_main, w);
	if (rc) {
		pthread_mutex_destroy(&w->mu);
		pthread_cond_destroy(&w->cv);
		free(w->ready);
		free(w);
		return sb_err_sys(rc, "starting the warm pool's thread");
	}
	sb_info("warm pool: keeping %u sandbox(es) of the default configuration started", n);
	*out = w;
	return NULL;
}

void sbs_warm_stop(sbs_warm *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stopping = true;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL); /* waits for a creation in progress */
	for (unsigned i = 0; i < w->nready; i++) {
		char *id = sb_xstrdup(sb_sandbox_id(w->ready[i]));
		destroy_warm(w->cfg, w->ready[i], id);
		free(id);
	}
	if (w->nready)
		sb_info("warm pool: destroyed %u waiting sandbox(es)", w->nready);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	free(w->ready);
	free(w);
}

bool sbs_warm_matches(const sbs_lease_params *p)
{
	const sb_sandbox_limits *l = &p->limits;
	return !p->lease_id && !p->network && !p->egress && !p->callback && !p->callback_json &&
	       p->nmounts == 0 && (!p->secret_names || !p->secret_names[0]) && !l->memory_bytes &&
	       !l->pids && !l->cpu_weight && !l->nofile && !l->nproc && !l->spool_bytes;
}

sb_sandbox *sbs_warm_take(sbs_warm *w)
{
	sb_sandbox *sb = NULL;
	pthread_mutex_lock(&w->mu);
	if (w->nready > 0 && !w->stopping) {
		sb = w->ready[0]; /* the oldest: every one is equally fresh, none was used */
		memmove(w->ready, w->ready + 1, (w->nready - 1) * sizeof *w->ready);
		w->ready[--w->nready] = NULL;
		pthread_cond_signal(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	return sb;
}

void sbs_warm_claimed(sbs_warm *w, const char *id)
{
	marker_remove(w->cfg, id);
}

void sbs_warm_counts(sbs_warm *w, unsigned *size, unsigned *ready)
{
	pthread_mutex_lock(&w->mu);
	*size = w->n;
	*ready = w->nready;
	pthread_mutex_unlock(&w->mu);
}

size_t sbs_warm_recover(const sb_sandbox_config *cfg, bool (*known)(void *ud, const char *id),
                        void *ud)
{
	char *dir = marker_dir(cfg);
	DIR *d = opendir(dir);
	if (!d) {
		if (errno != ENOENT)
			sb_warn("warm pool: listing %s: %s", dir, strerror(errno));
		free(dir);
		return 0;
	}
	size_t destroyed = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (!sbs_id_ok(de->d_name)) {
			sb_warn("warm pool: ignoring %s/%s (not a lease id)", dir, de->d_name);
			continue;
		}
		if (known(ud, de->d_name)) {
			marker_remove(cfg, de->d_name); /* claimed: its record decides */
			continue;
		}
		destroy_warm(cfg, NULL, de->d_name);
		destroyed++;
	}
	closedir(d);
	free(dir);
	if (destroyed)
		sb_info("warm pool: destroyed %zu sandbox(es) an earlier daemon left waiting",
		        destroyed);
	return destroyed;
}
