/* prepare (spec §2.4, §2.5): validate the request, run the optional install (skipped when the
 * detect probe finds the tool; a failure only warns), record the baseline snapshot of the local
 * workspace (baseline.c: walked first, hashed from the bytes the staging sends), then stage the
 * workspace (destroy-then-replace, sparing the overlay and the preserved names) and each asset
 * directory, on the native path when the runner offers it.
 */
#include "rt.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static bool is_segment(const char *s)
{
	return s && s[0] && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 &&
	       !strpbrk(s, "*?[\\");
}

/* Absolute, without "." / ".." / empty segments (a trailing slash is dropped). */
static sb_err *normalize_remote(const char *p, const char *what, char **out)
{
	if (!p || p[0] != '/')
		return sb_err_new(SB_E_INVAL, "%s must be an absolute path, got \"%s\"", what,
		                  p ? p : "(null)");
	char *s = sb_xstrdup(p);
	size_t n = strlen(s);
	while (n > 1 && s[n - 1] == '/')
		s[--n] = '\0';
	if (n > 1) {
		sb_err *err = sb_path_check_relative(s + 1);
		if (err) {
			free(s);
			return sb_err_prefix(err, "%s \"%s\"", what, p);
		}
	}
	*out = s;
	return NULL;
}

static char *trim_dup(const char *s)
{
	if (!s)
		return sb_xstrdup("");
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
		n--;
	return sb_xstrndup(s, n);
}

/* The last 3 non-empty lines of text joined with " | ", at most 480 characters (spec §2.4). */
static char *output_tail(const sb_buf *b)
{
	const char *lines[3];
	size_t lens[3], n = 0;
	const char *s = b->data ? b->data : "";
	size_t len = b->len;
	size_t end = len;
	while (end > 0 && n < 3) {
		size_t start = end;
		while (start > 0 && s[start - 1] != '\n')
			start--;
		size_t a = start, z = end;
		while (a < z && (s[a] == ' ' || s[a] == '\t' || s[a] == '\r'))
			a++;
		while (z > a && (s[z - 1] == ' ' || s[z - 1] == '\t' || s[z - 1] == '\r'))
			z--;
		if (z > a) {
			lines[n] = s + a;
			lens[n] = z - a;
			n++;
		}
		end = start ? start - 1 : 0;
	}
	sb_buf out = SB_BUF_INIT;
	for (size_t i = n; i-- > 0;) {
		sb_buf_append(&out, lines[i], lens[i]);
		if (i)
			sb_buf_appends(&out, " | ");
	}
	if (out.len > 480) {
		size_t cut = 480; /* at a code point boundary */
		while (cut > 0 && ((unsigned char)out.data[cut] & 0xC0u) == 0x80u)
			cut--;
		out.len = cut;
		out.data[cut] = '\0';
	}
	return sb_buf_steal(&out, NULL);
}

static void run_install(const sb_rt_ctx *c, const sb_runtime_prepare_opts *o)
{
	char *install = trim_dup(o->install_command);
	char *detect = trim_dup(o->detect_command);
	if (!install[0])
		goto out;
	if (detect[0]) {
		sb_buf s = SB_BUF_INIT;
		sb_buf_appends(&s, "command -v ");
		sb_shell_quote(&s, detect);
		sb_buf_appends(&s, " >/dev/null 2>&1");
		sb_err *err = sb_rt_run(c, sb_buf_cstr(&s), NULL, NULL, 0, NULL);
		sb_buf_deinit(&s);
		if (!err)
			goto out; /* already installed */
		sb_err_free(err);
	}
	sb_exec_result res;
	sb_exec_result_init(&res);
	sb_err *err = sb_rt_run(c, install, NULL, NULL, 0, &res);
	if (err) {
		char *what;
		if (res.timed_out)
			what = sb_xstrdup("timed out");
		else if (res.has_exit_code)
			what = sb_strfmt("exited %d", res.exit_code);
		else if (res.signal[0])
			what = sb_strfmt("was killed by %s", res.signal);
		else
			what = sb_strfmt("failed (%s)", err->msg);
		char *tail = output_tail(res.err.len ? &res.err : &res.out);
		char *line =
		    sb_strfmt("managed-runtime install command %s: %s :: %s", what, install, tail);
		sb_rt_say(&c->progress, line);
		free(line);
		free(tail);
		free(what);
		sb_err_free(err);
	}
	sb_exec_result_deinit(&res);
out:
	free(install);
	free(detect);
}

