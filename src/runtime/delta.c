/* Incremental restore (#15): instead of the whole remote tree, fetch its manifest (one exec:
 * `find -printf` + `sha256sum -z`, see sb_rt_script_listing; or, on a runner that reaches the far
 * tree itself, SB_RUNNER_CAP_DELTA, the runner's own listing), compare it with the baseline, and
 * fetch one tar of exactly the files and links that differ. The merge then gets a source snapshot
 * built from the manifest: unchanged entries are the baseline's own (hashes and all), changed
 * ones are the extracted files. Deletions need no transfer: an entry missing from the manifest
 * is missing from the source snapshot.
 *
 * The assumption (documented in sandbar(1), SANDBAR_SYNC): a remote file whose kind, permission
 * bits, size and mtime (whole seconds) equal the baseline's has the baseline's content. The far
 * side hashes every file whose mtime is at or after the baseline's time minus the skew allowance,
 * so any file the sandbox wrote after staging is compared by content, not by mtime; only a file
 * written with an explicitly old mtime and the same size escapes, which --checksum (hash every
 * file) covers. Anything that cannot be trusted falls back to the full transfer with one line:
 * a tool missing on the far side, a clock more than SKEW_MAX_SEC away, a malformed manifest, a
 * baseline without mtimes (loaded from a saved runtime), a file that changed meanwhile.
 */
#include "rt.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SKEW_MAX_SEC 2
#define DUPLEX_OUTPUT_CAP 4096u /* the archive is consumed; the tail feeds messages */
#define ENTRY_FORMAT "-printf 'E %y %m %s %T@ %P\\0%l\\0'"

const char *sb_rt_sync_env(void)
{
	const char *v = getenv("SANDBAR_SYNC");
	return v && *v ? v : "auto";
}

bool sb_rt_sync_incremental(const sb_runtime *rt)
{
	const char *v = sb_rt_sync_env();
	if (strcmp(v, "incremental") == 0 || strcmp(v, "checksum") == 0)
		return true;
	if (strcmp(v, "full") == 0)
		return false;
	/* auto: incremental where it costs no far command (the runner lists the far tree itself);
	 * on the command path the listing is one more command, which a small tree does not pay
	 * back. */
	return rt->native && sb_runner_can_delta(rt->ctx.runner) &&
	       rt->delta_ok; /* a saved runtime (`sandbar pull`) has no file times: full, quietly */
}

int64_t sb_rt_ctime_clock_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	/* a margin of several coarse ticks (each up to 4 ms), for a clock read on another CPU */
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - 50 * 1000000;
}

int64_t sb_rt_hash_since(int64_t base_sec)
{
	return base_sec - SKEW_MAX_SEC - 1;
}

bool sb_rt_sync_checksum(void)
{
	return strcmp(sb_rt_sync_env(), "checksum") == 0;
}

/* The far find's exclusions: what a remote tar could apply exactly (sb_rt_remote_tar_filters);
 * the host's matcher drops the rest. print_pruned: list a pruned entry itself (not its
 * contents), so that staging can delete what the transfer set leaves out. */
static void prune_expr(sb_buf *s, const sb_excludes *ex, bool print_pruned)
{
	char **segments, **toplevel;
	sb_rt_remote_tar_filters(ex, &segments, &toplevel);
	sb_buf_appends(s, " \\( -name '._*'");
	for (size_t i = 0; segments && segments[i]; i++) {
		sb_buf_appends(s, " -o -name ");
		sb_shell_quote(s, segments[i]);
	}
	for (size_t i = 0; toplevel && toplevel[i]; i++) {
		char *p = sb_strfmt("./%s", toplevel[i]);
		sb_buf_appends(s, " -o -path ");
		sb_shell_quote(s, p);
		free(p);
	}
	sb_buf_appends(s, " \\) -prune");
	if (print_pruned)
		sb_buf_appends(s, " " ENTRY_FORMAT);
	sb_buf_appends(s, " -o");
	sb_strv_free(segments);
	sb_strv_free(toplevel);
}

