/* Finding what every lease creation needs from the host, once per process: sandbar-init, the
 * bwrap binary, the sandbox host user, and whether the state directory is reachable by that
 * user. Lookups are cached process-wide because they describe the host, not a lease. */
#include "sandbox_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Where sandbar-init is (sb_helper_program: $SANDBAR_INIT, beside the running program, its
 * ../libexec/sandbar/, the paths baked in at build time), found once per process. */
static char *found_init_path;
static pthread_once_t found_init_once = PTHREAD_ONCE_INIT;

static void find_init_path(void)
{
	found_init_path = sb_helper_program("SANDBAR_INIT", "sandbar-init", SANDBAR_INIT_BUILD_PATH,
	                                    SANDBAR_INIT_INSTALL_PATH);
}

const char *sb_sandbox_init_path(const sb_sandbox_config *cfg)
{
	if (cfg->init_path)
		return cfg->init_path;
	pthread_once(&found_init_once, find_init_path);
	return found_init_path;
}

/* PATH lookup of the default bwrap and of the default user, done once per process (both are
 * on every lease creation's path); failures are not cached. */
static pthread_mutex_t lookup_lock = PTHREAD_MUTEX_INITIALIZER;
static char *cached_bwrap;
static bool cached_user;
static int64_t cached_uid, cached_gid;

sb_err *sb_sandbox_bwrap_path(const sb_sandbox_config *cfg, char **out)
{
	if (!cfg->bwrap_path) {
		pthread_mutex_lock(&lookup_lock);
		char *hit = cached_bwrap ? sb_xstrdup(cached_bwrap) : NULL;
		pthread_mutex_unlock(&lookup_lock);
		if (hit) {
			*out = hit;
			return NULL;
		}
	}
	const char *name = cfg->bwrap_path ? cfg->bwrap_path : "bwrap";
	if (strchr(name, '/')) {
		if (access(name, X_OK) < 0)
			return sb_err_sys(errno, "bubblewrap at %s", name);
		*out = sb_xstrdup(name);
		return NULL;
	}
	const char *path = getenv("PATH");
	char *copy = sb_xstrdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
	char *save = NULL;
	for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		char *p = sb_strfmt("%s/%s", dir, name);
		if (access(p, X_OK) == 0) {
			free(copy);
			*out = p;
			if (!cfg->bwrap_path) {
				pthread_mutex_lock(&lookup_lock);
				if (!cached_bwrap)
					cached_bwrap = sb_xstrdup(p);
				pthread_mutex_unlock(&lookup_lock);
			}
			return NULL;
		}
		free(p);
	}
	free(copy);
	return sb_err_new(SB_E_UNSUPPORTED,
	                  "bubblewrap (%s) not found in PATH: install the bubblewrap package",
	                  name);
}

sb_err *sb_sandbox_resolve_owner(const sb_sandbox_config *cfg, int64_t *uid, int64_t *gid)
{
	if (geteuid() != 0) {
		*uid = geteuid();
		*gid = getegid();
		return NULL;
	}
	if (cfg->host_uid >= 0) {
		*uid = cfg->host_uid;
		*gid = cfg->host_gid >= 0 ? cfg->host_gid : cfg->host_uid;
	} else {
		pthread_mutex_lock(&lookup_lock);
		bool hit = cached_user;
		*uid = cached_uid;
		*gid = cfg->host_gid >= 0 ? cfg->host_gid : cached_gid;
		pthread_mutex_unlock(&lookup_lock);
		if (hit)
			goto check;
		struct passwd pw, *res = NULL;
		char buf[4096];
		int rc = getpwnam_r(SB_SANDBOX_USER_DEFAULT, &pw, buf, sizeof buf, &res);
		if (rc != 0 || !res)
			return sb_err_new(SB_E_UNSUPPORTED,
			                  "running as root, sandboxes need an unprivileged host "
			                  "user: create \"%s\" (scripts/create-sandbar-user) or "
			                  "configure host_uid/host_gid",
			                  SB_SANDBOX_USER_DEFAULT);
		*uid = pw.pw_uid;
		*gid = cfg->host_gid >= 0 ? cfg->host_gid : pw.pw_gid;
		pthread_mutex_lock(&lookup_lock);
		cached_user = true;
		cached_uid = pw.pw_uid;
		cached_gid = pw.pw_gid;
		pthread_mutex_unlock(&lookup_lock);
	}
check:
	if (*uid == 0 || *gid == 0)
		return sb_err_new(SB_E_INVAL, "sandboxes must not run as host uid/gid 0");
	return NULL;
}
