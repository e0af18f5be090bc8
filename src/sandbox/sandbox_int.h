/* Internals of the sandbox backend shared by its files: the lease handle, cgroups, the seccomp
 * filter, the bubblewrap launcher and the control-socket client. */
#ifndef SANDBAR_SANDBOX_INT_H
#define SANDBAR_SANDBOX_INT_H

#include <sandbar/sandbox.h>

#include <pthread.h>

#include "proto.h"

struct sb_sandbox {
	char *id;
	char *lease_dir, *workspace, *home, *run_dir, *spool_dir;
	char *workspace_mount;
	sb_sandbox_info info;
	long long init_start; /* /proc/<pid>/stat starttime of init, against pid reuse */
	char **cgroups;       /* cgroup directories of this lease (NULL-terminated, may be NULL) */
	int run_fd;           /* O_PATH of run/ (the control socket is reached through it) */
	int spool_fd;         /* O_PATH of spool/ */
	int workspace_fd;     /* O_PATH of workspace/: reachable after dropping to the owner even
	                       * when the state directory's ancestors are not */
	bool dead;
	/* The creator watch (sb_sandbox_opts.watch_owner): our end of the socket whose closing
	 * tells init that its creator died; -1 = none. sb_sandbox_close detaches it first. */
	int owner_fd;
	struct sbcb_relay *cb_relay; /* callback.c: the relay this process runs, or NULL */
	char **cb_env;               /* callback.c: env added to every exec, or NULL */
	char *cb_url;                /* callback.c: the endpoint inside the sandbox, or NULL */
	struct sbpx_lease *px;       /* proxy_lease.c: the egress proxy run here, or NULL */
	char **px_env;               /* proxy_lease.c: env added to every exec, or NULL */
	pthread_mutex_t lock;        /* info and lease.json against concurrent renew/get_info */
};

/* ---- lease.c, lease_record.c */
sb_err *sb_lease_save(sb_sandbox *sb);
/* Read lease.json into sb (SB_E_NOTFOUND when there is none). */
sb_err *sb_lease_load(sb_sandbox *sb);
/* The cgroups a creation is about to make, recorded in run/ before it makes any: a process
 * killed before lease.json exists leaves them for the destroy of the unfinished lease. */
sb_err *sb_lease_setup_save(const sb_sandbox *sb, char *const *dirs);
/* Read that record into sb->cgroups (this lease's own only); false when there is none. */
bool sb_lease_setup_load(sb_sandbox *sb);
/* A run-time record of the lease (run/<name>: the egress proxy's, the callback bridge's),
 * parsed; NULL with *out NULL when there is none. */
struct json_t;
sb_err *sb_lease_state_read(const sb_sandbox *sb, const char *name, struct json_t **out);
sb_err *sb_lease_check_id(const char *what, const char *id);

/* helpers.c: bubblewrap resolves its bind sources by path as the sandbox user, so every
 * directory above the state directory must be searchable by it; checked once per directory and
 * owner while it passes. */

/* spare.c: a lease directory with its workspace, home, run and spool, owned as they must be. */
sb_err *sb_lease_make_skeleton(const char *dir, bool root, int64_t uid, int64_t gid);
/* 1: a spare skeleton became sb's lease directory; 0: none left; -1: the lease exists already. */
int sb_lease_take_spare(const sb_sandbox *sb, bool root);
/* Make one missing spare for sb's owner (best effort), e.g. after a lease was destroyed. */
void sb_lease_refill_spare(const sb_sandbox *sb);
/* Running as root: sandboxes then run as cfg's (or the default) unprivileged user. */
sb_err *sb_sandbox_resolve_owner(const sb_sandbox_config *cfg, int64_t *uid, int64_t *gid);
const char *sb_sandbox_init_path(const sb_sandbox_config *cfg);
/* Full path of the bwrap binary (PATH lookup), malloc'd. */
sb_err *sb_sandbox_bwrap_path(const sb_sandbox_config *cfg, char **out);

/* ---- freeze.c */
void sb_sandbox_freezer_release(sb_sandbox *sb); /* thaw, if a freezer group was made */
void sb_sandbox_freezer_remove(sb_sandbox *sb);  /* rmdir it once its processes are gone */

