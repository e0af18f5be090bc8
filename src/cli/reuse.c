/* Reused leases: the key's record (state_dir/reuse/KEY) holds the fingerprint of the settings
 * the lease was made with and, on a second line, its idle limit ("idle_ms N"); its mtime is the
 * last use (set when a run takes the lease and when it lets it go). The workspace in the lease
 * is the earlier run's copy: staging replaces it wholly, so nothing of it outlives a local
 * deletion. A run holds a shared flock on reuse/.lock-KEY while it uses the lease, so the
 * reaper (cli_reuse_reap) never destroys a lease in use however long its command runs. */
#include "reuse.h"

#include "lease_store.h"

#include <sandbar/base.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define REUSE_KEY_MAX 64
#define REUSE_RECORD_MAX 65536
#define REUSE_IDLE_DEFAULT_MS 3600000 /* --reuse-idle's default; records without a limit */

static bool key_valid(const char *key)
{
	size_t n = strlen(key);
	if (n == 0 || n > REUSE_KEY_MAX || key[0] == '.')
		return false;
	for (const char *p = key; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
			return false;
	return true;
}

/* Every setting that shapes the sandbox itself (what staging and the command see is per run). */
static char *fingerprint(const sb_sandbox_opts *o)
{
	char *fp = sb_strfmt("v1 net=%d mem=%llu limits=%d", o->network ? 1 : 0,
	                     (unsigned long long)o->limits.memory_bytes, o->require_limits ? 1 : 0);
	for (size_t i = 0; i < o->nmounts; i++) {
		char *next = sb_strfmt("%s mount=%s:%s:%s", fp, o->mounts[i].host,
		                       o->mounts[i].target, o->mounts[i].rw ? "rw" : "ro");
		free(fp);
		fp = next;
	}
	return fp;
}

/* The record's fingerprint (its first line) and idle limit (the default when absent, as in
 * records written before the limit was kept). */
static void record_parse(const sb_buf *b, size_t *fp_len, int64_t *idle_ms)
{
	const char *nl = b->len ? memchr(b->data, '\n', b->len) : NULL;
	*fp_len = nl ? (size_t)(nl - b->data) : b->len;
	*idle_ms = REUSE_IDLE_DEFAULT_MS;
	long long v = 0;
	if (nl && sscanf(nl + 1, "idle_ms %lld", &v) == 1 && v > 0)
		*idle_ms = v;
}

static int64_t idle_since_ms(const struct stat *st)
{
	return ((int64_t)time(NULL) - (int64_t)st->st_mtime) * 1000;
}

/* The key's lock file, opened (created) for flock; -1 when it cannot be. */
static int lock_open(const char *dir, const char *key)
{
	char *p = sb_strfmt("%s/.lock-%s", dir, key);
	int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	free(p);
	return fd;
}

/* Remove whatever is left under the id, live or dead; a missing lease is fine. */
static void discard(cli_sandbox_env *env, const char *id)
{
	sb_sandbox *sb = NULL;
	sb_err *err = sb_sandbox_open_dead(&env->cfg, id, &sb);
	if (err) {
		sb_err_free(err);
		return;
	}
	sb_err_free(sb_sandbox_destroy(sb));
}

sb_err *cli_reuse_acquire(cli_sandbox_env *env, const char *key, const sb_sandbox_opts *sopts,
                          int64_t idle_ms, char **lease_id, sb_sandbox **out)
{
	*out = NULL;
	*lease_id = NULL;
	if (!key_valid(key))
		return sb_err_new(SB_E_INVAL,
		                  "--reuse %s: a key is 1 to %d letters, digits, '.', '_' or '-' "
		                  "(not starting with '.')",
		                  key, REUSE_KEY_MAX);
	char *dir = sb_strfmt("%s/reuse", env->state_dir);
	char *record = sb_strfmt("%s/%s", dir, key);
	char *id = sb_strfmt("reuse-%s", key);
	char *fp = fingerprint(sopts);
	sb_err *err = sb_fs_mkdir_p(dir, 0700);
	/* Held (shared) until this process exits: the run uses the lease until then. Taken
	 * before the record is read, so a reaper that got there first has finished. */
	int lock = err ? -1 : lock_open(dir, key);
	if (lock >= 0)
		while (flock(lock, LOCK_SH) < 0 && errno == EINTR)
			;
	/* A run on this lease that was killed (or whose restore failed) left its work there:
	 * staging now would replace it, and starting fresh would destroy it. */
	if (!err && cli_lease_work_pending(env, id))
		err = sb_err_new(SB_E_CONFLICT,
		                 "--reuse %s: lease %s holds work of a run that did not finish; "
		                 "bring it back with `sandbar pull %s` (or drop it with `sandbar "
		                 "lease destroy %s`), then run again",
		                 key, id, id, id);
	sb_buf old;
	sb_buf_init(&old);
	struct stat st;
	const char *why = NULL;
	if (!err && stat(record, &st) == 0) {
		sb_err *rerr = sb_read_file(record, REUSE_RECORD_MAX, &old);
		int64_t idle = idle_since_ms(&st), ignored;
		size_t fp_len = 0;
		record_parse(&old, &fp_len, &ignored);
		if (rerr || fp_len != strlen(fp) || memcmp(old.data, fp, fp_len) != 0)
			why = "was made with other settings";
		else if (idle > idle_ms)
			why = "sat idle too long and expired";
		sb_err_free(rerr);
		if (!why) {
			sb_err *oerr = sb_sandbox_open(&env->cfg, id, out);
			if (!oerr)
				goto record_use;
			fprintf(stderr,
			        "sandbar run: reused lease %s was lost (%s); starting fresh\n", id,
			        oerr->msg);
			sb_err_free(oerr);
		} else {
			fprintf(stderr, "sandbar run: reused lease %s %s; starting fresh\n", id,
			        why);
		}
	}
	if (!err) {
		discard(env, id); /* a lease without its record, or one just judged stale */
		err = sb_sandbox_create(&env->cfg, id, sopts, out);
	}
record_use:
	/* Rewritten on every use: its mtime is what the idle expiry measures. */
	if (!err) {
		char *rec = sb_strfmt("%s\nidle_ms %" PRId64 "\n", fp, idle_ms);
		err = sb_fs_write_atomic(record, rec, strlen(rec), 0600);
		free(rec);
	}
	if (err && *out) {
		sb_err_free(sb_sandbox_destroy(*out));
		*out = NULL;
	}
	sb_buf_deinit(&old);
	free(fp);
	free(dir);
	free(record);
	if (err) {
		free(id);
		return err;
	}
	*lease_id = id;
	return NULL;
}

void cli_reuse_release(cli_sandbox_env *env, const char *key)
{
	if (!key_valid(key))
		return;
	char *record = sb_strfmt("%s/reuse/%s", env->state_dir, key);
	(void)utimensat(AT_FDCWD, record, NULL, 0); /* idle from now; gone = nothing to do */
	free(record);
}

int cli_reuse_reap(cli_sandbox_env *env, const char *skip_key, FILE *out)
{
	char *dir = sb_strfmt("%s/reuse", env->state_dir);
	DIR *d = opendir(dir);
	int removed = 0;
	struct dirent *de;
	while (d && (de = readdir(d))) {
		const char *key = de->d_name;
		if (!key_valid(key) || (skip_key && !strcmp(key, skip_key)))
			continue; /* dot names (locks), and the key this run takes itself */
		char *record = sb_strfmt("%s/%s", dir, key);
		struct stat st;
		sb_buf b;
		sb_buf_init(&b);
		size_t fp_len = 0;
		int64_t limit = REUSE_IDLE_DEFAULT_MS, idle = 0;
		sb_err *err = stat(record, &st) == 0 ? sb_read_file(record, REUSE_RECORD_MAX, &b)
		                                     : sb_err_new(SB_E_NOTFOUND, "gone");
		if (!err) {
			record_parse(&b, &fp_len, &limit);
			idle = idle_since_ms(&st);
		}
		int lock = !err && idle > limit ? lock_open(dir, key) : -1;
		/* a run using the lease holds the lock: never destroyed under it */
		char *id = sb_strfmt("reuse-%s", key);
		bool expired = lock >= 0 && flock(lock, LOCK_EX | LOCK_NB) == 0 &&
		               stat(record, &st) == 0 && idle_since_ms(&st) > limit;
		/* no run uses it (the lock), but a killed one left work there: never reaped */
		if (expired && cli_lease_work_pending(env, id)) {
			if (out)
				fprintf(out,
				        "sandbar: kept idle reused lease %s: it holds work to "
				        "bring back "
				        "with `sandbar pull %s`\n",
				        id, id);
		} else if (expired) {
			discard(env, id);
			(void)unlink(record);
			removed++;
			if (out)
				fprintf(out,
				        "sandbar: removed reused lease %s (idle %" PRId64
				        " s, past its --reuse-idle of %" PRId64 " s)\n",
				        id, idle / 1000, limit / 1000);
		}
		free(id);
		if (lock >= 0)
			close(lock);
		sb_err_free(err);
		sb_buf_deinit(&b);
		free(record);
	}
	if (d)
		closedir(d);
	free(dir);
	return removed;
}
