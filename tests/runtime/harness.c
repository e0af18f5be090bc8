/* Fixtures for the runtime tests (see harness.h). */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

rth_kind rth_current = RTH_LOCAL;

const char *rth_kind_name(rth_kind k)
{
	return k == RTH_LOCAL ? "local" : "prefix-sh";
}

bool rth_incremental(void)
{
	const char *v = getenv("SANDBAR_SYNC");
	return v && (strcmp(v, "incremental") == 0 || strcmp(v, "checksum") == 0);
}

bool rth_incremental_native(void)
{
	const char *v = getenv("SANDBAR_SYNC");
	return !v || strcmp(v, "full") != 0; /* auto (the default) is incremental there */
}

sb_runner *rth_runner(bool file_transfer)
{
	if (rth_current == RTH_LOCAL) {
		sb_local_runner_opts o = {.file_transfer = file_transfer};
		sb_runner *r = sb_local_runner_new(&o);
		assert_non_null(r);
		return r;
	}
	char *prefix[] = {(char *)"sh", (char *)"-c", NULL};
	sb_prefix_runner_opts o = {.prefix = prefix, .prefix_is_shell = true};
	sb_runner *r = NULL;
	SB_ASSERT_OK(sb_prefix_runner_new(&o, &r));
	return r;
}

/* ---- recording runner */

struct rth_rec {
	sb_runner base;
	sb_runner *inner;
	pthread_mutex_t mu;
	rth_call *calls;
	size_t n;
	char **env;
};

typedef struct out_counter {
	const sb_exec_callbacks *inner;
	size_t out;
} out_counter;

static sb_err *count_output(void *ud, sb_stream s, const char *d, size_t n)
{
	out_counter *c = ud;
	if (s == SB_STREAM_STDOUT)
		c->out += n;
	if (c->inner && c->inner->on_output)
		return c->inner->on_output(c->inner->ud, s, d, n);
	return NULL;
}

static sb_err *forward_spawn(void *ud, int pid, const char *at)
{
	out_counter *c = ud;
	if (c->inner && c->inner->on_spawn)
		return c->inner->on_spawn(c->inner->ud, pid, at);
	return NULL;
}

static void push_call(rth_rec *r, rth_call c)
{
	pthread_mutex_lock(&r->mu);
	r->calls = sb_xrealloc(r->calls, (r->n + 1) * sizeof *r->calls);
	r->calls[r->n++] = c;
	pthread_mutex_unlock(&r->mu);
}

static sb_err *rec_execute(sb_runner *rr, const sb_exec_request *req, const sb_exec_callbacks *cb,
                           sb_cancel *cancel, sb_exec_result *res)
{
	rth_rec *r = rr->impl;
	sb_exec_request q = *req;
	char **env = sb_strv_dup(req->env);
	for (size_t i = 0; r->env && r->env[i]; i++)
		sb_strv_push(&env, r->env[i]);
	q.env = env;
	out_counter oc = {.inner = cb, .out = 0};
	sb_exec_callbacks wrapped = {
	    .on_spawn = forward_spawn, .on_output = count_output, .ud = &oc};
	sb_err *err = sb_runner_execute(r->inner, &q, &wrapped, cancel, res);
	size_t argc = sb_strv_len(req->argv);
	rth_call c = {
	    .script = sb_xstrdup(argc >= 3 ? req->argv[2] : req->argv[0]),
	    .cwd = sb_xstrdup(req->cwd ? req->cwd : "(default)"),
	    .has_stdin = req->has_stdin,
	    .stdin_len = req->stdin_len,
	    .stdout_len = oc.out,
	};
	push_call(r, c);
	sb_strv_free(env);
	return err;
}

static sb_err *rec_sync_in(sb_runner *rr, const char *dir, char *const *preserve, int fd,
                           sb_progress_fn p, void *ud)
{
	rth_rec *r = rr->impl;
	push_call(r, (rth_call){.script = sb_strfmt("sync_in %s", dir), .cwd = sb_xstrdup("")});
	return sb_runner_sync_in(r->inner, dir, preserve, fd, p, ud);
}