/* ---- cgroup.c */
typedef struct sb_cg_host {
	char version[4]; /* "v1", "v2" or "" */
	char *v2;        /* unified root with controllers, or NULL */
	char *v1[3];     /* mount points of memory, pids, cpu (v1), or NULL */
	sb_sandbox_enforced can;
} sb_cg_host;

void sb_cg_detect(const char *root, sb_cg_host *h);
void sb_cg_host_deinit(sb_cg_host *h);
/* "<lease-id>-<random>": the name of a lease's cgroup directories under each controller's
 * sandbar/ (lease ids are unique per state directory only, and several state directories may
 * share the host's cgroups). Chosen first so that the creator can record where they will be. */
char *sb_cg_dir_name(const char *lease_id);
/* Every directory sb_cg_create may make with that name on this host (a superset). */
char **sb_cg_planned_dirs(const sb_cg_host *h, const char *name);
/* Create the lease's cgroups (named by sb_cg_dir_name) with the limits (only for limits that
 * are set). Fills which are enforced, the directories (to join and later remove) and the file
 * counting OOM kills. */
sb_err *sb_cg_create(const sb_cg_host *h, const char *name, const sb_sandbox_limits *lim,
                     sb_sandbox_enforced *enf, char ***dirs_out, char **oom_file_out);
/* Kill whatever is left in the cgroups and remove them. */
sb_err *sb_cg_destroy(char *const *dirs);

/* ---- seccomp.c */
/* A sealed memfd holding the compiled BPF filter for commands (the same for every lease). */
sb_err *sb_seccomp_memfd(int *fd_out);

/* ---- launch.c */
typedef struct sb_launch {
	const char *bwrap;
	const char *init_path;
	const char *rootfs;
	bool network;
	const char *const *hide_paths; /* sb_sandbox_config.hide_paths */
	uint64_t nofile, nproc, spool_max;
	uint64_t tmpfs_bytes;  /* size of /tmp and /dev/shm */
	const char *oom_file;  /* NULL = none */
	const char *ca_bundle; /* the sandbox's CA bundle (egress proxy with TLS), or NULL */
	char *const *cgroups;  /* to join before exec'ing bwrap */
	bool drop_privs;
	int64_t uid, gid;
	const char *hosts_name; /* callback bridge name for /etc/hosts (127.0.0.1), or NULL */
	bool watch_owner;       /* init stops the sandbox when this process exits (sb->owner_fd) */
	const sb_sandbox_mount *mounts; /* checked by sb_mounts_check: host paths resolved */
	const int *mount_fds;           /* each mount's source, opened by sb_mounts_check */
	size_t nmounts;
	/* Called once init's host pid is known, while init is still starting (may be NULL);
	 * an error aborts the start. */
	sb_err *(*started)(sb_sandbox *sb);
} sb_launch;

/* ---- mounts.c */
#define SB_MOUNTS_MAX 32 /* --mount entries per sandbox */
/* Check the mounts of a sandbox about to start (see mounts.c); resolves each host path in
 * place and opens it (O_PATH) into fds[i], what the sandbox binds: a path swapped after the
 * check changes nothing. roots (NULL = any): the host paths must lie at or below one of
 * these. On error every fds[i] is -1. */
sb_err *sb_mounts_check(const sb_sandbox *sb, const sb_sandbox_config *cfg, sb_sandbox_mount *m,
                        size_t n, const char *const *roots, int *fds);

/* Start bwrap + sandbar-init for sb (directories already created), detached from us; wait until
 * init is ready. Fills sb->info.init_pid and sb->init_start. */
sb_err *sb_launch_sandbox(sb_sandbox *sb, const sb_launch *l);

/* Around a fork and the waitpid for that child (reap.c): sb_sandbox_reap_orphans never takes
 * a child in between. */
void sb_children_wait_begin(void);
void sb_children_wait_end(void);
/* /proc/<pid>/stat starttime, -1 when gone. */

