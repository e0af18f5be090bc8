/* The sandbox object: creating, re-adopting, listing, renewing and destroying leases on disk
 * (finding helper binaries: helpers.c; directory skeletons and the spare pool: spare.c;
 * lease.json and the setup record: lease_record.c).
 *
 * Everything needed to find a sandbox again lives in <state>/leases/<id>/lease.json (limits,
 * owner, init's host pid and start time, cgroup directories). When we are root the lease
 * directory (0711) and run/ (0700) belong to root, while workspace/, home/ and spool/ belong to
 * the sandbox host user: an escaped sandboxed process can neither list other leases, reach a
 * control socket nor edit lease.json.
 */
#include "sandbox_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <unistd.h>
#include "sb_json.h"

#define GONE_PREFIX ".gone-" /* a lease directory being removed (teardown) */

void sb_sandbox_config_init(sb_sandbox_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->host_uid = -1;
	cfg->host_gid = -1;
}

sb_err *sb_lease_check_id(const char *what, const char *id)
{
	if (!id || !sbi_id_valid(id))
		return sb_err_new(SB_E_INVAL, "invalid %s id \"%s\": use 1-%d of [A-Za-z0-9_-]",
		                  what, id ? id : "(null)", SB_SANDBOX_ID_MAX);
	return NULL;
}

static void set_paths(sb_sandbox *sb, const sb_sandbox_config *cfg, const char *id)
{
	sb->id = sb_xstrdup(id);
	sb->lease_dir = sb_strfmt("%s/leases/%s", cfg->state_dir, id);
	sb->workspace = sb_strfmt("%s/workspace", sb->lease_dir);
	sb->home = sb_strfmt("%s/home", sb->lease_dir);
	sb->run_dir = sb_strfmt("%s/run", sb->lease_dir);
	sb->spool_dir = sb_strfmt("%s/spool", sb->lease_dir);
	sb->run_fd = sb->spool_fd = sb->workspace_fd = -1;
	pthread_mutex_init(&sb->lock, NULL);
	snprintf(sb->info.id, sizeof sb->info.id, "%s", id);
}

static void sandbox_free(sb_sandbox *sb)
{
	if (!sb)
		return;
	sb_callback_stop(sb);
	sb_egress_stop(sb);
	if (sb->owner_fd >= 0) {
		/* closed on purpose (a kept lease outlives this process): tell init first, so
		 * the closing is not taken for the creator's death */
		(void)!send(sb->owner_fd, "D", 1, MSG_NOSIGNAL);
		sb_close(&sb->owner_fd);
	}
	sb_close(&sb->run_fd);
	sb_close(&sb->spool_fd);
	sb_close(&sb->workspace_fd);
	free(sb->id);
	free(sb->lease_dir);
	free(sb->workspace);
	free(sb->home);
	free(sb->run_dir);
	free(sb->spool_dir);
	free(sb->workspace_mount);
	sb_strv_free(sb->cgroups);
	pthread_mutex_destroy(&sb->lock);
	free(sb);
}

