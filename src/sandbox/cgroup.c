/* Per-lease cgroups: memory, pids and CPU limits applied to the whole sandbox.
 *
 * cgroup v2 is used when a unified hierarchy with those controllers is mounted, else the v1
 * controllers (memory, pids, cpu mounts under the cgroup root). Each lease gets
 * <controller>/sandbar/<lease-id>-<random>; the launcher moves the process that becomes bwrap into
 * them before exec, so everything in the sandbox is accounted. A limit that cannot be set is
 * reported as not enforced, never dropped silently.
 */
#include "sandbox_int.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool file_exists(const char *dir, const char *name)
{
	char *p = sb_strfmt("%s/%s", dir, name);
	bool ok = access(p, F_OK) == 0;
	free(p);
	return ok;
}

static bool writable_dir(const char *dir)
{
	return access(dir, W_OK | X_OK) == 0;
}

void sb_cg_detect(const char *root, sb_cg_host *h)
{
	memset(h, 0, sizeof *h);
	if (!root)
		root = "/sys/fs/cgroup";
	/* v2: the root itself (pure unified) or <root>/unified (hybrid) */
	const char *cands[2] = {"", "/unified"};
	for (int i = 0; i < 2 && !h->v2; i++) {
		char *dir = sb_strfmt("%s%s", root, cands[i]);
		char *ctl = sb_strfmt("%s/cgroup.controllers", dir);
		sb_buf b = SB_BUF_INIT;
		sb_err *err = sb_read_file(ctl, 4096, &b);
		if (!err && writable_dir(dir)) {
			const char *s = sb_buf_cstr(&b);
			bool mem = strstr(s, "memory") != NULL, pids = strstr(s, "pids") != NULL;
			bool cpu = strstr(s, "cpu") != NULL;
			if (mem || pids) {
				h->v2 = sb_xstrdup(dir);
				h->can.memory = mem;
				h->can.pids = pids;
				h->can.cpu = cpu;
				snprintf(h->version, sizeof h->version, "v2");
			}
		}
		sb_err_free(err);
		sb_buf_deinit(&b);
		free(ctl);
		free(dir);
	}
	if (h->v2)
		return;
	const char *names[3] = {"memory", "pids", "cpu"};
	const char *probe[3] = {"memory.limit_in_bytes", "cgroup.procs", "cpu.shares"};
	for (int i = 0; i < 3; i++) {
		char *dir = sb_strfmt("%s/%s", root, names[i]);
		if (file_exists(dir, probe[i]) && writable_dir(dir))
			h->v1[i] = dir;
		else
			free(dir);
	}
	h->can.memory = h->v1[0] != NULL;
	h->can.pids = h->v1[1] != NULL;
	h->can.cpu = h->v1[2] != NULL;
	if (h->v1[0] || h->v1[1] || h->v1[2])
		snprintf(h->version, sizeof h->version, "v1");
}

void sb_cg_host_deinit(sb_cg_host *h)
{
	free(h->v2);
	for (int i = 0; i < 3; i++)
		free(h->v1[i]);
	memset(h, 0, sizeof *h);
}

static sb_err *write_value(const char *dir, const char *file, const char *value)
{
	char *p = sb_strfmt("%s/%s", dir, file);
	sb_err *err = NULL;
	int fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		err = sb_err_sys(errno, "opening %s", p);
	else if ((err = sb_write_all(fd, value, strlen(value))))
		err = sb_err_prefix(err, "writing \"%s\" to %s", value, p);
	if (fd >= 0 && close(fd) < 0 && !err)
		err = sb_err_sys(errno, "writing \"%s\" to %s", value, p);
	free(p);
	return err;
}

char *sb_cg_dir_name(const char *lease_id)
{
	char *prefix = sb_strfmt("%s-", lease_id);
	char *name = sb_random_id(prefix);
	free(prefix);
	return name;
}

char **sb_cg_planned_dirs(const sb_cg_host *h, const char *name)
{
	char **v = NULL;
	const char *parents[4] = {h->v2, h->v1[0], h->v1[1], h->v1[2]};
	for (size_t k = 0; k < 4; k++)
		if (parents[k]) {
			char *d = sb_strfmt("%s/sandbar/%s", parents[k], name);
			sb_strv_push(&v, d);
			free(d);
		}
	return v;
}

/* <parent>/sandbar/<name>, name from sb_cg_dir_name. */
static sb_err *make_dir(const char *parent, const char *name, char **out)
{
	char *base = sb_strfmt("%s/sandbar", parent);
	if (mkdir(base, 0755) < 0 && errno != EEXIST) {
		sb_err *err = sb_err_sys(errno, "creating cgroup %s", base);
		free(base);
		return err;
	}
	*out = sb_strfmt("%s/%s", base, name);
	free(base);
	if (mkdir(*out, 0755) < 0) {
		sb_err *err = sb_err_sys(errno, "creating cgroup %s", *out);
		free(*out);
		*out = NULL;
		return err;
	}
	return NULL;
}

