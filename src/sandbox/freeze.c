/* Idle sleep of a sandbox (DESIGN.md §9.6 `sleeping`): its command processes, every process of
 * the sandbox's pid namespace except sandbar-init, are moved into a cgroup v1 freezer group and
 * frozen; init keeps running, so the lease stays reachable and its liveness is checked as
 * always. Thawing takes the group back to THAWED; the processes stay in it, harmlessly, and a
 * later freeze collects the new ones. The group's path is kept in run/freezer so that a
 * restarted daemon, or the teardown, finds it (a frozen process cannot die: teardown thaws).
 *
 * The kernel rewrites its own code (the freezer's static key: text patching synchronised over
 * every CPU, milliseconds on a VM) whenever the number of freezing groups goes from 0 to 1 or
 * back, so a lease thawed while no other group is frozen pays that on the request that wakes
 * it. sb_freezer_hold keeps an empty group of this process frozen while leases may sleep: the
 * count never reaches 0, and a wake is a plain state change (tens of microseconds). */
#include "sandbox_int.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FREEZER_ROOT "/sys/fs/cgroup/freezer"
#define FREEZE_WAIT_MS 2000

static char *freezer_file(const sb_sandbox *sb)
{
	return sb_strfmt("%s/freezer", sb->run_dir);
}

/* The freezer group recorded for this sandbox, NULL when none. */
static char *recorded_group(const sb_sandbox *sb)
{
	char *f = freezer_file(sb);
	sb_buf b = SB_BUF_INIT;
	sb_err *err = sb_read_file(f, 4096, &b);
	free(f);
	char *out = NULL;
	if (!err && b.len)
		out = sb_xstrdup(sb_buf_cstr(&b));
	sb_err_free(err);
	sb_buf_deinit(&b);
	return out;
}

static sb_err *write_str(const char *dir, const char *file, const char *v)
{
	char *p = sb_strfmt("%s/%s", dir, file);
	int fd = open(p, O_WRONLY | O_CLOEXEC);
	sb_err *err = NULL;
	if (fd < 0)
		err = sb_err_sys(errno, "opening %s", p);
	else if ((err = sb_write_all(fd, v, strlen(v))))
		err = sb_err_prefix(err, "writing \"%s\" to %s", v, p);
	if (fd >= 0)
		close(fd);
	free(p);
	return err;
}

static bool state_is(const char *dir, const char *want)
{
	char *p = sb_strfmt("%s/freezer.state", dir);
	sb_buf b = SB_BUF_INIT;
	sb_err *err = sb_read_file(p, 64, &b);
	bool yes = !err && strncmp(sb_buf_cstr(&b), want, strlen(want)) == 0;
	sb_err_free(err);
	sb_buf_deinit(&b);
	free(p);
	return yes;
}

/* Thawing on cgroup v1 is synchronous: the write returns with every task runnable, so it is
 * not read back (no wait on the request that wakes a lease). Freezing is not: the group is
 * FREEZING until each task has stopped, polled here. */
static sb_err *set_state(const char *dir, const char *state)
{
	sb_err *err = write_str(dir, "freezer.state", state);
	if (err || strcmp(state, "THAWED") == 0)
		return err;
	for (int64_t t0 = sb_mono_ms(); !state_is(dir, state);) {
		if (sb_mono_ms() - t0 > FREEZE_WAIT_MS)
			return sb_err_new(SB_E_TIMEOUT,
			                  "the freezer group %s did not reach %s in %d ms", dir,
			                  state, FREEZE_WAIT_MS);
		usleep(500);
	}
	return NULL;
}

static pthread_mutex_t hold_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned hold_refs;
static char *hold_dir;

/* Remove the hold groups of processes that are gone (a daemon killed while leases slept). */
static void sweep_holds(const char *base)
{
	DIR *d = opendir(base);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "hold-", 5) != 0)
			continue;
		char *end = NULL;
		long pid = strtol(de->d_name + 5, &end, 10);
		if (!end || *end || pid <= 0 || (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
			continue;
		char *dir = sb_strfmt("%s/%s", base, de->d_name);
		sb_err_free(write_str(dir, "freezer.state", "THAWED"));
		rmdir(dir);
		free(dir);
	}
	closedir(d);
}

sb_err *sb_freezer_hold(bool hold)
{
	sb_err *err = NULL;
	pthread_mutex_lock(&hold_mu);
	if (!hold) {
		if (hold_refs && --hold_refs == 0 && hold_dir) {
			sb_err_free(write_str(hold_dir, "freezer.state", "THAWED"));
			if (rmdir(hold_dir) < 0 && errno != ENOENT)
				err = sb_err_sys(errno, "removing freezer group %s", hold_dir);
			free(hold_dir);
			hold_dir = NULL;
		}
		pthread_mutex_unlock(&hold_mu);
		return err;
	}
	if (hold_refs++ == 0) {
		char *base = sb_strfmt("%s/sandbar", FREEZER_ROOT);
		char *dir = sb_strfmt("%s/hold-%d", base, (int)getpid());
		if (mkdir(base, 0755) < 0 && errno != EEXIST)
			err = sb_err_sys(errno, "creating freezer group %s", base);
		else
			sweep_holds(base);
		if (!err && mkdir(dir, 0755) < 0 && errno != EEXIST)
			err = sb_err_sys(errno, "creating freezer group %s", dir);
		if (!err)
			err = set_state(dir, "FROZEN");
		if (err) {
			rmdir(dir);
			free(dir);
			hold_refs--;
		} else {
			hold_dir = dir;
		}
		free(base);
	}
	pthread_mutex_unlock(&hold_mu);
	return err ? sb_err_prefix(err, "holding the freezer for cheap wakes") : NULL;
}

