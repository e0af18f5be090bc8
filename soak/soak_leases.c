/* Soak: 1,000 leases created, used and destroyed in a loop through a real daemon (#18).
 *
 * Each cycle acquires a lease, runs one command in it (its output checked) and destroys it.
 * After a warm-up the daemon's open descriptors, resident memory and database size are read;
 * after the loop (and a settling pause) again. A failed cycle, a descriptor more than the
 * warm-up's, memory grown by more than half, a live lease record left, a database grown by more
 * than 2 KiB per destroyed lease (what it keeps of one, its tombstone and two audit lines, is
 * pruned after SBS_RETENTION_MS: a week), or a lease directory, cgroup or sandbox process left
 * behind counts as a failure. SANDBAR_SOAK_LEASES sets the count (default 1000). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "benchdaemon.h"
#include "benchutil.h"

#define WARMUP 20
#define SETTLE_MS 3000

static char g_prefix[32]; /* "soak<pid>-": every lease id of this run starts with it */

typedef struct cycle_stats {
	int failures;
	double *lat; /* seconds per cycle */
} cycle_stats;

/* The first few failures are described on stderr; the rest only counted. */
static int g_said;
#define SAY(...)                                                                                   \
	do {                                                                                       \
		if (g_said++ < 5)                                                                  \
			fprintf(stderr, __VA_ARGS__);                                              \
	} while (0)

static bool cycle(const sbb_daemon *d, CURL *c, sb_buf *out, int i)
{
	char id[96], target[200], body[200];
	snprintf(body, sizeof body, "{\"acquisition_id\":\"%s%d\",\"lease_id\":\"%s%d\"}", g_prefix,
	         i + WARMUP, g_prefix, i + WARMUP);
	long st = sbb_daemon_call(d, c, "POST", "/v1/leases", body, out);
	sbb_json_str(sb_buf_cstr(out), "id", id, sizeof id);
	if (st != 200 || !id[0]) {
		SAY("# cycle %d: acquire answered %ld: %.300s\n", i, st, sb_buf_cstr(out));
		return false;
	}
	snprintf(target, sizeof target, "/v1/leases/%s/exec", id);
	snprintf(body, sizeof body, "{\"argv\":[\"sh\",\"-c\",\"echo cycle-$0\",\"%d\"]}", i);
	st = sbb_daemon_call(d, c, "POST", target, body, out);
	char want[64];
	snprintf(want, sizeof want, "cycle-%d\\n", i);
	bool ok = st == 200 && strstr(sb_buf_cstr(out), want) != NULL;
	if (!ok)
		SAY("# cycle %d: exec answered %ld: %.300s\n", i, st, sb_buf_cstr(out));
	snprintf(target, sizeof target, "/v1/leases/%s", id);
	st = sbb_daemon_call(d, c, "DELETE", target, NULL, out);
	if (st != 200) {
		SAY("# cycle %d: destroy answered %ld: %.300s\n", i, st, sb_buf_cstr(out));
		ok = false;
	}
	return ok;
}

/* Lease directories left in the state directory (spares start with a dot). */
static long leases_left(const sbb_daemon *d)
{
	char path[200];
	snprintf(path, sizeof path, "%s/leases", d->state);
	DIR *dir = opendir(path);
	if (!dir)
		return -1;
	long n = 0;
	for (struct dirent *e; (e = readdir(dir));)
		n += e->d_name[0] != '.';
	closedir(dir);
	return n;
}

/* Sandbox processes and cgroup directories of this run's leases still on the host: every
 * sandbox process sits in its lease's cgroup, named after the lease id. */
static long count_lines(const char *cmd)
{
	FILE *p = popen(cmd, "r");
	long n = 0;
	char line[512];
	while (p && fgets(line, sizeof line, p))
		n++;
	if (p)
		pclose(p);
	return n;
}

static long sandboxes_running(void)
{
	char cmd[200];
	snprintf(cmd, sizeof cmd, "grep -l '/%s' /proc/[0-9]*/cgroup 2>/dev/null", g_prefix);
	return count_lines(cmd);
}

