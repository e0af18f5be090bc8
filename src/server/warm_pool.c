/* The warm pool (warm_pool.h): sandboxes of the configurations the daemon names, started ahead
 * of time, N of each.
 *
 * Each warm sandbox is created under its final sandbox id ("lease_<32 hex>", like any other)
 * with a marker <state>/warm/<id> (holding its configuration's name, for the operator) written
 * before the sandbox exists and removed only once a lease record owns it (sbs_warm_claimed). So
 * after a crash every sandbox is owned by a record or by a marker, never by nothing: recovery
 * destroys the marked ones no record claims (sbs_warm_recover), whatever their configuration,
 * and they never surface as leases adopted from disk.
 *
 * One thread per configuration refills: it starts sandboxes while fewer than n wait, outside
 * its lock, and backs off (1 s doubling to 30 s) when creation fails, so a configuration that
 * cannot start (e.g. no network helper) never holds up the others. take() never waits. */
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

/* The sandboxes of one configuration. */
typedef struct warm_set {
	sbs_warm *w;
	sbs_warm_config c;
	pthread_mutex_t mu; /* guards the fields below */
	pthread_cond_t cv;  /* a take or the stop: the refill thread looks again */
	sb_sandbox **ready; /* started and waiting, oldest first; nready <= w->n */
	unsigned nready;
	bool stopping;      /* set once, by sbs_warm_stop */
	int64_t retry_ms;   /* after a failed creation: no new attempt before (monotonic) */
	int64_t backoff_ms; /* the next failure's delay */
	uint64_t claimed;   /* takes that got one */
	uint64_t empty;     /* takes of this configuration that found none */
	bool started;       /* thread runs (to join) */
	pthread_t thread;
} warm_set;

