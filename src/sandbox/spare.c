/* Lease directory skeletons (workspace, home, run, spool with their owners and modes) and the
 * pool of spare skeletons made ahead of time so that creating a lease costs one rename. */
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

static sb_err *mkdir_owned(const char *path, mode_t mode, bool chown_it, int64_t uid, int64_t gid)
{
	if (mkdir(path, mode) < 0)
		return sb_err_sys(errno, "creating %s", path);
	if (chmod(path, mode) < 0) /* umask */
		return sb_err_sys(errno, "chmod %s", path);
	if (chown_it && chown(path, (uid_t)uid, (gid_t)gid) < 0)
		return sb_err_sys(errno, "chown %s to %lld:%lld", path, (long long)uid,
		                  (long long)gid);
	return NULL;
}

/* A lease directory with its workspace, home, run and spool, owned as they must be. */
sb_err *sb_lease_make_skeleton(const char *dir, bool root, int64_t uid, int64_t gid)
{
	if (mkdir(dir, root ? 0711 : 0700) < 0)
		return sb_err_sys(errno, "creating %s", dir);
	static const struct {
		const char *name;
		mode_t mode;
		bool owned; /* by the sandbox user (when we are root) */
	} subs[] = {{"workspace", 0755, true},
	            {"home", 0755, true},
	            {"run", 0700, false},
	            {"spool", 0700, true}};
	for (size_t k = 0; k < sizeof subs / sizeof subs[0]; k++) {
		char *p = sb_strfmt("%s/%s", dir, subs[k].name);
		sb_err *err = mkdir_owned(p, subs[k].mode, root && subs[k].owned, uid, gid);
		free(p);
		if (err)
			return err;
	}
	return NULL;
}

/* Spare lease skeletons: empty directory trees made ahead of time (when a lease is destroyed),
 * so that creating a lease costs one rename instead of a dozen directory operations on its
 * critical path. Named for the owner they were made for and with a random token of this
 * process (leases/ is not listable: nobody else can guess them); never visible as leases (the
 * dot). Spares of earlier processes are removed on the first refill. */
#define SPARES 4

static pthread_once_t spare_once = PTHREAD_ONCE_INIT;
static char *spare_token;

static void make_spare_token(void)
{
	spare_token = sb_random_id("");
}

static char *spare_path(const char *leases_dir, int64_t uid, int64_t gid, int i)
{
	pthread_once(&spare_once, make_spare_token);
	return sb_strfmt("%s/.spare-%s-%lld-%lld-%d", leases_dir, spare_token, (long long)uid,
	                 (long long)gid, i);
}

static void remove_stale_spares(const char *leases_dir)
{
	DIR *d = opendir(leases_dir);
	if (!d)
		return;
	char *mine = sb_strfmt(".spare-%s-", spare_token);
	struct dirent *de;
	while ((de = readdir(d)))
		if (sb_str_has_prefix(de->d_name, ".spare-") &&
		    !sb_str_has_prefix(de->d_name, mine)) {
			char *p = sb_strfmt("%s/%s", leases_dir, de->d_name);
			sb_err_free(sb_fs_rm_rf(p));
			free(p);
		}
	free(mine);
	closedir(d);
}

static char *leases_dir_of(const sb_sandbox *sb)
{
	char *d = sb_xstrdup(sb->lease_dir);
	char *slash = strrchr(d, '/');
	if (slash)
		*slash = '\0';
	return d;
}

/* 1: a spare became the lease directory; 0: none left; -1: the lease exists already. */
int sb_lease_take_spare(const sb_sandbox *sb, bool root)
{
	(void)root;
	char *leases = leases_dir_of(sb);
	int rc = 0;
	for (int i = 0; i < SPARES && rc == 0; i++) {
		char *p = spare_path(leases, sb->info.host_uid, sb->info.host_gid, i);
		if (renameat2(AT_FDCWD, p, AT_FDCWD, sb->lease_dir, RENAME_NOREPLACE) == 0)
			rc = 1;
		else if (errno == EEXIST || errno == ENOTEMPTY)
			rc = -1;
		free(p);
	}
	free(leases);
	return rc;
}

/* Make one missing spare (built under a temporary name, so that a half-made one is never
 * taken). Best effort: a failure only costs the next creation its speed. */
void sb_lease_refill_spare(const sb_sandbox *sb)
{
	static atomic_bool stale_removed;
	bool root = geteuid() == 0;
	char *leases = leases_dir_of(sb);
	pthread_once(&spare_once, make_spare_token);
	/* once per process, in the first state directory it destroys a lease in */
	if (!atomic_exchange(&stale_removed, true))
		remove_stale_spares(leases);
	for (int i = 0; i < SPARES; i++) {
		char *p = spare_path(leases, sb->info.host_uid, sb->info.host_gid, i);
		struct stat st;
		bool missing = lstat(p, &st) < 0 && errno == ENOENT;
		if (missing) {
			char *tmp = sb_strfmt("%s.tmp%d", p, (int)getpid());
			sb_err *err =
			    sb_lease_make_skeleton(tmp, root, sb->info.host_uid, sb->info.host_gid);
			if (err || rename(tmp, p) < 0) {
				sb_err_free(err);
				sb_err_free(sb_fs_rm_rf(tmp));
			}
			free(tmp);
		}
		free(p);
		if (missing)
			break;
	}
	free(leases);
}
