/* `sandbar lease`: list, acquire, renew and destroy leases of the embedded sandbox backend,
 * the same leases `sandbar run --keep` leaves and `sandbar serve` re-adopts. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "lease_store.h"
#include "reuse.h"
#include "sb_json.h"

static const char lease_help[] =
    "usage: sandbar lease list [--json]\n"
    "       sandbar lease acquire [--ttl DUR] [--network] [--memory SIZE] [--pids N]\n"
    "       sandbar lease renew ID --ttl DUR\n"
    "       sandbar lease destroy ID\n"
    "       sandbar lease prune\n"
    "\n"
    "Manage the sandboxes (leases) in the state directory. `acquire` prints the new lease id;\n"
    "use it with `sandbar exec`, `sandbar push` and `sandbar pull`. `prune` removes the leases\n"
    "whose sandbox is gone and that hold no work, and the `sandbar run --reuse` leases idle\n"
    "longer than their --reuse-idle (never one a run is using); kept and orphaned leases (a\n"
    "`sandbar run` that was killed: its sandbox stopped itself, its work stays) are listed\n"
    "with the `sandbar pull` that finishes them.\n"
    "\n"
    "options:\n"
    "      --ttl DUR        lifetime (e.g. 30m, 2h); recorded, enforced by `sandbar serve`\n"
    "      --network        give the sandbox network access\n"
    "      --memory SIZE    memory limit, e.g. 512M\n"
    "      --pids N         process limit\n"
    "      --json           machine-readable list\n"
    "      --state-dir DIR  where leases live\n"
    "  -h, --help           this text\n";

struct lease_args {
	int64_t ttl_ms;
	bool has_ttl;
	bool network;
	bool json;
	uint64_t memory;
	int64_t pids;
};

static json_t *info_json(const sb_sandbox_info *in, bool alive)
{
	char created[SB_ISO8601_LEN], expires[SB_ISO8601_LEN];
	sb_iso8601(in->created_at_ms, created);
	sb_iso8601(in->expires_at_ms, expires);
	json_t *o =
	    json_pack("{s:s, s:s, s:b, s:s}", "id", in->id, "state", alive ? "active" : "lost",
	              "network", in->network, "created_at", created);
	json_object_set_new(o, "expires_at",
	                    in->expires_at_ms ? json_string(expires) : json_null());
	json_object_set_new(o, "memory_bytes", json_integer((json_int_t)in->limits.memory_bytes));
	json_object_set_new(o, "pids", json_integer((json_int_t)in->limits.pids));
	/* every limit in force, the defaults filled in */
	const sb_sandbox_limits *l = &in->limits;
	json_object_set_new(
	    o, "limits",
	    json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "memory_bytes", (json_int_t)l->memory_bytes,
	              "pids", (json_int_t)l->pids, "cpu_weight", (json_int_t)l->cpu_weight,
	              "nofile", (json_int_t)(l->nofile ? l->nofile : 4096), "nproc",
	              (json_int_t)(l->nproc ? l->nproc : 4096), "tmpfs_bytes",
	              (json_int_t)(l->memory_bytes ? l->memory_bytes : SB_SANDBOX_TMPFS_DEFAULT)));
	return o;
}

static int lease_list(cli_sandbox_env *env, bool json)
{
	char **ids = NULL;
	sb_err *err = sb_sandbox_list(&env->cfg, &ids);
	if (err)
		return cli_fail_err("lease list", err);
	json_t *arr = json_array();
	if (!json)
		printf("%-40s %-7s %-24s %s\n", "LEASE", "STATE", "CREATED", "EXPIRES");
	for (size_t i = 0; ids[i]; i++) {
		sb_sandbox *sb = NULL;
		bool alive = true;
		err = sb_sandbox_open(&env->cfg, ids[i], &sb);
		if (err && err->code == SB_E_STATE_LOST) {
			alive = false;
			sb_err_free(err);
			err = sb_sandbox_open_dead(&env->cfg, ids[i], &sb);
		}
		if (err) {
			/* One unreadable lease must not hide the others. */
			fprintf(stderr, "sandbar lease list: %s: %s\n", ids[i], err->msg);
			sb_err_free(err);
			continue;
		}
		sb_sandbox_info info;
		sb_sandbox_get_info(sb, &info);
		json_t *o = info_json(&info, alive);
		/* A lease holding staged work (a kept run, a failed restore, a push) says how to
		 * finish it; a lease past its TTL says so. */
		char *state = cli_lease_state_file(env, info.id);
		bool kept = access(state, F_OK) == 0;
		free(state);
		bool expired = info.expires_at_ms > 0 && info.expires_at_ms <= sb_wall_ms();
		/* orphaned: its run was killed and its sandbox stopped itself; the work stays */
		const char *st = !alive    ? (kept ? "orphaned" : "lost")
		                 : expired ? "expired"
		                 : kept    ? "kept"
		                           : "active";
		/* only while something is left to bring back: not the baseline a pull left */
		char *pull = kept && cli_lease_work_pending(env, info.id)
		                 ? sb_strfmt("sandbar pull %s", info.id)
		                 : NULL;
		if (json) {
			json_object_set_new(o, "state", json_string(st));
			json_object_set_new(o, "finish", pull ? json_string(pull) : json_null());
			json_array_append_new(arr, o);
		} else {
			const char *exp = json_string_value(json_object_get(o, "expires_at"));
			printf("%-40s %-7s %-24s %s\n", info.id, st,
			       json_string_value(json_object_get(o, "created_at")),
			       exp ? exp : "-");
			if (pull)
				printf("    finish with: %s\n", pull);
			json_decref(o);
		}
		free(pull);
		sb_sandbox_close(sb);
	}
	if (json) {
		char *s = sb_json_dumps(arr);
		printf("%s\n", s);
		free(s);
	}
	json_decref(arr);
	sb_strv_free(ids);
	return 0;
}

