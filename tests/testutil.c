/* Shared test helpers (see testutil.h). They abort the running test on any failure, so a test
 * body reads as a list of steps. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void sbt_expect_code(sb_err *err, sb_errcode code, const char *what)
{
	if (!err) {
		print_error("%s: expected %s, got success\n", what, sb_errcode_name(code));
		fail();
	}
	if (err->code != code)
		print_error("%s: expected %s, got %s: %s\n", what, sb_errcode_name(code),
		            sb_errcode_name(err->code), err->msg);
	assert_int_equal(err->code, code);
	sb_err_free(err);
}

void sbt_skip_at(const char *file, int line, const char *func, const char *fmt, ...)
{
	char why[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	/* Under CI nothing may skip, whatever SANDBAR_ALLOW_SKIP says. */
	const char *allow = getenv("SANDBAR_ALLOW_SKIP"), *ci = getenv("CI");
	if (!allow || strcmp(allow, "1") != 0 || (ci && strcmp(ci, "true") == 0)) {
		print_error("%s:%d: %s cannot run here: %s\n"
		            "(this is a failure; set SANDBAR_ALLOW_SKIP=1 to skip it instead)\n",
		            file, line, func, why);
		fail();
	}
	const char *prog = program_invocation_short_name;
	char *msg =
	    sb_strfmt("%s %s %s (%s:%d): %s\n", SBT_SKIP_MARKER, prog, func, file, line, why);
	print_message("%s", msg);
	const char *log = getenv("SBT_SKIP_LOG");
	if (log && *log) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd >= 0) {
			sb_err_free(sb_write_all(fd, msg, strlen(msg)));
			close(fd);
		}
	}
	free(msg);
	skip();
}

char *sbt_mkdtemp(const char *tag)
{
	char *dir = NULL;
	SB_ASSERT_OK(sb_fs_mkdtemp(tag, &dir));
	return dir;
}

void sbt_rmtree(char *dir)
{
	if (!dir)
		return;
	sb_err *err = sb_fs_rm_rf(dir);
	if (err) {
		print_error("rmtree %s: %s\n", dir, err->msg);
		sb_err_free(err);
	}
	free(dir);
}

char *sbt_path(const char *dir, const char *rel)
{
	return sb_strfmt("%s/%s", dir, rel);
}

void sbt_write(const char *dir, const char *rel, const void *p, size_t n, unsigned mode)
{
	char *path = sbt_path(dir, rel);
	char *slash = strrchr(path, '/');
	if (slash && slash != path) {
		*slash = '\0';
		SB_ASSERT_OK(sb_fs_mkdir_p(path, 0755));
		*slash = '/';
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode);
	if (fd < 0) {
		print_error("open %s: %s\n", path, strerror(errno));
		fail();
	}
	SB_ASSERT_OK(sb_write_all(fd, p, n));
	assert_int_equal(fchmod(fd, (mode_t)mode), 0);
	close(fd);
	free(path);
}

void sbt_write_str(const char *dir, const char *rel, const char *s)
{
	sbt_write(dir, rel, s, strlen(s), 0644);
}

char *sbt_read(const char *dir, const char *rel, size_t *len)
{
	char *path = sbt_path(dir, rel);
	sb_buf b = SB_BUF_INIT;
	sb_err *err = sb_read_file(path, (size_t)1 << 30, &b);
	free(path);
	if (err) {
		sb_err_free(err);
		sb_buf_deinit(&b);
		return NULL;
	}
	return sb_buf_steal(&b, len);
}

char *sbt_build_path(const char *name)
{
	const char *dir = getenv("SB_TEST_BUILD_DIR");
	return sb_strfmt("%s/%s", dir ? dir : SB_TEST_BUILD_DIR, name);
}

static char *vfmt(const char *fmt, va_list ap) SB_PRINTF(1, 0);
static char *vfmt(const char *fmt, va_list ap)
{
	sb_buf b = SB_BUF_INIT;
	sb_buf_vappendf(&b, fmt, ap);
	return sb_buf_steal(&b, NULL);
}

int sbt_sh(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *cmd = vfmt(fmt, ap);
	va_end(ap);
	int st = system(cmd);
	free(cmd);
	if (st == -1 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

char *sbt_sh_out(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *cmd = vfmt(fmt, ap);
	va_end(ap);
	FILE *f = popen(cmd, "r");
	free(cmd);
	assert_non_null(f);
	sb_buf b = SB_BUF_INIT;
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		sb_buf_append(&b, chunk, n);
	pclose(f);
	return sb_buf_steal(&b, NULL);
}

void sbt_fill_random(void *p, size_t n, uint64_t seed)
{
	/* xorshift64*: fast, reproducible fixtures. */
	uint64_t x = seed ? seed : 0x9e3779b97f4a7c15ull;
	unsigned char *out = p;
	for (size_t i = 0; i < n; i++) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		out[i] = (unsigned char)((x * 0x2545f4914f6cdd1dull) >> 56);
	}
}

/* The default ephemeral range starts at 32768; read it in case the host lowered it. */
static int ephemeral_low(void)
{
	int low = 32768, high = 60999;
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");
	if (f) {
		if (fscanf(f, "%d %d", &low, &high) != 2)
			low = 32768;
		fclose(f);
	}
	return low;
}

int sbt_free_port(void)
{
	int low = 10000, high = ephemeral_low() - 1;
	if (high - low < 1000) { /* the host's ephemeral range is unusually wide: take its top */
		low = 61000;
		high = 65000;
	}
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	unsigned seed = (unsigned)getpid() ^ (unsigned)now.tv_nsec;
	for (int attempt = 0; attempt < 500; attempt++) {
		int port = low + (int)(rand_r(&seed) % (unsigned)(high - low + 1));
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_true(fd >= 0);
		struct sockaddr_in a = {.sin_family = AF_INET,
		                        .sin_port = htons((uint16_t)port),
		                        .sin_addr.s_addr = htonl(INADDR_ANY)};
		bool free_here = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
		close(fd);
		if (free_here)
			return port;
	}
	print_error("no free TCP port in %d-%d after 500 tries\n", low, high);
	fail();
	return -1;
}
