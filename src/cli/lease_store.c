/* Kept leases of the embedded backend (see lease_store.h). */
#include "lease_store.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
		return sb_err_prefix(err,
		                     "lease %s is lost (its sandbox died); remove it with "
		                     "`sandbar lease destroy %s`",
		                     lease_id, lease_id);
	return err;
}

char *cli_lease_state_file(const cli_sandbox_env *env, const char *lease_id)
{
	return sb_strfmt("%s/runtime/%s.json", env->state_dir, lease_id);
}

static char *pulled_file(const cli_sandbox_env *env, const char *lease_id)
{
	return sb_strfmt("%s/runtime/%s.pulled", env->state_dir, lease_id);
}

/* The identity of the state file as its pulled mark records it; NULL when it is missing. */
static char *state_stamp(const cli_sandbox_env *env, const char *lease_id)
{
	char *state = cli_lease_state_file(env, lease_id);
	struct stat st;
	int rc = stat(state, &st);
	free(state);
	if (rc < 0)
		return NULL;
	return sb_strfmt("%llu %llu %lld %lld.%09ld\n", (unsigned long long)st.st_dev,
	                 (unsigned long long)st.st_ino, (long long)st.st_size,
	                 (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

bool cli_lease_work_pending(const cli_sandbox_env *env, const char *lease_id)
{
	char *stamp = state_stamp(env, lease_id);
	if (!stamp)
		return false; /* nothing saved */
	char *path = pulled_file(env, lease_id);
	sb_buf mark = SB_BUF_INIT;
	sb_err *err = sb_read_file(path, 256, &mark);
	bool pending = err || strcmp(sb_buf_cstr(&mark), stamp) != 0;
	sb_err_free(err);
	sb_buf_deinit(&mark);
	free(path);
	free(stamp);
	return pending;
}

sb_err *cli_lease_mark_pulled(const cli_sandbox_env *env, const char *lease_id)
{
	char *stamp = state_stamp(env, lease_id);
	if (!stamp)
		return sb_err_new(SB_E_NOTFOUND, "lease %s has no saved state", lease_id);
	char *path = pulled_file(env, lease_id);
	sb_err *err = sb_fs_write_atomic(path, stamp, strlen(stamp), 0600);
	free(path);
	free(stamp);
	return err;
}

void cli_lease_forget_state(const cli_sandbox_env *env, const char *lease_id)
{
	char *state = cli_lease_state_file(env, lease_id);
	char *pulled = pulled_file(env, lease_id);
	(void)unlink(state);
	(void)unlink(pulled);
	free(pulled);
	free(state);
}

int cli_lease_prune(cli_sandbox_env *env, const char *prefix, FILE *out)
{
	char **ids = NULL;
	sb_err *err = sb_sandbox_list(&env->cfg, &ids);
	if (err) {
		if (out)
			fprintf(out, "sandbar: listing the leases in %s: %s\n", env->state_dir,
			        err->msg);
		sb_err_free(err);
		return 0;
	}
	int removed = 0;
	for (size_t i = 0; ids[i]; i++) {
		if (prefix && strncmp(ids[i], prefix, strlen(prefix)) != 0)
			continue;
		sb_sandbox *sb = NULL;
		err = sb_sandbox_open(&env->cfg, ids[i], &sb);
		if (!err) {
			sb_sandbox_close(sb); /* alive */
			continue;
		}
		/* Not lost (gone meanwhile, unreadable): not ours to judge. One error, freed
		 * once: a double free here corrupted the heap of the `sandbar run` that pruned. */
		bool lost = err->code == SB_E_STATE_LOST;
		sb_err_free(err);
		err = lost ? sb_sandbox_open_dead(&env->cfg, ids[i], &sb) : NULL;
		if (!lost || err) {
			sb_err_free(err);
			continue;
		}
		char *state = cli_lease_state_file(env, ids[i]);
		bool work = access(state, F_OK) == 0;
		free(state);
		/* An init whose pid now belongs to another process is gone all the same. */
		bool init_runs = !sb_sandbox_init_gone(sb);
		if (init_runs || work) {
			if (work && out)
				fprintf(
				    out,
				    "sandbar: lease %s is orphaned and holds work: finish with "
				    "`sandbar pull %s` or remove it with `sandbar lease destroy "
				    "%s`\n",
				    ids[i], ids[i], ids[i]);
			else if (out)
				fprintf(
				    out,
				    "sandbar: lease %s does not answer, but its sandbar-init still "
				    "runs (it may be ending): kept; prune again shortly, or remove "
				    "it with `sandbar lease destroy %s`\n",
				    ids[i], ids[i]);
			sb_sandbox_close(sb);
			continue;
		}
		err = sb_sandbox_destroy(sb);
		if (err) {
			if (out)
				fprintf(out, "sandbar: removing lease %s: %s\n", ids[i], err->msg);
			sb_err_free(err);
		} else {
			removed++;
			if (out)
				fprintf(out, "sandbar: removed lease %s (its sandbox was gone)\n",
				        ids[i]);
		}
	}
	sb_strv_free(ids);
	return removed;
}
