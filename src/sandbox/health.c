/* The sandbox health check: can this host create sandboxes, and which limits can it enforce.
 * A limit the host cannot enforce is reported here (and per lease), never ignored silently. */
#include "sandbox_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "sb_sandbox_json.h"

static char *bwrap_version(const char *bwrap)
{
	char *q = sb_shell_quoted(bwrap);
	char *cmd = sb_strfmt("%s --version 2>/dev/null", q);
	free(q);
	sb_children_wait_begin();
	FILE *f = popen(cmd, "r");
	free(cmd);
	if (!f) {
		sb_children_wait_end();
		return NULL;
	}
	char line[256] = "";
	char *got = fgets(line, sizeof line, f);
	pclose(f);
	sb_children_wait_end();
	if (!got)
		return NULL;
	line[strcspn(line, "\n")] = '\0';
	return sb_xstrdup(line);
}

void sb_sandbox_health_check(const sb_sandbox_config *cfg, sb_sandbox_health *out)
{
	memset(out, 0, sizeof *out);
	out->running_as_root = geteuid() == 0;
	out->host_uid = out->host_gid = -1;
	sb_buf msg = SB_BUF_INIT;
	char *bwrap = NULL;
	sb_err *err = sb_sandbox_bwrap_path(cfg, &bwrap);
	if (err) {
		sb_buf_appendf(&msg, "%s; ", err->msg);
		sb_err_free(err);
	} else if (!(out->bwrap_version = bwrap_version(bwrap))) {
		sb_buf_appendf(&msg, "%s does not run; ", bwrap);
	}
	const char *init = sb_sandbox_init_path(cfg);
	if (access(init, X_OK) < 0)
		sb_buf_appendf(&msg, "sandbar-init missing at %s; ", init);
	if ((err = sb_sandbox_resolve_owner(cfg, &out->host_uid, &out->host_gid))) {
		sb_buf_appendf(&msg, "%s; ", err->msg);
		sb_err_free(err);
	}
	int fd = -1;
	if ((err = sb_seccomp_memfd(&fd))) {
		sb_buf_appendf(&msg, "%s; ", err->msg);
		sb_err_free(err);
	} else {
		close(fd);
		out->enforceable.seccomp = true;
	}
	out->ok = msg.len == 0 && out->enforceable.seccomp;
	sb_cg_host cg;
	sb_cg_detect(cfg->cgroup_root, &cg);
	out->enforceable.memory = cg.can.memory;
	out->enforceable.pids = cg.can.pids;
	out->enforceable.cpu = cg.can.cpu;
	out->enforceable.rlimits = true;
	out->enforceable.ttl = true;
	snprintf(out->cgroup_version, sizeof out->cgroup_version, "%s", cg.version);
	sb_cg_host_deinit(&cg);
	const char *names[3] = {"memory", "pids", "cpu"};
	bool can[3] = {out->enforceable.memory, out->enforceable.pids, out->enforceable.cpu};
	for (int i = 0; i < 3; i++)
		if (!can[i])
			sb_buf_appendf(&msg,
			               "%s limits cannot be enforced (no writable cgroup "
			               "controller); ",
			               names[i]);
	if (msg.len == 0)
		sb_buf_appends(&msg, "ok");
	else
		msg.data[msg.len -= 2] = '\0';
	out->message = sb_buf_steal(&msg, NULL);
	free(bwrap);
}

void sb_sandbox_health_deinit(sb_sandbox_health *h)
{
	free(h->message);
	free(h->bwrap_version);
	memset(h, 0, sizeof *h);
}

json_t *sb_sandbox_health_json(const sb_sandbox_health *h)
{
	const sb_sandbox_enforced *e = &h->enforceable;
	return json_pack("{s:b,s:s,s:s?,s:b,s:I,s:I,s:s,s:{s:b,s:b,s:b,s:b,s:b,s:b}}", "ok", h->ok,
	                 "message", h->message ? h->message : "", "bwrap", h->bwrap_version, "root",
	                 h->running_as_root, "uid", (json_int_t)h->host_uid, "gid",
	                 (json_int_t)h->host_gid, "cgroup", h->cgroup_version, "limits", "memory",
	                 e->memory, "pids", e->pids, "cpu", e->cpu, "rlimits", e->rlimits,
	                 "seccomp", e->seccomp, "ttl", e->ttl);
}
