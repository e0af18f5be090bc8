/* Incremental staging (#15): staging into a directory that already holds an earlier staging of
 * the same workspace (a reused lease, a --remote-dir) sends only what differs and deletes what
 * was deleted locally. One remote command, both ways at once:
 *
 *   far side: checks its staging record (<runtime root>/sync-state: "1 <workspace id> <time>"),
 *             prints "S <time>" and its manifest (sb_rt_script_listing; or one "U <reason>"),
 *             then reads one line from stdin: "FULL" (wipe and extract, as a plain staging) or
 *             "DELTA" (then one line per path to delete, an empty line, and the tar of the
 *             changed entries), and writes a new record when everything succeeded.
 *   host:     reads the manifest from the command's stdout while it runs, compares it with the
 *             local tree, and writes the answer into the command's stdin.
 *
 * (duplex.c runs such a command.)
 *
 * Which far files are the local ones: kind, permission bits, size and whole-second mtime equal,
 * and that mtime older than the earlier staging's time minus the skew allowance (files staged
 * by tar keep their local mtimes; whatever the sandbox wrote after it is newer, so it is hashed
 * on the far side and compared by content). --checksum hashes every far file. The record is
 * removed before anything changes, so a staging that failed part way is never trusted.
 * Falls back to the whole tree with one log line when the record is missing or another
 * workspace's, a tool is missing, the clocks disagree, or a deleted path holds a newline.
 */
#include "rt.h"

#include <stdlib.h>
#include <string.h>

#define SKEW_SEC 2 /* as delta.c: the far clock may be this far from ours */
#define STATE_NAME "sync-state"
#define DELETE_BATCH 512 /* paths per rm: far below any ARG_MAX */
#define DUPLEX_OUTPUT_CAP 4096u
#define RECORD_MAX 256 /* "1 <64 hex> <time>\n" */
/* A first staging: no fallback to speak of. */
#define NO_RECORD "no earlier staging"

/* ---- the far script */

static void workspace_id(const char *local_dir, char out[SB_SHA256_HEX_LEN])
{
	sb_sha256_hex(local_dir, strlen(local_dir), out);
}

static char *stage_script(const sb_runtime *rt, const sb_rt_stage *s, const char *id, bool checksum)
{
	char *state = sb_strfmt("%s/%s", rt->root_dir, STATE_NAME);
	sb_buf b = SB_BUF_INIT;
	sb_buf_appends(&b, "trap 'exit 129' HUP INT TERM; ");
	sb_rt_script_stage_head(&b, s);
	/* Builtins wherever they do: every process costs, inside a sandbox most. */
	sb_buf_appends(&b, "cd ");
	sb_shell_quote(&b, s->remote_dir);
	sb_buf_appends(&b, " 2>/dev/null || { mkdir -p ");
	sb_shell_quote(&b, s->remote_dir);
	sb_buf_appends(&b, " && cd ");
	sb_shell_quote(&b, s->remote_dir);
	sb_buf_appends(&b, "; } || exit 1; st=; if [ -f ");
	sb_shell_quote(&b, state);
	sb_buf_appends(&b, " ]; then IFS= read -r st < ");
	sb_shell_quote(&b, state);
	sb_buf_appendf(&b,
	               " || :; fi; set -- $st; if [ -z \"$st\" ]; then printf 'U " NO_RECORD
	               "\\0'; elif [ \"$1\" != 1 ] || [ \"$2\" != %s ]; then printf 'U the "
	               "earlier staging is of another workspace\\0'; else case $3 in "
	               "''|*[!0-9]*) printf 'U the staging record is unreadable\\0';; *) "
	               "printf 'S %%s\\0' \"$3\"; ",
	               id);
	sb_rt_script_listing(&b, &rt->archive_ex, "$(($3 - 4))", checksum, true);
	/* An emptied record reads as none: a staging that fails from here on is never trusted. */
	sb_buf_appends(&b, ";; esac; fi; IFS= read -r mode || exit 1; [ -z \"$st\" ] || : > ");
	sb_shell_quote(&b, state);
	char *full = sb_rt_script_extract(s->remote_dir, NULL, s->spare);
	/* DELTA: the paths to delete (one rm per DELETE_BATCH), then the archive; CLEAN: the
	 * paths only (nothing to send). */
	sb_buf_appendf(&b,
	               " || exit 1; case $mode in FULL) %s;; DELTA|CLEAN) set --; while IFS= "
	               "read -r p && [ -n \"$p\" ]; do set -- \"$@\" \"./$p\"; if [ $# -ge %d ]; "
	               "then rm -rf -- \"$@\" || exit 1; set --; fi; done; if [ $# -gt 0 ]; then "
	               "rm -rf -- \"$@\" || exit 1; fi; [ \"$mode\" = CLEAN ] || tar -x -p -o -f - "
	               "-C ",
	               full, DELETE_BATCH);
	free(full);
	sb_shell_quote(&b, s->remote_dir);
	sb_buf_appends(&b, ";; *) exit 1;; esac && { [ -d ");
	sb_shell_quote(&b, rt->root_dir);
	sb_buf_appends(&b, " ] || mkdir -p ");
	sb_shell_quote(&b, rt->root_dir);
	sb_buf_appendf(&b, "; } && printf '1 %s %lld\\n' > ", id, (long long)rt->base_sec);
	sb_shell_quote(&b, state);
	free(state);
	return sb_buf_steal(&b, NULL);
}

