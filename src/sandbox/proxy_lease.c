/* A lease's egress proxy (network mode `allowlist`): the proxy runs in the process that created
 * the lease; sandbar-init's loopback forwarder (src/init/forward.c, DESIGN.md §9.14) hands it
 * every connection made to 127.0.0.1:<port> inside the sandbox, and the command gets
 * HTTP(S)_PROXY / ALL_PROXY pointing there. The proxy takes each connection over at once
 * (release), so a connection ends when the proxy closes it. */
#include "proxy_int.h"
#include "sandbox_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SBPX_CA_BUNDLE "/etc/ssl/certs/ca-certificates.crt"
#define SBPX_PLACEHOLDER_PREFIX "sandbar-placeholder-"

struct sbpx_lease {
	sb_egress_proxy *px;
	int attach;
	sbi_reader rd;
	int stop[2];
	pthread_t thread;
	bool started;
	int port;
	char *lease_id;
};

static void release(struct sbpx_lease *l, long long id)
{
	sbi_msg m;
	sbi_msg_init(&m);
	sbi_msg_add(&m, "op", "release");
	sbi_msg_add(&m, "name", SBPX_FORWARD_NAME);
	sbi_msg_addi(&m, "id", id);
	sbi_send(l->attach, &m, NULL, 0);
	sbi_msg_deinit(&m);
}

static void on_conn(void *ud, const sbi_msg *m, int fd)
{
	struct sbpx_lease *l = ud;
	long long id = 0;
	if (sbi_msg_geti(m, "id", 1, (long long)(~0ull >> 1), &id) != 0) {
		close(fd);
		return;
	}
	/* a connection another attachment already had is not resumed: its client sees it
	 * closed */
	long long handed = 0;
	sbi_msg_geti(m, "handed", 0, 1, &handed);
	if (handed)
		close(fd);
	else
		sb_egress_proxy_serve_fd(l->px, fd);
	release(l, id);
}

static void *reader_main(void *arg)
{
	struct sbpx_lease *l = arg;
	if (!sb_ctl_forward_loop(l->attach, &l->rd, l->stop[0], on_conn, l))
		sb_warn("egress proxy of lease %s: sandbar-init closed the proxy's channel; the "
		        "sandbox has no network from now on",
		        l->lease_id);
	return NULL;
}

static void lease_free(struct sbpx_lease *l)
{
	if (!l)
		return;
	if (l->started) {
		(void)!write(l->stop[1], "x", 1);
		pthread_join(l->thread, NULL);
	}
	sb_egress_proxy_free(l->px);
	if (l->attach >= 0)
		close(l->attach);
	if (l->stop[0] >= 0) {
		close(l->stop[0]);
		close(l->stop[1]);
	}
	sbi_reader_deinit(&l->rd);
	free(l->lease_id);
	free(l);
}

