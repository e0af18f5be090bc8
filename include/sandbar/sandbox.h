/* sandbar sandbox backend (DESIGN.md §5, §7): one bubblewrap sandbox per lease, supervised from
 * inside by sandbar-init, with its state kept under the state directory so that a sandbox and
 * its running commands outlive the process that created it and can be re-adopted later.
 *
 * Layout: <state>/leases/<id>/{lease.json, workspace/, home/, run/ctl.sock, spool/<exec-id>/
 * {stdout,stderr,status.json}}. Sandboxed code sees only the workspace, home, a private /tmp
 * and read-only system directories; the spool and the control socket are outside its reach.
 *
 * Threads: an sb_sandbox handle may be used from several threads at once (every request opens
 * its own short connection to sandbar-init); an sb_sandbox_exec handle belongs to one thread.
 */
#ifndef SANDBAR_SANDBOX_H
#define SANDBAR_SANDBOX_H

#include <sandbar/base.h>
#include <sandbar/runner.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SB_SANDBOX_WORKSPACE_DEFAULT "/workspace"
#define SB_SANDBOX_HOME "/home/sandbox"
#define SB_SANDBOX_USER_DEFAULT "sandbar" /* host user the sandboxes run as when we are root */
#define SB_SANDBOX_INNER_UID 1000 /* uid/gid of every process inside ("sandbox" in /etc/passwd) */
#define SB_SANDBOX_ID_MAX 64      /* lease and exec ids: [A-Za-z0-9_-]{1,64} */

/* ------------------------------------------------------------ configuration */

/* Host-wide settings, shared by every lease. Strings are borrowed for the duration of a call
 * (sb_sandbox_open/create copy what they keep). Zeroed fields take the defaults. */
typedef struct sb_sandbox_config {
	/* Required: <state>, leases live in <state>/leases. When we are root it is made traversable
	 * (o+x) for the sandbox user, because bwrap resolves the directories it binds by path as
	 * that user; leases/ and each lease directory are 0711 (not listable). Its ancestors must
	 * be traversable too (e.g. /var/lib/sandbar, not something under /root). */
	const char *state_dir;
	const char *init_path;  /* sandbar-init binary; NULL = build path, else install path */
	const char *bwrap_path; /* NULL = "bwrap" from PATH */
	/* NULL = the host's /usr, /etc, /bin, /sbin, /lib*, /opt read-only. Else every top-level
	 * entry of this directory read-only, except proc, dev, tmp, sys, home and the workspace
	 * mount, which the sandbox provides itself. sandbar-init is static and needs nothing in it.
	 */
	const char *rootfs;
	const char *workspace_mount; /* NULL = SB_SANDBOX_WORKSPACE_DEFAULT */
	/* When the caller is root, sandboxes (bwrap and everything under it) run as this host
	 * uid/gid, and workspace/home belong to it. -1 = look up SB_SANDBOX_USER_DEFAULT; creating
	 * a sandbox as root fails when that user does not exist. Ignored when not root (sandboxes
	 * then run as the caller). */
	int64_t host_uid;
	int64_t host_gid;
	const char *cgroup_root; /* NULL = "/sys/fs/cgroup" */
} sb_sandbox_config;

/* Fill defaults (host_uid/gid = -1, everything else NULL). */
void sb_sandbox_config_init(sb_sandbox_config *cfg);

/* Per-lease limits; 0 = not limited (rlimits get sane defaults). */
typedef struct sb_sandbox_limits {
	uint64_t memory_bytes; /* cgroup memory limit for the whole sandbox */
	uint64_t pids;         /* cgroup pids limit for the whole sandbox (includes sandbar-init) */
	uint64_t cpu_weight;  /* relative share, 1..10000, 100 = normal (v1: shares = w*1024/100) */
	uint64_t nofile;      /* RLIMIT_NOFILE per command; 0 = 4096 */
	uint64_t nproc;       /* RLIMIT_NPROC per command; 0 = pids or 4096 */
	int64_t ttl_s;        /* wall-clock lifetime; 0 = none. Recorded, enforced by the caller's
	                       * reaper (sb_sandbox_info.expires_at_ms). */
	uint64_t spool_bytes; /* spooled output kept per stream of each exec; 0 = 1 GiB. Output
	                       * beyond it is discarded (the command is not blocked) and flagged. */
} sb_sandbox_limits;

#define SB_SANDBOX_SPOOL_BYTES_DEFAULT (1ull << 30)

typedef struct sb_sandbox_opts {
	bool network; /* share the host network; false = own netns with only lo */
	sb_sandbox_limits limits;
	/* A requested cgroup limit the host cannot enforce fails the create (SB_E_UNSUPPORTED)
	 * when true; when false it is logged as a warning and reported in info.enforced. */
	bool require_limits;
} sb_sandbox_opts;