struct sbs_warm {
	const sb_sandbox_config *cfg;
	unsigned n; /* per configuration, 1..SBS_WARM_MAX */
	warm_set sets[SBS_WARM_CONFIGS_MAX];
	size_t nsets; /* 1..SBS_WARM_CONFIGS_MAX */
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

/* The marker holds the configuration's name: recovery needs only the file name, the operator
 * (and the tests) can tell the configurations apart. */
static sb_err *marker_create(const sb_sandbox_config *cfg, const char *id, const char *config)
{
	char *p = marker_path(cfg, id);
	sb_err *err = NULL;
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		err = sb_err_sys(errno, "creating the warm-pool marker %s", p);
	} else {
		char *line = sb_strfmt("%s\n", config);
		err = sb_write_all(fd, line, strlen(line));
		free(line);
		close(fd);
		if (err) {
			err = sb_err_prefix(err, "writing the warm-pool marker %s", p);
			unlink(p);
		}
	}
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

/* Start one sandbox of the set's configuration; NULL (and a log line) on failure. */
static sb_sandbox *start_one(warm_set *s)
{
	const sb_sandbox_config *cfg = s->w->cfg;
	char *id = sb_random_id("lease_");
	sb_sandbox *sb = NULL;
	sb_err *err = marker_create(cfg, id, s->c.name);
	if (!err) {
		/* default limits, no TTL until claimed (sbs_warm_matches holds the rest to this) */
		sb_sandbox_opts opts = {.network = s->c.network, .callback = s->c.callback};
		err = sb_sandbox_create(cfg, id, &opts, &sb);
		if (err)
			marker_remove(cfg, id); /* sb_sandbox_create cleaned up after itself */
	}
	if (err) {
		sb_warn("warm pool: starting a sandbox of configuration %s: %s", s->c.name,
		        err->msg);
		sb_err_free(err);
	}
	free(id);
	return sb;
}

static void *refill_main(void *arg)
{
	warm_set *s = arg;
	unsigned n = s->w->n;
	pthread_mutex_lock(&s->mu);
	while (!s->stopping) {
		int64_t now = sb_mono_ms();
		if (s->nready < n && now >= s->retry_ms) {
			pthread_mutex_unlock(&s->mu);
			sb_sandbox *sb = start_one(s);
			pthread_mutex_lock(&s->mu);
			if (!sb) {
				s->retry_ms = sb_mono_ms() + s->backoff_ms;
				s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS
				                    ? BACKOFF_MAX_MS
				                    : s->backoff_ms * 2;
				continue;
			}
			s->backoff_ms = BACKOFF_MIN_MS;
			assert(s->nready < n); /* only this thread adds */
			s->ready[s->nready++] = sb;
			continue;
		}
		if (s->nready < n) { /* backing off */
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			int64_t wait = s->retry_ms - now;
			int64_t ns = ts.tv_nsec + (wait % 1000) * 1000000;
			ts.tv_sec += (time_t)(wait / 1000 + ns / 1000000000);
			ts.tv_nsec = (long)(ns % 1000000000);
			pthread_cond_timedwait(&s->cv, &s->mu, &ts);
		} else {
			pthread_cond_wait(&s->cv, &s->mu);
		}
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static bool name_ok(const char *name)
{
	size_t len = name ? strlen(name) : 0;
	if (len == 0 || len > 32)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
		      name[i] == '-'))
			return false;
	return true;
}

sb_err *sbs_warm_start(const sb_sandbox_config *cfg, const sbs_warm_config *configs,
                       size_t nconfigs, unsigned n, sbs_warm **out)
{
	*out = NULL;
	if (n < 1 || n > SBS_WARM_MAX)
		return sb_err_new(SB_E_INVAL, "the warm pool takes 1..%d sandboxes, not %u",
		                  SBS_WARM_MAX, n);
	if (nconfigs < 1 || nconfigs > SBS_WARM_CONFIGS_MAX)
		return sb_err_new(SB_E_INVAL, "the warm pool takes 1..%d configurations, not %zu",
		                  SBS_WARM_CONFIGS_MAX, nconfigs);
	for (size_t i = 0; i < nconfigs; i++) {
		if (!name_ok(configs[i].name))
			return sb_err_new(SB_E_INVAL, "warm pool: bad configuration name \"%s\"",
			                  configs[i].name ? configs[i].name : "");
		if (!configs[i].callback != !configs[i].callback_json)
			return sb_err_new(SB_E_INVAL,
			                  "warm pool: configuration %s has a callback without its "
			                  "JSON or the reverse",
			                  configs[i].name);
	}
	char *dir = marker_dir(cfg);
	sb_err *err = sb_fs_mkdir_p(dir, 0700);
	free(dir);
	if (err)
		return sb_err_prefix(err, "starting the warm pool");
	sbs_warm *w = sb_xcalloc(1, sizeof *w);
	w->cfg = cfg;
	w->n = n;
	w->nsets = nconfigs;
	sb_buf names = SB_BUF_INIT;
	for (size_t i = 0; i < nconfigs; i++) {
		warm_set *s = &w->sets[i];
		s->w = w;
		s->c = configs[i];
		s->ready = sb_xcalloc(n, sizeof *s->ready);
		s->backoff_ms = BACKOFF_MIN_MS;
		pthread_mutex_init(&s->mu, NULL);
		pthread_cond_init(&s->cv, NULL);
		int rc = pthread_create(&s->thread, NULL, refill_main, s);
		if (rc) {
			sb_buf_deinit(&names);
			sbs_warm_stop(w); /* the sets started so far; this one has no thread */
			return sb_err_sys(rc, "starting the warm pool's thread");
		}
		s->started = true;
		sb_buf_appendf(&names, "%s%s (network %s%s)", i ? ", " : "", s->c.name,
		               s->c.network ? "full" : "none", s->c.callback ? ", callback" : "");
	}
	sb_info("warm pool: keeping %u sandbox(es) started for each configuration: %s", n,
	        sb_buf_cstr(&names));
	sb_buf_deinit(&names);
	*out = w;
	return NULL;
}

void sbs_warm_stop(sbs_warm *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->nsets; i++) { /* every thread told first: they stop together */
		warm_set *s = &w->sets[i];
		if (!s->ready)
			continue; /* never set up (a failed start) */
		pthread_mutex_lock(&s->mu);
		s->stopping = true;
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
	}
	unsigned destroyed = 0;
	for (size_t i = 0; i < w->nsets; i++) {
		warm_set *s = &w->sets[i];
		if (!s->ready)
			continue;
		if (s->started)
			pthread_join(s->thread, NULL); /* waits for a creation in progress */
		for (unsigned k = 0; k < s->nready; k++) {
			char *id = sb_xstrdup(sb_sandbox_id(s->ready[k]));
			destroy_warm(w->cfg, s->ready[k], id);
			free(id);
		}
		destroyed += s->nready;
		pthread_mutex_destroy(&s->mu);
		pthread_cond_destroy(&s->cv);
		free(s->ready);
	}
	if (destroyed)
		sb_info("warm pool: destroyed %u waiting sandbox(es)", destroyed);
	free(w);
}

