/* Kept leases of the embedded backend (see lease_store.h). */
#include "lease_store.h"

#include <stdlib.h>
#include <string.h>

void cli_sandbox_env_init(cli_sandbox_env *env, const cli_config *config)
{
	memset(env, 0, sizeof *env);
	env->state_dir = cli_state_dir(config);
	sb_sandbox_config_init(&env->cfg);
	env->cfg.state_dir = env->state_dir;
	env->cfg.default_memory_bytes = config ? config->memory_bytes : 0;
}

void cli_sandbox_env_deinit(cli_sandbox_env *env)
{
	free(env->state_dir);
	memset(env, 0, sizeof *env);
}

sb_err *cli_open_lease(cli_sandbox_env *env, const char *lease_id, sb_sandbox **out)
{
	sb_err *err = sb_sandbox_open(&env->cfg, lease_id, out);
	if (err && err->code == SB_E_NOTFOUND)
		return sb_err_prefix(err, "no lease %s in %s (see `sandbar lease list`)", lease_id,
				     env->state_dir);
	if (err && err->code == SB_E_STATE_LOST)
		return sb_err_prefix(err, "lease %s is lost (its sandbox died); remove it with "
					  "`sandbar lease destroy %s`",
				     lease_id, lease_id);
	return err;
}
