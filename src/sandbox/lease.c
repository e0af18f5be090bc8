/* Leases on disk: creating, re-adopting, listing, renewing and destroying sandboxes.
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
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LEASE_JSON_MAX (256u * 1024u)

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

/* Where sandbar-init is, found once: $SANDBAR_INIT, then beside the running program (the build
 * tree puts sandbar and sandbar-init side by side), then <prefix>/libexec/sandbar/ relative to
 * it (an installed tree, wherever it was installed), then the paths baked in at build time. */
static char *found_init_path;
static pthread_once_t found_init_once = PTHREAD_ONCE_INIT;

static bool try_init_candidate(char *candidate)
{
	if (access(candidate, X_OK) == 0) {
		found_init_path = candidate;
		return true;
	}
	free(candidate);
	return false;
}

static void find_init_path(void)
{
	const char *env = getenv("SANDBAR_INIT");
	if (env && *env && try_init_candidate(sb_xstrdup(env)))
		return;
	char *exe = realpath("/proc/self/exe", NULL);
	if (exe) {
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			if (try_init_candidate(sb_strfmt("%s/sandbar-init", exe)) ||
			    try_init_candidate(
			        sb_strfmt("%s/../libexec/sandbar/sandbar-init", exe))) {
				free(exe);
				return;
			}
		}
		free(exe);
	}
	if (try_init_candidate(sb_xstrdup(SANDBAR_INIT_BUILD_PATH)))
		return;
	found_init_path = sb_xstrdup(SANDBAR_INIT_INSTALL_PATH);
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

static json_t *limits_json(const sb_sandbox_limits *l)
{
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "memory_bytes",
	                 (json_int_t)l->memory_bytes, "pids", (json_int_t)l->pids, "cpu_weight",
	                 (json_int_t)l->cpu_weight, "nofile", (json_int_t)l->nofile, "nproc",
	                 (json_int_t)l->nproc, "ttl_s", (json_int_t)l->ttl_s, "spool_bytes",
	                 (json_int_t)l->spool_bytes);
}

static json_t *enforced_json(const sb_sandbox_enforced *e)
{
	return json_pack("{s:b,s:b,s:b,s:b,s:b,s:b}", "memory", e->memory, "pids", e->pids, "cpu",
	                 e->cpu, "rlimits", e->rlimits, "seccomp", e->seccomp, "ttl", e->ttl);
}

/* Atomic replace without fsync: lease.json must survive our crash, not a power cut, and a
 * fsync would dominate the lease creation time. */
static sb_err *write_replace(const char *path, const char *data, size_t len)
{
	char *tmp = sb_strfmt("%s.tmp", path);
	sb_err *err = NULL;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		err = sb_err_sys(errno, "creating %s", tmp);
	else if ((err = sb_write_all(fd, data, len)))
		err = sb_err_prefix(err, "writing %s", tmp);
	if (fd >= 0 && close(fd) < 0 && !err)
		err = sb_err_sys(errno, "writing %s", tmp);
	if (!err && rename(tmp, path) < 0)
		err = sb_err_sys(errno, "renaming %s", tmp);
	if (err)
		unlink(tmp);
	free(tmp);
	return err;
}

sb_err *sb_lease_save(sb_sandbox *sb)
{
	const sb_sandbox_info *i = &sb->info;
	json_t *cg = json_array();
	for (size_t k = 0; sb->cgroups && sb->cgroups[k]; k++)
		json_array_append_new(cg, json_string(sb->cgroups[k]));
	json_t *j =
	    json_pack("{s:s,s:b,s:o,s:o,s:I,s:I,s:i,s:I,s:I,s:I,s:s,s:s,s:o}", "id", i->id,
	              "network", i->network, "limits", limits_json(&i->limits), "enforced",
	              enforced_json(&i->enforced), "created_at_ms", (json_int_t)i->created_at_ms,
	              "expires_at_ms", (json_int_t)i->expires_at_ms, "init_pid", i->init_pid,
	              "init_start", (json_int_t)sb->init_start, "host_uid", (json_int_t)i->host_uid,
	              "host_gid", (json_int_t)i->host_gid, "workspace_mount", sb->workspace_mount,
	              "cgroup_version", i->cgroup_version, "cgroups", cg);
	if (!j)
		return sb_err_new(SB_E_INTERNAL, "encoding lease.json of %s", sb->id);
	char *text = sb_json_dumps(j);
	json_decref(j);
	char *path = sb_strfmt("%s/lease.json", sb->lease_dir);
	sb_err *err = write_replace(path, text, strlen(text));
	free(path);
	free(text);
	return err;
}