/* Which limits are actually in force (per lease, and host-wide in health). */
typedef struct sb_sandbox_enforced {
	bool memory;
	bool pids;
	bool cpu;
	bool rlimits; /* always true: NOFILE, NPROC, CORE=0 per command */
	bool seccomp;
	bool ttl; /* recorded; enforcement is the reaper's job */
} sb_sandbox_enforced;

/* ------------------------------------------------------------ leases */

typedef struct sb_sandbox sb_sandbox;

typedef struct sb_sandbox_info {
	char id[SB_SANDBOX_ID_MAX + 1];
	bool network;
	sb_sandbox_limits limits;
	sb_sandbox_enforced enforced;
	int64_t created_at_ms;      /* wall clock */
	int64_t expires_at_ms;      /* 0 = no TTL */
	int init_pid;               /* host pid of sandbar-init */
	int64_t host_uid, host_gid; /* who the sandbox runs as on the host */
	char cgroup_version[4];     /* "v1", "v2" or "" when no cgroup limits apply */
} sb_sandbox_info;

/* Create and start the sandbox of lease_id (ids: [A-Za-z0-9_-]{1,64}); returns once
 * sandbar-init is ready to take exec requests. The sandbox is detached from the caller (its own
 * session, not our child): it keeps running if the caller dies. SB_E_EXISTS if the lease
 * directory exists already. On failure everything created is removed again. */
sb_err *sb_sandbox_create(const sb_sandbox_config *cfg, const char *lease_id,
                          const sb_sandbox_opts *opts, sb_sandbox **out);

/* Re-adopt an existing lease (e.g. after a restart): reads lease.json and checks that
 * sandbar-init answers. SB_E_NOTFOUND when there is no such lease, SB_E_STATE_LOST when its
 * sandbox is dead (the lease directory and spooled results remain readable through
 * sb_sandbox_open_dead until destroyed). */
sb_err *sb_sandbox_open(const sb_sandbox_config *cfg, const char *lease_id, sb_sandbox **out);
/* Open a lease whose sandbox may be dead, to read its spooled exec results or destroy it.
 * exec_start fails with SB_E_STATE_LOST on such a handle. */
sb_err *sb_sandbox_open_dead(const sb_sandbox_config *cfg, const char *lease_id, sb_sandbox **out);

/* Lease ids present on disk (live or not), sorted; caller frees with sb_strv_free. */
sb_err *sb_sandbox_list(const sb_sandbox_config *cfg, char ***ids_out);

/* Is sandbar-init still answering? (one ping round trip) */
bool sb_sandbox_alive(sb_sandbox *sb);

const char *sb_sandbox_id(const sb_sandbox *sb);
void sb_sandbox_get_info(const sb_sandbox *sb, sb_sandbox_info *out);
/* Host path of the lease's workspace / home directory (owned by info.host_uid). Valid as long
 * as the handle. In owner operations prefer sb_sandbox_workspace_fd, which does not depend on
 * the path's ancestors. */
const char *sb_sandbox_workspace_dir(const sb_sandbox *sb);
const char *sb_sandbox_home_dir(const sb_sandbox *sb);
/* An O_PATH descriptor of the workspace directory, owned by the handle. Use it as the root for
 * openat / sb_fs_open_beneath inside sb_sandbox_as_owner ("/proc/self/fd/<fd>" for functions
 * that take a path): it works even where the owner cannot traverse the state directory's
 * path. */
int sb_sandbox_workspace_fd(const sb_sandbox *sb);
/* The in-sandbox mount point of the workspace ("/workspace"). */
const char *sb_sandbox_workspace_mount(const sb_sandbox *sb);

/* Map an in-sandbox path under the workspace mount ("/workspace/sub/x", or "/workspace" itself)
 * to a path relative to the host workspace dir ("sub/x", "" for the root); malloc'd.
 * SB_E_ESCAPE for anything outside the workspace or with "." / ".." segments. */
sb_err *sb_sandbox_map_path(const sb_sandbox *sb, const char *inside_path, char **rel_out);

/* Run fn(ud) on a thread of its own that, when we are root, has switched to the lease owner
 * (info.host_uid/gid, no supplementary groups, no capabilities), so that racing sandboxed
 * code can never make a host-side file operation touch anything the sandbox user could not;
 * returns fn's error once that thread is done. Other threads are not affected, and fn's
 * memory effects are visible afterwards. Use for every host-side write into or read from the
 * workspace. fn must not change process-wide state (current directory, umask). */
sb_err *sb_sandbox_as_owner(const sb_sandbox *sb, sb_err *(*fn)(void *ud), void *ud);

/* Extend (or set) the TTL: expires_at = now + ttl_s (0 clears it). Rewrites lease.json. */
sb_err *sb_sandbox_renew(sb_sandbox *sb, int64_t ttl_s);

