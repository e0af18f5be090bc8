/* The restore lock (spec §3.4, §8.3): restores into the same local directory run one at a time.
 * A mkdir mutex named by the SHA-256 of the target's canonical path, kept in a private
 * instance-scoped directory (not beside the target, whose parent may be unwritable, #12187),
 * holding owner.json {pid, createdAt, pidStartTime}. A lock whose owner pid is dead, whose pid
 * now names another process (pidStartTime differs: pids are reused), whose record is unreadable,
 * or that has no owner record and is older than 30 s, is stale: it is renamed away (so only one
 * waiter claims it) and removed. A record without pidStartTime (another writer of the format)
 * is judged by its pid alone.
 */
#include "rt.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "sb_json.h"

#define POLL_MS 50

static sb_err *ensure_private_dir(const char *dir)
{
	sb_err *err = sb_fs_mkdir_p(dir, 0700);
	if (err)
		return sb_err_prefix(err, "creating the restore lock directory");
	struct stat st;
	if (lstat(dir, &st) != 0)
		return sb_err_sys(errno, "checking the restore lock directory %s", dir);
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022))
		return sb_err_new(SB_E_INVAL,
		                  "restore lock directory %s is not a private directory of uid %u "
		                  "(mode %o, owner %u); remove it or configure another lock root",
		                  dir, (unsigned)geteuid(), (unsigned)(st.st_mode & 07777),
		                  (unsigned)st.st_uid);
	return NULL;
}

sb_err *sb_rt_lock_root(const char *configured, char **out)
{
	char *dir;
	if (configured && configured[0]) {
		dir = sb_xstrdup(configured);
	} else {
		const char *xdg = getenv("XDG_RUNTIME_DIR");
		if (xdg && xdg[0] == '/') {
			dir = sb_strfmt("%s/sandbar/restore-locks", xdg);
		} else {
			const char *tmp = getenv("TMPDIR");
			if (!tmp || tmp[0] != '/')
				tmp = "/tmp";
			char *base = sb_strfmt("%s/sandbar-%u", tmp, (unsigned)geteuid());
			/* The per-user parent in a shared /tmp must be ours alone, or another user
			 * could plant links in it. */
			sb_err *err = ensure_private_dir(base);
			if (err) {
				free(base);
				return err;
			}
			dir = sb_strfmt("%s/restore-locks", base);
			free(base);
		}
	}
	sb_err *err = ensure_private_dir(dir);
	if (err) {
		free(dir);
		return err;
	}
	*out = dir;
	return NULL;
}

sb_err *sb_rt_lock_path(const char *root, const char *target, char **out)
{
	char *canon = realpath(target, NULL);
	if (!canon)
		return sb_err_sys(errno, "resolving the restore target %s", target);
	char hex[SB_SHA256_HEX_LEN];
	sb_sha256_hex(canon, strlen(canon), hex);
	free(canon);
	*out = sb_strfmt("%s/%s.lock", root, hex);
	return NULL;
}