static sb_err *get_u64(const json_t *o, const char *k, uint64_t *out)
{
	int64_t v = 0;
	sb_err *err = sb_json_get_int(o, k, false, 0, INT64_MAX, &v);
	if (!err)
		*out = (uint64_t)v;
	return err;
}

static sb_err *lease_load(sb_sandbox *sb)
{
	char *path = sb_strfmt("%s/lease.json", sb->lease_dir);
	sb_buf b = SB_BUF_INIT;
	json_t *j = NULL;
	sb_err *err = sb_read_file(path, LEASE_JSON_MAX, &b);
	if (err) {
		if (err->sys_errno == ENOENT) {
			sb_err_free(err);
			err = sb_err_new(SB_E_NOTFOUND, "no lease %s (no %s)", sb->id, path);
		}
		goto out;
	}
	if ((err = sb_json_parse_object(b.data, b.len, LEASE_JSON_MAX, 8, &j)))
		goto out;
	sb_sandbox_info *i = &sb->info;
	const char *mount = NULL, *cgv = NULL;
	int64_t pid = 0, start = 0;
	const json_t *lim = json_object_get(j, "limits"), *enf = json_object_get(j, "enforced");
	bool b1 = false;
	if ((err = sb_json_get_bool(j, "network", false, &i->network)) ||
	    (err = sb_json_get_int(j, "created_at_ms", false, 0, INT64_MAX, &i->created_at_ms)) ||
	    (err = sb_json_get_int(j, "expires_at_ms", false, 0, INT64_MAX, &i->expires_at_ms)) ||
	    (err = sb_json_get_int(j, "init_pid", true, 1, INT32_MAX, &pid)) ||
	    (err = sb_json_get_int(j, "init_start", false, -1, INT64_MAX, &start)) ||
	    (err = sb_json_get_int(j, "host_uid", true, 0, UINT32_MAX, &i->host_uid)) ||
	    (err = sb_json_get_int(j, "host_gid", true, 0, UINT32_MAX, &i->host_gid)) ||
	    (err = sb_json_get_str(j, "workspace_mount", true, &mount)) ||
	    (err = sb_json_get_str(j, "cgroup_version", false, &cgv)) ||
	    (err = sb_json_get_strv(j, "cgroups", false, 64, &sb->cgroups)))
		goto bad;
	if (json_is_object(lim) &&
	    ((err = get_u64(lim, "memory_bytes", &i->limits.memory_bytes)) ||
	     (err = get_u64(lim, "pids", &i->limits.pids)) ||
	     (err = get_u64(lim, "cpu_weight", &i->limits.cpu_weight)) ||
	     (err = get_u64(lim, "nofile", &i->limits.nofile)) ||
	     (err = get_u64(lim, "nproc", &i->limits.nproc)) ||
	     (err = get_u64(lim, "spool_bytes", &i->limits.spool_bytes)) ||
	     (err = sb_json_get_int(lim, "ttl_s", false, 0, INT64_MAX, &i->limits.ttl_s))))
		goto bad;
	if (json_is_object(enf)) {
		struct {
			const char *k;
			bool *v;
		} f[] = {{"memory", &i->enforced.memory},   {"pids", &i->enforced.pids},
		         {"cpu", &i->enforced.cpu},         {"rlimits", &i->enforced.rlimits},
		         {"seccomp", &i->enforced.seccomp}, {"ttl", &i->enforced.ttl}};
		for (size_t k = 0; k < sizeof f / sizeof f[0]; k++) {
			b1 = false;
			if ((err = sb_json_get_bool(enf, f[k].k, false, &b1)))
				goto bad;
			*f[k].v = b1;
		}
	}
	i->init_pid = (int)pid;
	sb->init_start = start;
	sb->workspace_mount = sb_xstrdup(mount);
	snprintf(i->cgroup_version, sizeof i->cgroup_version, "%s", cgv ? cgv : "");
	goto out;
bad:
	err = sb_err_prefix(err, "lease %s: corrupt %s", sb->id, path);
out:
	json_decref(j);
	sb_buf_deinit(&b);
	free(path);
	return err;
}

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

