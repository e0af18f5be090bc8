/* Private to the sandbox launch (launch.c, launch_argv.c, launch_spawn.c): the descriptor
 * numbers init is given, where bwrap finds its bind sources, and the launcher processes. */
#ifndef SANDBAR_LAUNCH_INT_H
#define SANDBAR_LAUNCH_INT_H

#include "sandbox_int.h"

/* Descriptor numbers inside bwrap / init. */
enum {
	FD_CTL = 3,
	FD_SPOOL,
	FD_SECCOMP,
	FD_READY,
	FD_INFO,
	FD_INFO_HELD, /* a read end of the info pipe (launch.c says why) */
	FD_WS,
	FD_HOME,
	FD_INIT,
	FD_OOM,
	FD_PASSWD,
	FD_GROUP,
	FD_NETEXIT,
	FD_RESOLV,
	FD_ROOTFS,
	FD_HOSTS,
	FD_CABUNDLE,
	FD_OWNER,
	FD_MOUNTS, /* the --mount sources, opened when they were checked (SB_MOUNTS_MAX) */
	FD_COUNT_MAX = FD_MOUNTS + SB_MOUNTS_MAX
};

/* The bind sources as bwrap sees them: in the private mount namespace (priv != NULL) or from
 * descriptors. */
typedef struct bind_srcs {
	const char *priv; /* PRIV_BASES entry, or NULL */
	char *ws, *home, *init, *rootfs;
	char **mounts; /* one per l->mounts: priv/mN, or its descriptor's number */
	const sb_launch *l;
} bind_srcs;

/* The bind sources for l: in the private mount namespace when we drop privileges as root,
 * else the descriptors themselves (launch_argv.c). */
void sb_launch_binds_init(bind_srcs *b, const sb_launch *l);
void sb_launch_binds_deinit(bind_srcs *b);
/* bwrap's command line. */
char **sb_launch_bwrap_argv(const sb_sandbox *sb, const sb_launch *l, const bind_srcs *bs,
                            bool have_oom, bool have_accounts, bool have_resolv);

/* What the two processes the launch starts need (they share our memory while they run). */
typedef struct spawn_ctx {
	const sb_launch *l;
	const bind_srcs *bs;
	char **argv, **envp, **procs;
	const int *src;
	int nsrc, devnull, log;
	char *stack; /* the grandchild's */
} spawn_ctx;

/* Start the middle process (a session of its own) and through it the grandchild that execs
 * bwrap (launch_spawn.c); returns once bwrap runs, with the middle's wait status. */
sb_err *sb_launch_spawn(spawn_ctx *ctx, const char *lease_id, int *status);

#endif