static int lease_acquire(cli_sandbox_env *env, const struct lease_args *a)
{
	sb_sandbox_opts opts;
	memset(&opts, 0, sizeof opts);
	opts.network = a->network;
	opts.limits.memory_bytes = a->memory;
	opts.limits.pids = (uint64_t)a->pids;
	opts.limits.ttl_s = a->has_ttl ? (a->ttl_ms + 999) / 1000 : 0;
	opts.require_limits = a->memory || a->pids;
	char *id = sb_random_id("lease-");
	sb_sandbox *sb = NULL;
	sb_err *err = sb_fs_mkdir_p(env->state_dir, 0700);
	if (!err)
		err = sb_sandbox_create(&env->cfg, id, &opts, &sb);
	if (err) {
		free(id);
		return cli_fail_err("lease acquire", err);
	}
	printf("%s\n", id);
	sb_sandbox_close(sb);
	free(id);
	return 0;
}

int cmd_lease(int argc, char **argv)
{
	enum { OPT_TTL = 256, OPT_NETWORK, OPT_MEMORY, OPT_PIDS, OPT_JSON };
	static const struct option longopts[] = {
	    {"ttl", required_argument, NULL, OPT_TTL},
	    {"network", no_argument, NULL, OPT_NETWORK},
	    {"memory", required_argument, NULL, OPT_MEMORY},
	    {"pids", required_argument, NULL, OPT_PIDS},
	    {"json", no_argument, NULL, OPT_JSON},
	    {"state-dir", required_argument, NULL, CLI_OPT_STATE_DIR},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct lease_args a;
	memset(&a, 0, sizeof a);
	cli_config cfg = {0};
	int rc = 0, c;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		sb_err *err = NULL;
		const char *flag = NULL;
		switch (c) {
		case OPT_TTL:
			flag = "--ttl";
			err = sb_parse_duration_ms(optarg, &a.ttl_ms);
			a.has_ttl = true;
			break;
		case OPT_NETWORK:
			a.network = true;
			break;
		case OPT_MEMORY:
			flag = "--memory";
			err = sb_parse_size(optarg, &a.memory);
			break;
		case OPT_PIDS:
			flag = "--pids";
			err = sb_parse_int64(optarg, 1, 1 << 22, &a.pids);
			break;
		case OPT_JSON:
			a.json = true;
			break;
		default: {
			int done = cli_common_option("lease", c, argv, &cfg, lease_help);
			if (done >= 0) {
				rc = done;
				goto out;
			}
			break;
		}
		}
		if (err) {
			rc = cli_usage_error("lease", "%s %s: %s", flag, optarg, err->msg);
			sb_err_free(err);
			goto out;
		}
	}
	const char *sub = optind < argc ? argv[optind] : NULL;
	const char *id = optind + 1 < argc ? argv[optind + 1] : NULL;
	if (!sub) {
		rc = cli_usage_error("lease", "which one: list, acquire, renew, destroy or prune?");
		goto out;
	}
	sb_err *err = cli_config_resolve(&cfg);
	if (err) {
		rc = cli_fail_err("lease", err);
		goto out;
	}
	cli_sandbox_env env;
	cli_sandbox_env_init(&env, &cfg);
	if (!strcmp(sub, "list")) {
		rc = lease_list(&env, a.json);
	} else if (!strcmp(sub, "prune")) {
		int n = cli_lease_prune(&env, NULL, stderr);
		n += cli_reuse_reap(&env, NULL, stderr); /* reused leases idle past their limit */
		printf("%d lease%s removed\n", n, n == 1 ? "" : "s");
	} else if (!strcmp(sub, "acquire")) {
		rc = lease_acquire(&env, &a);
	} else if (!strcmp(sub, "renew") || !strcmp(sub, "destroy")) {
		if (!id) {
			rc = cli_usage_error("lease", "%s needs a lease id", sub);
		} else if (!strcmp(sub, "renew") && !a.has_ttl) {
			rc = cli_usage_error("lease", "renew needs --ttl");
		} else {
			sb_sandbox *sb = NULL;
			err = !strcmp(sub, "renew") ? cli_open_lease(&env, id, &sb)
			                            : sb_sandbox_open_dead(&env.cfg, id, &sb);
			if (!err && !strcmp(sub, "renew")) {
				err = sb_sandbox_renew(sb, (a.ttl_ms + 999) / 1000);
				sb_sandbox_close(sb);
			} else if (!err) {
				err = sb_sandbox_destroy(sb);
				if (!err) /* its saved staging state goes with it */
					cli_lease_forget_state(&env, id);
			}
			if (err)
				rc = cli_fail_err("lease", err);
		}
	} else {
		rc = cli_usage_error("lease", "unknown subcommand \"%s\"", sub);
	}
	cli_sandbox_env_deinit(&env);
out:
	cli_config_deinit(&cfg);
	return rc;
}