static sb_err *rec_sync_out(sb_runner *rr, const char *dir, const sb_excludes *ex, int fd,
                            sb_progress_fn p, void *ud)
{
	rth_rec *r = rr->impl;
	push_call(r, (rth_call){.script = sb_strfmt("sync_out %s", dir), .cwd = sb_xstrdup("")});
	return sb_runner_sync_out(r->inner, dir, ex, fd, p, ud);
}

/* The incremental ops pass through too, each recorded as one call. */
static sb_err *rec_manifest(sb_runner *rr, const char *dir, const sb_excludes *ex,
                            const sb_manifest_opts *o, sb_manifest *out)
{
	rth_rec *r = rr->impl;
	push_call(r, (rth_call){.script = sb_strfmt("manifest %s", dir), .cwd = sb_xstrdup("")});
	return sb_runner_manifest(r->inner, dir, ex, o, out);
}

static sb_err *rec_sync_out_paths(sb_runner *rr, const char *dir, char *const *paths, int fd,
                                  sb_progress_fn p, void *ud)
{
	rth_rec *r = rr->impl;
	push_call(r,
	          (rth_call){.script = sb_strfmt("sync_out_paths %s", dir), .cwd = sb_xstrdup("")});
	return sb_runner_sync_out_paths(r->inner, dir, paths, fd, p, ud);
}

static sb_err *rec_sync_in_delta(sb_runner *rr, const char *dir, char *const *dels, int fd,
                                 sb_progress_fn p, void *ud)
{
	rth_rec *r = rr->impl;
	push_call(r,
	          (rth_call){.script = sb_strfmt("sync_in_delta %s", dir), .cwd = sb_xstrdup("")});
	return sb_runner_sync_in_delta(r->inner, dir, dels, fd, p, ud);
}

static sb_err *rec_file_read(sb_runner *rr, const char *path, size_t max, sb_buf *out)
{
	rth_rec *r = rr->impl;
	push_call(r, (rth_call){.script = sb_strfmt("file_read %s", path), .cwd = sb_xstrdup("")});
	return sb_runner_file_read(r->inner, path, max, out);
}

static sb_err *rec_file_write(sb_runner *rr, const char *path, const void *data, size_t len)
{
	rth_rec *r = rr->impl;
	push_call(r, (rth_call){.script = sb_strfmt("file_write %s", path), .cwd = sb_xstrdup("")});
	return sb_runner_file_write(r->inner, path, data, len);
}

static void rec_destroy(sb_runner *rr)
{
	rth_rec *r = rr->impl;
	rth_rec_reset(r);
	sb_runner_free(r->inner);
	sb_strv_free(r->env);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

static const sb_runner_ops rec_ops = {
    .name = "recording",
    .execute = rec_execute,
    .sync_in = rec_sync_in,
    .sync_out = rec_sync_out,
    .manifest = rec_manifest,
    .sync_out_paths = rec_sync_out_paths,
    .sync_in_delta = rec_sync_in_delta,
    .file_read = rec_file_read,
    .file_write = rec_file_write,
    .destroy = rec_destroy,
};

sb_runner *rth_rec_new(sb_runner *inner, unsigned caps_clear, rth_rec **out)
{
	rth_rec *r = sb_xcalloc(1, sizeof *r);
	pthread_mutex_init(&r->mu, NULL);
	r->inner = inner;
	r->base.ops = &rec_ops;
	r->base.caps = sb_runner_caps(inner) & ~caps_clear;
	r->base.impl = r;
	*out = r;
	return &r->base;
}

size_t rth_rec_count(rth_rec *r)
{
	return r->n;
}

const rth_call *rth_rec_call(rth_rec *r, size_t i)
{
	assert_true(i < r->n);
	return &r->calls[i];
}

void rth_rec_reset(rth_rec *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->calls[i].script);
		free(r->calls[i].cwd);
	}
	free(r->calls);
	r->calls = NULL;
	r->n = 0;
}