static sb_err *validate(const sb_runtime_prepare_opts *o)
{
	if (!o || !o->runner)
		return sb_err_new(SB_E_INVAL, "managed runtime prepare needs a runner");
	if (!is_segment(o->adapter_key))
		return sb_err_new(SB_E_INVAL,
		                  "adapter key \"%s\" must be one path segment without wildcards",
		                  o->adapter_key ? o->adapter_key : "(null)");
	if (o->overlay_dir && !is_segment(o->overlay_dir))
		return sb_err_new(SB_E_INVAL, "overlay directory \"%s\" must be one path segment",
		                  o->overlay_dir);
	if (o->spec.shell && strcmp(o->spec.shell, "sh") != 0 && strcmp(o->spec.shell, "bash") != 0)
		return sb_err_new(SB_E_INVAL, "shell must be \"sh\" or \"bash\", got \"%s\"",
		                  o->spec.shell);
	if (!o->workspace_local_dir)
		return sb_err_new(SB_E_INVAL, "managed runtime prepare needs a local workspace");
	for (size_t i = 0; i < o->n_assets; i++) {
		const sb_runtime_asset *a = &o->assets[i];
		if (!is_segment(a->key) || strcmp(a->key, "workspace") == 0 ||
		    strcmp(a->key, "git-workspace") == 0)
			return sb_err_new(SB_E_INVAL,
			                  "asset key \"%s\" must be one path segment other than "
			                  "workspace and git-workspace",
			                  a->key ? a->key : "(null)");
		if (!a->local_dir)
			return sb_err_new(SB_E_INVAL, "asset %s has no local directory", a->key);
		for (size_t j = 0; j < i; j++)
			if (strcmp(o->assets[j].key, a->key) == 0)
				return sb_err_new(SB_E_INVAL, "asset key %s given twice", a->key);
	}
	return NULL;
}

