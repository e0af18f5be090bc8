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

/* The subdirectories of a lease directory and how they must be. */
static const struct skel_sub {
	const char *name;
	mode_t mode;
	bool owned; /* by the sandbox user (when we are root) */
} skel_subs[] = {
    {"workspace", 0755, true}, {"home", 0755, true}, {"run", 0700, false}, {"spool", 0700, true}};
#define NSKEL_SUBS (sizeof skel_subs / sizeof skel_subs[0])

static sb_err *make_subdirs(const char *dir, bool root, int64_t uid, int64_t gid)
{
	for (size_t k = 0; k < NSKEL_SUBS; k++) {
		char *p = sb_strfmt("%s/%s", dir, skel_subs[k].name);
		sb_err *err =
		    mkdir_owned(p, skel_subs[k].mode, root && skel_subs[k].owned, uid, gid);
		free(p);
		if (err)
			return err;
	}
	return NULL;
}

/* A lease directory with its workspace, home, run and spool, owned as they must be. */
sb_err *sb_lease_make_skeleton(const char *dir, bool root, int64_t uid, int64_t gid)
{
	if (mkdir(dir, root ? 0711 : 0700) < 0)
		return sb_err_sys(errno, "creating %s", dir);
	return make_subdirs(dir, root, uid, gid);
}

/* Does dir hold every subdirectory of a skeleton, with its mode and owner? */
static bool skeleton_complete(const char *dir, bool root, int64_t uid, int64_t gid)
{
	for (size_t k = 0; k < NSKEL_SUBS; k++) {
		char *p = sb_strfmt("%s/%s", dir, skel_subs[k].name);
		struct stat st;
		bool ok = lstat(p, &st) == 0 && S_ISDIR(st.st_mode) &&
		          (st.st_mode & 07777) == skel_subs[k].mode;
		if (ok && root && skel_subs[k].owned)
			ok = (int64_t)st.st_uid == uid && (int64_t)st.st_gid == gid;
		free(p);
		if (!ok)
			return false;
	}
	return true;
}

/* Spare lease skeletons: empty directory trees made ahead of time (when a lease is destroyed),
 * so that creating a lease costs one rename instead of a dozen directory operations on its
 * critical path. Named for the owner they were made for and with a random token of this
 * process (leases/ is not listable: nobody else can guess them); never visible as leases (the
 * dot). Spares of earlier processes are removed on the first refill.
 *
 * Any number of threads and processes may share a state directory: a spare is built under a
 * name unique to its builder (mkdtemp) and published with a rename that never replaces; a
 * taken spare is checked complete before it is used, and one that is not (a stale-spare sweep
 * of another process raced us) is discarded and counted, never handed out. */
#define SPARES 4

static pthread_once_t spare_once = PTHREAD_ONCE_INIT;
static char *spare_token;
/* Process-wide like the spares themselves (they are named by this process's token). */
static atomic_ullong spares_discarded;

static void make_spare_token(void)
{
	spare_token = sb_random_id("");
}

uint64_t sb_sandbox_spares_discarded(void)
{
	return atomic_load(&spares_discarded);
}

static char *spare_path(const char *leases_dir, int64_t uid, int64_t gid, int i)
{
	pthread_once(&spare_once, make_spare_token);
	return sb_strfmt("%s/.spare-%s-%lld-%lld-%d", leases_dir, spare_token, (long long)uid,
	                 (long long)gid, i);
}

/* Remove spares (and half-built ones) of other processes. Each is first renamed to a name of
 * our own, so that a process taking it at the same moment either gets it whole or not at all. */
static void remove_stale_spares(const char *leases_dir)
{
	DIR *d = opendir(leases_dir);
	if (!d)
		return;
	char *mine = sb_strfmt(".spare-%s-", spare_token);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!sb_str_has_prefix(de->d_name, ".spare-") ||
		    sb_str_has_prefix(de->d_name, mine))
			continue;
		char *p = sb_strfmt("%s/%s", leases_dir, de->d_name);
		char *trash = sb_strfmt("%s/.trash-%s-XXXXXX", leases_dir, spare_token);
		int fd = mkstemp(trash);
		if (fd >= 0) {
			close(fd);
			if (rename(p, trash) == 0)
				sb_err_free(sb_fs_rm_rf(trash));
			else
				unlink(trash);
		}
		free(trash);
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
	char *leases = leases_dir_of(sb);
	int rc = 0;
	for (int i = 0; i < SPARES && rc == 0; i++) {
		char *p = spare_path(leases, sb->info.host_uid, sb->info.host_gid, i);
		if (renameat2(AT_FDCWD, p, AT_FDCWD, sb->lease_dir, RENAME_NOREPLACE) == 0) {
			rc = 1;
			if (!skeleton_complete(sb->lease_dir, root, sb->info.host_uid,
			                       sb->info.host_gid)) {
				atomic_fetch_add(&spares_discarded, 1);
				sb_warn("lease %s: discarded an incomplete spare directory (%s)",
				        sb->id, p);
				sb_err_free(sb_fs_rm_rf(sb->lease_dir));
				rc = 0;
			}
		} else if (errno == EEXIST || errno == ENOTEMPTY) {
			rc = -1;
		}
		free(p);
	}
	free(leases);
	return rc;
}

/* Make one missing spare, built under a name no other thread or process uses and published
 * only when complete. Best effort: a failure only costs the next creation its speed. */
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
			char *tmp = sb_strfmt("%s/.spare-%s-tmp-XXXXXX", leases, spare_token);
			sb_err *err = NULL;
			if (!mkdtemp(tmp))
				err = sb_err_sys(errno, "creating %s", tmp);
			else if (chmod(tmp, root ? 0711 : 0700) < 0)
				err = sb_err_sys(errno, "chmod %s", tmp);
			else
				err = make_subdirs(tmp, root, sb->info.host_uid, sb->info.host_gid);
			if (err || renameat2(AT_FDCWD, tmp, AT_FDCWD, p, RENAME_NOREPLACE) < 0) {
				/* another thread published this spare first, or building failed */
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