bool sbs_warm_matches(const sbs_warm_config *c, const sbs_lease_params *p)
{
	const sb_sandbox_limits *l = &p->limits;
	if (p->network != c->network || p->egress || p->nmounts != 0 ||
	    (p->secret_names && p->secret_names[0]) || l->memory_bytes || l->pids ||
	    l->cpu_weight || l->nofile || l->nproc || l->spool_bytes)
		return false;
	/* a callback only with its JSON, on either side, and the same one */
	if (!p->callback != !p->callback_json)
		return false;
	if (!c->callback_json)
		return !p->callback;
	return p->callback && strcmp(p->callback_json, c->callback_json) == 0;
}

sb_sandbox *sbs_warm_take(sbs_warm *w, const sbs_lease_params *p, const char **config)
{
	if (config)
		*config = NULL;
	for (size_t i = 0; i < w->nsets; i++) {
		warm_set *s = &w->sets[i];
		if (!sbs_warm_matches(&s->c, p))
			continue;
		sb_sandbox *sb = NULL;
		pthread_mutex_lock(&s->mu);
		if (s->nready > 0 && !s->stopping) {
			/* the oldest: every one is equally fresh, none was used */
			sb = s->ready[0];
			memmove(s->ready, s->ready + 1, (s->nready - 1) * sizeof *s->ready);
			s->ready[--s->nready] = NULL;
			s->claimed++;
			pthread_cond_signal(&s->cv);
		} else {
			s->empty++;
		}
		pthread_mutex_unlock(&s->mu);
		if (sb) {
			if (config)
				*config = s->c.name;
			return sb;
		}
	}
	return NULL;
}

void sbs_warm_claimed(sbs_warm *w, const char *id)
{
	marker_remove(w->cfg, id);
}

size_t sbs_warm_stats_get(sbs_warm *w, sbs_warm_stats *out, size_t max)
{
	size_t k = 0;
	for (size_t i = 0; i < w->nsets && k < max; i++, k++) {
		warm_set *s = &w->sets[i];
		pthread_mutex_lock(&s->mu);
		out[k] = (sbs_warm_stats){.name = s->c.name,
		                          .size = w->n,
		                          .ready = s->nready,
		                          .claimed = s->claimed,
		                          .empty = s->empty};
		pthread_mutex_unlock(&s->mu);
	}
	return k;
}

void sbs_warm_counts(sbs_warm *w, unsigned *size, unsigned *ready)
{
	*size = *ready = 0;
	sbs_warm_stats st[SBS_WARM_CONFIGS_MAX];
	size_t n = sbs_warm_stats_get(w, st, SBS_WARM_CONFIGS_MAX);
	for (size_t i = 0; i < n; i++) {
		*size += st[i].size;
		*ready += st[i].ready;
	}
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
