/* The daemon's own secrets: the API token (given, from a file or from $SANDBAR_TOKEN) and the
 * rule every secret file obeys: readable by nobody but us, neither by group or others nor by
 * the user sandboxes run as (a sandboxed process that reads it owns the daemon). */
#include "server_int.h"

#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* A secret (token, HMAC keys) must be readable by nobody but us: not by group or others and
 * not by the user sandboxes run as (a sandboxed process that reads it owns the daemon). */
sb_err *sbs_secret_file_check(const char *what, const char *path, int64_t sandbox_uid)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return sb_err_sys(errno, "reading the %s %s", what, path);
	if (st.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH))
		return sb_err_new(SB_E_INVAL,
		                  "the %s %s is accessible by group or others (mode %04o): anyone "
		                  "who reads it controls the daemon; fix it with `chmod 600 %s`",
		                  what, path, (unsigned)(st.st_mode & 07777), path);
	if (sandbox_uid > 0 && (int64_t)st.st_uid == sandbox_uid)
		return sb_err_new(
		    SB_E_INVAL,
		    "the %s %s belongs to the sandbox user (uid %lld), so sandboxed "
		    "code could read it; fix it with `chown root:root %s && chmod 600 %s`",
		    what, path, (long long)sandbox_uid, path, path);
	return NULL;
}

/* The host uid sandboxes run as, or -1 when we are not root (they then run as us). */
int64_t sbs_sandbox_host_uid(const sb_sandbox_config *sc)
{
	if (geteuid() != 0)
		return -1;
	if (sc->host_uid >= 0)
		return sc->host_uid;
	struct passwd pw, *res = NULL;
	char buf[4096];
	if (getpwnam_r(SB_SANDBOX_USER_DEFAULT, &pw, buf, sizeof buf, &res) != 0 || !res)
		return -1;
	return (int64_t)pw.pw_uid;
}

sb_err *sbs_read_token(const sb_server_config *cfg, char **out)
{
	*out = NULL;
	if (cfg->token && cfg->token[0]) {
		*out = sb_xstrdup(cfg->token);
		return NULL;
	}
	if (cfg->token_file) {
		sb_buf b = SB_BUF_INIT;
		sb_err *err = sbs_secret_file_check("token file", cfg->token_file,
		                                    sbs_sandbox_host_uid(&cfg->sandbox));
		if (err)
			return err;
		err = sb_read_file(cfg->token_file, 4096, &b);
		if (err)
			return sb_err_prefix(err, "reading the token file");
		size_t n = b.len;
		while (n && (b.data[n - 1] == '\n' || b.data[n - 1] == '\r' ||
		             b.data[n - 1] == ' ' || b.data[n - 1] == '\t'))
			n--;
		if (n == 0) {
			sb_buf_deinit(&b);
			return sb_err_new(SB_E_INVAL, "token file %s is empty", cfg->token_file);
		}
		*out = sb_xstrndup(b.data, n);
		sb_buf_deinit(&b);
		return NULL;
	}
	const char *env = getenv("SANDBAR_TOKEN");
	if (env && env[0])
		*out = sb_xstrdup(env);
	return NULL;
}
