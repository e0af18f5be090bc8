/* A process's identity beyond its pid: pids are reused (pid_max may be 32768), so whoever
 * records a pid to judge later whether that process still lives records its start time too. */
#include <sandbar/base.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

long long sb_proc_start_time(int pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	sb_buf b = SB_BUF_INIT;
	sb_err *err = sb_read_file(path, 4096, &b);
	long long t = -1;
	if (!err) {
		const char *p = strrchr(sb_buf_cstr(&b), ')');
		/* field 3 (state): Z and X have ended, whatever their parent does */
		if (p && (p[1] != ' ' || p[2] == 'Z' || p[2] == 'X'))
			p = NULL;
		/* field 22 (starttime); after ')' come fields 3.. */
		for (int field = 2; p && field < 22; field++)
			p = strchr(p + 1, ' ');
		if (p)
			t = strtoll(p + 1, NULL, 10);
	}
	sb_err_free(err);
	sb_buf_deinit(&b);
	return t;
}