static bool pid_alive(int64_t pid)
{
	if (pid <= 0 || pid > INT_MAX)
		return false;
	return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

/* Whether the existing lock dir is stale; *owner receives the owner pid (0 = unknown). */
static bool lock_is_stale(const char *dir, int64_t *owner)
{
	*owner = 0;
	char *path = sb_strfmt("%s/owner.json", dir);
	sb_buf b = SB_BUF_INIT;
	sb_err *err = sb_read_file(path, 4096, &b);
	free(path);
	if (err) {
		bool missing = err->sys_errno == ENOENT;
		sb_err_free(err);
		if (!missing)
			return true; /* unreadable record: nobody can prove ownership */
		struct stat st;
		if (stat(dir, &st) != 0)
			return false; /* vanished: the caller simply retries mkdir */
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		int64_t age_ms = ((int64_t)now.tv_sec - (int64_t)st.st_mtim.tv_sec) * 1000 +
		                 ((int64_t)now.tv_nsec - (int64_t)st.st_mtim.tv_nsec) / 1000000;
		return age_ms > SB_RT_LOCK_STALE_MS;
	}
	json_t *j = NULL;
	int64_t pid = 0, start = -1;
	err = sb_json_parse_object(b.data, b.len, 4096, 4, &j);
	if (!err)
		err = sb_json_get_int(j, "pid", true, 1, INT_MAX, &pid);
	if (!err)
		err = sb_json_get_int(j, "pidStartTime", false, 0, INT64_MAX, &start);
	json_decref(j);
	sb_buf_deinit(&b);
	if (err) {
		sb_err_free(err);
		return true;
	}
	*owner = pid;
	if (start >= 0 && sb_proc_start_time((int)pid) != start)
		return true; /* dead, or its pid went to another process */
	return !pid_alive(pid);
}

/* Written to a temp name and renamed, so a waiter never reads half a record (which it would
 * take for stale). Not fsynced: after a crash the owner pid is dead anyway. */
static sb_err *write_owner(const char *dir)
{
	char ts[SB_ISO8601_LEN];
	sb_iso8601(sb_wall_ms(), ts);
	/* the start time names this process for good; without /proc it is left out */
	long long start = sb_proc_start_time(getpid());
	char start_field[48] = "";
	if (start >= 0)
		snprintf(start_field, sizeof start_field, ",\"pidStartTime\":%lld", start);
	char *body =
	    sb_strfmt("{\"pid\":%ld,\"createdAt\":\"%s\"%s}\n", (long)getpid(), ts, start_field);
	char *tmp = sb_strfmt("%s/owner.json.tmp", dir);
	char *path = sb_strfmt("%s/owner.json", dir);
	sb_err *err = NULL;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		err = sb_err_sys(errno, "creating %s", tmp);
	if (!err)
		err = sb_write_all(fd, body, strlen(body));
	if (fd >= 0 && close(fd) != 0 && !err)
		err = sb_err_sys(errno, "writing %s", tmp);
	if (!err && rename(tmp, path) != 0)
		err = sb_err_sys(errno, "renaming %s", tmp);
	free(body);
	free(tmp);
	free(path);
	return err;
}

sb_err *sb_rt_lock_acquire(const char *root, const char *target, int64_t timeout_ms,
                           sb_rt_lock *out)
{
	out->dir = NULL;
	char *dir = NULL;
	sb_err *err = sb_rt_lock_path(root, target, &dir);
	if (err)
		return err;
	int64_t deadline = sb_mono_ms() + timeout_ms;
	int64_t owner = 0;
	for (;;) {
		if (mkdir(dir, 0700) == 0) {
			err = write_owner(dir);
			if (err) {
				sb_err_free(sb_fs_rm_rf(dir));
				free(dir);
				return sb_err_prefix(err, "recording the restore lock owner");
			}
			out->dir = dir;
			return NULL;
		}
		if (errno != EEXIST) {
			err = sb_err_sys(errno, "creating the restore lock %s", dir);
			free(dir);
			return err;
		}
		if (lock_is_stale(dir, &owner)) {
			char *aside = sb_rt_temp_name(dir, ".stale.");
			if (rename(dir, aside) == 0) {
				sb_info("removed stale workspace restore lock %s (owner pid %lld)",
				        dir, (long long)owner);
				sb_err_free(sb_fs_rm_rf(aside));
			}
			free(aside);
			continue;
		}
		if (sb_mono_ms() >= deadline)
			break;
		sb_sleep_ms(POLL_MS);
	}
	err = sb_err_new(SB_E_TIMEOUT,
	                 "Timed out waiting for workspace restore lock at %s (held by pid %lld); "
	                 "if no restore of %s is running, remove that directory",
	                 dir, (long long)owner, target);
	free(dir);
	return err;
}

void sb_rt_lock_release(sb_rt_lock *l)
{
	if (!l->dir)
		return;
	sb_err *err = sb_fs_rm_rf(l->dir);
	if (err) {
		sb_warn("could not release the restore lock %s: %s", l->dir, err->msg);
		sb_err_free(err);
	}
	free(l->dir);
	l->dir = NULL;
}
