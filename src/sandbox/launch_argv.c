/* bubblewrap's command line for a sandbox: the namespaces, the system directories (or a root
 * file system), the workspace, home and sandbar-init binds (from the private mount namespace
 * or from descriptors, see launch.c), the operator's mounts, what stays hidden, and the
 * descriptors init gets at fixed numbers. */
#include "launch_int.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Where the private mount namespace puts the bind sources: the first of these that is a
 * directory (sandboxes never see the host's copy of them). */
static const char *const PRIV_BASES[] = {"/mnt", "/media", "/srv", "/tmp"};

static const char *priv_base(void)
{
	for (size_t i = 0; i < sizeof PRIV_BASES / sizeof PRIV_BASES[0]; i++) {
		struct stat st;
		if (lstat(PRIV_BASES[i], &st) == 0 && S_ISDIR(st.st_mode))
			return PRIV_BASES[i];
	}
	return NULL;
}

static void push(char ***v, const char *a)
{
	sb_strv_push(v, a);
}

static void push3(char ***v, const char *a, const char *b, const char *c)
{
	sb_strv_push(v, a);
	sb_strv_push(v, b);
	if (c)
		sb_strv_push(v, c);
}

/* The read-only system part of the file system. */
/* One top-level entry made visible read-only: a directory or file bound, a symlink recreated. */
static void add_entry(char ***v, const char *src, const char *bind_src, const char *dst)
{
	struct stat st;
	if (lstat(src, &st) < 0)
		return;
	if (S_ISLNK(st.st_mode)) {
		char target[4096];
		ssize_t n = readlink(src, target, sizeof target - 1);
		if (n <= 0)
			return;
		target[n] = '\0';
		push3(v, "--symlink", target, dst);
	} else if (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)) {
		push3(v, "--ro-bind", bind_src, dst);
	}
}

/* The read-only system part of the file system: the host's /usr, /etc, /bin, /sbin, /lib*,
 * /opt, or every top-level entry of a configured root file system except the places the
 * sandbox provides itself (so their mount points can be made in bwrap's own root). */
static void add_system_dirs(char ***v, const char *rootfs, const char *rootfs_bind,
                            const char *workspace_mount)
{
	if (!rootfs) {
		static const char *const dirs[] = {"/usr",   "/etc",   "/bin",    "/sbin", "/lib",
		                                   "/lib32", "/lib64", "/libx32", "/opt"};
		for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
			add_entry(v, dirs[i], dirs[i], dirs[i]);
		return;
	}
	size_t wlen = strcspn(workspace_mount + 1, "/");
	DIR *d = opendir(rootfs);
	if (!d)
		return; /* bwrap then runs on an empty root and init fails to start: reported */
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		static const char *const own[] = {".",   "..",  "proc", "dev",
		                                  "tmp", "sys", "home", ".sandbar-init"};
		bool skip = strlen(de->d_name) == wlen &&
		            strncmp(de->d_name, workspace_mount + 1, wlen) == 0;
		for (size_t i = 0; i < sizeof own / sizeof own[0] && !skip; i++)
			skip = strcmp(de->d_name, own[i]) == 0;
		if (!skip) {
			sb_strv_push(&names, de->d_name);
			n++;
		}
	}
	closedir(d);
	for (size_t i = 0; i < n; i++) {
		char *src = sb_strfmt("%s/%s", rootfs, names[i]);
		char *dst = sb_strfmt("/%s", names[i]);
		char *bsrc = sb_strfmt("%s/%s", rootfs_bind, names[i]);
		add_entry(v, src, bsrc, dst);
		free(bsrc);
		free(src);
		free(dst);
	}
	sb_strv_free(names);
}

