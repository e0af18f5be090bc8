/* sandbar-init: list the processes of the sandbox (its /proc shows only this pid namespace). */
#include "init.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PS_MAX 4096

static ssize_t read_small(int dirfd, const char *name, char *buf, size_t cap)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, cap - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

static void ps_one(sbi_state *st, int procfd, const char *name, sbi_msg *reply)
{
	int d = openat(procfd, name, O_DIRECTORY | O_PATH | O_CLOEXEC);
	if (d < 0)
		return;
	char stat[1024], cmd[512];
	ssize_t n = read_small(d, "stat", stat, sizeof stat);
	ssize_t cn = read_small(d, "cmdline", cmd, sizeof cmd);
	close(d);
	if (n <= 0)
		return;
	/* "pid (comm) S ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
	 * stime cutime cstime priority nice threads itrealvalue starttime vsize rss ..." */
	char *p = strrchr(stat, ')');
	if (!p)
		return;
	char state = '?';
	long long ppid = 0, pgid = 0, rss = 0;
	long long skip;
	if (sscanf(p + 1,
	           " %c %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld "
	           "%lld %lld %lld %lld %lld %lld %lld %lld",
	           &state, &ppid, &pgid, &skip, &skip, &skip, &skip, &skip, &skip, &skip, &skip,
	           &skip, &skip, &skip, &skip, &skip, &skip, &skip, &skip, &skip, &skip,
	           &rss) != 22)
		return;
	if (cn <= 0) {
		/* kernel-style name from stat for processes without a command line (zombies) */
		char *open = strchr(stat, '(');
		size_t len = open ? (size_t)(p - open - 1) : 0;
		snprintf(cmd, sizeof cmd, "[%.*s]", (int)len, open ? open + 1 : "");
		cn = (ssize_t)strlen(cmd);
	}
	for (ssize_t i = 0; i < cn; i++)
		if (cmd[i] == '\0' || cmd[i] == '\t' || cmd[i] == '\n')
			cmd[i] = ' ';
	while (cn > 0 && cmd[cn - 1] == ' ')
		cmd[--cn] = '\0';
	const char *exec_id = "";
	for (sbi_exec *x = st->execs; x; x = x->next)
		if (x->pid == (pid_t)pgid)
			exec_id = x->id;
	char line[800];
	snprintf(line, sizeof line, "%s\t%lld\t%lld\t%c\t%lld\t%s\t%s", name, ppid, pgid, state,
	         rss * (long long)sysconf(_SC_PAGESIZE), exec_id, cmd);
	sbi_msg_add(reply, "proc", line);
}

void sbi_ps(sbi_state *st, sbi_msg *reply)
{
	sbi_msg_clear(reply);
	sbi_msg_add(reply, "ok", "1");
	DIR *dir = opendir("/proc");
	if (!dir)
		return;
	int count = 0;
	struct dirent *de;
	while ((de = readdir(dir)) && count < PS_MAX) {
		if (!isdigit((unsigned char)de->d_name[0]) || strcmp(de->d_name, "1") == 0)
			continue;
		ps_one(st, dirfd(dir), de->d_name, reply);
		count++;
	}
	closedir(dir);
}