void rth_rec_add_env(rth_rec *r, const char *kv)
{
	sb_strv_push(&r->env, kv);
}

size_t rth_rec_count_containing(rth_rec *r, const char *needle)
{
	size_t n = 0;
	for (size_t i = 0; i < r->n; i++)
		n += strstr(r->calls[i].script, needle) != NULL;
	return n;
}

size_t rth_rec_count_stdin(rth_rec *r)
{
	size_t n = 0;
	for (size_t i = 0; i < r->n; i++)
		n += r->calls[i].has_stdin;
	return n;
}

size_t rth_rec_max_stdin(rth_rec *r)
{
	size_t m = 0;
	for (size_t i = 0; i < r->n; i++)
		if (r->calls[i].stdin_len > m)
			m = r->calls[i].stdin_len;
	return m;
}

size_t rth_rec_max_stdout(rth_rec *r)
{
	size_t m = 0;
	for (size_t i = 0; i < r->n; i++)
		if (r->calls[i].stdout_len > m)
			m = r->calls[i].stdout_len;
	return m;
}

/* ---- sinks */

static void on_line(void *ud, const char *line)
{
	rth_lines *l = ud;
	sb_strv_push(&l->lines, line);
}

static void on_status(void *ud, sb_runtime_phase phase, const char *msg)
{
	rth_lines *l = ud;
	char *s = sb_strfmt("%s|%s", sb_runtime_phase_name(phase), msg);
	sb_strv_push(&l->status, s);
	free(s);
}

sb_runtime_progress_sink rth_progress_sink(rth_lines *l)
{
	return (sb_runtime_progress_sink){.fn = on_line, .ud = l};
}

sb_runtime_status_sink rth_status_sink(rth_lines *l)
{
	return (sb_runtime_status_sink){.fn = on_status, .ud = l};
}

void rth_lines_free(rth_lines *l)
{
	sb_strv_free(l->lines);
	sb_strv_free(l->status);
	l->lines = l->status = NULL;
}

size_t rth_strv_count_containing(char **v, const char *needle)
{
	size_t n = 0;
	for (size_t i = 0; v && v[i]; i++)
		n += strstr(v[i], needle) != NULL;
	return n;
}

size_t rth_strv_count_equal(char **v, const char *s)
{
	size_t n = 0;
	for (size_t i = 0; v && v[i]; i++)
		n += strcmp(v[i], s) == 0;
	return n;
}

/* ---- trees */

typedef struct tree_walk {
	char **entries;
	const char *const *skip;
} tree_walk;