void sb_launch_binds_init(bind_srcs *b, const sb_launch *l)
{
	memset(b, 0, sizeof *b);
	b->l = l;
	b->priv = l->drop_privs ? priv_base() : NULL;
	for (size_t i = 0; i < l->nmounts; i++) {
		char *m = b->priv ? sb_strfmt("%s/m%zu", b->priv, i)
		                  : sb_strfmt("%d", FD_MOUNTS + (int)i);
		sb_strv_push(&b->mounts, m);
		free(m);
	}
	if (b->priv) {
		b->ws = sb_strfmt("%s/w", b->priv);
		b->home = sb_strfmt("%s/h", b->priv);
		b->init = sb_strfmt("%s/i", b->priv);
		b->rootfs = sb_strfmt("%s/r", b->priv);
	} else {
		b->ws = sb_strfmt("%d", FD_WS);
		b->home = sb_strfmt("%d", FD_HOME);
		b->init = sb_strfmt("%d", FD_INIT);
		b->rootfs = l->rootfs ? sb_xstrdup(l->rootfs) : NULL;
	}
}

void sb_launch_binds_deinit(bind_srcs *b)
{
	free(b->ws);
	free(b->home);
	free(b->init);
	free(b->rootfs);
	sb_strv_free(b->mounts);
}

/* Is path (resolved) inside what add_system_dirs shows the sandbox? */
static bool visible_in_sandbox(const char *path)
{
	static const char *const dirs[] = {"/usr",   "/etc",   "/bin",    "/sbin", "/lib",
	                                   "/lib32", "/lib64", "/libx32", "/opt"};
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
		size_t n = strlen(dirs[i]);
		if (strncmp(path, dirs[i], n) == 0 && (path[n] == '/' || path[n] == '\0'))
			return true;
	}
	return false;
}

/* The daemon's configuration and whatever the caller names: covered where the sandbox would
 * see them (after the system directories are bound, before / turns read-only). */
static void add_hidden(char ***v, const sb_launch *l)
{
	if (l->rootfs)
		return; /* a root file system of its own shows nothing of the host's */
	const char *fixed[] = {"/etc/sandbar", NULL};
	const char *const *lists[] = {fixed, l->hide_paths};
	for (size_t k = 0; k < 2; k++) {
		for (size_t i = 0; lists[k] && lists[k][i]; i++) {
			char *real = realpath(lists[k][i], NULL);
			struct stat st;
			bool covered = false; /* inside a directory hidden already */
			for (size_t j = 0; real && *v && (*v)[j] && !covered; j++) {
				size_t n = strlen((*v)[j]);
				covered = j > 0 && strcmp((*v)[j - 1], "--tmpfs") == 0 &&
				          strncmp(real, (*v)[j], n) == 0 &&
				          (real[n] == '/' || real[n] == '\0');
			}
			if (real && !covered && visible_in_sandbox(real) && lstat(real, &st) == 0) {
				if (S_ISDIR(st.st_mode)) {
					push3(v, "--perms", "0700", NULL);
					push3(v, "--tmpfs", real, NULL);
				} else {
					push3(v, "--ro-bind", "/dev/null", real);
				}
			}
			free(real);
		}
	}
}