static long cgroups_left(void)
{
	char cmd[200];
	snprintf(cmd, sizeof cmd, "find /sys/fs/cgroup -maxdepth 5 -type d -name '%s*' 2>/dev/null",
	         g_prefix);
	return count_lines(cmd);
}

int main(void)
{
	const char *env = getenv("SANDBAR_SOAK_LEASES");
	int total = env && atoi(env) > 0 ? atoi(env) : 1000;
	snprintf(g_prefix, sizeof g_prefix, "soak%d-", (int)getpid());
	curl_global_init(CURL_GLOBAL_ALL);
	sbb_daemon d;
	if (!sbb_daemon_start(&d, "soak-leases", NULL))
		return 1;
	CURL *c = curl_easy_init();
	sb_buf out = SB_BUF_INIT;
	int failures = 0;
	for (int i = 0; i < WARMUP; i++)
		failures += !cycle(&d, c, &out, i - WARMUP);
	sb_sleep_ms(SETTLE_MS);
	long fds0 = sbb_daemon_fds(&d), rss0 = sbb_daemon_rss_kib(&d);
	long long db0 = sbb_daemon_db_bytes(&d);
	double *lat = sb_xcalloc((size_t)total, sizeof *lat);
	double t0 = sbb_now();
	for (int i = 0; i < total; i++) {
		double s = sbb_now();
		failures += !cycle(&d, c, &out, i);
		lat[i] = sbb_now() - s;
	}
	double wall = sbb_now() - t0;
	sb_sleep_ms(SETTLE_MS);
	long fds1 = sbb_daemon_fds(&d), rss1 = sbb_daemon_rss_kib(&d);
	long long db1 = sbb_daemon_db_bytes(&d);
	long left = leases_left(&d), running = sandboxes_running(), cgroups = cgroups_left();
	int growth = 0;
	if (fds1 > fds0) {
		fprintf(stderr, "# descriptors grew: %ld -> %ld\n", fds0, fds1);
		growth++;
	}
	if (rss1 > rss0 + rss0 / 2) {
		fprintf(stderr, "# memory grew: %ld -> %ld KiB\n", rss0, rss1);
		growth++;
	}
	long long live = sbb_daemon_db_rows(&d, "leases");
	if (live != 0) {
		fprintf(stderr, "# %lld live lease records left\n", live);
		growth++;
	}
	if (db1 > db0 + (long long)total * 2048) {
		fprintf(stderr, "# database grew: %lld -> %lld bytes\n", db0, db1);
		growth++;
	}
	if (left != 0 || running != 0 || cgroups != 0) {
		fprintf(
		    stderr,
		    "# left behind: %ld lease directories, %ld sandbox processes, %ld cgroups\n",
		    left, running, cgroups);
		growth++;
	}
	char figures[512];
	snprintf(
	    figures, sizeof figures,
	    "%.1f cycles/s, cycle p50 %.1f ms p99 %.1f ms; fds %ld -> %ld, RSS %.1f -> "
	    "%.1f MiB, db %.1f -> %.1f KiB (%.0f B per lease, %lld tombstones, %lld audit lines, "
	    "%lld live records); left: %ld dirs, %ld sandboxes, %ld cgroups",
	    total / wall, sbb_percentile(lat, (size_t)total, 0.5) * 1e3,
	    sbb_percentile(lat, (size_t)total, 0.99) * 1e3, fds0, fds1, (double)rss0 / 1024.0,
	    (double)rss1 / 1024.0, (double)db0 / 1024.0, (double)db1 / 1024.0,
	    (double)(db1 - db0) / total, sbb_daemon_db_rows(&d, "tombstones"),
	    sbb_daemon_db_rows(&d, "audit"), live, left, running, cgroups);
	printf("leases created, used (exec) and destroyed in a loop, then no growth\t%d\t%d\t%s\n",
	       total, failures + growth, figures);
	free(lat);
	sb_buf_deinit(&out);
	curl_easy_cleanup(c);
	sbb_daemon_stop(&d);
	curl_global_cleanup();
	return 0;
}
