/* Internals of the sandbox backend shared by its files: the lease handle, cgroups, the seccomp
 * filter, the bubblewrap launcher and the control-socket client. */
#ifndef SANDBAR_SANDBOX_INT_H
#define SANDBAR_SANDBOX_INT_H

#include <sandbar/sandbox.h>

#include <pthread.h>

#include "init/proto.h"

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
	pthread_mutex_t lock; /* info and lease.json against concurrent renew/get_info */
};

/* ---- lease.c */
sb_err *sb_lease_save(sb_sandbox *sb);
sb_err *sb_lease_check_id(const char *what, const char *id);
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
/* Create the lease's cgroups with the limits (only for limits that are set). Fills which are
 * enforced, the directories (to join and later remove) and the file counting OOM kills. */
sb_err *sb_cg_create(const sb_cg_host *h, const char *lease_id, const sb_sandbox_limits *lim,
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
	uint64_t nofile, nproc, spool_max;
	const char *oom_file; /* NULL = none */
	char *const *cgroups; /* to join before exec'ing bwrap */
	bool drop_privs;
	int64_t uid, gid;
	/* Called once init's host pid is known, while init is still starting (may be NULL);
	 * an error aborts the start. */
	sb_err *(*started)(sb_sandbox *sb);
} sb_launch;

/* Start bwrap + sandbar-init for sb (directories already created), detached from us; wait until
 * init is ready. Fills sb->info.init_pid and sb->init_start. */
sb_err *sb_launch_sandbox(sb_sandbox *sb, const sb_launch *l);
/* /proc/<pid>/stat starttime, -1 when gone. */
long long sb_proc_start_time(int pid);

/* ---- ctl.c */
/* One request/response round trip with sandbar-init on a fresh connection. fds are sent with
 * the request. SB_E_STATE_LOST when init does not answer. */
sb_err *sb_ctl_call(sb_sandbox *sb, const sbi_msg *req, const int *fds, int nfds, sbi_msg *reply);
/* The same, keeping the connection open in *keep on success, with whatever was read past
 * the reply in *keep_rd (for later messages). */
sb_err *sb_ctl_call_keep(sb_sandbox *sb, const sbi_msg *req, const int *fds, int nfds,
                         sbi_msg *reply, int *keep, sbi_reader *keep_rd);
/* Turn an {"ok":"0"} reply into an error. */
sb_err *sb_ctl_reply_err(sb_sandbox *sb, const sbi_msg *reply, const char *what);

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

#endif
