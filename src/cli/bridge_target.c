/* `sandbar run --bridge URL`: a lease on a running `sandbar serve` or any Paperclip-compatible
 * sandbox bridge, acquired with a fresh acquisition id and released (destroyed) at the end
 * unless --keep. Credentials: a bearer token (SANDBAR_TOKEN_FILE / SANDBAR_TOKEN) or an HMAC
 * key (SANDBAR_HMAC_KEY_ID + SANDBAR_HMAC_KEY_FILE). */
#include "target.h"

#include <stdlib.h>
#include <string.h>

struct bridge_state {
	sb_bridge *client;
	sb_bridge_lease lease;
	char *token;
	char *hmac_secret;
	char *acquisition_id;
};

static sb_err *read_secret(const char *path, char **out)
{
	sb_buf b = SB_BUF_INIT;
	sb_err *err = sb_read_file(path, 4096, &b);
	if (err) {
		sb_buf_deinit(&b);
		return sb_err_prefix(err, "reading the HMAC key file");
	}
	char *s = sb_buf_steal(&b, NULL);
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
		s[--n] = '\0';
	*out = s;
	return NULL;
}

sb_err *cli_bridge_acquire(const cli_target_opts *o, cli_target *t)
{
	struct bridge_state *st = sb_xcalloc(1, sizeof *st);
	t->bridge = st;
	sb_err *err = cli_read_token(o->config, &st->token);
	if (!err && o->config->hmac_key_file)
		err = read_secret(o->config->hmac_key_file, &st->hmac_secret);
	if (err)
		return err;
	if (!st->token && !st->hmac_secret)
		return sb_err_new(SB_E_AUTH,
		                  "no credentials for %s: set SANDBAR_TOKEN_FILE (or "
		                  "token_file in the config file)",
		                  o->bridge_url);
	sb_bridge_opts bo = {.base_url = o->bridge_url,
	                     .token = st->token,
	                     .hmac_key_id = st->hmac_secret ? o->config->hmac_key_id : NULL,
	                     .hmac_secret = st->hmac_secret};
	err = sb_bridge_new(&bo, &st->client);
	if (err)
		return err;
	st->acquisition_id = sb_random_id("sandbar-run-");
	sb_bridge_lease_params p = {.acquisition_id = st->acquisition_id,
	                            .environment_id = "sandbar-cli",
	                            .run_id = st->acquisition_id,
	                            .requested_cwd = o->remote_dir,
	                            .session_strategy = "default"};
	err = sb_bridge_acquire(st->client, &p, &st->lease);
	if (err) {
		if (st->lease.orphan_lease_id)
			sb_err_free(sb_bridge_destroy(st->client, st->lease.orphan_lease_id, &p));
		return err;
	}
	t->lease_id = sb_xstrdup(st->lease.provider_lease_id);
	t->remote_dir = sb_xstrdup(st->lease.remote_cwd
	                               ? st->lease.remote_cwd
	                               : (o->remote_dir ? o->remote_dir : "/workspace/paperclip"));
	sb_bridge_runner_opts ro = {.bridge = bo,
	                            .provider_lease_id = st->lease.provider_lease_id,
	                            .acquisition_id = st->acquisition_id,
	                            .remote_cwd = t->remote_dir,
	                            .session_strategy = "default"};
	return sb_bridge_runner_new(&ro, &t->runner);
}

sb_err *cli_bridge_release(cli_target *t, bool keep)
{
	struct bridge_state *st = t->bridge;
	if (!st)
		return NULL;
	sb_err *err = NULL;
	if (st->client && st->lease.provider_lease_id && !keep) {
		sb_bridge_lease_params p = {.acquisition_id = st->acquisition_id,
		                            .session_strategy = "default"};
		err = sb_bridge_release(st->client, st->lease.provider_lease_id, &p);
	}
	sb_bridge_lease_deinit(&st->lease);
	sb_bridge_free(st->client);
	free(st->token);
	free(st->hmac_secret);
	free(st->acquisition_id);
	free(st);
	t->bridge = NULL;
	return err;
}