static int tree_entry(const sb_walk_entry *e, void *ud, sb_err **err)
{
	tree_walk *t = ud;
	for (size_t i = 0; t->skip && t->skip[i]; i++)
		if (strcmp(e->relpath, t->skip[i]) == 0)
			return e->type == SB_FT_DIR ? SB_WALK_SKIP : SB_WALK_CONTINUE;
	char *desc = NULL;
	if (e->type == SB_FT_FILE) {
		int fd = openat(e->dirfd, e->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			*err = sb_err_sys(errno, "open %s", e->relpath);
			return SB_WALK_STOP;
		}
		sb_buf b = SB_BUF_INIT;
		*err = sb_read_fd_all(fd, (size_t)1 << 31, &b);
		close(fd);
		if (*err)
			return SB_WALK_STOP;
		char hex[SB_SHA256_HEX_LEN];
		sb_sha256_hex(b.data ? b.data : "", b.len, hex);
		desc = sb_strfmt("%s file %o %zu %s", e->relpath, (unsigned)(e->mode & 0777), b.len,
		                 hex);
		sb_buf_deinit(&b);
	} else if (e->type == SB_FT_SYMLINK) {
		char target[4096];
		ssize_t n = readlinkat(e->dirfd, e->name, target, sizeof target - 1);
		if (n < 0) {
			*err = sb_err_sys(errno, "readlink %s", e->relpath);
			return SB_WALK_STOP;
		}
		target[n] = '\0';
		desc = sb_strfmt("%s link %s", e->relpath, target);
	} else if (e->type == SB_FT_DIR) {
		desc = sb_strfmt("%s dir", e->relpath);
	} else {
		desc = sb_strfmt("%s other", e->relpath);
	}
	sb_strv_push(&t->entries, desc);
	free(desc);
	return SB_WALK_CONTINUE;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char **tree_list(const char *dir, const char *const *skip)
{
	tree_walk t = {.entries = NULL, .skip = skip};
	SB_ASSERT_OK(sb_fs_walk(dir, tree_entry, &t));
	size_t n = sb_strv_len(t.entries);
	if (n > 1)
		qsort(t.entries, n, sizeof *t.entries, cmp_str);
	return t.entries;
}

void rth_assert_trees_equal(const char *a, const char *b, const char *const *skip)
{
	char **la = tree_list(a, skip), **lb = tree_list(b, skip);
	size_t na = sb_strv_len(la), nb = sb_strv_len(lb);
	for (size_t i = 0; i < na || i < nb; i++) {
		const char *x = i < na ? la[i] : "(end)";
		const char *y = i < nb ? lb[i] : "(end)";
		if (strcmp(x, y) != 0) {
			print_error("trees %s and %s differ at entry %zu:\n  %s\n  %s\n", a, b, i,
			            x, y);
			sb_strv_free(la);
			sb_strv_free(lb);
			fail();
		}
	}
	sb_strv_free(la);
	sb_strv_free(lb);
}

bool rth_exists(const char *dir, const char *rel)
{
	char *p = sbt_path(dir, rel);
	struct stat st;
	bool ok = lstat(p, &st) == 0;
	free(p);
	return ok;
}

void rth_assert_file(const char *dir, const char *rel, const char *content)
{
	size_t len = 0;
	char *got = sbt_read(dir, rel, &len);
	if (!got) {
		print_error("%s/%s is missing\n", dir, rel);
		fail();
	}
	if (len != strlen(content) || memcmp(got, content, len) != 0) {
		print_error("%s/%s holds \"%s\", expected \"%s\"\n", dir, rel, got, content);
		free(got);
		fail();
	}
	free(got);
}

void rth_env_init(rth_env *e, bool record)
{
	memset(e, 0, sizeof *e);
	e->local = sbt_mkdtemp("rt-local");
	e->base = sbt_mkdtemp("rt-remote");
	e->outside = sbt_mkdtemp("rt-outside");
	e->ws = sbt_path(e->base, "ws");
	e->runner = record ? rth_rec_new(rth_runner(false), 0, &e->rec) : rth_runner(false);
}

sb_runtime *rth_prepare(sb_runner *runner, const char *local, const char *ws)
{
	sb_runtime_prepare_opts o = {
	    .runner = runner,
	    .spec = {.remote_cwd = ws},
	    .adapter_key = "claude",
	    .workspace_local_dir = local,
	    /* The seed's behaviour: Paperclip's heavy directories and .git stay local. */
	    .exclude_preset = "paperclip",
	};
	sb_runtime *rt = NULL;
	SB_ASSERT_OK(sb_runtime_prepare(&o, &rt));
	return rt;
}

void rth_env_prepare(rth_env *e)
{
	e->rt = rth_prepare(e->runner, e->local, e->ws);
}

void rth_env_free(rth_env *e)
{
	sb_runtime_free(e->rt);
	sb_runner_free(e->runner);
	free(e->ws);
	sbt_rmtree(e->base);
	sbt_rmtree(e->local);
	sbt_rmtree(e->outside);
}

int rth_run_both(const char *name, const struct CMUnitTest *tests, size_t n)
{
	int failed = 0;
	for (int k = RTH_LOCAL; k <= RTH_PREFIX; k++) {
		rth_current = (rth_kind)k;
		char *group = sb_strfmt("%s[%s]", name, rth_kind_name(rth_current));
		failed += _cmocka_run_group_tests(group, tests, n, NULL, NULL);
		free(group);
	}
	return failed;
}