/* Kill every process of the sandbox, remove its cgroups and the lease directory. A lease whose
 * sandbox is already dead is cleaned up the same way. The handle is freed in any case. */
sb_err *sb_sandbox_destroy(sb_sandbox *sb);
/* Close the handle; the sandbox keeps running. */
void sb_sandbox_close(sb_sandbox *sb);

/* ------------------------------------------------------------ execs */

typedef enum sb_sandbox_stdin {
	SB_SANDBOX_STDIN_NULL = 0, /* /dev/null */
	SB_SANDBOX_STDIN_PIPE = 1, /* sb_sandbox_exec_stdin_fd() gives the write end */
} sb_sandbox_stdin;

typedef struct sb_sandbox_exec_req {
	char *const *argv; /* required; argv[0] looked up in the sandbox PATH */
	const char *cwd;   /* in-sandbox path; NULL = the workspace mount */
	char *const *env;  /* "K=V" added to (or replacing, with clear_env) the default env:
	                    * PATH, HOME=/home/sandbox, USER=sandbox, TMPDIR=/tmp, LANG=C.UTF-8 */
	bool clear_env;
	sb_sandbox_stdin stdin_mode;
	int64_t timeout_ms;  /* 0 = none; enforced by sandbar-init on the process group */
	int64_t grace_ms;    /* TERM-to-KILL; 0 = SB_GRACE_MS_DEFAULT */
	const char *exec_id; /* NULL = generate "ex_<hex>" */
} sb_sandbox_exec_req;

typedef struct sb_sandbox_exec_status {
	char exec_id[SB_SANDBOX_ID_MAX + 1];
	bool running;
	bool has_exit_code;
	int exit_code;
	int signal; /* terminating signal number, 0 if none */
	bool timed_out;
	bool oom_killed; /* the memory limit killed it (signal is then SIGKILL) */
	int pid;         /* pid inside the sandbox (pgid too) */
	int64_t started_at_ms, finished_at_ms;   /* wall clock; finished 0 while running */
	uint64_t stdout_size, stderr_size;       /* bytes spooled so far */
	bool stdout_truncated, stderr_truncated; /* output beyond limits.spool_bytes dropped */
} sb_sandbox_exec_status;

/* A started or re-attached exec: its output streams, its status and a wake-up fd.
 *
 * Records: sandbar-init announces an exit to the handles following the exec at once and
 * writes the final status.json a moment later (on a thread of its own, so that a slow disk
 * delays no other request); until then it answers status requests from memory. Results
 * survive the host's death; a sandbox killed within those milliseconds may lose the last
 * record (the exec then reads as never finished: SB_E_STATE_LOST). */
typedef struct sb_sandbox_exec sb_sandbox_exec;

/* Start a command. Returns after sandbar-init has forked it (pid known) or with SB_E_SPAWN
 * (`failed to start "<cmd>" in "<cwd>": <reason>`) when it could not be started (no such
 * program, bad cwd). *out is attached to the new exec. */
sb_err *sb_sandbox_exec_start(sb_sandbox *sb, const sb_sandbox_exec_req *req,
                              sb_sandbox_exec **out);
/* Attach to an existing exec by id (running or finished, before or after a restart).
 * While it runs, sandbar-init wakes this handle and announces the exit to it like to the
 * starting one; a finished exec, or one of a dead sandbox, is read from its spool (an inotify
 * watch serves waits there). SB_E_NOTFOUND for an unknown id. */
sb_err *sb_sandbox_exec_attach(sb_sandbox *sb, const char *exec_id, sb_sandbox_exec **out);
const char *sb_sandbox_exec_id(const sb_sandbox_exec *x);
/* Write end of the stdin pipe (STDIN_PIPE only, else -1); owned by the handle: write, then
 * call sb_sandbox_exec_close_stdin. */
int sb_sandbox_exec_stdin_fd(const sb_sandbox_exec *x);
void sb_sandbox_exec_close_stdin(sb_sandbox_exec *x);
/* Read up to max bytes of stream from byte offset; *got = 0 means no more for now (check the
 * status: when it is finished, that is the end). Output stays readable after the exec ends. */
sb_err *sb_sandbox_exec_read(sb_sandbox_exec *x, sb_stream stream, uint64_t offset, void *buf,
                             size_t max, size_t *got);
/* Current status plus the spool sizes: from init's exit message while this handle follows a
 * running exec (running until it comes), else from the spool's status.json. SB_E_STATE_LOST
 * when the exec can never finish because the sandbox died (checked at most every 0.5 s). */
sb_err *sb_sandbox_exec_get_status(sb_sandbox_exec *x, sb_sandbox_exec_status *st);
/* Pollable fd (POLLIN) that becomes readable when output grows or the status changes; call
 * sb_sandbox_exec_wait (timeout 0) to consume the events. Fetch it again after each wait: it
 * changes when the sandbox goes away mid-command. */