/* bwrap resolves the directories it binds by path (even given descriptors), as the sandbox
 * user: the state and leases directories must be traversable by it, though leases/ is not
 * listable. Owner operations use descriptors (sb_sandbox_workspace_fd). */
static sb_err *prepare_state(const sb_sandbox_config *cfg, bool root)
{
	sb_err *err = sb_fs_mkdir_p(cfg->state_dir, 0755);
	if (err)
		return sb_err_prefix(err, "creating the state directory");
	char *leases = sb_strfmt("%s/leases", cfg->state_dir);
	if (mkdir(leases, root ? 0711 : 0700) < 0 && errno != EEXIST)
		err = sb_err_sys(errno, "creating %s", leases);
	struct stat st;
	if (!err && root && stat(cfg->state_dir, &st) == 0 && !(st.st_mode & S_IXOTH) &&
	    chmod(cfg->state_dir, st.st_mode | S_IXOTH) < 0)
		err =
		    sb_err_sys(errno, "making %s traversable for the sandbox user", cfg->state_dir);
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
	/* sb_fs_rm_rf also copes with directories sandboxed code made unreadable */
	sb_err *e2 = sb_fs_rm_rf(sb->lease_dir);
	if (e2 && !err)
		err = e2;
	else
		sb_err_free(e2);
	return err ? sb_err_prefix(err, "destroying lease %s", sb->id) : NULL;
}

/* bubblewrap, running as the sandbox user, resolves the bind sources it is handed by path, so
 * every directory above the state directory must be searchable by that user. Checked up front
 * because bwrap's own message ("Can't find source path /proc/self/fd/9") names no directory. */
static sb_err *check_reachable(const char *dir, int64_t uid, int64_t gid)
{
	char *real = realpath(dir, NULL);
	if (!real)
		return sb_err_sys(errno, "resolving the state directory %s", dir);
	sb_err *err = NULL;
	size_t len = strlen(real);
	for (size_t end = 1; end <= len && !err; end++) {
		if (end != len && real[end] != '/')
			continue;
		char saved = real[end];
		real[end] = '\0';
		struct stat st;
		if (stat(end == 0 ? "/" : real, &st) != 0) {
			err = sb_err_sys(errno, "checking %s", real);
		} else {
			bool ok = (st.st_mode & S_IXOTH) ||
			          ((int64_t)st.st_uid == uid && (st.st_mode & S_IXUSR)) ||
			          ((int64_t)st.st_gid == gid && (st.st_mode & S_IXGRP));
			if (!ok)
				err = sb_err_new(
				    SB_E_UNSUPPORTED,
				    "the state directory %s is out of reach of the sandbox "
				    "user (uid %lld): %s is not searchable by it; use a "
				    "state directory such as /var/lib/sandbar, or allow it "
				    "with `chmod o+x %s`",
				    dir, (long long)uid, real, real);
		}
		real[end] = saved;
	}
	free(real);
	return err;
}

/* The check walks every ancestor: done once per state directory and owner, as long as it
 * passes (permissions above the state directory rarely change under a running daemon). */
static sb_err *check_reachable_once(const char *dir, int64_t uid, int64_t gid)
{
	static char *ok_dir;
	static int64_t ok_uid = -1, ok_gid = -1;
	pthread_mutex_lock(&lookup_lock);
	bool known = ok_dir && strcmp(ok_dir, dir) == 0 && ok_uid == uid && ok_gid == gid;
	pthread_mutex_unlock(&lookup_lock);
	if (known)
		return NULL;
	sb_err *err = check_reachable(dir, uid, gid);
	if (!err) {
		pthread_mutex_lock(&lookup_lock);
		free(ok_dir);
		ok_dir = sb_xstrdup(dir);
		ok_uid = uid;
		ok_gid = gid;
		pthread_mutex_unlock(&lookup_lock);
	}
	return err;
}