/* ---- comparing the far manifest with the local tree */

typedef struct plan {
	char **send; /* sorted: local entries to archive */
	char **pass; /* sorted: directories holding some of them */
	sb_buf del;  /* "<path>\n" per far path to remove first */
	const char *why_full;
} plan;

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool in_sorted(char **v, size_t n, const char *path)
{
	return v && bsearch(&path, v, n, sizeof *v, cmp_str) != NULL;
}

typedef struct picker {
	char **send, **pass;
	size_t n_send, n_pass;
} picker;

static int pick(void *ud, const char *relpath, sb_ftype type)
{
	picker *k = ud;
	if (in_sorted(k->send, k->n_send, relpath))
		return SB_TAR_PICK_ADD;
	if (type == SB_FT_DIR && in_sorted(k->pass, k->n_pass, relpath))
		return SB_TAR_PICK_DESCEND;
	return SB_TAR_PICK_SKIP;
}

/* The baseline hashed every file of the merge set just before: take its hash when it is the
 * same file, else hash now. */
static sb_err *local_hash(const sb_runtime *rt, sb_snap *local, sb_snap_entry *l)
{
	if (l->hashed)
		return NULL;
	const sb_snap_entry *b = sb_snap_find(&rt->baseline, l->path);
	if (b && b->hashed && !b->content_digest && b->type == SB_FT_FILE && b->size == l->size &&
	    b->mtime_sec == l->mtime_sec) {
		memcpy(l->sha, b->sha, SB_SHA256_LEN);
		l->hashed = true;
		return NULL;
	}
	return sb_snap_entry_hash(local, l);
}

static sb_err *same(const sb_runtime *rt, sb_snap *local, sb_snap_entry *l,
                    const sb_manifest_entry *m, int64_t since, bool checksum, bool *eq)
{
	*eq = false;
	if (l->type != m->type)
		return NULL;
	if (m->type == SB_FT_DIR) {
		*eq = (l->mode & 07777) == m->mode;
		return NULL;
	}
	if (m->type == SB_FT_FILE && m->hashed && (l->mode & 0777) == (m->mode & 0777) &&
	    l->size == m->size) {
		sb_err *err = local_hash(rt, local, l);
		if (err)
			return err;
	}
	*eq = sb_rt_entry_same(l, m, since, checksum);
	return NULL;
}

/* Parents of path (not itself) into *pass. */
static void push_parents(char ***pass, const char *path)
{
	char *p = sb_xstrdup(path);
	for (char *q = strrchr(p, '/'); q; q = strrchr(p, '/')) {
		*q = '\0';
		sb_strv_push(pass, p);
	}
	free(p);
}

