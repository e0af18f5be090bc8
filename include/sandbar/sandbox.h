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
	/* Required: <state>, leases live in <state>/leases. Anywhere (a 0700 ancestor, /root/...,
	 * spaces are fine): created 0700 when missing and never chmod'ed; the sandbox user
	 * reaches its workspace and home through binds made in a private mount namespace. */
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
	/* Host paths no sandbox may see (NULL-terminated, may be NULL): the daemon's state
	 * directory, socket, token and key files. Where one lies in a directory the sandbox sees, a
	 * directory is covered by an empty tmpfs and anything else by an empty file. /etc/sandbar
	 * (the daemon's configuration) is always hidden. */
	const char *const *hide_paths;
	/* Memory limit of a lease that asks for none (0 = none). Whatever the memory limit, /tmp
	 * and /dev/shm are tmpfs of at most that size (SB_SANDBOX_TMPFS_DEFAULT without one). */
	uint64_t default_memory_bytes;
	/* Callback bridges (sb_callback_config): when true, sb_sandbox_open resumes the relay of
	 * a lease that has one, in this process (the daemon re-adopting its leases). A lease
	 * created with a callback always runs its relay in the creating process. */
	bool run_callbacks;
	struct sb_callback_stats *callback_stats; /* counters to add to, or NULL */
	/* Egress proxies (network mode allowlist): when true, sb_sandbox_open restarts the proxy
	 * of a lease that has one, in this process, with the CA its sandbox already trusts and the
	 * allowlist it was created with (kept 0600 in the lease's run/ directory, which no sandbox
	 * sees). A secret that came from a named entry is read again through the entry of that
	 * name in egress_secrets (never stored by value); one no longer there is dropped with a
	 * warning. A lease created with a proxy always runs it in the creating process. */
	bool run_proxies;
	const struct sb_egress_secret_entry *egress_secrets;
	size_t negress_secrets;
	/* Called (from a proxy thread) for every destination a lease's proxy denies: what is
	 * "HOST:PORT (rule)". May be NULL. */
	void (*egress_denied)(void *ud, const char *lease_id, const char *what);
	void *egress_denied_ud;
} sb_sandbox_config;

/* For long-running creators of sandboxes (the daemon): adopt the detached bwrap processes of
 * our sandboxes as their subreaper, and reap those that ended (returns how many). Without it
 * they are left to PID 1. Reaping never takes a child a sandbar thread waits for. */
sb_err *sb_sandbox_adopt_orphans(void);
size_t sb_sandbox_reap_orphans(void);

/* Spare lease directories this process found incomplete when taking them, and discarded
 * instead of using (a race with another process sharing the state directory). */
uint64_t sb_sandbox_spares_discarded(void);

/* Safe defaults every lease gets unless it asks for a limit of its own. */
#define SB_SANDBOX_PIDS_DEFAULT 1024u
#define SB_SANDBOX_TMPFS_DEFAULT (1ull << 30)

/* Fill defaults (host_uid/gid = -1, everything else NULL). */
void sb_sandbox_config_init(sb_sandbox_config *cfg);

/* Per-lease limits; 0 = not limited (rlimits get sane defaults). */
typedef struct sb_sandbox_limits {
	uint64_t memory_bytes; /* cgroup memory limit for the whole sandbox; 0 = the config's
	                        * default_memory_bytes */
	uint64_t pids; /* cgroup pids limit for the whole sandbox (includes sandbar-init); 0 = the
	                * default, SB_SANDBOX_PIDS_DEFAULT */
	uint64_t cpu_weight;  /* relative share, 1..10000, 100 = normal (v1: shares = w*1024/100) */
	uint64_t nofile;      /* RLIMIT_NOFILE per command; 0 = 4096 */
	uint64_t nproc;       /* RLIMIT_NPROC per command; 0 = pids */
	int64_t ttl_s;        /* wall-clock lifetime; 0 = none. Recorded, enforced by the caller's
	                       * reaper (sb_sandbox_info.expires_at_ms). */
	uint64_t spool_bytes; /* spooled output kept per stream of each exec; 0 = 1 GiB. Output
	                       * beyond it is discarded (the command is not blocked) and flagged. */
} sb_sandbox_limits;