int sb_sandbox_exec_fd(sb_sandbox_exec *x);
/* Block until output grows or the status changes, or timeout_ms passes (-1 = forever).
 * *changed (optional) says which. Always re-check by reading: wake-ups may be spurious. */
sb_err *sb_sandbox_exec_wait(sb_sandbox_exec *x, int64_t timeout_ms, bool *changed);
void sb_sandbox_exec_free(sb_sandbox_exec *x);

/* Idle sleep: freeze (or thaw) the sandbox's command processes, every process but sandbar-init,
 * in a cgroup v1 freezer group (SB_E_UNSUPPORTED without one). *nprocs (may be NULL) counts the
 * processes frozen. Thawing a sandbox that never slept does nothing. */
sb_err *sb_sandbox_freeze(sb_sandbox *sb, bool freeze, size_t *nprocs);
/* Its command processes are frozen now. */
bool sb_sandbox_frozen(sb_sandbox *sb);

/* Status of one exec without attaching: from sandbar-init's memory while it tracks the exec
 * (always in step with exit messages), else from status.json. SB_E_NOTFOUND for an unknown
 * id. */
sb_err *sb_sandbox_exec_status_get(sb_sandbox *sb, const char *exec_id, sb_sandbox_exec_status *st);
/* Forget a finished exec: remove its spool (output and status). SB_E_BUSY while it runs,
 * SB_E_NOTFOUND for an unknown id. For long-lived leases whose spool would otherwise grow
 * with every command. */
sb_err *sb_sandbox_exec_remove(sb_sandbox *sb, const char *exec_id);
/* Exec ids of this lease (spooled, or running in sandbar-init), sorted; caller frees with
 * sb_strv_free. */
sb_err *sb_sandbox_exec_list(sb_sandbox *sb, char ***ids_out);
/* Send signo to the exec's process group (also after its first process exited, while other
 * members such as background children live on). SB_E_NOTFOUND when none is running. */
sb_err *sb_sandbox_exec_signal(sb_sandbox *sb, const char *exec_id, int signo);

typedef struct sb_sandbox_process {
	int pid, ppid, pgid; /* inside the sandbox */
	char state;          /* /proc state letter */
	uint64_t rss_bytes;
	char *exec_id; /* the exec whose process group it is in; NULL if none */
	char *cmdline; /* arguments joined by spaces (bounded) */
} sb_sandbox_process;

/* Every process in the sandbox except sandbar-init. Free with sb_sandbox_processes_free. */
sb_err *sb_sandbox_list_processes(sb_sandbox *sb, sb_sandbox_process **out, size_t *n);
void sb_sandbox_processes_free(sb_sandbox_process *p, size_t n);

/* ------------------------------------------------------------ health */

typedef struct sb_sandbox_health {
	bool ok;             /* a sandbox can be created at all */
	char *message;       /* why not, or a summary; malloc'd */
	char *bwrap_version; /* malloc'd, NULL if bwrap missing */
	bool running_as_root;
	int64_t host_uid, host_gid;      /* what sandboxes run as */
	char cgroup_version[4];          /* "v1", "v2", "" */
	sb_sandbox_enforced enforceable; /* which limits this host can enforce */
} sb_sandbox_health;

/* Probe the host (bwrap, sandbar-init, user, cgroups, seccomp). Never fails: problems are in
 * out->ok / out->message. Free with sb_sandbox_health_deinit. */
void sb_sandbox_health_check(const sb_sandbox_config *cfg, sb_sandbox_health *out);
void sb_sandbox_health_deinit(sb_sandbox_health *h);
/* {"ok":..,"message":..,"bwrap":..,"root":..,"uid":..,"gid":..,"cgroup":"v1",
 *  "limits":{"memory":true,"pids":true,"cpu":false,"rlimits":true,"seccomp":true,"ttl":true}} */
json_t *sb_sandbox_health_json(const sb_sandbox_health *h);

/* ------------------------------------------------------------ runner */

typedef struct sb_sandbox_runner_opts {
	const char *default_cwd; /* NULL = the workspace mount */
	bool own_sandbox;        /* sb_runner_free closes (not destroys) the sandbox handle */
} sb_sandbox_runner_opts;

/* A runner (runner.h) executing in the lease: streaming, stdin, timeouts; caps STDIN |
 * STDIN_PROGRESS | FILE_TRANSFER. sync_in/sync_out take in-sandbox paths under the workspace
 * mount and work directly on the host-side workspace directory, as the lease owner (copies,
 * never hard links). sb must outlive the runner unless own_sandbox. */
sb_err *sb_sandbox_runner_new(sb_sandbox *sb, const sb_sandbox_runner_opts *opts, sb_runner **out);

#ifdef __cplusplus
}
#endif
#endif