static bool is_spared(char *const *spare, const char *path)
{
	size_t n = strcspn(path, "/");
	for (size_t i = 0; spare && spare[i]; i++)
		if (strlen(spare[i]) == n && strncmp(spare[i], path, n) == 0)
			return true;
	return false;
}

static bool under(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	return n && strncmp(path, dir, n) == 0 && path[n] == '/';
}

static sb_err *make_plan(const sb_runtime *rt, const sb_rt_stage *s, sb_snap *local,
                         const sb_manifest *man, int64_t since, bool checksum, plan *pl)
{
	const char *deleted = NULL; /* the last far directory removed: its contents go with it */
	for (size_t i = 0; i < man->n; i++) {
		const sb_manifest_entry *m = &man->v[i];
		if (deleted && under(m->path, deleted))
			continue;
		if (is_spared(s->spare, m->path))
			continue;
		sb_snap_entry *l = sb_snap_find(local, m->path);
		bool drop = !l || l->type != m->type || m->type == SB_FT_SYMLINK ||
		            sb_rt_excluded_path(s->ex, m->path, m->type == SB_FT_DIR);
		if (drop && l && m->type == SB_FT_SYMLINK && l->type == SB_FT_SYMLINK) {
			bool eq;
			sb_err *err = same(rt, local, l, m, since, checksum, &eq);
			if (err)
				return err;
			drop = !eq;
		}
		if (!drop)
			continue;
		if (strchr(m->path, '\n')) {
			pl->why_full = "a path to delete holds a newline";
			return NULL;
		}
		sb_buf_appends(&pl->del, m->path);
		sb_buf_appendc(&pl->del, '\n');
		if (m->type == SB_FT_DIR)
			deleted = m->path;
	}
	for (size_t i = 0; i < local->n; i++) {
		sb_snap_entry *l = &local->v[i];
		const sb_manifest_entry *m = sb_manifest_find(man, l->path);
		bool eq = false;
		if (m) {
			sb_err *err = same(rt, local, l, m, since, checksum, &eq);
			if (err)
				return err;
		}
		if (eq)
			continue;
		sb_strv_push(&pl->send, l->path);
		push_parents(&pl->pass, l->path);
	}
	return NULL;
}

/* ---- answering */

static void fall_back(const char *why)
{
	sb_warn("incremental staging not possible (%s): sending the whole workspace", why);
}

typedef struct answer {
	bool delta;
	const sb_rt_stage *s;
	plan *pl;
	uint64_t bytes;
} answer;

static sb_err *write_answer(int fd, answer *a)
{
	bool clean = a->delta && !a->pl->send;
	const char *head = clean ? "CLEAN\n" : a->delta ? "DELTA\n" : "FULL\n";
	sb_err *err = sb_write_all(fd, head, strlen(head));
	if (!err && a->delta) {
		if (a->pl->del.len)
			err = sb_write_all(fd, a->pl->del.data, a->pl->del.len);
		if (!err)
			err = sb_write_all(fd, "\n", 1);
	}
	if (err || clean)
		return err;
	if (!a->delta)
		return sb_rt_stage_tar(a->s, NULL, NULL, fd, &a->bytes);
	picker k = {.send = a->pl->send,
	            .pass = a->pl->pass,
	            .n_send = sb_strv_len(a->pl->send),
	            .n_pass = sb_strv_len(a->pl->pass)};
	return sb_rt_stage_tar(a->s, pick, &k, fd, &a->bytes);
}