/* ---- netns.c */
/* Is what full network needs here (slirp4netns; nft when root)? */
sb_err *sb_net_check(void);
/* As root: the nftables rule rejecting traffic from uid's sockets to the host's own addresses
 * (once per process). No-op otherwise. */
sb_err *sb_net_host_guard(int64_t uid);
/* A memfd with the resolv.conf of a full-network sandbox. */
sb_err *sb_net_resolv_conf(int *fd_out);
/* Attach slirp4netns to the network namespace of init_pid, detached and as l's user; returns
 * once the interface is configured. It exits when exit_rd reaches EOF. */
sb_err *sb_net_start(const sb_sandbox *sb, const sb_launch *l, int init_pid, int exit_rd, int log);

/* ---- exec_tty.c */
/* The exec request fields of a tty exec (tty, rows, cols, TERM unless req->env sets it);
 * nonzero when the message would pass its limit. */
int sb_exec_tty_fields(const sb_sandbox_exec_req *req, sbi_msg *m);

/* ---- ctl.c */
/* One request/response round trip with sandbar-init on a fresh connection. fds are sent with
 * the request. SB_E_STATE_LOST when init does not answer. */
sb_err *sb_ctl_call(sb_sandbox *sb, const sbi_msg *req, const int *fds, int nfds, sbi_msg *reply);
/* The same, keeping the connection open in *keep on success, with whatever was read past
 * the reply in *keep_rd (for later messages). */
sb_err *sb_ctl_call_keep(sb_sandbox *sb, const sbi_msg *req, const int *fds, int nfds,
                         sbi_msg *reply, int *keep, sbi_reader *keep_rd);
/* sb_ctl_call_keep that also takes the one descriptor the reply may carry (*reply_fd, else
 * -1; the caller closes it). */
sb_err *sb_ctl_call_fd(sb_sandbox *sb, const sbi_msg *req, const int *fds, int nfds, sbi_msg *reply,
                       int *keep, sbi_reader *keep_rd, int *reply_fd);
/* Turn an {"ok":"0"} reply into an error. */
sb_err *sb_ctl_reply_err(sb_sandbox *sb, const sbi_msg *reply, const char *what);
/* Ask init for a loopback listener inside the sandbox whose connections are forwarded to us
 * under name (port 0: init picks): the attachment stays open in *keep / *keep_rd, the port
 * init listens on goes to *port_out. what names the endpoint in errors. */
sb_err *sb_ctl_listen(sb_sandbox *sb, const char *name, int port, const char *what, int *keep,
                      sbi_reader *keep_rd, int *port_out);
/* Serve a listener's attachment: every forwarded connection ({"op":"conn"} with its fd) goes
 * to on_conn, which owns the fd and returns whether to read on; other messages and extra fds
 * are dropped. Ends when stop_fd is readable, when init closed the channel, or when on_conn
 * returned false (the caller hands the reading to another thread: rd keeps what was read). */
typedef enum sb_fwd_end { SB_FWD_STOPPED, SB_FWD_CLOSED, SB_FWD_YIELDED } sb_fwd_end;
sb_fwd_end sb_ctl_forward_loop(int attach, sbi_reader *rd, int stop_fd,
                               bool (*on_conn)(void *ud, const sbi_msg *m, int fd), void *ud);

/* ---- callback.c (the callback bridge's relay) */
/* After the sandbox started: make the in-sandbox endpoint and run the relay here. */
sb_err *sb_callback_setup(sb_sandbox *sb, const sb_sandbox_config *cfg,
                          const sb_callback_config *c);
/* On open: the exec environment of a lease with a callback, and its relay when
 * cfg->run_callbacks and relay (sb_sandbox_open, not the short-lived sb_sandbox_open_dead). */
sb_err *sb_callback_resume(sb_sandbox *sb, const sb_sandbox_config *cfg, bool relay);
/* A sealed memfd with rootfs' (or the host's) /etc/hosts plus "127.0.0.1 name". */
sb_err *sb_callback_hosts_fd(const char *rootfs, const char *name, int *out);
/* Stop the relay (requests in flight finish on their own) and forget the environment. */
void sb_callback_stop(sb_sandbox *sb);