void sb_rt_script_listing(sb_buf *s, const sb_excludes *ex, const char *newer_than, bool hash_all,
                          bool print_pruned)
{
	/* A missing sha256sum is said as a "U" record (the host falls back). A find without
	 * -printf or -newermt (busybox) fails the command, which the host takes the same way: no
	 * probe for it, since every process the far side starts costs (a sandbox's most). */
	sb_buf_appends(
	    s, "if ! command -v sha256sum >/dev/null 2>&1; then printf 'U sha256sum is "
	       "missing\\0'; elif ! sha256sum -z </dev/null >/dev/null 2>&1; then printf 'U "
	       "sha256sum lacks -z\\0'; else printf 'V 1 %s\\0' \"$(date +%s)\" && find . "
	       "-mindepth 1");
	prune_expr(s, ex, print_pruned);
	sb_buf_appends(s, " " ENTRY_FORMAT " && printf 'H\\0' && find . -mindepth 1");
	prune_expr(s, ex, false);
	sb_buf_appends(s, " -type f");
	if (!hash_all) {
		sb_buf_appends(s, " -newermt @");
		sb_buf_appends(s, newer_than);
	}
	sb_buf_appends(s, " -exec sha256sum -z -- {} + && printf 'Z\\0' || exit 1; fi");
}

/* The restore's one command: the listing, then the answer on stdin: "SEL" and the
 * NUL-separated relative paths to archive (files and links only, so no recursion; a name
 * starting with "-" stays a name; tar's exit 1 is "file changed as we read it"), or anything
 * else (the host takes the full path, or nothing changed). */
char *sb_rt_script_restore(const char *dir, const sb_excludes *ex, int64_t hash_since,
                           bool hash_all)
{
	sb_buf s = SB_BUF_INIT;
	sb_buf_appends(&s, "cd ");
	sb_shell_quote(&s, dir);
	sb_buf_appends(&s, " || exit 1; ");
	char *newer = sb_strfmt("%lld", (long long)(hash_since - 1));
	sb_rt_script_listing(&s, ex, newer, hash_all, false);
	free(newer);
	sb_buf_appends(&s, "; IFS= read -r mode || exit 0; [ \"$mode\" = SEL ] || exit 0; "
	                   "tar -c -f - --no-recursion --null --verbatim-files-from -T -; rc=$?; "
	                   "if [ \"$rc\" -gt 1 ]; then exit \"$rc\"; fi");
	return sb_buf_steal(&s, NULL);
}

/* ---- comparing */

static bool name_ignored_anywhere(const char *path)
{
	const char *seg = path;
	for (;;) {
		const char *slash = strchr(seg, '/');
		size_t n = slash ? (size_t)(slash - seg) : strlen(seg);
		char *name = sb_xstrndup(seg, n);
		bool ign = sb_rt_name_ignored(name);
		free(name);
		if (ign)
			return true;
		if (!slash)
			return false;
		seg = slash + 1;
	}
}

/* The entry, or a directory above it, is excluded by ex (what a walk under ex would skip). */
bool sb_rt_excluded_path(const sb_excludes *ex, const char *path, bool is_dir)
{
	if (name_ignored_anywhere(path))
		return true;
	char *p = sb_xstrdup(path);
	bool hit = false;
	for (char *q = p; *q && !hit; q++) {
		if (*q != '/')
			continue;
		*q = '\0';
		hit = sb_excludes_match_entry(ex, p, true);
		*q = '/';
	}
	if (!hit)
		hit = sb_excludes_match_entry(ex, p, is_dir);
	free(p);
	return hit;
}