static sb_err *open_dirs(sb_sandbox *sb)
{
	if ((sb->run_fd = open(sb->run_dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		return sb_err_sys(errno, "opening %s", sb->run_dir);
	if ((sb->spool_fd = open(sb->spool_dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		return sb_err_sys(errno, "opening %s", sb->spool_dir);
	if ((sb->workspace_fd =
	         open(sb->workspace, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return sb_err_sys(errno, "opening %s", sb->workspace);
	return NULL;
}

/* The state directory and leases/ are private to us: the sandbox user reaches its workspace
 * and home through binds made in a private mount namespace (launch.c), so nothing above them
 * needs to be traversable by it and sandbar never changes the mode of a directory it did not
 * create. */
static sb_err *prepare_state(const sb_sandbox_config *cfg)
{
	sb_err *err = sb_fs_mkdir_p(cfg->state_dir, 0700);
	if (err)
		return sb_err_prefix(err, "creating the state directory");
	char *leases = sb_strfmt("%s/leases", cfg->state_dir);
	if (mkdir(leases, 0700) < 0 && errno != EEXIST)
		err = sb_err_sys(errno, "creating %s", leases);
	free(leases);
	return err;
}

static bool pid_matches(const sb_sandbox *sb)
{
	return sb->info.init_pid > 0 && sb->init_start >= 0 &&
	       sb_proc_start_time(sb->info.init_pid) == sb->init_start;
}

/* SIGKILL init (and with it the whole pid namespace), then wait until it is gone. */
static void kill_init(const sb_sandbox *sb)
{
	if (!pid_matches(sb))
		return;
	int pfd = (int)syscall(SYS_pidfd_open, sb->info.init_pid, 0);
	if (pfd < 0) {
		kill(sb->info.init_pid, SIGKILL);
		return;
	}
	if (syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0) == 0) {
		struct pollfd p = {pfd, POLLIN, 0};
		while (poll(&p, 1, 5000) < 0 && errno == EINTR)
			;
	}
	close(pfd);
}

static sb_err *teardown(sb_sandbox *sb)
{
	sb_sandbox_freezer_release(sb); /* a frozen process cannot die */
	kill_init(sb);
	sb_sandbox_freezer_remove(sb);
	sb_err *err = sb_cg_destroy(sb->cgroups);
	/* The directory leaves leases/ in one step, renamed to a dot name that no listing takes
	 * for a lease, and only then goes: a destroy killed halfway never leaves half a lease
	 * (a workspace without its lease.json) that nothing would list or prune; the next
	 * listing sweeps what it left (sb_sandbox_list). */
	char *rnd = sb_random_id("");
	char *gone = sb_strfmt("%.*s/" GONE_PREFIX "%s-%s",
	                       (int)(strrchr(sb->lease_dir, '/') - sb->lease_dir), sb->lease_dir,
	                       sb->id, rnd);
	free(rnd);
	const char *victim = rename(sb->lease_dir, gone) == 0 ? gone : sb->lease_dir;
	/* sb_fs_rm_rf also copes with directories sandboxed code made unreadable */
	sb_err *e2 = sb_fs_rm_rf(victim);
	free(gone);
	if (e2 && !err)
		err = e2;
	else
		sb_err_free(e2);
	return err ? sb_err_prefix(err, "destroying lease %s", sb->id) : NULL;
}

/* The mounts and (fds != NULL) their opened sources. */
static void free_mounts(sb_sandbox_mount *m, const int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		sb_sandbox_mount_deinit(&m[i]);
		if (fds && fds[i] >= 0)
			close(fds[i]);
	}
	free(m);
}

sb_err *sb_sandbox_create(const sb_sandbox_config *cfg, const char *lease_id,
                          const sb_sandbox_opts *opts, sb_sandbox **out)
{
	*out = NULL;
	sb_err *err = NULL;
	sb_sandbox_opts dflt = {0};
	if (!opts)
		opts = &dflt;
	if (!cfg || !cfg->state_dir || !*cfg->state_dir)
		return sb_err_new(SB_E_INVAL, "sandbox config needs a state_dir");
	if ((err = sb_lease_check_id("lease", lease_id)))
		return err;
	const char *mount =
	    cfg->workspace_mount ? cfg->workspace_mount : SB_SANDBOX_WORKSPACE_DEFAULT;
	if (mount[0] != '/' || strlen(mount) < 2 || strstr(mount, "..") ||
	    strcmp(mount, "/tmp") == 0 || strcmp(mount, "/proc") == 0 ||
	    strcmp(mount, "/dev") == 0 || strcmp(mount, SB_SANDBOX_HOME) == 0)
		return sb_err_new(SB_E_INVAL, "invalid workspace mount point \"%s\"", mount);
	const char *init = sb_sandbox_init_path(cfg);
	if (access(init, X_OK) < 0)
		return sb_err_sys(errno, "sandbar-init at %s (set init_path or install sandbar)",
		                  init);
	bool root = geteuid() == 0;
	char *bwrap = NULL;
	sb_cg_host cg;
	memset(&cg, 0, sizeof cg);
	char *oom_file = NULL;
	sb_sandbox *sb = sb_xcalloc(1, sizeof *sb);
	sb->owner_fd = -1;
	set_paths(sb, cfg, lease_id);
	sb->workspace_mount = sb_xstrdup(mount);
	sb_sandbox_info *i = &sb->info;
	i->network = opts->network;
	i->net_mode = opts->network ? SB_NET_FULL : opts->egress ? SB_NET_ALLOWLIST : SB_NET_NONE;
	i->limits = opts->limits;
	if (opts->network && opts->egress) {
		err = sb_err_new(SB_E_INVAL,
		                 "lease %s: network modes full and allowlist exclude each "
		                 "other",
		                 lease_id);
		sandbox_free(sb);
		return err;
	}
	/* safe defaults: a pids limit always, the operator's memory default */
	if (!i->limits.pids)
		i->limits.pids = SB_SANDBOX_PIDS_DEFAULT;
	if (!i->limits.memory_bytes)
		i->limits.memory_bytes = cfg->default_memory_bytes;
	i->enforced.rlimits = i->enforced.seccomp = i->enforced.ttl = true;
	bool created = false;
	int create_lock = -1;
	if ((err = sb_sandbox_resolve_owner(cfg, &i->host_uid, &i->host_gid)) ||
	    (err = sb_sandbox_bwrap_path(cfg, &bwrap)) || (err = prepare_state(cfg)))
		goto fail;
	int spare = sb_lease_take_spare(sb, root);
	if (spare < 0) {
		err = sb_err_new(SB_E_EXISTS, "lease %s exists already", lease_id);
		goto fail;
	}
	created = true;
	if (!spare &&
	    (err = sb_lease_make_skeleton(sb->lease_dir, root, i->host_uid, i->host_gid))) {
		if (err->sys_errno == EEXIST) {
			sb_err_free(err);
			created = false;
			err = sb_err_new(SB_E_EXISTS, "lease %s exists already", lease_id);
		}
		goto fail;
	}
	/* Held until this function returns: a listing never takes the directory of a creation
	 * under way for an abandoned one (sweep_abandoned). */
	create_lock = open(sb->lease_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (create_lock >= 0)
		(void)flock(create_lock, LOCK_EX);
	if ((err = open_dirs(sb)))
		goto fail;

	const sb_sandbox_limits *lim = &i->limits;
	if (lim->memory_bytes || lim->pids || lim->cpu_weight) {
		sb_cg_detect(cfg->cgroup_root, &cg);
		char *cg_name = sb_cg_dir_name(lease_id);
		char **planned = sb_cg_planned_dirs(&cg, cg_name);
		err = sb_lease_setup_save(sb, planned);
		sb_strv_free(planned);
		if (!err)
			err =
			    sb_cg_create(&cg, cg_name, lim, &i->enforced, &sb->cgroups, &oom_file);
		free(cg_name);
		if (err)
			goto fail;
		snprintf(i->cgroup_version, sizeof i->cgroup_version, "%s", cg.version);
		const char *missing[3];
		size_t nm = 0;
		if (lim->memory_bytes && !i->enforced.memory)
			missing[nm++] = "memory";
		if (opts->limits.pids && !i->enforced.pids) /* the default is best effort */
			missing[nm++] = "pids";
		if (lim->cpu_weight && !i->enforced.cpu)
			missing[nm++] = "cpu";
		for (size_t k = 0; k < nm; k++) {
			if (opts->require_limits) {
				err = sb_err_new(SB_E_UNSUPPORTED,
				                 "lease %s: this host cannot enforce the %s limit "
				                 "(no writable cgroup controller)",
				                 lease_id, missing[k]);
				goto fail;
			}
			sb_warn("lease %s: the %s limit is NOT enforced: no writable cgroup "
			        "controller on this host (see sandbar health)",
			        lease_id, missing[k]);
		}
	}
	sb_sandbox_mount *mounts = opts->nmounts ? sb_xcalloc(opts->nmounts, sizeof *mounts) : NULL;
	for (size_t k = 0; k < opts->nmounts; k++)
		mounts[k] = (sb_sandbox_mount){.host = sb_xstrdup(opts->mounts[k].host),
		                               .target = sb_xstrdup(opts->mounts[k].target),
		                               .rw = opts->mounts[k].rw};
	int mount_fds[SB_MOUNTS_MAX];
	if ((err = sb_mounts_check(sb, cfg, mounts, opts->nmounts, opts->mount_roots, mount_fds))) {
		free_mounts(mounts, NULL, opts->nmounts);
		goto fail;
	}
	char *ca_bundle = NULL;
	if (opts->egress && (err = sb_egress_prepare(sb, cfg, opts->egress, &ca_bundle))) {
		free_mounts(mounts, mount_fds, opts->nmounts);
		goto fail;
	}
	i->created_at_ms = sb_wall_ms();
	i->expires_at_ms = lim->ttl_s > 0 ? i->created_at_ms + lim->ttl_s * 1000 : 0;
	sb_launch l = {
	    .bwrap = bwrap,
	    .init_path = init,
	    .rootfs = cfg->rootfs,
	    .network = opts->network,
	    .hide_paths = cfg->hide_paths,
	    .nofile = lim->nofile ? lim->nofile : 4096,
	    .nproc = lim->nproc ? lim->nproc : (opts->limits.pids ? opts->limits.pids : 4096),
	    .tmpfs_bytes = lim->memory_bytes ? lim->memory_bytes : SB_SANDBOX_TMPFS_DEFAULT,
	    .spool_max = lim->spool_bytes ? lim->spool_bytes : SB_SANDBOX_SPOOL_BYTES_DEFAULT,
	    .oom_file = oom_file,
	    .ca_bundle = ca_bundle,
	    .cgroups = sb->cgroups,
	    .drop_privs = root,
	    .uid = i->host_uid,
	    .gid = i->host_gid,
	    .started = sb_lease_save,
	    .hosts_name = opts->callback ? opts->callback->host_name : NULL,
	    .watch_owner = opts->watch_owner,
	    .mounts = mounts,
	    .mount_fds = mount_fds,
	    .nmounts = opts->nmounts,
	};
	i->limits.nofile = l.nofile; /* recorded as in force */
	i->limits.nproc = l.nproc;
	err = sb_launch_sandbox(sb, &l);
	free(ca_bundle);
	free_mounts(mounts, mount_fds, opts->nmounts);
	if (err || (opts->callback && (err = sb_callback_setup(sb, cfg, opts->callback))) ||
	    (opts->egress &&
	     (err = sb_egress_start(sb, opts->callback ? opts->callback->host_name : NULL))))
		goto fail;
	free(bwrap);
	free(oom_file);
	sb_cg_host_deinit(&cg);
	sb_close(&create_lock);
	*out = sb;
	return NULL;
fail:
	sb_close(&create_lock);
	if (created) {
		sb_err_free(teardown(sb));
	} else {
		sb_err_free(sb_cg_destroy(sb->cgroups));
	}
	free(bwrap);
	free(oom_file);
	sb_cg_host_deinit(&cg);
	sandbox_free(sb);
	return err;
}

static sb_err *open_common(const sb_sandbox_config *cfg, const char *lease_id, bool need_alive,
                           sb_sandbox **out)
{
	*out = NULL;
	if (!cfg || !cfg->state_dir)
		return sb_err_new(SB_E_INVAL, "sandbox config needs a state_dir");
	sb_err *err = sb_lease_check_id("lease", lease_id);
	if (err)
		return err;
	sb_sandbox *sb = sb_xcalloc(1, sizeof *sb);
	sb->owner_fd = -1;
	set_paths(sb, cfg, lease_id);
	err = sb_lease_load(sb);
	/* A creation killed before lease.json was written: nothing can be alive to ask (an init
	 * that never got its setup may not answer at all), but its destroy removes what it made. */
	bool unfinished =
	    err && err->code == SB_E_NOTFOUND && !need_alive && sb_lease_setup_load(sb);
	if (unfinished) {
		sb_err_free(err);
		err = NULL;
	}
	if (err || (err = open_dirs(sb))) {
		sandbox_free(sb);
		return err;
	}
	if (unfinished) {
		sb->dead = true;
		*out = sb;
		return NULL;
	}
	sb->dead = !sb_sandbox_alive(sb);
	if (sb->dead && need_alive) {
		sandbox_free(sb);
		return sb_err_new(SB_E_STATE_LOST,
		                  "the sandbox of lease %s is gone (sandbar-init does not answer); "
		                  "its spooled results stay readable until the lease is destroyed",
		                  lease_id);
	}
	if ((err = sb_callback_resume(sb, cfg, need_alive))) {
		/* the lease itself is fine; only its callback endpoint will not answer */
		sb_warn("%s", err->msg);
		sb_err_free(err);
	}
	if ((err = sb_egress_resume(sb, cfg, need_alive))) {
		/* the lease itself is fine; only its network will not answer */
		sb_warn("%s", err->msg);
		sb_err_free(err);
	}
	*out = sb;
	return NULL;
}

sb_err *sb_sandbox_open(const sb_sandbox_config *cfg, const char *lease_id, sb_sandbox **out)
{
	sb_err *err = open_common(cfg, lease_id, true, out);
	if (err)
		return err;
	/* A workspace replace a crash interrupted is finished or rolled back now (§9.7); one
	 * in progress elsewhere is left to its owner. */
	sb_err *rerr = sb_replace_recover(*out, true);
	if (rerr) {
		sb_warn("%s", rerr->msg);
		sb_err_free(rerr);
	}
	return NULL;
}

sb_err *sb_sandbox_open_dead(const sb_sandbox_config *cfg, const char *lease_id, sb_sandbox **out)
{
	return open_common(cfg, lease_id, false, out);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A lease directory without lease.json: if its creation lock is free and it has not changed
 * for cfg->abandoned_after_ms, its creator was killed before recording the sandbox (whose init
 * then ended itself: it watches its creator). Nothing would ever list, prune or destroy it:
 * remove it with what it made (its cgroups, from the setup record). The age covers the moment
 * between a directory's appearance and its creator's lock. */
static void sweep_abandoned(const sb_sandbox_config *cfg, const char *id)
{
	sb_sandbox *sb = sb_xcalloc(1, sizeof *sb);
	sb->owner_fd = -1;
	set_paths(sb, cfg, id);
	int64_t after = cfg->abandoned_after_ms > 0 ? cfg->abandoned_after_ms : 60 * 1000;
	int fd = open(sb->lease_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct stat st;
	if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &st) == 0 &&
	    faccessat(fd, "lease.json", F_OK, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT) {
		int64_t changed = (int64_t)st.st_ctim.tv_sec * 1000 + st.st_ctim.tv_nsec / 1000000;
		if (sb_wall_ms() - changed >= after) {
			sb_lease_setup_load(sb);
			sb_warn("lease %s: removing what a creation killed before it finished left",
			        id);
			sb_err_free(teardown(sb));
		}
	}
	if (fd >= 0)
		close(fd);
	sandbox_free(sb);
}

sb_err *sb_sandbox_list(const sb_sandbox_config *cfg, char ***ids_out)
{
	*ids_out = NULL;
	char *leases = sb_strfmt("%s/leases", cfg->state_dir);
	DIR *d = opendir(leases);
	if (!d) {
		sb_err *err = errno == ENOENT ? NULL : sb_err_sys(errno, "listing %s", leases);
		free(leases);
		if (!err)
			*ids_out = sb_xcalloc(1, sizeof(char *));
		return err;
	}
	char **ids = NULL;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strncmp(de->d_name, GONE_PREFIX, strlen(GONE_PREFIX))) {
			/* a destroy that was killed after taking the lease out (teardown) */
			char *g = sb_strfmt("%s/%s", leases, de->d_name);
			sb_err_free(sb_fs_rm_rf(g));
			free(g);
			continue;
		}
		if (!sbi_id_valid(de->d_name))
			continue;
		/* A sandbox a daemon's warm pool holds (server/warm_pool.c) is not a lease until
		 * claimed: `lease list` and prune leave it alone. */
		char *w = sb_strfmt("%s/warm/%s", cfg->state_dir, de->d_name);
		bool warm = access(w, F_OK) == 0;
		free(w);
		char *p = sb_strfmt("%s/%s/lease.json", leases, de->d_name);
		if (!warm && access(p, F_OK) == 0) {
			sb_strv_push(&ids, de->d_name);
			n++;
		} else if (errno == ENOENT) {
			sweep_abandoned(cfg, de->d_name);
		}
		free(p);
	}
	closedir(d);
	free(leases);
	if (!ids)
		ids = sb_xcalloc(1, sizeof(char *));
	qsort(ids, n, sizeof *ids, cmp_str);
	*ids_out = ids;
	return NULL;
}

bool sb_sandbox_alive(sb_sandbox *sb)
{
	sbi_msg req, reply;
	sbi_msg_init(&req);
	sbi_msg_init(&reply);
	sbi_msg_add(&req, "op", "ping");
	sb_err *err = sb_ctl_call(sb, &req, NULL, 0, &reply);
	bool ok = !err && sbi_msg_get(&reply, "ok") && strcmp(sbi_msg_get(&reply, "ok"), "1") == 0;
	sb_err_free(err);
	sbi_msg_deinit(&req);
	sbi_msg_deinit(&reply);
	return ok;
}

bool sb_sandbox_init_gone(const sb_sandbox *sb)
{
	if (sb->info.init_pid <= 0)
		return sb_wall_ms() - sb->info.created_at_ms > 60 * 1000;
	if (sb->init_start <= 0) /* a record without the start time: the pid is all there is */
		return sb_proc_start_time(sb->info.init_pid) < 0;
	return !pid_matches(sb);
}

const char *sb_sandbox_id(const sb_sandbox *sb)
{
	return sb->id;
}

void sb_sandbox_get_info(const sb_sandbox *sb, sb_sandbox_info *out)
{
	pthread_mutex_t *lock = (pthread_mutex_t *)&sb->lock;
	pthread_mutex_lock(lock);
	*out = sb->info;
	pthread_mutex_unlock(lock);
}

const char *sb_sandbox_workspace_dir(const sb_sandbox *sb)
{
	return sb->workspace;
}

const char *sb_sandbox_home_dir(const sb_sandbox *sb)
{
	return sb->home;
}

const char *sb_sandbox_workspace_mount(const sb_sandbox *sb)
{
	return sb->workspace_mount;
}

sb_err *sb_sandbox_renew(sb_sandbox *sb, int64_t ttl_s)
{
	if (ttl_s < 0)
		return sb_err_new(SB_E_INVAL, "negative ttl_s for lease %s", sb->id);
	pthread_mutex_lock(&sb->lock);
	sb->info.limits.ttl_s = ttl_s;
	sb->info.expires_at_ms = ttl_s > 0 ? sb_wall_ms() + ttl_s * 1000 : 0;
	sb_err *err = sb_lease_save(sb);
	pthread_mutex_unlock(&sb->lock);
	return err;
}

sb_err *sb_sandbox_destroy(sb_sandbox *sb)
{
	if (!sb)
		return NULL;
	sb_callback_stop(sb); /* before init goes: its channel closing is then expected */
	sb_egress_stop(sb);
	sb_err *err = teardown(sb);
	sb_close(&sb->owner_fd);   /* init is gone: nothing to detach */
	sb_lease_refill_spare(sb); /* the next creation takes it instead of making directories */
	sandbox_free(sb);
	return err;
}

void sb_sandbox_close(sb_sandbox *sb)
{
	sandbox_free(sb);
}
