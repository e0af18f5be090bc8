/* Host paths bound into a sandbox (`--mount HOST:SANDBOX[:ro|rw]`, issue 14): parsing, and the
 * checks at create that keep a mount from reaching what no sandbox may see. A mount target is
 * never at, inside or around the workspace (mounted paths are never staged or restored), never
 * a place the sandbox provides itself (/proc, /dev, /sys, sandbar-init), and its host path is
 * never the state directory or one of the hidden paths, nor holds one. The sandbox's user must
 * be able to read it (and write it when rw): checked as that user, so that the failure names
 * the path instead of surfacing as EACCES inside. */
#include "sandbox_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MOUNT_PATH_MAX 1024

void sb_sandbox_mount_deinit(sb_sandbox_mount *m)
{
	free(m->host);
	free(m->target);
	memset(m, 0, sizeof *m);
}

/* An absolute path with no "." or ".." segment and no empty one (bar a trailing slash,
 * dropped). */
static bool clean_absolute(char *p)
{
	size_t n = strlen(p);
	while (n > 1 && p[n - 1] == '/')
		p[--n] = '\0';
	if (p[0] != '/' || n >= MOUNT_PATH_MAX)
		return false;
	for (const char *s = p; *s;) {
		s++; /* past the slash */
		size_t k = strcspn(s, "/");
		if ((k == 0 && n > 1) || (k == 1 && s[0] == '.') ||
		    (k == 2 && !strncmp(s, "..", 2)))
			return false;
		s += k;
	}
	return true;
}

sb_err *sb_sandbox_mount_parse(const char *spec, sb_sandbox_mount *out)
{
	memset(out, 0, sizeof *out);
	if (!spec || strlen(spec) >= 2 * MOUNT_PATH_MAX)
		return sb_err_new(SB_E_INVAL, "mount: want HOST_PATH:SANDBOX_PATH[:ro|rw]");
	char *copy = sb_xstrdup(spec);
	char *mode = NULL, *second = strchr(copy, ':');
	if (second) {
		*second++ = '\0';
		mode = strchr(second, ':');
		if (mode)
			*mode++ = '\0';
	}
	sb_err *err = NULL;
	if (!second || !*copy || !*second)
		err = sb_err_new(SB_E_INVAL, "mount \"%s\": want HOST_PATH:SANDBOX_PATH[:ro|rw]",
		                 spec);
	else if (mode && strcmp(mode, "ro") != 0 && strcmp(mode, "rw") != 0)
		err = sb_err_new(SB_E_INVAL, "mount \"%s\": the mode is ro or rw, not \"%s\"", spec,
		                 mode);
	else if (!clean_absolute(copy) || !clean_absolute(second))
		err =
		    sb_err_new(SB_E_INVAL,
		               "mount \"%s\": both paths must be absolute, without \".\" or \"..\" "
		               "(and a path has no ':')",
		               spec);
	if (!err) {
		out->host = sb_xstrdup(copy);
		out->target = sb_xstrdup(second);
		out->rw = mode && strcmp(mode, "rw") == 0;
	}
	free(copy);
	return err;
}

/* Is a at or below b, or b at or below a? */
static bool overlaps(const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);
	size_t n = na < nb ? na : nb;
	if (strncmp(a, b, n) != 0)
		return false;
	const char *longer = na > nb ? a : b;
	return na == nb || n == 1 /* "/" */ || longer[n] == '/';
}

static sb_err *check_target(const sb_sandbox *sb, const sb_sandbox_mount *m)
{
	static const char *const provided[] = {"/proc", "/dev", "/sys", "/.sandbar-init"};
	if (overlaps(m->target, sb->workspace_mount))
		return sb_err_new(
		    SB_E_INVAL,
		    "mount %s: the sandbox path is at or around the workspace %s "
		    "(mounted paths are never staged or restored: pick another place)",
		    m->target, sb->workspace_mount);
	for (size_t i = 0; i < sizeof provided / sizeof *provided; i++)
		if (overlaps(m->target, provided[i]))
			return sb_err_new(SB_E_INVAL, "mount %s: %s is the sandbox's own",
			                  m->target, provided[i]);
	return NULL;
}