bool sb_rt_entry_same(const sb_snap_entry *b, const sb_manifest_entry *m, int64_t hash_since,
                      bool checksum)
{
	if (!b || b->type != m->type)
		return false;
	switch (m->type) {
	case SB_FT_DIR:
		return true;
	case SB_FT_SYMLINK:
		return b->target && m->target && strcmp(b->target, m->target) == 0;
	case SB_FT_FILE:
		break;
	default:
		return false;
	}
	if ((b->mode & 0777) != (m->mode & 0777) || b->size != m->size)
		return false;
	if (m->hashed)
		return b->hashed && !b->content_digest &&
		       memcmp(b->sha, m->sha, SB_SHA256_LEN) == 0;
	/* Unhashed: listed as older than hash_since. Equal whole-second mtimes then mean the
	 * same content, unless the baseline's own mtime was that recent (a racy entry). */
	return !checksum && b->mtime_sec == m->mtime_sec && b->mtime_sec < hash_since;
}

static void push_entry(sb_snap *s, const sb_snap_entry *e)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 256;
		s->v = sb_xrealloc(s->v, s->cap * sizeof *s->v);
	}
	sb_snap_entry *d = &s->v[s->n++];
	*d = *e;
	d->path = sb_xstrdup(e->path);
	d->target = e->target ? sb_xstrdup(e->target) : NULL;
}

static void push_list(sb_buf *list, const char *path)
{
	sb_buf_append(list, path, strlen(path) + 1); /* with its NUL */
}

bool sb_rt_is_git_path(const char *path)
{
	return strncmp(path, ".git", 4) == 0 && (path[4] == '\0' || path[4] == '/');
}

/* The snapshot of the local .git (entries relative to the workspace, "…/.git/x"), stat only,
 * with the plain hash of every racy file (or of all of them with checksum), for comparing the
 * remote .git by manifest. */
sb_err *sb_rt_git_snapshot(const char *local_dir, const sb_excludes *archive_ex, int64_t hash_since,
                           bool checksum, sb_snap *out)
{
	sb_snap_init(out);
	char *git = sb_strfmt("%s/.git", local_dir);
	struct stat st;
	if (lstat(git, &st) != 0 || !S_ISDIR(st.st_mode)) {
		free(git);
		return NULL; /* none: an empty snapshot */
	}
	sb_excludes none;
	sb_excludes_init(&none);
	sb_snap raw;
	sb_err *err = sb_snap_take(git, &none, false, &raw);
	sb_excludes_deinit(&none);
	free(git);
	if (err)
		return err;
	sb_snap_entry top = {.path = (char *)".git", .type = SB_FT_DIR, .mode = st.st_mode};
	push_entry(out, &top);
	for (size_t i = 0; i < raw.n && !err; i++) {
		sb_snap_entry *e = &raw.v[i];
		char *rel = sb_strfmt(".git/%s", e->path);
		if (!sb_rt_excluded_path(archive_ex, rel, e->type == SB_FT_DIR)) {
			if (e->type == SB_FT_FILE && (checksum || e->mtime_sec >= hash_since))
				err = sb_snap_entry_hash(&raw, e);
			sb_snap_entry copy = *e;
			copy.path = rel;
			push_entry(out, &copy);
		}
		free(rel);
	}
	sb_snap_deinit(&raw);
	if (err)
		sb_snap_deinit(out);
	/* ".git/a" < ".git/b" keeps raw's order; ".git" itself sorts first */
	return err;
}

typedef struct planner {
	sb_runtime *rt;
	const sb_manifest *man;
	int64_t since;
	bool checksum;
	sb_snap src;  /* entries in order; changed files/links filled after extraction */
	size_t *fill; /* indexes into src of entries to take from the extracted tree */
	size_t n_fill, cap_fill;
	sb_buf list; /* NUL-separated paths for the far tar */
	bool git_changed;
	char **git_items; /* .git files and links (all of them, fetched when .git changed) */
	sb_snap git_next; /* the remote .git as listed: the next git snapshot */
} planner;

