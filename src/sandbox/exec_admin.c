/* Execs by id, without a handle kept (exec.c holds the handles): their status, removal, the
 * list of a sandbox's execs and signals; and the sandbox's processes (sandbar-init's ps). */
#include "exec_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool init_recording(sb_sandbox *sb, const char *exec_id)
{
	sbi_msg reply;
	sbi_msg_init(&reply);
	sb_err *err = sb_exec_ask_status(sb, exec_id, &reply);
	long long v = 0;
	bool busy = !err && sbi_msg_geti(&reply, "recording", 0, 1, &v) == 0 && v;
	sb_err_free(err);
	sbi_msg_deinit(&reply);
	return busy;
}

sb_err *sb_sandbox_exec_remove(sb_sandbox *sb, const char *exec_id)
{
	sb_sandbox_exec_status st;
	sb_err *err = sb_sandbox_exec_status_by_id(sb, exec_id, &st);
	if (err && err->code == SB_E_STATE_LOST) {
		/* a dead sandbox runs nothing: its records can go */
		sb_err_free(err);
		err = NULL;
		st.running = false;
	}
	if (err)
		return err;
	if (st.running)
		return sb_err_new(SB_E_BUSY,
		                  "exec %s in lease %s is still running; signal it first", exec_id,
		                  sb->id);
	/* its final record may still be on its way to the disk (a few ms) */
	int64_t deadline = sb_mono_ms() + 2000;
	while (!sb->dead && init_recording(sb, exec_id)) {
		if (sb_mono_ms() > deadline)
			return sb_err_new(SB_E_BUSY,
			                  "exec %s in lease %s is still being recorded; try again",
			                  exec_id, sb->id);
		sb_sleep_ms(5);
	}
	char *dir = sb_strfmt("%s/%s", sb->spool_dir, exec_id);
	err = sb_fs_rm_rf(dir);
	free(dir);
	return err ? sb_err_prefix(err, "removing exec %s of lease %s", exec_id, sb->id) : NULL;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool has_id(char **ids, const char *id)
{
	for (size_t i = 0; ids && ids[i]; i++)
		if (strcmp(ids[i], id) == 0)
			return true;
	return false;
}

sb_err *sb_sandbox_exec_list(sb_sandbox *sb, char ***ids_out)
{
	*ids_out = NULL;
	int fd = openat(sb->spool_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		sb_err *err = sb_err_sys(errno, "listing %s", sb->spool_dir);
		if (fd >= 0)
			close(fd);
		return err;
	}
	char **ids = NULL;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (sbi_id_valid(de->d_name)) {
			sb_strv_push(&ids, de->d_name);
			n++;
		}
	closedir(d);
	/* plus what init runs that has no spool directory yet (made on first need) */
	if (!sb->dead) {
		sbi_msg m, reply;
		sbi_msg_init(&m);
		sbi_msg_init(&reply);
		sbi_msg_add(&m, "op", "list");
		sb_err *err = sb_ctl_call(sb, &m, NULL, 0, &reply);
		size_t pos = 0;
		const char *k, *v;
		while (!err && sbi_msg_next(&reply, &pos, &k, &v))
			if (strcmp(k, "id") == 0 && sbi_id_valid(v) && !has_id(ids, v)) {
				sb_strv_push(&ids, v);
				n++;
			}
		sb_err_free(err);
		sbi_msg_deinit(&m);
		sbi_msg_deinit(&reply);
	}
	if (!ids)
		ids = sb_xcalloc(1, sizeof(char *));
	qsort(ids, n, sizeof *ids, cmp_str);
	*ids_out = ids;
	return NULL;
}

sb_err *sb_sandbox_exec_signal(sb_sandbox *sb, const char *exec_id, int signo)
{
	sb_err *err = sb_lease_check_id("exec", exec_id);
	if (err)
		return err;
	if (signo < 1 || signo > 64)
		return sb_err_new(SB_E_INVAL, "invalid signal number %d", signo);
	sbi_msg m, reply;
	sbi_msg_init(&m);
	sbi_msg_init(&reply);
	sbi_msg_add(&m, "op", "signal");
	sbi_msg_add(&m, "id", exec_id);
	sbi_msg_addi(&m, "sig", signo);
	if (!(err = sb_ctl_call(sb, &m, NULL, 0, &reply)))
		err = sb_ctl_reply_err(sb, &reply, "signalling an exec");
	sbi_msg_deinit(&m);
	sbi_msg_deinit(&reply);
	return err;
}

sb_err *sb_sandbox_list_processes(sb_sandbox *sb, sb_sandbox_process **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	sbi_msg m, reply;
	sbi_msg_init(&m);
	sbi_msg_init(&reply);
	sbi_msg_add(&m, "op", "ps");
	sb_err *err = sb_ctl_call(sb, &m, NULL, 0, &reply);
	if (!err)
		err = sb_ctl_reply_err(sb, &reply, "listing processes");
	if (!err) {
		size_t cap = sbi_msg_count(&reply, "proc"), pos = 0;
		sb_sandbox_process *p = sb_xcalloc(cap ? cap : 1, sizeof *p);
		const char *k, *v;
		while (sbi_msg_next(&reply, &pos, &k, &v)) {
			if (strcmp(k, "proc") != 0)
				continue;
			/* pid ppid pgid state rss exec_id cmdline, tab-separated */
			char *f[7] = {0}, *copy = sb_xstrdup(v), *s = copy;
			int nf = 0;
			while (nf < 6 && s) {
				f[nf++] = s;
				s = strchr(s, '\t');
				if (s)
					*s++ = '\0';
			}
			f[6] = s;
			if (nf == 6 && s) {
				sb_sandbox_process *q = &p[(*n)++];
				q->pid = atoi(f[0]);
				q->ppid = atoi(f[1]);
				q->pgid = atoi(f[2]);
				q->state = f[3][0];
				q->rss_bytes = strtoull(f[4], NULL, 10);
				q->exec_id = f[5][0] ? sb_xstrdup(f[5]) : NULL;
				q->cmdline = sb_xstrdup(f[6]);
			}
			free(copy);
		}
		*out = p;
	}
	sbi_msg_deinit(&m);
	sbi_msg_deinit(&reply);
	return err;
}

void sb_sandbox_processes_free(sb_sandbox_process *p, size_t n)
{
	for (size_t i = 0; p && i < n; i++) {
		free(p[i].exec_id);
		free(p[i].cmdline);
	}
	free(p);
}
