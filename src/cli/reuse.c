/* Reused leases: the key's record (state_dir/reuse/KEY) holds the fingerprint of the settings
 * the lease was made with; its mtime is the last use. The workspace in the lease is the earlier
 * run's copy: staging replaces it wholly, so nothing of it outlives a local deletion. */
#include "reuse.h"

#include <sandbar/base.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define REUSE_KEY_MAX 64
#define REUSE_RECORD_MAX 65536

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
	sb_buf old;
	sb_buf_init(&old);
	struct stat st;
	const char *why = NULL;
	if (!err && stat(record, &st) == 0) {
		sb_err *rerr = sb_read_file(record, REUSE_RECORD_MAX, &old);
		int64_t idle = ((int64_t)time(NULL) - (int64_t)st.st_mtime) * 1000;
		if (rerr || old.len != strlen(fp) || memcmp(old.data, fp, old.len) != 0)
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
	if (!err)
		err = sb_fs_write_atomic(record, fp, strlen(fp), 0600);
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