static void note_fill(planner *pl)
{
	if (pl->n_fill == pl->cap_fill) {
		pl->cap_fill = pl->cap_fill ? pl->cap_fill * 2 : 64;
		pl->fill = sb_xrealloc(pl->fill, pl->cap_fill * sizeof *pl->fill);
	}
	pl->fill[pl->n_fill++] = pl->src.n - 1;
}

static void plan_git(planner *pl, const sb_manifest_entry *m)
{
	sb_snap_entry *b = sb_snap_find(&pl->rt->git_snap, m->path);
	if (!pl->rt->git_snap_ok || !sb_rt_entry_same(b, m, pl->since, pl->checksum))
		pl->git_changed = true;
	if (m->type == SB_FT_FILE || m->type == SB_FT_SYMLINK)
		sb_strv_push(&pl->git_items, m->path);
	sb_snap_entry e = {.path = m->path,
	                   .type = m->type,
	                   .mode = m->mode,
	                   .size = m->size,
	                   .mtime_sec = m->mtime_sec,
	                   .target = m->target,
	                   .hashed = m->hashed};
	memcpy(e.sha, m->sha, SB_SHA256_LEN);
	push_entry(&pl->git_next, &e);
}

static void plan_entries(planner *pl)
{
	sb_runtime *rt = pl->rt;
	bool git_staged = !sb_excludes_match_entry(&rt->archive_ex, ".git", true);
	for (size_t i = 0; i < pl->man->n; i++) {
		const sb_manifest_entry *m = &pl->man->v[i];
		if (m->type == SB_FT_OTHER ||
		    sb_rt_excluded_path(&rt->archive_ex, m->path, m->type == SB_FT_DIR))
			continue;
		if (git_staged && sb_rt_is_git_path(m->path)) {
			plan_git(pl, m);
			continue;
		}
		if (sb_rt_excluded_path(&rt->restore_ex, m->path, m->type == SB_FT_DIR))
			continue; /* fetched by the full path, then left out of the merge */
		sb_snap_entry *b = sb_snap_find(&rt->baseline, m->path);
		if (sb_rt_entry_same(b, m, pl->since, pl->checksum)) {
			push_entry(&pl->src, b);
			pl->src.v[pl->src.n - 1].mtime_sec = m->mtime_sec;
			continue;
		}
		sb_snap_entry e = {.path = m->path,
		                   .type = m->type,
		                   .mode = m->mode,
		                   .size = m->size,
		                   .mtime_sec = m->mtime_sec,
		                   .target = m->target};
		push_entry(&pl->src, &e);
		if (m->type != SB_FT_DIR) {
			note_fill(pl);
			push_list(&pl->list, m->path);
		}
	}
	if (pl->git_changed || !rt->git_snap_ok)
		for (size_t i = 0; pl->git_items && pl->git_items[i]; i++)
			push_list(&pl->list, pl->git_items[i]);
	/* .git entries that vanished remotely (commits never delete, but gc does) */
	for (size_t i = 0; rt->git_snap_ok && i < rt->git_snap.n; i++)
		if (!sb_manifest_find(pl->man, rt->git_snap.v[i].path))
			pl->git_changed = true;
}

/* What the far tar extracted replaces each changed file's or link's placeholder: the tar is
 * the truth about its bytes, mode and target. Anything missing or of another kind changed
 * between the listing and the archive. */