/* The plan from the far manifest and the earlier staging's time, when they can be trusted. */
static sb_err *plan_delta(sb_runtime *rt, const sb_rt_stage *s, const sb_manifest *man,
                          int64_t stamp, bool checksum, int64_t t0, int64_t t1, plan *pl,
                          bool *delta)
{
	*delta = false;
	if (man->now_sec < t0 - SKEW_SEC - 1 || man->now_sec > t1 + SKEW_SEC + 1 ||
	    stamp > t1 + SKEW_SEC + 1) {
		fall_back("the far clock disagrees with ours");
		return NULL;
	}
	/* The plan compares hashes: the baseline's, when the file is the same, saves a read. */
	sb_err *err = sb_rt_baseline_hash(rt);
	if (err)
		return err;
	sb_snap local;
	err = sb_snap_take(s->local_dir, s->ex, false, &local);
	if (!err)
		err = make_plan(rt, s, &local, man, sb_rt_hash_since(stamp), checksum, pl);
	sb_snap_deinit(&local);
	if (err)
		return err;
	if (pl->why_full) {
		fall_back(pl->why_full);
		return NULL;
	}
	size_t n = sb_strv_len(pl->send);
	if (n)
		qsort(pl->send, n, sizeof *pl->send, cmp_str);
	n = sb_strv_len(pl->pass);
	if (n)
		qsort(pl->pass, n, sizeof *pl->pass, cmp_str);
	*delta = true;
	return NULL;
}

/* Decide from the listing: *delta, and the plan when it is one. Never an error for a reason to
 * send everything. */
static sb_err *decide(sb_runtime *rt, const sb_rt_stage *s, const char *data, size_t len,
                      bool checksum, int64_t t0, int64_t t1, plan *pl, bool *delta)
{
	*delta = false;
	int64_t stamp = -1;
	if (len > 2 && data[0] == 'S' && data[1] == ' ') {
		const char *nul = memchr(data, '\0', len);
		char *end = NULL;
		long long v = strtoll(data + 2, &end, 10);
		if (nul && end == nul && v > 0) /* digits only: the far script checked them */
			stamp = v;
		size_t skip = nul ? (size_t)(nul - data) + 1 : len;
		data += skip;
		len -= skip;
	}
	sb_manifest man;
	sb_err *err = sb_manifest_parse(data, len, &man);
	if (err) {
		fall_back(err->msg);
		sb_err_free(err);
		return NULL;
	}
	if (man.untrusted && strcmp(man.untrusted, NO_RECORD) == 0) {
		sb_debug("staging %s: the first into %s", s->local_dir, s->remote_dir);
		sb_manifest_deinit(&man);
		return NULL;
	}
	if (man.untrusted || stamp < 0) {
		fall_back(man.untrusted ? man.untrusted : "no staging record");
		sb_manifest_deinit(&man);
		return NULL;
	}
	err = plan_delta(rt, s, &man, stamp, checksum, t0, t1, pl, delta);
	sb_manifest_deinit(&man);
	return err;
}

/* ---- the native path (SB_RUNNER_CAP_DELTA): the runner reads the record and the far tree
 * itself and applies the delta; no far command. */

static char *record_path(const sb_runtime *rt)
{
	return sb_strfmt("%s/%s", rt->root_dir, STATE_NAME);
}

sb_err *sb_rt_delta_record(sb_runtime *rt, const sb_rt_ctx *c)
{
	char id[SB_SHA256_HEX_LEN];
	workspace_id(rt->local_dir, id);
	char *path = record_path(rt);
	/* The staging just ended: whatever changes there from now on gets a later ctime. (A
	 * fourth field, which the command path's record lacks and its script ignores.) */
	rt->far_known_ns = sb_rt_ctime_clock_ns();
	char *rec =
	    sb_strfmt("1 %s %lld %lld\n", id, (long long)rt->base_sec, (long long)rt->far_known_ns);
	sb_err *err = sb_runner_file_write(c->runner, path, rec, strlen(rec));
	free(rec);
	free(path);
	return err;
}

/* The earlier staging's time from its record, or -1 with *why (NULL: there was none); *far_ns
 * its sb_rt_delta_record moment (0 when the record has none). */