sb_err *sb_egress_prepare(sb_sandbox *sb, const sb_egress_config *c, const char *rootfs,
                          char **ca_bundle)
{
	*ca_bundle = NULL;
	struct sbpx_lease *l = sb_xcalloc(1, sizeof *l);
	l->attach = l->stop[0] = l->stop[1] = -1;
	sbi_reader_init(&l->rd);
	l->lease_id = sb_xstrdup(sb->id);
	sb_err *err = sb_egress_proxy_new(c, sb->id, &l->px);
	if (err) {
		lease_free(l);
		return sb_err_prefix(err, "egress proxy of lease %s", sb->id);
	}
	char *ca = sb_egress_proxy_ca_pem(l->px);
	if (ca) {
		/* the sandbox's view of the system bundle: the host's plus the lease's CA */
		char *path = sb_strfmt("%s%s", rootfs ? rootfs : "", SBPX_CA_BUNDLE);
		sb_buf b = SB_BUF_INIT;
		err = sb_read_file(path, 16u << 20, &b);
		free(path);
		if (err && err->sys_errno == ENOENT) {
			sb_err_free(err);
			err =
			    sb_err_new(SB_E_UNSUPPORTED,
			               "egress proxy of lease %s: terminating TLS needs %s in the "
			               "sandbox's root file system (install ca-certificates)",
			               sb->id, SBPX_CA_BUNDLE);
		}
		if (err) {
			sb_buf_deinit(&b);
			free(ca);
			lease_free(l);
			return err;
		}
		if (b.len && b.data[b.len - 1] != '\n')
			sb_buf_appendc(&b, '\n');
		sb_buf_appends(&b, ca);
		*ca_bundle = sb_xstrdup(sb_buf_cstr(&b));
		sb_buf_deinit(&b);
		free(ca);
	}
	sb->px = l;
	sb_strv_free(sb->px_env);
	sb->px_env = NULL;
	for (size_t i = 0; i < c->nsecrets; i++)
		if (c->secrets[i].placeholder_env) {
			char *lowered = sb_xstrdup(c->secrets[i].placeholder_env);
			for (char *ch = lowered; *ch; ch++)
				*ch = (char)tolower((unsigned char)*ch);
			char *v = sb_strfmt("%s=" SBPX_PLACEHOLDER_PREFIX "%s",
			                    c->secrets[i].placeholder_env, lowered);
			sb_strv_push(&sb->px_env, v);
			free(v);
			free(lowered);
		}
	if (*ca_bundle) {
		static const char *const vars[] = {"SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS",
		                                   "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
		                                   "GIT_SSL_CAINFO"};
		for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
			char *v = sb_strfmt("%s=%s", vars[i], SBPX_CA_BUNDLE);
			sb_strv_push(&sb->px_env, v);
			free(v);
		}
	}
	return NULL;
}

sb_err *sb_egress_start(sb_sandbox *sb, const char *callback_host)
{
	struct sbpx_lease *l = sb->px;
	if (!l)
		return NULL;
	sb_err *err = NULL;
	if (pipe2(l->stop, O_CLOEXEC) < 0)
		return sb_err_sys(errno, "egress proxy of lease %s: pipe", sb->id);
	err = sb_ctl_listen(sb, SBPX_FORWARD_NAME, 0, "starting the egress proxy's endpoint",
	                    &l->attach, &l->rd, &l->port);
	if (err)
		return err;
	int rc = pthread_create(&l->thread, NULL, reader_main, l);
	if (rc)
		return sb_err_sys(rc, "egress proxy of lease %s: starting its thread", sb->id);
	l->started = true;
	char *url = sb_strfmt("http://127.0.0.1:%d", l->port);
	static const char *const vars[] = {"HTTP_PROXY",  "http_proxy", "HTTPS_PROXY",
	                                   "https_proxy", "ALL_PROXY",  "all_proxy"};
	for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
		char *v = sb_strfmt("%s=%s", vars[i], url);
		sb_strv_push(&sb->px_env, v);
		free(v);
	}
	free(url);
	/* NO_PROXY always covers loopback and the callback name (DESIGN.md §9.14) */
	char *np = sb_strfmt("localhost,127.0.0.1,::1%s%s", callback_host ? "," : "",
	                     callback_host ? callback_host : "");
	char *v = sb_strfmt("NO_PROXY=%s", np);
	sb_strv_push(&sb->px_env, v);
	free(v);
	v = sb_strfmt("no_proxy=%s", np);
	sb_strv_push(&sb->px_env, v);
	free(v);
	free(np);
	return NULL;
}

void sb_egress_stop(sb_sandbox *sb)
{
	struct sbpx_lease *l = sb->px;
	sb->px = NULL;
	sb_strv_free(sb->px_env);
	sb->px_env = NULL;
	lease_free(l);
}

bool sb_sandbox_egress_stats(sb_sandbox *sb, sb_egress_stats *out)
{
	memset(out, 0, sizeof *out);
	if (!sb->px)
		return false;
	sb_egress_proxy_stats(sb->px->px, out);
	return true;
}