static sb_err *fill_from_tree(planner *pl, const char *tree)
{
	int rootfd = open(tree, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return sb_err_sys(errno, "opening %s", tree);
	sb_err *err = NULL;
	for (size_t k = 0; k < pl->n_fill && !err; k++) {
		sb_snap_entry *e = &pl->src.v[pl->fill[k]];
		struct stat st;
		if (fstatat(rootfd, e->path, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			err = sb_err_new(SB_E_CONFLICT, "%s changed while it was being fetched",
			                 e->path);
			break;
		}
		bool is_file = S_ISREG(st.st_mode), is_link = S_ISLNK(st.st_mode);
		if ((e->type == SB_FT_FILE && !is_file) || (e->type == SB_FT_SYMLINK && !is_link)) {
			err = sb_err_new(SB_E_CONFLICT,
			                 "%s changed kind while it was being fetched", e->path);
			break;
		}
		e->mode = st.st_mode;
		e->size = (uint64_t)st.st_size;
		/* which version of the file this is: the extraction's hash (sb_rt_known) fits it */
		e->seen.mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
		e->seen.ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
		e->seen.ino = (uint64_t)st.st_ino;
		e->seen.dev = (uint64_t)st.st_dev;
		if (is_link) {
			char buf[PATH_MAX + 1];
			ssize_t r = readlinkat(rootfd, e->path, buf, PATH_MAX);
			if (r < 0) {
				err = sb_err_sys(errno, "reading the symlink %s", e->path);
				break;
			}
			buf[r] = '\0';
			free(e->target);
			e->target = sb_xstrdup(buf);
		}
	}
	if (err) {
		close(rootfd);
		return err;
	}
	pl->src.rootfd = rootfd; /* changed files are hashed from the extracted tree */
	return NULL;
}

static void planner_deinit(planner *pl)
{
	sb_snap_deinit(&pl->src);
	sb_snap_deinit(&pl->git_next);
	free(pl->fill);
	sb_buf_deinit(&pl->list);
	sb_strv_free(pl->git_items);
}

/* A reason to take the full path: said once, never an error. A failed command's message
 * starts with its (long) script: only what follows "failed with" is worth a line. */
static void fall_back(const sb_rt_ctx *c, const char *why)
{
	const char *failed = strstr(why, "failed with exit code");
	if (failed)
		why = failed;
	(void)c;
	/* The log, not the progress sink: the CLI shows progress as a bar and drops its lines. */
	sb_warn("incremental restore not possible (%s): fetching the whole workspace", why);
}

/* An error that a full transfer would meet just the same (or that must stop the restore):
 * returned as it is rather than retried. */
static bool is_final(const sb_err *e)
{
	return e->code == SB_E_CANCELED || e->code == SB_E_FILE_TOO_LARGE ||
	       e->code == SB_E_TOO_LARGE || e->code == SB_E_TIMEOUT || e->sys_errno == ENOSPC;
}

/* A successful plan becomes the delta the merge takes. */
static void take_plan(sb_runtime *rt, planner *pl, uint64_t bytes, int64_t listed_at,
                      sb_rt_delta *out)
{
	out->src = pl->src;
	sb_snap_init(&pl->src);
	out->git_next = pl->git_next;
	sb_snap_init(&pl->git_next);
	out->git_changed = pl->git_changed || !rt->git_snap_ok;
	out->bytes = bytes;
	out->listed_at = listed_at;
}

char **sb_rt_split_list(const sb_buf *list, char sep)
{
	char **v = NULL;
	const char *p = list->len ? list->data : NULL, *end = p ? p + list->len : NULL;
	while (p && p < end) {
		const char *at = memchr(p, sep, (size_t)(end - p));
		size_t n = at ? (size_t)(at - p) : (size_t)(end - p);
		char *one = sb_xstrndup(p, n);
		sb_strv_push(&v, one);
		free(one);
		p = at ? at + 1 : end;
	}
	return v;
}

/* Which far files the manifest hashes: only those the plan compares by hash. A file the
 * baseline lacks, or holds as something else or with another size, is fetched whatever its bytes
 * (sb_rt_entry_same looks at the size first), so its hash would be read for nothing: after an
 * `npm install`, that is every file of node_modules. The .git keeps every hash (its snapshot
 * becomes the next restore's reference). */
static bool plan_compares(void *ud, const char *relpath, uint64_t size)
{
	const sb_runtime *rt = ud;
	if (sb_rt_is_git_path(relpath))
		return true;
	const sb_snap_entry *b = sb_snap_find(&rt->baseline, relpath);
	return b && b->type == SB_FT_FILE && b->size == size;
}

/* The native path (SB_RUNNER_CAP_DELTA): the runner lists the far tree and sends the chosen
 * entries itself, so no far command runs at all. */
static sb_err *native_fetch(sb_runtime *rt, const sb_rt_ctx *c, const sb_rt_fetch *f, bool checksum,
                            sb_rt_progress *p, sb_rt_delta *out, bool *full)
{
	int64_t since = sb_rt_hash_since(rt->base_sec);
	int64_t t0 = sb_wall_ms() / 1000, t0_ns = sb_rt_ctime_clock_ns();
	sb_rt_timer tm;
	sb_rt_timer_start(&tm, &c->progress, "restore", f->label ? f->label : "tree", true);
	/* as the script's find -newermt @(since - 1), and every file written since the far tree
	 * was known, whatever its mtime says */
	sb_manifest_opts mo = {.hash_newer_than = since - 1,
	                       .hash_ctime_since_ns = rt->far_known_ns,
	                       .hash_all = checksum,
	                       .want_hash = plan_compares,
	                       .want_hash_ud = rt};
	sb_manifest man;
	sb_err *err = sb_runner_manifest(c->runner, f->remote_dir, &rt->archive_ex, &mo, &man);
	sb_rt_timer_mark(&tm, "manifest");
	planner pl = {.rt = rt, .man = &man, .since = since, .checksum = checksum};
	sb_snap_init(&pl.src);
	sb_snap_init(&pl.git_next);
	uint64_t bytes = 0;
	if (!err) {
		plan_entries(&pl);
		char **paths = sb_rt_split_list(&pl.list, '\0');
		if (paths) {
			sb_rt_fetch sel = *f;
			sel.paths = paths;
			err = sb_rt_stream_native_out(c, &sel, p, &tm, &bytes);
		} else {
			sb_rt_progress_complete(p, 0, 0);
		}
		sb_strv_free(paths);
	}
	if (!err && f->max_bytes > 0 && bytes > (uint64_t)f->max_bytes) {
		err =
		    sb_err_new(SB_E_FILE_TOO_LARGE,
		               "Remote archive of %s is %llu bytes, exceeding the %lld byte limit",
		               f->remote_dir, (unsigned long long)bytes, (long long)f->max_bytes);
		err->actual_bytes = bytes > INT64_MAX ? INT64_MAX : (int64_t)bytes;
		err->limit_bytes = f->max_bytes;
	}
	if (!err)
		err = fill_from_tree(&pl, f->local_dest);
	sb_rt_timer_finish(&tm, err != NULL);
	if (!err) {
		*full = false;
		take_plan(rt, &pl, bytes, t0, out);
		out->listed_ns = t0_ns;
	}
	planner_deinit(&pl);
	sb_manifest_deinit(&man);
	if (err && !is_final(err)) {
		fall_back(c, err->msg);
		sb_err_free(err);
		err = NULL;
	}
	return err;
}

sb_err *sb_rt_delta_fetch(sb_runtime *rt, const sb_rt_ctx *c, const sb_rt_fetch *f, bool checksum,
                          sb_rt_progress *p, sb_rt_delta *out, bool *full)
{
	*full = true;
	memset(out, 0, sizeof *out);
	sb_snap_init(&out->src);
	sb_snap_init(&out->git_next);
	if (!rt->delta_ok) {
		fall_back(c, "the baseline has no file times (a saved runtime)");
		return NULL;
	}
	if (f->native && sb_runner_can_delta(c->runner))
		return native_fetch(rt, c, f, checksum, p, out, full);
	if (!sb_rt_can_stream(c)) {
		fall_back(c, "the runner cannot stream a file list");
		return NULL;
	}
	int64_t since = sb_rt_hash_since(rt->base_sec);
	int64_t t0 = sb_wall_ms() / 1000;
	sb_rt_timer tm;
	sb_rt_timer_start(&tm, &c->progress, "restore", f->label ? f->label : "tree", rt->native);
	char *script = sb_rt_script_restore(f->remote_dir, &rt->archive_ex, since, checksum);
	sb_rt_duplex *d;
	sb_err *err = sb_rt_duplex_start(c, script, DUPLEX_OUTPUT_CAP, &d);
	if (err) {
		free(script);
		sb_rt_timer_finish(&tm, true);
		return err;
	}
	const char *listing;
	size_t man_bytes;
	bool listed = sb_rt_duplex_listing(d, &listing, &man_bytes);
	sb_rt_timer_mark(&tm, "manifest");
	int64_t t1 = sb_wall_ms() / 1000;
	out->manifest_bytes = man_bytes;
	sb_manifest man;
	sb_manifest_init(&man);
	char *why = NULL; /* a reason for the full path */
	if (listed)
		err = sb_manifest_parse(listing, man_bytes, &man);
	if (listed && !err && man.untrusted)
		why = sb_xstrdup(man.untrusted);
	else if (listed && !err &&
	         (man.now_sec < t0 - SKEW_MAX_SEC - 1 || man.now_sec > t1 + SKEW_MAX_SEC + 1))
		why = sb_strfmt("the far clock is %llds away from ours",
		                (long long)(man.now_sec - t0));
	planner pl = {.rt = rt, .man = &man, .since = since, .checksum = checksum};
	sb_snap_init(&pl.src);
	sb_snap_init(&pl.git_next);
	if (listed && !err && !why)
		plan_entries(&pl);
	/* The answer: the list, or nothing (the far side then stops). */
	uint64_t bytes = 0;
	sb_rt_out *o = NULL;
	sb_err *werr = NULL;
	if (listed && !err && !why && pl.list.len) {
		err = sb_rt_out_open(f, p, &o);
		if (!err) {
			int fd = sb_rt_duplex_answer_begin(d, sb_rt_out_callbacks(o));
			werr = sb_write_all(fd, "SEL\n", 4);
			if (!werr)
				werr = sb_write_all(fd, pl.list.data, pl.list.len);
		}
	} else if (listed) {
		sb_rt_duplex_answer_begin(d, NULL);
	}
	sb_exec_result *res;
	sb_err *rerr = sb_rt_duplex_finish(d, &res);
	if (o) {
		/* the far tar's failure (or the extractor's) is the cause of an EPIPE here */
		sb_err_free(werr);
		err = sb_rt_out_close(o, rerr, script, res, &bytes);
	} else if (!err && !why && (rerr || !listed)) {
		/* never an empty listing taken for "everything was deleted" */
		err = rerr ? rerr
		           : sb_err_new(SB_E_PROTOCOL, "the far side ended without its listing");
	} else {
		sb_err_free(rerr);
		if (!why && !err)
			sb_rt_progress_complete(p, 0, 0);
	}
	sb_rt_duplex_free(d);
	free(script);
	if (!err && !why)
		err = fill_from_tree(&pl, f->local_dest);
	sb_rt_timer_finish(&tm, err != NULL);
	if (err || why) {
		planner_deinit(&pl);
		sb_manifest_deinit(&man);
		if (err && is_final(err)) {
			free(why);
			return err;
		}
		fall_back(c, why ? why : err->msg);
		free(why);
		sb_err_free(err);
		return NULL;
	}
	*full = false;
	take_plan(rt, &pl, bytes, t0, out);
	planner_deinit(&pl);
	sb_manifest_deinit(&man);
	return NULL;
}

void sb_rt_delta_deinit(sb_rt_delta *d)
{
	sb_snap_deinit(&d->src);
	sb_snap_deinit(&d->git_next);
}