static sb_err *init_runtime(const sb_runtime_prepare_opts *o, sb_runtime *rt)
{
	struct stat st;
	rt->local_dir = realpath(o->workspace_local_dir, NULL);
	if (!rt->local_dir)
		return sb_err_sys(errno, "resolving the local workspace %s",
		                  o->workspace_local_dir);
	if (stat(rt->local_dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return sb_err_new(SB_E_INVAL, "local workspace %s is not a directory",
		                  o->workspace_local_dir);
	sb_err *err =
	    normalize_remote(o->workspace_remote_dir ? o->workspace_remote_dir : o->spec.remote_cwd,
	                     "remote workspace directory", &rt->remote_dir);
	if (err)
		return err;
	rt->shell = sb_xstrdup(o->spec.shell ? o->spec.shell : "sh");
	rt->overlay = sb_xstrdup(o->overlay_dir ? o->overlay_dir : SB_RUNTIME_OVERLAY_DEFAULT);
	rt->adapter_key = sb_xstrdup(o->adapter_key);
	rt->provider_key = sb_xstrdup(o->spec.provider_key ? o->spec.provider_key : "sandbox");
	rt->lease_id = sb_xstrdup(o->spec.lease_id ? o->spec.lease_id : "managed");
	rt->root_dir = sb_strfmt("%s/%s/%s", strcmp(rt->remote_dir, "/") ? rt->remote_dir : "",
	                         rt->overlay, rt->adapter_key);
	if (o->lock_root)
		rt->lock_root = sb_xstrdup(o->lock_root);
	rt->ctx = (sb_rt_ctx){
	    .runner = o->runner,
	    .shell = rt->shell,
	    .timeout_ms =
	        o->spec.timeout_ms > 0 ? o->spec.timeout_ms : SB_RUNTIME_TIMEOUT_MS_DEFAULT,
	    .cancel = o->cancel,
	    .progress = o->progress,
	    .status = o->status,
	};
	rt->native =
	    (sb_runner_caps(o->runner) & SB_RUNNER_CAP_FILE_TRANSFER) && !o->force_command_path;
	err = sb_rt_build_matcher(rt->local_dir, o->exclude_patterns, o->exclude_preset,
	                          o->gitignore, o->no_sandbarignore, &rt->matcher);
	if (err)
		return err;
	return sb_rt_build_excludes(rt->overlay, o->excludes, o->preserve_absent_on_restore,
	                            rt->matcher, &rt->archive_ex, &rt->restore_ex);
}

/* ---- what the transfer set leaves out, counted (and, for a plan, listed) */

typedef struct plan_walk {
	const char *root;
	const sb_excludes *ex;
	sb_runtime_plan_fn fn;
	void *ud;
	sb_runtime_excluded *stats;
} plan_walk;

static int size_cb(const sb_walk_entry *e, void *ud, sb_err **err)
{
	(void)err;
	uint64_t *sum = ud;
	if (e->type == SB_FT_FILE)
		*sum += e->size;
	return SB_WALK_CONTINUE;
}

static int plan_cb(const sb_walk_entry *e, void *ud, sb_err **err)
{
	plan_walk *w = ud;
	(void)err;
	if (sb_rt_name_ignored(e->name))
		return e->type == SB_FT_DIR ? SB_WALK_SKIP : SB_WALK_CONTINUE;
	bool is_dir = e->type == SB_FT_DIR;
	/* The fixed exclusions (overlay, sandbar's directories, literal paths) are not rules. */
	sb_excludes literal = *w->ex;
	literal.matcher = NULL;
	if (sb_excludes_match_entry(&literal, e->relpath, is_dir))
		return is_dir ? SB_WALK_SKIP : SB_WALK_CONTINUE;
	sb_rule_source src = SB_RULE_NONE;
	if (sb_excludes_match_entry(w->ex, e->relpath, is_dir)) {
		src = w->ex->matcher ? sb_matcher_match(w->ex->matcher, e->relpath, is_dir)
		                     : SB_RULE_NONE;
		if (src == SB_RULE_NONE)
			src = SB_RULE_EXCLUDE;
	}
	if (w->fn)
		w->fn(w->ud, e->relpath, is_dir, src);
	if (w->stats && src != SB_RULE_NONE) {
		w->stats->entries[src]++;
		uint64_t bytes = e->type == SB_FT_FILE ? e->size : 0;
		if (is_dir) {
			char *dir = sb_strfmt("%s/%s", w->root, e->relpath);
			sb_err_free(sb_fs_walk(dir, size_cb, &bytes)); /* a count, not a failure */
			free(dir);
		}
		w->stats->bytes[src] += bytes;
	}
	if (w->stats && src == SB_RULE_NONE && e->type == SB_FT_FILE && e->st->st_nlink > 1) {
		w->stats->hardlinks++;
		if (sb_strv_len(w->stats->hardlink_paths) < SB_RUNTIME_NAMED_MAX)
			sb_strv_push(&w->stats->hardlink_paths, e->relpath);
	}
	if (w->stats && src == SB_RULE_NONE && e->type == SB_FT_OTHER) {
		w->stats->specials++;
		if (sb_strv_len(w->stats->special_paths) < SB_RUNTIME_NAMED_MAX)
			sb_strv_push(&w->stats->special_paths, e->relpath);
	}
	return is_dir && src != SB_RULE_NONE ? SB_WALK_SKIP : SB_WALK_CONTINUE;
}

sb_err *sb_runtime_plan(const sb_runtime_prepare_opts *o, sb_runtime_plan_fn fn, void *ud)
{
	if (!o || !o->workspace_local_dir)
		return sb_err_new(SB_E_INVAL, "planning a staging needs a local workspace");
	char *local = realpath(o->workspace_local_dir, NULL);
	if (!local)
		return sb_err_sys(errno, "resolving the local workspace %s",
		                  o->workspace_local_dir);
	sb_matcher *m = NULL;
	sb_excludes archive, restore;
	sb_excludes_init(&archive);
	sb_excludes_init(&restore);
	sb_err *err = sb_rt_build_matcher(local, o->exclude_patterns, o->exclude_preset,
	                                  o->gitignore, o->no_sandbarignore, &m);
	if (!err)
		err = sb_rt_build_excludes(o->overlay_dir ? o->overlay_dir
		                                          : SB_RUNTIME_OVERLAY_DEFAULT,
		                           o->excludes, NULL, m, &archive, &restore);
	if (!err) {
		plan_walk w = {.root = local, .ex = &archive, .fn = fn, .ud = ud};
		err = sb_fs_walk(local, plan_cb, &w);
	}
	sb_excludes_deinit(&archive);
	sb_excludes_deinit(&restore);
	sb_matcher_free(m);
	free(local);
	return err;
}

static sb_err *count_excluded(sb_runtime *rt)
{
	plan_walk w = {.root = rt->local_dir, .ex = &rt->archive_ex, .stats = &rt->excluded};
	sb_err *err = sb_fs_walk(rt->local_dir, plan_cb, &w);
	return err ? sb_err_prefix(err, "counting what staging leaves out of %s", rt->local_dir)
	           : NULL;
}

/* The count is a walk of its own, into excluded directories too (node_modules ...), and only
 * feeds the report: it runs on a thread beside the baseline and the staging. It reads the
 * workspace and writes rt->excluded alone; the rule matcher it shares serialises itself. */
typedef struct excluded_count {
	sb_runtime *rt;
	pthread_t thread;
	bool started;
	sb_err *err;
} excluded_count;

static void *count_main(void *arg)
{
	excluded_count *c = arg;
	c->err = count_excluded(c->rt);
	return NULL;
}

static void count_start(excluded_count *c, sb_runtime *rt)
{
	c->rt = rt;
	c->err = NULL;
	c->started = pthread_create(&c->thread, NULL, count_main, c) == 0;
}

/* Joins the count (or makes it here, when no thread could start); its error. */
static sb_err *count_finish(excluded_count *c)
{
	if (!c->rt)
		return NULL; /* never started: nothing was prepared */
	if (!c->started)
		return count_excluded(c->rt);
	pthread_join(c->thread, NULL);
	c->started = false;
	return c->err;
}

static sb_err *stage_workspace(sb_runtime *rt, const sb_runtime_prepare_opts *o)
{
	const sb_rt_ctx *c = &rt->ctx;
	sb_rt_status(&c->status, SB_PHASE_CONFIG_SYNC, "Syncing workspace to sandbox");
	char **spare = NULL;
	sb_strv_push(&spare, rt->overlay);
	for (size_t i = 0; o->preserve_absent_on_restore && o->preserve_absent_on_restore[i]; i++)
		if (!strchr(o->preserve_absent_on_restore[i], '/'))
			sb_strv_push(&spare, o->preserve_absent_on_restore[i]);
	char *upload = sb_strfmt("%s/workspace-upload.tar", rt->root_dir);
	sb_rt_progress p;
	sb_rt_progress_init(&p, &c->progress, &c->status, SB_PHASE_CONFIG_SYNC, "Syncing",
	                    "workspace", "to");
	sb_rt_stage s = {
	    .local_dir = rt->local_dir,
	    .ex = &rt->archive_ex,
	    .remote_dir = rt->remote_dir,
	    .upload_tar = upload,
	    .spare = spare,
	    .native = rt->native,
	    .label = "workspace",
	    .ensure_dir = rt->root_dir,
	    .ours_marker = o->refuse_foreign_remote ? rt->root_dir : NULL,
	    .create_fresh = o->create_remote_dir,
	};
	sb_rt_baseline_hooks(rt, &s);
	uint64_t bytes = 0;
	bool done = false;
	sb_err *err = NULL;
	/* Incremental: into an earlier staging of this workspace, only what differs (one command
	 * that also creates the runtime root). */
	if (sb_rt_sync_incremental(rt)) {
		err = sb_rt_delta_stage(rt, c, &s, sb_rt_sync_checksum(), &p, &bytes, &done);
		s.create_fresh = false; /* made by that command, when it got that far */
	}
	if (!err && !done)
		err = sb_rt_stage_in(c, &s, &p, &bytes);
	rt->bytes_up += bytes;
	if (!err)
		err = sb_rt_baseline_hash(rt); /* what the staging's archive did not tell */
	if (!err && !done && rt->native && sb_runner_can_delta(c->runner)) {
		/* The staging record, which the runner writes into the runtime root it creates: the
		 * command path creates that root by uploading into it, so both leave the same tree
		 * (callers put assets and queues there). */
		err = sb_rt_delta_record(rt, c);
	} else if (!err && !done && rt->native) {
		sb_buf m = SB_BUF_INIT;
		sb_buf_appends(&m, "mkdir -p ");
		sb_shell_quote(&m, rt->root_dir);
		err = sb_rt_run(c, sb_buf_cstr(&m), NULL, NULL, 0, NULL);
		sb_buf_deinit(&m);
	}
	free(upload);
	sb_strv_free(spare);
	return err;
}

static sb_err *stage_asset(sb_runtime *rt, const sb_runtime_asset *a)
{
	const sb_rt_ctx *c = &rt->ctx;
	sb_excludes ex;
	sb_excludes_init(&ex);
	sb_err *err = NULL;
	for (size_t i = 0; a->excludes && a->excludes[i] && !err; i++) {
		err = sb_excludes_check_user(a->excludes[i]);
		if (err)
			err = sb_err_prefix(err, "asset %s exclude \"%s\"", a->key, a->excludes[i]);
		else
			sb_excludes_add(&ex, a->excludes[i]);
	}
	char *dir = sb_strfmt("%s/%s", rt->root_dir, a->key);
	char *upload = sb_strfmt("%s/%s-upload.tar", rt->root_dir, a->key);
	sb_rt_progress p;
	sb_rt_progress_init(&p, &c->progress, &c->status, SB_PHASE_CONFIG_SYNC, "Syncing", a->key,
	                    "to");
	sb_rt_stage s = {
	    .local_dir = a->local_dir,
	    .ex = &ex,
	    .follow_symlinks = a->follow_symlinks,
	    .remote_dir = dir,
	    .upload_tar = upload,
	    .spare = NULL,
	    .native = rt->native,
	    .label = a->key,
	};
	uint64_t bytes = 0;
	if (!err)
		err = sb_rt_stage_in(c, &s, &p, &bytes);
	rt->bytes_up += bytes;
	if (!err) {
		sb_strv_push(&rt->asset_keys, a->key);
		sb_strv_push(&rt->asset_dirs, dir);
	}
	free(dir);
	free(upload);
	sb_excludes_deinit(&ex);
	return err;
}

sb_err *sb_runtime_prepare(const sb_runtime_prepare_opts *o, sb_runtime **out)
{
	*out = NULL;
	sb_err *err = validate(o);
	if (err)
		return err;
	sb_runtime *rt = sb_xcalloc(1, sizeof *rt);
	sb_excludes_init(&rt->archive_ex);
	sb_excludes_init(&rt->restore_ex);
	sb_snap_init(&rt->baseline);
	sb_snap_init(&rt->git_snap);
	err = init_runtime(o, rt);
	if (!err)
		err = sb_rt_check_cancel(&rt->ctx);
	if (!err)
		run_install(&rt->ctx, o);
	excluded_count counting = {0};
	if (!err)
		count_start(&counting, rt);
	/* The baseline is walked before anything is uploaded: it is what the remote starts from.
	 * Its hashes come with the staging (baseline.c). */
	if (!err)
		err = sb_rt_baseline_take(rt, o->hash_cache_file);
	/* Commits made remotely are counted from the HEAD staged with .git. */
	if (!err && !sb_excludes_match_entry(&rt->archive_ex, ".git", true)) {
		sb_err *gerr = sb_git_head(rt->local_dir, rt->git_base);
		if (gerr) {
			sb_warn("%s", gerr->msg);
			sb_err_free(gerr);
		}
	}
	if (!err)
		err = stage_workspace(rt, o);
	if (!err && o->n_assets)
		sb_rt_status(&rt->ctx.status, SB_PHASE_CONFIG_SYNC,
		             "Syncing runtime assets to sandbox");
	for (size_t i = 0; !err && i < o->n_assets; i++)
		err = stage_asset(rt, &o->assets[i]);
	sb_err *cerr = count_finish(&counting);
	if (!err)
		err = cerr;
	else
		sb_err_free(cerr);
	if (err) {
		sb_runtime_free(rt);
		return sb_err_prefix(err, "preparing the managed runtime");
	}
	*out = rt;
	return NULL;
}
