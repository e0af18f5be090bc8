/* Setting up the callback bridge of a lease: the token, the relay (callback.c), the state
 * file that lets a restarted daemon resume it (callback.json in the lease's private run
 * directory), the variables the command gets, and the /etc/hosts entry for the bridge's name. */
#include "callback_int.h"
#include "sandbox_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define TOKEN_BYTES 32 /* >= 24 random bytes (issue 16), base64url */

static void set_env(sb_sandbox *sb, const sb_callback_config *c, const char *token, int port)
{
	sb_strv_free(sb->cb_env);
	sb->cb_env = NULL;
	free(sb->cb_url);
	sb->cb_url = c->host_name ? sb_strfmt("http://%s:%d", c->host_name, port)
	                          : sb_strfmt("http://127.0.0.1:%d", port);
	char *v = sb_strfmt("SANDBAR_CALLBACK_URL=%s", sb->cb_url);
	sb_strv_push(&sb->cb_env, v);
	free(v);
	v = sb_strfmt("SANDBAR_CALLBACK_TOKEN=%s", token);
	sb_strv_push(&sb->cb_env, v);
	free(v);
	if (c->paperclip) {
		v = sb_strfmt("PAPERCLIP_API_URL=%s", sb->cb_url);
		sb_strv_push(&sb->cb_env, v);
		free(v);
		v = sb_strfmt("PAPERCLIP_BRIDGE_TOKEN=%s", token);
		sb_strv_push(&sb->cb_env, v);
		free(v);
	}
	/* proxies (#14) never see loopback or the bridge's name */
	char *np = sb_strfmt("localhost,127.0.0.1,::1%s%s", c->host_name ? "," : "",
	                     c->host_name ? c->host_name : "");
	v = sb_strfmt("NO_PROXY=%s", np);
	sb_strv_push(&sb->cb_env, v);
	free(v);
	v = sb_strfmt("no_proxy=%s", np);
	sb_strv_push(&sb->cb_env, v);
	free(v);
	free(np);
}

sb_err *sb_callback_hosts_fd(const char *rootfs, const char *name, int *out)
{
	*out = -1;
	char *path = sb_strfmt("%s/etc/hosts", rootfs ? rootfs : "");
	sb_buf b = SB_BUF_INIT;
	bool found;
	sb_err *err = sb_read_file_if_any(path, 1u << 20, &b, &found);
	free(path);
	if (!err && !found)
		sb_buf_appends(&b, "127.0.0.1\tlocalhost\n::1\tlocalhost\n");
	if (err) {
		sb_buf_deinit(&b);
		return sb_err_prefix(err, "/etc/hosts for the callback bridge");
	}
	if (b.len && b.data[b.len - 1] != '\n')
		sb_buf_appends(&b, "\n");
	char *line = sb_strfmt("127.0.0.1\t%s\n", name);
	sb_buf_appends(&b, line);
	free(line);
	int fd = memfd_create("hosts", MFD_CLOEXEC);
	if (fd < 0)
		err = sb_err_sys(errno, "memfd for /etc/hosts");
	else if ((err = sb_write_all(fd, b.data, b.len)) || lseek(fd, 0, SEEK_SET) < 0) {
		err = err ? err : sb_err_sys(errno, "rewinding /etc/hosts");
		close(fd);
	} else {
		*out = fd;
	}
	sb_buf_deinit(&b);
	return err;
}

static char *state_path(const sb_sandbox *sb)
{
	return sb_strfmt("%s/callback.json", sb->run_dir);
}

sb_err *sb_callback_setup(sb_sandbox *sb, const sb_sandbox_config *cfg, const sb_callback_config *c)
{
	unsigned char raw[TOKEN_BYTES];
	sb_err *err = sb_random_bytes(raw, sizeof raw);
	if (err)
		return err;
	sb_buf tb = SB_BUF_INIT;
	sb_b64_encode(raw, sizeof raw, &tb);
	/* base64url, unpadded: safe in a header and a URL */
	char *token = sb_xstrdup(sb_buf_cstr(&tb));
	sb_buf_deinit(&tb);
	for (char *p = token; *p; p++)
		*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
	char *eq = strchr(token, '=');
	if (eq)
		*eq = '\0';
	char *cj = sbcb_config_dump(c);
	sb_callback_config *copy = NULL;
	if ((err = sbcb_config_load(cj, strlen(cj), &copy)))
		goto out;
	struct sbcb_relay *r = NULL;
	if ((err = sbcb_relay_start(sb, cfg, copy, token, 0, &r)))
		goto out;
	sb->cb_relay = r;
	const sb_callback_config *held = copy; /* now the relay's */
	copy = NULL;
	json_t *st = json_object();
	json_object_set_new(st, "config", json_loads(cj, 0, NULL));
	json_object_set_new(st, "token", json_string(token));
	json_object_set_new(st, "port", json_integer(sbcb_relay_port(r)));
	char *s = sb_json_dumps(st);
	json_decref(st);
	char *path = state_path(sb);
	err = sb_fs_write_atomic(path, s, strlen(s), 0600);
	free(path);
	free(s);
	if (err)
		goto out;
	set_env(sb, held, token, sbcb_relay_port(r));
out:
	sb_callback_config_free(copy);
	free(cj);
	memset(token, 0, strlen(token));
	free(token);
	return err;
}

sb_err *sb_callback_resume(sb_sandbox *sb, const sb_sandbox_config *cfg, bool relay)
{
	json_t *j = NULL;
	sb_callback_config *c = NULL;
	const char *token = NULL;
	int64_t port = 0;
	sb_err *err = sb_lease_state_read(sb, "callback.json", &j);
	if (!err && !j)
		return NULL; /* no callback on this lease */
	if (err || (err = sb_json_get_str(j, "token", true, &token)) ||
	    (err = sb_json_get_int(j, "port", true, 1, 65535, &port)))
		goto out;
	char *cs = json_dumps(json_object_get(j, "config"), JSON_COMPACT);
	err = cs ? sbcb_config_load(cs, strlen(cs), &c)
	         : sb_err_new(SB_E_INVAL, "no config in callback.json");
	free(cs);
	if (err)
		goto out;
	set_env(sb, c, token, (int)port);
	if (relay && cfg && cfg->run_callbacks && !sb->dead) {
		struct sbcb_relay *r = NULL;
		if ((err = sbcb_relay_start(sb, cfg, c, token, (int)port, &r)))
			goto out;
		sb->cb_relay = r;
		c = NULL;
	}
out:
	if (err)
		err = sb_err_prefix(err, "resuming the callback bridge of lease %s", sb->id);
	sb_callback_config_free(c);
	json_decref(j);
	return err;
}

char *sb_sandbox_callback_url(const sb_sandbox *sb)
{
	return sb->cb_url ? sb_xstrdup(sb->cb_url) : NULL;
}

void sb_callback_stop(sb_sandbox *sb)
{
	struct sbcb_relay *r = sb->cb_relay;
	sb->cb_relay = NULL;
	sb_strv_free(sb->cb_env);
	sb->cb_env = NULL;
	free(sb->cb_url);
	sb->cb_url = NULL;
	if (r)
		sbcb_relay_stop(r);
}