static sb_err *create_v2(const sb_cg_host *h, const char *id, const sb_sandbox_limits *lim,
                         sb_sandbox_enforced *enf, char ***dirs, char **oom_file)
{
	sb_buf want = SB_BUF_INIT;
	if (lim->memory_bytes && h->can.memory)
		sb_buf_appends(&want, "+memory ");
	if (lim->pids && h->can.pids)
		sb_buf_appends(&want, "+pids ");
	if (lim->cpu_weight && h->can.cpu)
		sb_buf_appends(&want, "+cpu ");
	sb_err *err = NULL;
	char *base = sb_strfmt("%s/sandbar", h->v2), *dir = NULL;
	if (want.len == 0)
		goto out;
	want.data[--want.len] = '\0';
	if ((err = write_value(h->v2, "cgroup.subtree_control", want.data)))
		goto out;
	if (mkdir(base, 0755) < 0 && errno != EEXIST) {
		err = sb_err_sys(errno, "creating cgroup %s", base);
		goto out;
	}
	if ((err = write_value(base, "cgroup.subtree_control", want.data)))
		goto out;
	if ((err = make_dir(h->v2, id, &dir)))
		goto out;
	sb_strv_push(dirs, dir);
	char num[32];
	if (lim->memory_bytes && h->can.memory) {
		snprintf(num, sizeof num, "%llu", (unsigned long long)lim->memory_bytes);
		if ((err = write_value(dir, "memory.max", num)))
			goto out;
		sb_err_free(write_value(dir, "memory.swap.max", "0")); /* absent without swap */
		enf->memory = true;
		*oom_file = sb_strfmt("%s/memory.events", dir);
	}
	if (lim->pids && h->can.pids) {
		snprintf(num, sizeof num, "%llu", (unsigned long long)lim->pids);
		if ((err = write_value(dir, "pids.max", num)))
			goto out;
		enf->pids = true;
	}
	if (lim->cpu_weight && h->can.cpu) {
		snprintf(num, sizeof num, "%llu", (unsigned long long)lim->cpu_weight);
		if ((err = write_value(dir, "cpu.weight", num)))
			goto out;
		enf->cpu = true;
	}
out:
	free(dir);
	free(base);
	sb_buf_deinit(&want);
	return err;
}

static sb_err *create_v1(const sb_cg_host *h, const char *id, const sb_sandbox_limits *lim,
                         sb_sandbox_enforced *enf, char ***dirs, char **oom_file)
{
	char num[32], *dir = NULL;
	sb_err *err = NULL;
	if (lim->memory_bytes && h->v1[0]) {
		if ((err = make_dir(h->v1[0], id, &dir)))
			return err;
		sb_strv_push(dirs, dir);
		snprintf(num, sizeof num, "%llu", (unsigned long long)lim->memory_bytes);
		if ((err = write_value(dir, "memory.limit_in_bytes", num)))
			goto out;
		/* with swap accounting, keep swap from stretching the limit */
		if (file_exists(dir, "memory.memsw.limit_in_bytes"))
			sb_err_free(write_value(dir, "memory.memsw.limit_in_bytes", num));
		enf->memory = true;
		*oom_file = sb_strfmt("%s/memory.oom_control", dir);
		free(dir);
		dir = NULL;
	}
	if (lim->pids && h->v1[1]) {
		if ((err = make_dir(h->v1[1], id, &dir)))
			return err;
		sb_strv_push(dirs, dir);
		snprintf(num, sizeof num, "%llu", (unsigned long long)lim->pids);
		if ((err = write_value(dir, "pids.max", num)))
			goto out;
		enf->pids = true;
		free(dir);
		dir = NULL;
	}
	if (lim->cpu_weight && h->v1[2]) {
		if ((err = make_dir(h->v1[2], id, &dir)))
			return err;
		sb_strv_push(dirs, dir);
		uint64_t shares = lim->cpu_weight * 1024 / 100;
		snprintf(num, sizeof num, "%llu", (unsigned long long)(shares < 2 ? 2 : shares));
		if ((err = write_value(dir, "cpu.shares", num)))
			goto out;
		enf->cpu = true;
	}
out:
	free(dir);
	return err;
}

sb_err *sb_cg_create(const sb_cg_host *h, const char *name, const sb_sandbox_limits *lim,
                     sb_sandbox_enforced *enf, char ***dirs_out, char **oom_file_out)
{
	*dirs_out = NULL;
	*oom_file_out = NULL;
	enf->memory = enf->pids = enf->cpu = false;
	sb_err *err = h->v2 ? create_v2(h, name, lim, enf, dirs_out, oom_file_out)
	                    : create_v1(h, name, lim, enf, dirs_out, oom_file_out);
	if (err) {
		sb_err_free(sb_cg_destroy(*dirs_out));
		sb_strv_free(*dirs_out);
		*dirs_out = NULL;
		free(*oom_file_out);
		*oom_file_out = NULL;
		enf->memory = enf->pids = enf->cpu = false;
	}
	return err;
}

/* SIGKILL every process listed in cgroup.procs; true when it was empty. */
static bool kill_members(const char *dir)
{
	char *p = sb_strfmt("%s/cgroup.procs", dir);
	sb_buf b = SB_BUF_INIT;
	sb_err *err = sb_read_file(p, 1u << 20, &b);
	free(p);
	bool empty = true;
	if (!err) {
		const char *s = sb_buf_cstr(&b);
		while (*s) {
			char *end;
			long pid = strtol(s, &end, 10);
			if (end == s)
				break;
			if (pid > 0) {
				kill((pid_t)pid, SIGKILL);
				empty = false;
			}
			s = *end ? end + 1 : end;
		}
	}
	sb_err_free(err);
	sb_buf_deinit(&b);
	return empty;
}

sb_err *sb_cg_destroy(char *const *dirs)
{
	sb_err *first = NULL;
	for (size_t i = 0; dirs && dirs[i]; i++) {
		int64_t deadline = sb_mono_ms() + 5000;
		for (;;) {
			bool empty = kill_members(dirs[i]);
			if (rmdir(dirs[i]) == 0 || errno == ENOENT)
				break;
			if (errno != EBUSY || sb_mono_ms() > deadline) {
				if (!first)
					first = sb_err_sys(errno, "removing cgroup %s", dirs[i]);
				break;
			}
			sb_sleep_ms(empty ? 5 : 10);
		}
	}
	return first;
}