static int64_t read_record(const sb_runtime *rt, const sb_rt_ctx *c, const char **why,
                           int64_t *far_ns)
{
	*why = NULL;
	*far_ns = 0;
	char *path = record_path(rt);
	sb_buf b = SB_BUF_INIT;
	sb_err *err = sb_runner_file_read(c->runner, path, RECORD_MAX, &b);
	free(path);
	int64_t stamp = -1;
	char id[SB_SHA256_HEX_LEN];
	workspace_id(rt->local_dir, id);
	const char *r = sb_buf_cstr(&b);
	size_t idlen = SB_SHA256_HEX_LEN - 1;
	if (err && err->code != SB_E_NOTFOUND)
		*why = "the staging record cannot be read";
	else if (err || b.len == 0)
		; /* none, or emptied by a staging that did not finish */
	else if (strncmp(r, "1 ", 2) != 0 || strlen(r) < 2 + idlen + 2 || r[2 + idlen] != ' ')
		*why = "the staging record is unreadable";
	else if (strncmp(r + 2, id, idlen) != 0)
		*why = "the earlier staging is of another workspace";
	else {
		char *end = NULL;
		long long v = strtoll(r + 3 + idlen, &end, 10), ns = 0;
		if (v > 0 && end && *end == ' ')
			ns = strtoll(end + 1, &end, 10);
		if (v > 0 && ns >= 0 && end && (*end == '\n' || *end == '\0')) {
			stamp = v;
			*far_ns = ns;
		} else {
			*why = "the staging record is unreadable";
		}
	}
	sb_err_free(err);
	sb_buf_deinit(&b);
	return stamp;
}

static sb_err *native_stage(sb_runtime *rt, const sb_rt_ctx *c, const sb_rt_stage *s, bool checksum,
                            sb_rt_progress *p, uint64_t *bytes, bool *done)
{
	sb_err *err = s->ours_marker || s->create_fresh ? sb_rt_stage_guard(c, s) : NULL;
	if (err)
		return err;
	int64_t t0 = sb_wall_ms() / 1000;
	const char *why;
	int64_t far_ns;
	int64_t stamp = read_record(rt, c, &why, &far_ns);
	if (stamp < 0) {
		if (why)
			fall_back(why);
		else
			sb_debug("staging %s: the first into %s", s->local_dir, s->remote_dir);
		return NULL;
	}
	sb_rt_timer tm;
	sb_rt_timer_start(&tm, &c->progress, "stage", s->label ? s->label : "tree", true);
	/* as the script's find -newermt @(stamp - 4), and every file written there since that
	 * staging ended, whatever its mtime says */
	sb_manifest_opts mo = {.hash_newer_than = stamp - 4,
	                       .hash_ctime_since_ns = far_ns,
	                       .hash_all = checksum,
	                       .list_pruned = true};
	sb_manifest man;
	err = sb_runner_manifest(c->runner, s->remote_dir, &rt->archive_ex, &mo, &man);
	sb_rt_timer_mark(&tm, "manifest");
	int64_t t1 = sb_wall_ms() / 1000;
	plan pl = {.del = SB_BUF_INIT};
	bool delta = false;
	if (err && err->code != SB_E_CANCELED) {
		fall_back(err->msg);
		sb_err_free(err);
		err = NULL;
	} else if (!err) {
		err = plan_delta(rt, s, &man, stamp, checksum, t0, t1, &pl, &delta);
	}
	sb_manifest_deinit(&man);
	/* Nothing to change there: only the record's time moves on. */
	bool same = delta && !pl.send && pl.del.len == 0;
	char *path = record_path(rt);
	/* An emptied record reads as none: a delta that fails from here on is never trusted. */
	if (!err && delta && !same)
		err = sb_runner_file_write(c->runner, path, "", 0);
	free(path);
	if (!err && same) {
		err = sb_rt_delta_record(rt, c);
		sb_rt_progress_complete(p, 0, 0);
		*done = err == NULL;
	} else if (!err && delta) {
		picker k = {.send = pl.send,
		            .pass = pl.pass,
		            .n_send = sb_strv_len(pl.send),
		            .n_pass = sb_strv_len(pl.pass)};
		char **dels = sb_rt_split_list(&pl.del, '\n');
		sb_rt_stage d = *s;
		d.delta = true;
		d.dels = dels;
		d.pick = k.n_send ? pick : NULL;
		d.pick_ud = &k;
		sb_rt_progress_report(p, 0, 0);
		err = sb_rt_stream_native_in(c, &d, p, &tm, bytes);
		sb_strv_free(dels);
		if (!err)
			err = sb_rt_delta_record(rt, c);
		*done = err == NULL;
	}
	sb_rt_timer_finish(&tm, err != NULL);
	sb_strv_free(pl.send);
	sb_strv_free(pl.pass);
	sb_buf_deinit(&pl.del);
	return err ? sb_err_prefix(err, "staging %s into %s", s->local_dir, s->remote_dir) : NULL;
}