char **sb_launch_bwrap_argv(const sb_sandbox *sb, const sb_launch *l, const bind_srcs *bs,
                            bool have_oom, bool have_accounts, bool have_resolv)
{
	char **v = NULL, num[32];
	push(&v, l->bwrap);
	push(&v, "--unshare-user");
	push(&v, "--unshare-ipc");
	push(&v, "--unshare-pid");
	push(&v, "--unshare-uts");
	push(&v, "--unshare-cgroup");
	push(&v, "--unshare-net"); /* always: full network is slirp4netns attached to it */
	snprintf(num, sizeof num, "%d", SB_SANDBOX_INNER_UID);
	push3(&v, "--uid", num, NULL);
	push3(&v, "--gid", num, NULL);
	push3(&v, "--hostname", "sandbar", NULL);
	push(&v, "--as-pid-1");
	push(&v, "--new-session");
	snprintf(num, sizeof num, "%d", FD_INFO);
	push3(&v, "--info-fd", num, NULL);
	add_system_dirs(&v, l->rootfs, bs->rootfs, sb->workspace_mount);
	add_hidden(&v, l);
	if (have_accounts) {
		/* a name for the sandbox uid, whatever the host's /etc says about uid 1000 */
		snprintf(num, sizeof num, "%d", FD_PASSWD);
		push3(&v, "--ro-bind-data", num, "/etc/passwd");
		snprintf(num, sizeof num, "%d", FD_GROUP);
		push3(&v, "--ro-bind-data", num, "/etc/group");
	}
	if (have_resolv) {
		snprintf(num, sizeof num, "%d", FD_RESOLV);
		push3(&v, "--ro-bind-data", num, "/etc/resolv.conf");
	}
	if (l->hosts_name) {
		/* the callback bridge's name resolves to the sandbox's loopback */
		snprintf(num, sizeof num, "%d", FD_HOSTS);
		push3(&v, "--ro-bind-data", num, "/etc/hosts");
	}
	if (l->ca_bundle) {
		/* the egress proxy's CA added to the system bundle (proxy_lease.c) */
		snprintf(num, sizeof num, "%d", FD_CABUNDLE);
		push3(&v, "--ro-bind-data", num, "/etc/ssl/certs/ca-certificates.crt");
	}
	push3(&v, "--proc", "/proc", NULL);
	push3(&v, "--dev", "/dev", NULL);
	char size[32];
	snprintf(size, sizeof size, "%llu", (unsigned long long)l->tmpfs_bytes);
	push3(&v, "--perms", "01777", NULL);
	push3(&v, "--size", size, NULL);
	push3(&v, "--tmpfs", "/dev/shm", NULL);
	push3(&v, "--perms", "01777", NULL);
	push3(&v, "--size", size, NULL);
	push3(&v, "--tmpfs", "/tmp", NULL);
	push3(&v, bs->priv ? "--bind" : "--bind-fd", bs->home, SB_SANDBOX_HOME);
	push3(&v, bs->priv ? "--bind" : "--bind-fd", bs->ws, sb->workspace_mount);
	push3(&v, bs->priv ? "--ro-bind" : "--ro-bind-fd", bs->init, "/.sandbar-init");
	for (size_t i = 0; i < l->nmounts; i++) /* after home: a target may lie in it */
		push3(&v,
		      bs->priv ? (l->mounts[i].rw ? "--bind" : "--ro-bind")
		               : (l->mounts[i].rw ? "--bind-fd" : "--ro-bind-fd"),
		      bs->mounts[i], l->mounts[i].target);
	push3(&v, "--remount-ro", "/dev", NULL);
	push3(&v, "--remount-ro", "/", NULL);
	push3(&v, "--chdir", "/", NULL);
	push(&v, "/.sandbar-init");
	snprintf(num, sizeof num, "%d", FD_CTL);
	push3(&v, "--ctl-fd", num, NULL);
	snprintf(num, sizeof num, "%d", FD_SPOOL);
	push3(&v, "--spool-fd", num, NULL);
	snprintf(num, sizeof num, "%d", FD_SECCOMP);
	push3(&v, "--seccomp-fd", num, NULL);
	snprintf(num, sizeof num, "%d", FD_READY);
	push3(&v, "--ready-fd", num, NULL);
	if (have_oom) {
		snprintf(num, sizeof num, "%d", FD_OOM);
		push3(&v, "--oom-fd", num, NULL);
	}
	snprintf(num, sizeof num, "%llu", (unsigned long long)l->nofile);
	push3(&v, "--nofile", num, NULL);
	snprintf(num, sizeof num, "%llu", (unsigned long long)l->nproc);
	push3(&v, "--nproc", num, NULL);
	snprintf(num, sizeof num, "%llu", (unsigned long long)l->spool_max);
	push3(&v, "--spool-max", num, NULL);
	if (l->watch_owner) {
		snprintf(num, sizeof num, "%d", FD_OWNER);
		push3(&v, "--owner-fd", num, NULL);
	}
	return v;
}
