/* A real daemon for benchmarks and soak scenarios (see benchdaemon.h). */
#include "benchdaemon.h"
#include "benchutil.h"

#include <dirent.h>
#include <sqlite3.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define START_TRIES 400 /* 25 ms apart: 10 s */

static size_t sink(char *p, size_t sz, size_t nm, void *ud)
{
	sb_buf_append(ud, p, sz * nm);
	return sz * nm;
}

long sbb_daemon_call(const sbb_daemon *d, CURL *c, const char *method, const char *target,
                     const char *body, sb_buf *out)
{
	return sbb_daemon_call_body(d, c, method, target, body, body ? strlen(body) : 0, out);
}

long sbb_daemon_call_body(const sbb_daemon *d, CURL *c, const char *method, const char *target,
                          const void *body, size_t len, sb_buf *out)
{
	char url[512];
	snprintf(url, sizeof url, "http://localhost%s", target);
	sb_buf_clear(out);
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, d->sock);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	} else
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
	struct curl_slist *h = curl_slist_append(NULL, "Authorization: Bearer " SBB_TOKEN);
	h = curl_slist_append(h, "Expect:");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	long st = 0;
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
	curl_slist_free_all(h);
	return st;
}

const char *sbb_json_str(const char *json, const char *key, char *buf, size_t size)
{
	char pat[80];
	snprintf(pat, sizeof pat, "\"%s\":\"", key);
	const char *p = json ? strstr(json, pat) : NULL;
	if (!p)
		snprintf(buf, size, "%s", "");
	else
		snprintf(buf, size, "%.*s", (int)strcspn(p + strlen(pat), "\""), p + strlen(pat));
	return buf;
}

/* Start `sandbar serve` on d's directory and wait until /v1/health answers. */
static bool spawn(sbb_daemon *d)
{
	const char *argv[32] = {"sandbar", "serve",       "--no-tcp", "--socket",
	                        d->sock,   "--state-dir", d->state};
	size_t n = 7;
	for (size_t i = 0; i < d->nextra && n < 31; i++)
		argv[n++] = d->extra[i];
	argv[n] = NULL;
	d->pid = fork();
	if (d->pid == 0) {
		setenv("SANDBAR_TOKEN", SBB_TOKEN, 1);
		/* SBB_DAEMON_LOG names a file for the daemon's log (default: none) */
		const char *log = getenv("SBB_DAEMON_LOG");
		int logfd = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0600);
		dup2(logfd, 2);
		execv(SB_BENCH_BUILD_DIR "/sandbar", (char *const *)argv);
		_exit(127);
	}
	CURL *c = curl_easy_init();
	sb_buf out = SB_BUF_INIT;
	long st = 0;
	for (int i = 0; i < START_TRIES && st != 200; i++) {
		sb_sleep_ms(25);
		st = sbb_daemon_call(d, c, "GET", "/v1/health", NULL, &out);
	}
	sb_buf_deinit(&out);
	curl_easy_cleanup(c);
	if (st != 200) {
		fprintf(stderr, "the daemon did not start\n");
		kill(d->pid, SIGKILL);
		waitpid(d->pid, NULL, 0);
		d->pid = 0;
		return false;
	}
	return true;
}

bool sbb_daemon_start(sbb_daemon *d, const char *tag, const char *const *extra_args)
{
	memset(d, 0, sizeof *d);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	/* ours: made traversable for the sandbox user, as sandboxes bind from below it */
	char *prefix = sb_strfmt("sandbar-%s", tag);
	char *dir = sbb_tmpdir(prefix, 0711);
	free(prefix);
	if (strlen(dir) >= sizeof d->dir) { /* its socket path must fit sockaddr_un */
		fprintf(stderr, "the daemon's directory %s is too long (set a shorter TMPDIR)\n",
		        dir);
		rmdir(dir);
		free(dir);
		return false;
	}
	snprintf(d->dir, sizeof d->dir, "%s", dir);
	free(dir);
	snprintf(d->sock, sizeof d->sock, "%s/sock", d->dir);
	snprintf(d->state, sizeof d->state, "%s/state", d->dir);
	for (size_t i = 0; extra_args && extra_args[i] && d->nextra < SBB_MAX_EXTRA; i++)
		d->extra[d->nextra++] = extra_args[i];
	return spawn(d);
}

bool sbb_daemon_kill_restart(sbb_daemon *d)
{
	if (d->pid > 0) {
		kill(d->pid, SIGKILL);
		waitpid(d->pid, NULL, 0);
		d->pid = 0;
	}
	return spawn(d);
}

void sbb_daemon_stop(sbb_daemon *d)
{
	if (d->pid > 0) {
		kill(d->pid, SIGTERM);
		waitpid(d->pid, NULL, 0);
		d->pid = 0;
	}
	if (d->dir[0]) {
		char cmd[200];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "# could not remove %s\n", d->dir);
	}
}

long sbb_daemon_rss_kib(const sbb_daemon *d)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/status", (int)d->pid);
	FILE *f = fopen(path, "r");
	long kib = -1;
	char line[256];
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

long sbb_daemon_fds(const sbb_daemon *d)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/fd", (int)d->pid);
	DIR *dir = opendir(path);
	if (!dir)
		return -1;
	long n = 0;
	for (struct dirent *e; (e = readdir(dir));)
		n += e->d_name[0] != '.';
	closedir(dir);
	return n;
}

/* One integer from the daemon's database, read-only beside it; -1 when unreadable. */
static long long db_query(const sbb_daemon *d, const char *sql)
{
	char path[200];
	snprintf(path, sizeof path, "%s/sandbar.db", d->state);
	sqlite3 *db = NULL;
	long long v = -1;
	sqlite3_stmt *s = NULL;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_busy_timeout(db, 5000) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

long long sbb_daemon_db_bytes(const sbb_daemon *d)
{
	/* The pages in use as a reader sees them (write-ahead log included): the files' sizes
	 * say little, since the log grows to its checkpoint size and stays there. */
	return db_query(d, "SELECT (p.page_count - f.freelist_count) * s.page_size FROM "
	                   "pragma_page_count AS p, pragma_freelist_count AS f, "
	                   "pragma_page_size AS s");
}

long long sbb_daemon_db_rows(const sbb_daemon *d, const char *table)
{
	char sql[128];
	snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\"", table);
	return db_query(d, sql);
}