/* A lease directory with its workspace, home, run and spool, owned as they must be. */
static sb_err *make_skeleton(const char *dir, bool root, int64_t uid, int64_t gid)
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
static int take_spare(const sb_sandbox *sb, bool root)
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
static void refill_spare(const sb_sandbox *sb)
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
			    make_skeleton(tmp, root, sb->info.host_uid, sb->info.host_gid);
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
	set_paths(sb, cfg, lease_id);
	sb->workspace_mount = sb_xstrdup(mount);
	sb_sandbox_info *i = &sb->info;
	i->network = opts->network;
	i->limits = opts->limits;
	i->enforced.rlimits = i->enforced.seccomp = i->enforced.ttl = true;
	bool created = false;
	if ((err = sb_sandbox_resolve_owner(cfg, &i->host_uid, &i->host_gid)) ||
	    (err = sb_sandbox_bwrap_path(cfg, &bwrap)) || (err = prepare_state(cfg, root)) ||
	    (root && (err = check_reachable_once(cfg->state_dir, i->host_uid, i->host_gid))))
		goto fail;
	int spare = take_spare(sb, root);
	if (spare < 0) {
		err = sb_err_new(SB_E_EXISTS, "lease %s exists already", lease_id);
		goto fail;
	}
	created = true;
	if (!spare && (err = make_skeleton(sb->lease_dir, root, i->host_uid, i->host_gid))) {
		if (err->sys_errno == EEXIST) {
			sb_err_free(err);
			created = false;
			err = sb_err_new(SB_E_EXISTS, "lease %s exists already", lease_id);
		}
		goto fail;
	}
	if ((err = open_dirs(sb)))
		goto fail;

	const sb_sandbox_limits *lim = &opts->limits;
	if (lim->memory_bytes || lim->pids || lim->cpu_weight) {
		sb_cg_detect(cfg->cgroup_root, &cg);
		if ((err = sb_cg_create(&cg, lease_id, lim, &i->enforced, &sb->cgroups, &oom_file)))
			goto fail;
		snprintf(i->cgroup_version, sizeof i->cgroup_version, "%s", cg.version);
		const char *missing[3];
		size_t nm = 0;
		if (lim->memory_bytes && !i->enforced.memory)
			missing[nm++] = "memory";
		if (lim->pids && !i->enforced.pids)
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
	i->created_at_ms = sb_wall_ms();
	i->expires_at_ms = lim->ttl_s > 0 ? i->created_at_ms + lim->ttl_s * 1000 : 0;
	sb_launch l = {
	    .bwrap = bwrap,
	    .init_path = init,
	    .rootfs = cfg->rootfs,
	    .network = opts->network,
	    .nofile = lim->nofile ? lim->nofile : 4096,
	    .nproc = lim->nproc ? lim->nproc : (lim->pids ? lim->pids : 4096),
	    .spool_max = lim->spool_bytes ? lim->spool_bytes : SB_SANDBOX_SPOOL_BYTES_DEFAULT,
	    .oom_file = oom_file,
	    .cgroups = sb->cgroups,
	    .drop_privs = root,
	    .uid = i->host_uid,
	    .gid = i->host_gid,
	    .started = sb_lease_save,
	};
	if ((err = sb_launch_sandbox(sb, &l)))
		goto fail;
	free(bwrap);
	free(oom_file);
	sb_cg_host_deinit(&cg);
	*out = sb;
	return NULL;
fail:
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
	set_paths(sb, cfg, lease_id);
	if ((err = lease_load(sb)) || (err = open_dirs(sb))) {
		sandbox_free(sb);
		return err;
	}
	sb->dead = !sb_sandbox_alive(sb);
	if (sb->dead && need_alive) {
		sandbox_free(sb);
		return sb_err_new(SB_E_STATE_LOST,
		                  "the sandbox of lease %s is gone (sandbar-init does not answer); "
		                  "its spooled results stay readable until the lease is destroyed",
		                  lease_id);
	}
	*out = sb;
	return NULL;
}

sb_err *sb_sandbox_open(const sb_sandbox_config *cfg, const char *lease_id, sb_sandbox **out)
{
	return open_common(cfg, lease_id, true, out);
}

sb_err *sb_sandbox_open_dead(const sb_sandbox_config *cfg, const char *lease_id, sb_sandbox **out)
{
	return open_common(cfg, lease_id, false, out);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
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
		if (!sbi_id_valid(de->d_name))
			continue;
		char *p = sb_strfmt("%s/%s/lease.json", leases, de->d_name);
		if (access(p, F_OK) == 0) {
			sb_strv_push(&ids, de->d_name);
			n++;
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
	sb_err *err = teardown(sb);
	refill_spare(sb); /* the next creation takes it instead of making directories */
	sandbox_free(sb);
	return err;
}

void sb_sandbox_close(sb_sandbox *sb)
{
	sandbox_free(sb);
}