sb_err *sb_rt_delta_stage(sb_runtime *rt, const sb_rt_ctx *c, const sb_rt_stage *s, bool checksum,
                          sb_rt_progress *p, uint64_t *bytes, bool *done)
{
	*done = false;
	*bytes = 0;
	if (s->native && sb_runner_can_delta(c->runner))
		return native_stage(rt, c, s, checksum, p, bytes, done);
	if (!sb_rt_can_stream(c)) {
		fall_back("the runner cannot stream");
		return NULL;
	}
	char id[SB_SHA256_HEX_LEN];
	workspace_id(rt->local_dir, id);
	sb_rt_timer tm;
	sb_rt_timer_start(&tm, &c->progress, "stage", s->label ? s->label : "tree", rt->native);
	char *script = stage_script(rt, s, id, checksum);
	int64_t t0 = sb_wall_ms() / 1000;
	sb_rt_duplex *d;
	sb_err *err = sb_rt_duplex_start(c, script, DUPLEX_OUTPUT_CAP, &d);
	free(script);
	if (err) {
		sb_rt_timer_finish(&tm, true);
		return err;
	}
	sb_rt_progress_report(p, 0, 0);
	const char *listing;
	size_t man_bytes;
	bool listed = sb_rt_duplex_listing(d, &listing, &man_bytes);
	sb_rt_timer_mark(&tm, "manifest");
	int64_t t1 = sb_wall_ms() / 1000;
	plan pl = {.del = SB_BUF_INIT};
	answer a = {.s = s, .pl = &pl};
	sb_err *werr = NULL;
	if (listed) {
		err = decide(rt, s, listing, man_bytes, checksum, t0, t1, &pl, &a.delta);
		int fd = sb_rt_duplex_answer_begin(d, NULL);
		if (!err)
			werr = write_answer(fd, &a);
	}
	sb_exec_result *res;
	sb_err *rerr = sb_rt_duplex_finish(d, &res);
	sb_rt_timer_mark(&tm, "stream");
	if (rerr && (rerr = sb_rt_stage_head_error(s, res, rerr))->code == SB_E_EXISTS) {
		sb_err_free(werr);
		werr = NULL;
	}
	if (!err && rerr && !listed && rerr->code != SB_E_EXISTS && rerr->code != SB_E_CANCELED &&
	    rerr->code != SB_E_TIMEOUT) {
		/* it failed before it changed anything: the usual staging follows */
		const char *why = strstr(rerr->msg, "failed with exit code");
		fall_back(why ? why : rerr->msg);
		sb_err_free(rerr);
		sb_rt_timer_finish(&tm, true);
	} else {
		/* the cause: the far command's failure rather than the EPIPE it gave our writes */
		if (!err)
			err = rerr && werr && werr->code == SB_E_IO ? rerr : (werr ? werr : rerr);
		if (err != rerr)
			sb_err_free(rerr);
		if (err != werr)
			sb_err_free(werr);
		sb_rt_timer_finish(&tm, err != NULL);
		if (err)
			sb_rt_progress_fail(p);
		else
			sb_rt_progress_complete(p, a.bytes, a.bytes);
		*done = err == NULL;
		*bytes = a.bytes + man_bytes + pl.del.len;
	}
	sb_rt_duplex_free(d);
	sb_strv_free(pl.send);
	sb_strv_free(pl.pass);
	sb_buf_deinit(&pl.del);
	return err ? sb_err_prefix(err, "staging %s into %s", s->local_dir, s->remote_dir) : NULL;
}