/* Move every process of init's pid namespace but init into dir; *moved counts them. */
static sb_err *collect(int init_pid, const char *dir, size_t *moved)
{
	char *nsp = sb_strfmt("/proc/%d/ns/pid", init_pid);
	struct stat ns;
	int rc = stat(nsp, &ns);
	free(nsp);
	if (rc < 0)
		return sb_err_new(SB_E_STATE_LOST, "sandbar-init (pid %d) is gone", init_pid);
	DIR *d = opendir("/proc");
	if (!d)
		return sb_err_sys(errno, "listing /proc");
	struct dirent *de;
	while ((de = readdir(d))) {
		char *end = NULL;
		long pid = strtol(de->d_name, &end, 10);
		if (!end || *end || pid <= 0 || pid == init_pid)
			continue;
		char *p = sb_strfmt("/proc/%ld/ns/pid", pid);
		struct stat st;
		bool same = stat(p, &st) == 0 && st.st_ino == ns.st_ino && st.st_dev == ns.st_dev;
		free(p);
		if (!same)
			continue;
		char num[32];
		snprintf(num, sizeof num, "%ld", pid);
		sb_err *err = write_str(dir, "cgroup.procs", num);
		if (err) {
			/* A process that exited between the scan and the move is not an error. */
			char *q = sb_strfmt("/proc/%ld", pid);
			bool gone = access(q, F_OK) != 0;
			free(q);
			if (gone) {
				sb_err_free(err);
				continue;
			}
			closedir(d);
			return err;
		}
		(*moved)++;
	}
	closedir(d);
	return NULL;
}

sb_err *sb_sandbox_freeze(sb_sandbox *sb, bool freeze, size_t *nprocs)
{
	if (nprocs)
		*nprocs = 0;
	char *dir = recorded_group(sb);
	if (!freeze) {
		sb_err *err = dir ? set_state(dir, "THAWED") : NULL;
		free(dir);
		return err ? sb_err_prefix(err, "waking lease %s", sb->id) : NULL;
	}
	sb_err *err = NULL;
	if (!dir) {
		char *base = sb_strfmt("%s/sandbar", FREEZER_ROOT);
		if (access(FREEZER_ROOT "/cgroup.procs", W_OK) != 0) {
			free(base);
			return sb_err_new(
			    SB_E_UNSUPPORTED,
			    "lease %s cannot sleep: no writable cgroup v1 freezer at %s", sb->id,
			    FREEZER_ROOT);
		}
		if (mkdir(base, 0755) < 0 && errno != EEXIST)
			err = sb_err_sys(errno, "creating freezer group %s", base);
		free(base);
		if (err)
			return err;
		dir = sb_strfmt("%s/sandbar/%s-%d", FREEZER_ROOT, sb->id, sb->info.init_pid);
		if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
			err = sb_err_sys(errno, "creating freezer group %s", dir);
			free(dir);
			return err;
		}
		char *f = freezer_file(sb);
		err = sb_fs_write_atomic(f, dir, strlen(dir), 0600);
		free(f);
		if (err) {
			rmdir(dir);
			free(dir);
			return err;
		}
	}
	/* A process forking during the scan puts its child in its own group: a few passes catch
	 * stragglers; once moved, a process's children are born inside the group. */
	size_t moved = 0;
	for (int pass = 0; pass < 3 && !err; pass++)
		err = collect(sb->info.init_pid, dir, &moved);
	if (!err)
		err = set_state(dir, "FROZEN");
	if (err)
		sb_err_free(set_state(dir, "THAWED"));
	free(dir);
	if (nprocs)
		*nprocs = moved;
	return err ? sb_err_prefix(err, "putting lease %s to sleep", sb->id) : NULL;
}

bool sb_sandbox_frozen(sb_sandbox *sb)
{
	char *dir = recorded_group(sb);
	bool yes = dir && state_is(dir, "FROZEN");
	free(dir);
	return yes;
}

void sb_sandbox_freezer_release(sb_sandbox *sb)
{
	char *dir = recorded_group(sb);
	if (!dir)
		return;
	sb_err_free(set_state(dir, "THAWED"));
	free(dir);
}

void sb_sandbox_freezer_remove(sb_sandbox *sb)
{
	char *dir = recorded_group(sb);
	if (!dir)
		return;
	/* Empty once the processes died; retried briefly while they exit. */
	for (int i = 0; i < 200 && rmdir(dir) < 0 && errno == EBUSY; i++)
		usleep(5000);
	free(dir);
}