static sb_err *check_host(const sb_sandbox_config *cfg, sb_sandbox_mount *m)
{
	char *real = realpath(m->host, NULL);
	if (!real)
		return sb_err_sys(errno, "mount %s", m->host);
	char *state = realpath(cfg->state_dir, NULL);
	sb_err *err = NULL;
	if (state && overlaps(real, state))
		err = sb_err_new(SB_E_INVAL,
		                 "mount %s: it is or holds sandbar's state directory %s, which no "
		                 "sandbox may see",
		                 m->host, state);
	const char *fixed[] = {"/etc/sandbar", NULL};
	const char *const *lists[] = {fixed, cfg->hide_paths};
	for (size_t k = 0; k < 2 && !err; k++)
		for (size_t i = 0; lists[k] && lists[k][i] && !err; i++) {
			char *hidden = realpath(lists[k][i], NULL);
			if (overlaps(real, hidden ? hidden : lists[k][i]))
				err = sb_err_new(
				    SB_E_INVAL,
				    "mount %s: it is or holds %s, which no sandbox may see",
				    m->host, lists[k][i]);
			free(hidden);
		}
	free(state);
	if (err) {
		free(real);
		return err;
	}
	free(m->host);
	m->host = real; /* opened by its resolved path, without following links (open_checked) */
	return NULL;
}

struct access_job {
	const sb_sandbox_mount *m;
	size_t n;
};

/* As the sandbox's user (sb_sandbox_as_owner): can it use every mount? */
static sb_err *access_as_owner(void *ud)
{
	struct access_job *j = ud;
	for (size_t i = 0; i < j->n; i++) {
		const sb_sandbox_mount *m = &j->m[i];
		struct stat st;
		if (stat(m->host, &st) != 0)
			return sb_err_sys(errno, "mount %s: the sandbox's user cannot reach it",
			                  m->host);
		int want = R_OK | (S_ISDIR(st.st_mode) ? X_OK : 0) | (m->rw ? W_OK : 0);
		if (access(m->host, want) != 0)
			return sb_err_sys(
			    errno,
			    "mount %s: the sandbox's user (uid %d) cannot %s it; give "
			    "it access (chmod, or setfacl -m u:%d:r%sX)",
			    m->host, (int)getuid(), m->rw ? "read and write" : "read",
			    (int)getuid(), m->rw ? "w" : "");
	}
	return NULL;
}

/* Is the resolved host path of m at or below one of roots? */
static sb_err *check_root(const sb_sandbox_mount *m, const char *const *roots)
{
	for (size_t i = 0; roots[i]; i++) {
		char *r = realpath(roots[i], NULL);
		bool in = r && overlaps(m->host, r) && strlen(m->host) >= strlen(r);
		free(r);
		if (in)
			return NULL;
	}
	return sb_err_new(SB_E_INVAL,
	                  "mount %s: the host path is not under a path the operator allows "
	                  "(the config's [serve] mount_allow)",
	                  m->host);
}

/* Open m's resolved host path without following any link: realpath gave a path with none, so
 * a link found now was swapped in after the resolution, and the open fails rather than follow
 * it. What the descriptor names is what was checked, and it is what gets bound. */
static sb_err *open_checked(const sb_sandbox_mount *m, int *fd)
{
	struct open_how how = {.flags = O_PATH | O_CLOEXEC,
	                       .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
	long r = syscall(SYS_openat2, AT_FDCWD, m->host, &how, sizeof how);
	if (r < 0)
		return sb_err_sys(errno,
		                  "mount %s: opening it (a link swapped in while it was checked is "
		                  "refused)",
		                  m->host);
	*fd = (int)r;
	return NULL;
}

sb_err *sb_mounts_check(const sb_sandbox *sb, const sb_sandbox_config *cfg, sb_sandbox_mount *m,
                        size_t n, const char *const *roots, int *fds)
{
	if (n > SB_MOUNTS_MAX)
		return sb_err_new(SB_E_INVAL, "%zu mounts: at most %d per sandbox", n,
		                  SB_MOUNTS_MAX);
	for (size_t i = 0; i < n; i++)
		fds[i] = -1;
	sb_err *err = NULL;
	for (size_t i = 0; i < n && !err; i++) {
		err = check_target(sb, &m[i]);
		if (!err)
			err = check_host(cfg, &m[i]);
		if (!err)
			err = open_checked(&m[i], &fds[i]);
		if (!err && roots)
			err = check_root(&m[i], roots);
		for (size_t k = 0; k < i && !err; k++)
			if (overlaps(m[k].target, m[i].target))
				err = sb_err_new(SB_E_INVAL,
				                 "mounts %s and %s overlap inside the sandbox",
				                 m[k].target, m[i].target);
	}
	struct access_job j = {.m = m, .n = n};
	if (!err && n)
		err = sb_sandbox_as_owner(sb, access_as_owner, &j);
	if (err)
		for (size_t i = 0; i < n; i++)
			if (fds[i] >= 0) {
				close(fds[i]);
				fds[i] = -1;
			}
	return err;
}