/* ---- proxy_lease.c (the egress proxy of network mode `allowlist`) */
/* Before the launch: make the proxy (and its CA); *ca_bundle (malloc'd) is then the CA bundle
 * the sandbox must see at /etc/ssl/certs/ca-certificates.crt, or NULL. */
sb_err *sb_egress_prepare(sb_sandbox *sb, const sb_sandbox_config *cfg, const sb_egress_config *c,
                          char **ca_bundle);
/* After the launch: attach to init's forwarder, fill the exec environment and keep what a
 * restarted proxy needs in run/egress.json (0600: the config without secret values, the CA). */
sb_err *sb_egress_start(sb_sandbox *sb, const char *callback_host);
/* On open: the exec environment of a lease with a proxy, and the proxy itself when
 * cfg->run_proxies and run (sb_sandbox_open, not sb_sandbox_open_dead). */
sb_err *sb_egress_resume(sb_sandbox *sb, const sb_sandbox_config *cfg, bool run);
/* Stop the proxy (connections in flight are cut) and forget the environment. */
void sb_egress_stop(sb_sandbox *sb);

/* ---- owner.c */
/* sb_sandbox_as_owner in two halves, so the caller can feed or drain a pipe meanwhile. The
 * operation runs on a thread with the owner's credentials; close_when_done (or -1) is closed when
 * fn returns (or at once if the thread cannot start), so a pipe end fn uses reaches EOF. */
struct owner_job;
typedef struct sb_owner_child {
	pthread_t thread;
	struct owner_job *job;
} sb_owner_child;
sb_err *sb_owner_start(const sb_sandbox *sb, sb_err *(*fn)(void *ud), void *ud, int close_when_done,
                       sb_owner_child *oc);
sb_err *sb_owner_finish(const sb_sandbox *sb, sb_owner_child *oc);
/* Run fn(fn_ud) as the owner with *fd_slot = tar_fd, or, with a progress callback, with
 * *fd_slot = one end of a pipe that this thread feeds from tar_fd (inbound) or drains into it,
 * counting bytes, so progress is reported on the caller's thread. */
sb_err *sb_owner_transfer(const sb_sandbox *sb, sb_err *(*fn)(void *), void *fn_ud, int *fd_slot,
                          int tar_fd, bool inbound, sb_progress_fn progress, void *ud);
/* write(2) without a process-wide SIGPIPE when the reader closed its end (EPIPE instead). */
ssize_t sb_write_nosigpipe(int fd, const void *p, size_t n);

/* ---- replace.c */
/* Open (with create, make) the directory rel ("" = the workspace) below the workspace one
 * component at a time, refusing symlinks anywhere. Run as the owner. */
sb_err *sb_ws_open_dir(const sb_sandbox *sb, const char *rel, bool create, int *out);

/* ---- runner_delta.c: the sandbox runner's incremental ops (sb_runner_ops, SB_RUNNER_CAP_DELTA)
 * on the lease's workspace, as the owner; remote paths are in-sandbox paths. */
sb_err *sb_ws_manifest(const sb_sandbox *sb, const char *remote_dir, const sb_excludes *ex,
                       const sb_manifest_opts *o, sb_manifest *out);
sb_err *sb_ws_sync_out_paths(const sb_sandbox *sb, const char *remote_dir, char *const *paths,
                             int tar_fd, sb_progress_fn progress, void *progress_ud);
sb_err *sb_ws_sync_in_delta(const sb_sandbox *sb, const char *remote_dir, char *const *dels,
                            int tar_fd, sb_progress_fn progress, void *progress_ud);
sb_err *sb_ws_file_read(const sb_sandbox *sb, const char *path, size_t max, sb_buf *out);
sb_err *sb_ws_file_write(const sb_sandbox *sb, const char *path, const void *data, size_t len);

/* Finish or roll back a workspace replace a crash interrupted (DESIGN.md §9.7); nothing to do
 * without a journal. With try_lock, a replace in progress elsewhere is left alone. */
sb_err *sb_replace_recover(const sb_sandbox *sb, bool try_lock);

#endif