#define SB_SANDBOX_SPOOL_BYTES_DEFAULT (1ull << 30)

typedef struct sb_callback_config sb_callback_config;
typedef struct sb_egress_config sb_egress_config;
/* The network modes (issue 14): see the egress section below. */
typedef enum sb_net_mode { SB_NET_NONE = 0, SB_NET_ALLOWLIST, SB_NET_FULL } sb_net_mode;

/* A host path bound into the sandbox (`--mount`, issue 14): read-only unless rw. Never at or
 * around the workspace, never the daemon's own paths; the sandbox's user must be able to read
 * it (and write it when rw). What is mounted is outside the workspace, so it is never staged or
 * restored. */
typedef struct sb_sandbox_mount {
	char *host;   /* absolute, resolved when checked */
	char *target; /* absolute path inside the sandbox */
	bool rw;
} sb_sandbox_mount;

/* Parse "HOST_PATH:SANDBOX_PATH[:ro|rw]" (SB_E_INVAL naming what is wrong). */
sb_err *sb_sandbox_mount_parse(const char *spec, sb_sandbox_mount *out);
void sb_sandbox_mount_deinit(sb_sandbox_mount *m);

typedef struct sb_sandbox_opts {
	bool network; /* share the host network; false = own netns with only lo */
	/* A callback bridge for the lease (see below), or NULL. Copied. */
	const sb_callback_config *callback;
	/* Network mode `allowlist` (issue 14): network must be false; the sandbox keeps only its
	 * loopback plus an egress proxy that runs in the creating process (see below). Copied. */
	const sb_egress_config *egress;
	sb_sandbox_limits limits;
	/* A requested cgroup limit the host cannot enforce fails the create (SB_E_UNSUPPORTED)
	 * when true; when false it is logged as a warning and reported in info.enforced. */
	bool require_limits;
	/* The creator watch, for sandboxes whose life is one process's (`sandbar run`): when the
	 * creating process exits without sb_sandbox_close (a SIGKILL, a crash), sandbar-init
	 * stops every process in the sandbox (TERM, KILL after 2 s) and exits; the workspace and
	 * the lease directory stay (the lease is then `orphaned`). Never for a daemon's leases:
	 * those outlive a daemon crash and are re-adopted. */
	bool watch_owner;
	/* Host paths bound into the sandbox, checked at create (see sb_sandbox_mount). */
	const sb_sandbox_mount *mounts;
	size_t nmounts;
	/* NULL = any host path. Else (the daemon's [serve] mount_allow) every mount's resolved
	 * host path must be at or below one of these (resolved too): SB_E_INVAL otherwise. */
	const char *const *mount_roots;
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
	bool network;         /* mode full */
	sb_net_mode net_mode; /* what the lease was created with */
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
/* Is the lease's sandbar-init process certainly gone? Its pid and start time must both match:
 * pids are reused (pid_max may be 32768), so a live pid alone proves nothing. A lease that never
 * recorded its init counts as gone once older than a minute (its creation was killed). */
bool sb_sandbox_init_gone(const sb_sandbox *sb);

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

/* ------------------------------------------------------------ workspace replace */

/* What a replace does with a device, FIFO or socket member of the archive. */
typedef enum sb_replace_special {
	SB_REPLACE_SPECIAL_REFUSE = 0, /* fail (SB_E_INVAL naming the member); nothing changes */
	SB_REPLACE_SPECIAL_SKIP_AND_COUNT, /* leave it out, count it in specials_skipped */
} sb_replace_special;

typedef struct sb_sandbox_replace_opts {
	const char *rel;   /* directory to replace, relative to the workspace as
	                    * sb_sandbox_map_path gives it; NULL or "" = the workspace */
	char *const *keep; /* top-level names of that directory left in place (may be NULL); the
	                    * archive's entries of the same name merge into a kept directory */
	sb_replace_special special;
	sb_progress_fn progress; /* optional: bytes read from tar_fd so far, on this thread */
	void *progress_ud;
} sb_sandbox_replace_opts;

typedef struct sb_sandbox_replace_result {
	uint64_t bytes;            /* bytes of file content extracted */
	uint64_t specials_skipped; /* with SKIP_AND_COUNT */
} sb_sandbox_replace_result;

/* Replace the contents of a directory of the workspace (all but opts->keep) with the tar archive
 * read from tar_fd (read once, from its current offset), as the lease owner, confined below the
 * workspace (DESIGN.md §9.7). The archive is first extracted whole into a hidden staging
 * directory inside the target (".sandbar-replace-*"), so a malformed or refused archive
 * changes nothing; only then are the old entries moved into the staging directory and the new
 * ones moved into place, under an intent journal in the lease's run/ directory. A crash in
 * between is rolled back (old entries moved back) or finished (new ones moved in) by the next
 * sb_sandbox_open or replace of the lease; the directory itself is never renamed (it may be
 * the sandbox's bind-mount root). Replaces of one lease are serialised. */
sb_err *sb_sandbox_workspace_replace(sb_sandbox *sb, int tar_fd,
                                     const sb_sandbox_replace_opts *opts,
                                     sb_sandbox_replace_result *res);

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
	/* A pseudo-terminal (from the sandbox's own /dev/pts) as the command's controlling
	 * terminal and its stdin, stdout and stderr: stdin_mode is then ignored, the output is
	 * one stream (stdout), sb_sandbox_exec_stdin_fd() gives the terminal's master (what is
	 * written there is typed, Ctrl-C included) and sb_sandbox_exec_resize() sets its size.
	 * tty_term (NULL: "xterm") becomes TERM unless env sets it. */
	bool tty;
	unsigned short tty_rows, tty_cols; /* 0 = 24 x 80 */
	const char *tty_term;
	/* sandbar-init holds on to the input (STDIN_PIPE's write end; a terminal's master) so
	 * that another process, or this one restarted, can take it again with
	 * sb_sandbox_exec_input_attach. The command then sees EOF on a pipe only once the
	 * holder's end is closed AND sb_sandbox_exec_input_release was called. */
	bool input_reattach;
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
/* A tty exec's new window size (1..10000 each): the command's terminal gets it and its
 * foreground process group SIGWINCH. SB_E_INVAL when the exec has no terminal here. */
sb_err *sb_sandbox_exec_resize(sb_sandbox_exec *x, unsigned rows, unsigned cols);
/* Move the stdin descriptor (pipe write end, or a tty exec's master) out of the handle: the
 * caller owns it (and may outlive the handle); the handle then has none. -1 when none. */
int sb_sandbox_exec_take_stdin(sb_sandbox_exec *x);
/* For an exec started with input_reattach: a new descriptor for its input (*tty: a terminal's
 * master, else a pipe's write end), while it runs and until released. SB_E_NOTFOUND when it
 * is not running, SB_E_STATE_LOST when its input was released or there is none. */
sb_err *sb_sandbox_exec_input_attach(sb_sandbox *sb, const char *exec_id, int *fd, bool *tty);
/* The end of an input_reattach exec's input: sandbar-init lets go of it (see above). */
sb_err *sb_sandbox_exec_input_release(sb_sandbox *sb, const char *exec_id);
/* sb_sandbox_exec_resize on a descriptor taken with sb_sandbox_exec_take_stdin; what names
 * the exec in errors. */
sb_err *sb_sandbox_tty_resize(int master_fd, const char *what, unsigned rows, unsigned cols);
/* Read up to max bytes of stream from byte offset; *got = 0 means no more for now (check the
 * status: when it is finished, that is the end). Output stays readable after the exec ends. */
sb_err *sb_sandbox_exec_read(sb_sandbox_exec *x, sb_stream stream, uint64_t offset, void *buf,
                             size_t max, size_t *got);
/* Current status plus the spool sizes: from init's exit message while this handle follows a
 * running exec (running until it comes), else from the spool's status.json. SB_E_STATE_LOST
 * when the exec can never finish because the sandbox died (checked at most every 0.5 s). */
sb_err *sb_sandbox_exec_status_of(sb_sandbox_exec *x, sb_sandbox_exec_status *st);
/* The exit status to report for a finished exec: sb_exit_status (<sandbar/runner.h>). */
int sb_sandbox_exec_exit_status(const sb_sandbox_exec_status *st);
/* Pollable fd (POLLIN) that becomes readable when output grows or the status changes; call
 * sb_sandbox_exec_wait (timeout 0) to consume the events. Fetch it again after each wait: it
 * changes when the sandbox goes away mid-command. */
int sb_sandbox_exec_fd(sb_sandbox_exec *x);
/* Block until output grows or the status changes, or timeout_ms passes (-1 = forever).
 * *changed (optional) says which. Always re-check by reading: wake-ups may be spurious. */
sb_err *sb_sandbox_exec_wait(sb_sandbox_exec *x, int64_t timeout_ms, bool *changed);

/* The one output follower (used by the sandbox runner, the daemon's JSON and SSE paths and
 * `sandbar exec`/`logs`). A cursor holds a byte offset per stream (indexed by sb_stream) and
 * which streams it follows (bit 1u << stream). */
typedef struct sb_exec_cursor {
	uint64_t off[3];
	unsigned streams;
} sb_exec_cursor;

typedef sb_err *(*sb_exec_output_fn)(void *ud, sb_stream stream, uint64_t offset, const char *data,
                                     size_t len);

/* Status first, then hand what the spool holds after the cursor to fn (at most max_bytes in
 * this call, 0 = no limit; stdout before stderr), advancing the cursor. When nothing came,
 * wait up to max_wait_ms for more (inotify; polling when the host is out of inotify instances)
 * and look again. *finished is set once the exec has ended and every byte of the followed
 * streams was delivered; st (optional) receives the latest status. */
sb_err *sb_sandbox_exec_follow(sb_sandbox_exec *x, sb_exec_cursor *c, size_t max_bytes,
                               int64_t max_wait_ms, sb_exec_output_fn fn, void *ud, bool *finished,
                               sb_sandbox_exec_status *st);
void sb_sandbox_exec_free(sb_sandbox_exec *x);

/* Idle sleep: freeze (or thaw) the sandbox's command processes, every process but sandbar-init,
 * in a cgroup v1 freezer group (SB_E_UNSUPPORTED without one). *nprocs (may be NULL) counts the
 * processes frozen. Thawing a sandbox that never slept does nothing. */
sb_err *sb_sandbox_freeze(sb_sandbox *sb, bool freeze, size_t *nprocs);
/* Its command processes are frozen now. */
bool sb_sandbox_frozen(sb_sandbox *sb);
/* Keep thaws cheap (freeze.c): true takes a reference on an empty freezer group of this process
 * held FROZEN, which spares the kernel a code rewrite (milliseconds) on each wake; false drops
 * it, and the last reference thaws and removes the group. Holds left by dead processes are
 * removed when one is created. Take one while any lease may sleep. */
sb_err *sb_freezer_hold(bool hold);

/* Status of one exec without attaching: from sandbar-init's memory while it tracks the exec
 * (always in step with exit messages), else from status.json. SB_E_NOTFOUND for an unknown
 * id. */
sb_err *sb_sandbox_exec_status_by_id(sb_sandbox *sb, const char *exec_id,
                                     sb_sandbox_exec_status *st);
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

/* ------------------------------------------------------------ callback bridge */

/* A sandboxed program calls its orchestrator's API through a loopback endpoint inside the
 * sandbox (SANDBAR_CALLBACK_URL, with the per-lease SANDBAR_CALLBACK_TOKEN); sandbar-init hands
 * each connection to the host over the control channel, where the relay checks it (token, Host,
 * route and header allowlists, body limit, JSON, queue depth) and forwards it upstream with
 * credentials the sandbox never sees. An unsafe request whose outcome is unknown is answered
 * 409 {"outcome":"indeterminate","retryable":false}, never sent twice, also across a restart of
 * the relaying process. See docs/api.md and docs/paperclip-bridge.md. */

typedef struct sb_callback_route {
	char *method;  /* "GET", "POST", ... */
	char *pattern; /* anchored path: literal text, "\." and "[^/]+" segments */
	bool any_body; /* the body need not be JSON (multipart uploads) */
} sb_callback_route;

struct sb_callback_config {
	char *upstream;          /* base URL "http(s)://host[:port][/prefix]", no trailing '/' */
	char *credential;        /* "env:VAR", "file:PATH" or NULL: read by the relaying process */
	char *credential_header; /* header carrying it; NULL = "Authorization: Bearer <value>" */
	char *host_name;         /* extra name accepted in Host (and put in /etc/hosts), or NULL */
	sb_callback_route *routes;
	size_t nroutes;
	char **headers;          /* lower-case request header allowlist (NULL-terminated) */
	uint64_t max_body_bytes; /* request body limit */
	uint32_t queue_depth;    /* requests relayed at once; more get 503 */
	int64_t timeout_ms;      /* upstream response timeout */
	bool paperclip;          /* the Paperclip preset: PAPERCLIP_API_URL / _BRIDGE_TOKEN too */
};

/* An operator's [callback NAME] entry: what API clients may refer to by name. */
typedef struct sb_callback_entry {
	char *name;
	char **origins;          /* allowed upstream origins, the first is the default upstream */
	char *credential;        /* "env:VAR" | "file:PATH" | NULL */
	char *credential_header; /* NULL = Authorization: Bearer */
	uint64_t max_body_bytes; /* ceilings; 0 = the defaults (10 MiB + 64 KiB, 64, 30 s) */
	uint32_t queue_depth;
	int64_t timeout_ms;
} sb_callback_entry;

/* Counters a process shares between its relays (atomically updated). */
typedef struct sb_callback_stats {
	uint64_t allowed;       /* relayed upstream */
	uint64_t denied;        /* refused before reaching upstream */
	uint64_t indeterminate; /* answered 409 indeterminate */
} sb_callback_stats;

/* Build a config from the client JSON (the native API's `callback` field, `sandbar run
 * --callback FILE`): {"name": "<entry>", "upstream"?, "preset"?: "paperclip", "routes"?: [{
 * "method", "path", "anyBody"?}], "headers"?: [...], "hostName"?, "maxBodyBytes"?,
 * "queueDepth"?, "timeoutMs"?}. The upstream must match one of the entry's origins; limits may
 * be lowered (0 / omitted = the entry's ceiling), never raised. SB_E_INVAL with a message
 * naming the field otherwise. Free with sb_callback_config_free. */
sb_err *sb_callback_config_from_json(const char *text, size_t len, const sb_callback_entry *entries,
                                     size_t nentries, sb_callback_config **out);
void sb_callback_config_free(sb_callback_config *c);
void sb_callback_entry_deinit(sb_callback_entry *e);

/* The lease's callback endpoint as seen inside the sandbox: URL (malloc'd) or NULL when the
 * lease has none. */
char *sb_sandbox_callback_url(const sb_sandbox *sb);

/* ------------------------------------------------------------ network egress (issue 14) */

/* The three network modes by name: `none` (only the sandbox's own loopback), `allowlist` (that,
 * plus an egress proxy outside the sandbox reached through sandbar-init's loopback forwarder,
 * DESIGN.md §9.14) and `full` (sb_sandbox_opts.network). */
const char *sb_net_mode_name(sb_net_mode m);
/* "none" | "allowlist" | "full" (also "true"/"false"); -1 when unknown. */
int sb_net_mode_parse(const char *s);

/* A credential the proxy sets on requests to one host; the sandbox only ever sees a
 * placeholder in placeholder_env. */
typedef struct sb_egress_secret {
	char *host;            /* exact host name (lower case) */
	char *header;          /* header set on every request to host, e.g. "x-api-key" */
	char *value_ref;       /* "env:VAR" or "file:PATH": read by the proxying process */
	char *placeholder_env; /* VAR holding a placeholder inside the sandbox, or NULL */
	/* The operator's entry (sb_egress_secret_entry) it came from, or NULL: a re-adopted
	 * proxy reads the value again through the entry of that name. */
	char *name;
} sb_egress_secret;

/* An operator's named secret (the daemon's [serve] `secret.NAME = env:VAR|file:PATH`,
 * DESIGN.md §9.11): API clients refer to it by name only, never see its value, and cannot
 * send it to any host but its own. */
typedef struct sb_egress_secret_entry {
	char *name;            /* [A-Za-z0-9_-]{1,64} */
	char **hosts;          /* the hosts it is sent to (NULL-terminated, at least one) */
	char *header;          /* NULL = "authorization" (a value without a scheme: Bearer) */
	char *value_ref;       /* "env:VAR" or "file:PATH", read by the proxying process */
	char *placeholder_env; /* VAR holding a placeholder inside; NULL = VAR of env:VAR */
} sb_egress_secret_entry;
void sb_egress_secret_entry_deinit(sb_egress_secret_entry *e);
/* Check an entry (SB_E_INVAL naming what is wrong). */
sb_err *sb_egress_secret_entry_check(const sb_egress_secret_entry *e);
/* Append to c the secrets of the entry called name (one per host), with name set.
 * SB_E_NOTFOUND naming the secret when no entry has that name. */
sb_err *sb_egress_config_add_named(sb_egress_config *c, const sb_egress_secret_entry *entries,
                                   size_t n, const char *name);

struct sb_egress_config {
	/* Allowlist entries: "HOST[:PORT]", "*.SUFFIX[:PORT]" (subdomains of SUFFIX), an IP
	 * literal "A.B.C.D[:PORT]" / "[V6][:PORT]" or a CIDR "A.B.C.D/N" (only these lift the
	 * address deny list, DESIGN.md §9.10), and request rules "HOST METHOD /path-prefix"
	 * (that host then gets only matching requests; HTTPS to it is terminated). */
	char **allow;
	sb_egress_secret *secrets;
	size_t nsecrets;
	char *hosts_file;  /* resolve names from this hosts(5) file only (tests), or NULL = DNS */
	char *upstream_ca; /* an extra CA file trusted for upstream TLS (tests), or NULL */
	/* "ADDR:PORT" listeners the proxy refuses even when explicitly allowed (the daemon's). */
	char **deny_listeners;
};

/* Parse and check one entry / the whole config: SB_E_INVAL naming the entry. */
sb_err *sb_egress_config_check(const sb_egress_config *c);
sb_egress_config *sb_egress_config_copy(const sb_egress_config *c);
void sb_egress_config_free(sb_egress_config *c);
/* "HOST=HEADER:ENV" (the CLI's --secret): value_ref "env:ENV", placeholder_env ENV. */
sb_err *sb_egress_secret_parse(const char *spec, sb_egress_secret *out);
void sb_egress_secret_deinit(sb_egress_secret *s);

/* What a proxy did. denied lists "HOST:PORT (rule)" once each, at most 64 (NULL-terminated). */
typedef struct sb_egress_stats {
	uint64_t conns_allowed, conns_denied;
	uint64_t bytes_up, bytes_down; /* sandbox -> upstream, upstream -> sandbox */
	char **denied;
	uint64_t denied_more; /* distinct denied destinations beyond the list */
} sb_egress_stats;
void sb_egress_stats_deinit(sb_egress_stats *s);

/* The proxy on its own: every connection handed to it (a unix socket listener, or
 * sb_egress_proxy_serve_fd) speaks HTTP CONNECT or plain-HTTP proxying; each is served on its
 * own thread. A config with secrets or request rules makes a per-proxy CA (OpenSSL), whose
 * certificate sb_egress_proxy_ca_pem returns (the key never leaves this process). */
typedef struct sb_egress_proxy sb_egress_proxy;
sb_err *sb_egress_proxy_new(const sb_egress_config *c, const char *name, sb_egress_proxy **out);
/* Listen on a unix socket at path (created 0600) on a thread of its own. */
sb_err *sb_egress_proxy_listen_unix(sb_egress_proxy *p, const char *path);
/* Serve one accepted connection (the fd is the proxy's from now on). */
void sb_egress_proxy_serve_fd(sb_egress_proxy *p, int fd);
/* The CA certificate (PEM, malloc'd) or NULL when the proxy terminates no TLS. */
char *sb_egress_proxy_ca_pem(const sb_egress_proxy *p);
void sb_egress_proxy_stats(sb_egress_proxy *p, sb_egress_stats *out);
/* Stop listening, wait for the connections in flight to end, free. */
void sb_egress_proxy_free(sb_egress_proxy *p);

/* The egress statistics of a lease whose proxy runs in this process; false when none. */
bool sb_sandbox_egress_stats(sb_sandbox *sb, sb_egress_stats *out);

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
