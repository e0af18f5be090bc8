/* The end-of-run report (see run_report.h): one place that knows what happened, rendered for
 * people (a few lines on stderr) and for programs (one JSON object). */
#include "run_report.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "sb_json.h"

void run_report_init(run_report *r)
{
	memset(r, 0, sizeof *r);
	r->conflicts = json_array();
}

void run_report_deinit(run_report *r)
{
	free(r->lease_id);
	sb_strv_free(r->added);
	sb_strv_free(r->changed);
	sb_strv_free(r->deleted);
	json_decref(r->conflicts);
	sb_egress_stats_deinit(&r->net);
	free(r->branch);
	free(r->git_warning);
	sb_strv_free(r->excluded.special_paths);
	sb_strv_free(r->excluded.hardlink_paths);
	memset(r, 0, sizeof *r);
}

void run_report_set_result(run_report *r, const sb_exec_result *res)
{
	r->ran = true;
	r->has_exit_code = res->has_exit_code;
	r->exit_code = res->exit_code;
	snprintf(r->signal, sizeof r->signal, "%s", res->signal);
	r->timed_out = res->timed_out;
	r->oom_killed = res->oom_killed;
	r->truncated = res->out_truncated || res->err_truncated;
}

/* A name as JSON: a string when it is valid UTF-8, else {"b64": base64 of its bytes}, so
 * that every name is represented (docs/sandbar.1). */
static json_t *name_json(const char *name)
{
	json_t *j = json_string(name);
	if (j)
		return j;
	sb_buf b = SB_BUF_INIT;
	sb_b64_encode(name, strlen(name), &b);
	j = json_pack("{s:s}", "b64", sb_buf_cstr(&b));
	sb_buf_deinit(&b);
	return j;
}

void run_report_set_changes(run_report *r, const sb_restore_report *rr)
{
	sb_strv_free(r->added);
	sb_strv_free(r->changed);
	sb_strv_free(r->deleted);
	r->added = sb_strv_dup(rr->added);
	r->changed = sb_strv_dup(rr->changed);
	r->deleted = sb_strv_dup(rr->deleted);
	r->bytes_down = rr->bytes_moved;
	free(r->branch);
	r->branch = rr->branch ? sb_xstrdup(rr->branch) : NULL;
	r->n_commits = rr->n_commits;
	free(r->git_warning);
	r->git_warning = rr->git_warning ? sb_xstrdup(rr->git_warning) : NULL;
	json_array_clear(r->conflicts);
	for (size_t i = 0; i < rr->n_conflicts; i++) {
		const sb_runtime_conflict *c = &rr->conflicts[i];
		json_t *o = json_pack("{s:o, s:s, s:s}", "path", name_json(c->path), "kind",
		                      sb_conflict_kind_name(c->kind), "kept",
		                      c->kept_remote ? "remote" : "local");
		json_object_set_new(o, "remote_copy",
		                    c->remote_copy ? json_string(c->remote_copy) : json_null());
		json_array_append_new(r->conflicts, o);
	}
}

void run_report_set_excluded(run_report *r, const sb_runtime_excluded *ex)
{
	sb_strv_free(r->excluded.special_paths);
	sb_strv_free(r->excluded.hardlink_paths);
	r->excluded = *ex;
	r->excluded.special_paths = sb_strv_dup(ex->special_paths);
	r->excluded.hardlink_paths = sb_strv_dup(ex->hardlink_paths);
	r->has_excluded = true;
}

static json_t *strv_json(char **v)
{
	json_t *a = json_array();
	for (size_t i = 0; v && v[i]; i++)
		json_array_append_new(a, name_json(v[i]));
	return a;
}

json_t *run_report_json(const run_report *r)
{
	json_t *conflict_paths = json_array();
	size_t i;
	json_t *c;
	json_array_foreach(r->conflicts, i, c)
	    json_array_append(conflict_paths, json_object_get(c, "path"));
	json_t *o = json_object();
	json_object_set_new(o, "exit_code",
	                    r->ran && r->has_exit_code ? json_integer(r->exit_code) : json_null());
	json_object_set_new(o, "signal", r->signal[0] ? json_string(r->signal) : json_null());
	json_object_set_new(o, "timed_out", json_boolean(r->timed_out));
	json_object_set_new(o, "lease_id", r->lease_id ? json_string(r->lease_id) : json_null());
	json_object_set_new(
	    o, "phases",
	    json_pack("{s:I, s:I, s:I, s:I, s:I}", "acquire_ms", (json_int_t)r->phases.acquire_ms,
	              "prepare_ms", (json_int_t)r->phases.prepare_ms, "exec_ms",
	              (json_int_t)r->phases.exec_ms, "restore_ms", (json_int_t)r->phases.restore_ms,
	              "release_ms", (json_int_t)r->phases.release_ms));
	json_object_set_new(o, "bytes_up", json_integer((json_int_t)r->bytes_up));
	json_object_set_new(o, "bytes_down", json_integer((json_int_t)r->bytes_down));
	json_object_set_new(o, "changes",
	                    json_pack("{s:o, s:o, s:o, s:o}", "added", strv_json(r->added),
	                              "changed", strv_json(r->changed), "deleted",
	                              strv_json(r->deleted), "conflicts", conflict_paths));
	json_object_set(o, "conflict_details", r->conflicts);
	json_object_set_new(o, "output_truncated", json_boolean(r->truncated));
	if (r->net_mode) {
		json_t *n = json_pack("{s:s}", "mode", r->net_mode);
		if (r->has_egress) {
			json_object_update_new(
			    n, json_pack("{s:I, s:I, s:I, s:I, s:o}", "connections_allowed",
			                 (json_int_t)r->net.conns_allowed, "connections_denied",
			                 (json_int_t)r->net.conns_denied, "bytes_up",
			                 (json_int_t)r->net.bytes_up, "bytes_down",
			                 (json_int_t)r->net.bytes_down, "denied",
			                 strv_json(r->net.denied)));
			if (r->net.denied_more)
				json_object_set_new(n, "denied_more",
				                    json_integer((json_int_t)r->net.denied_more));
		}
		json_object_set_new(o, "network", n);
	}
	json_object_set_new(o, "branch", r->branch ? json_string(r->branch) : json_null());
	json_object_set_new(o, "commits", json_integer((json_int_t)r->n_commits));
	if (r->has_excluded) {
		json_t *by = json_object();
		for (int s = SB_RULE_GITIGNORE; s < SB_RULE_N_SOURCES; s++)
			json_object_set_new(by, sb_rule_source_name((sb_rule_source)s),
			                    json_pack("{s:I, s:I}", "entries",
			                              (json_int_t)r->excluded.entries[s], "bytes",
			                              (json_int_t)r->excluded.bytes[s]));
		json_object_set_new(o, "excluded", by);
		json_object_set_new(o, "skipped_special",
		                    json_pack("{s:I, s:o}", "count",
		                              (json_int_t)r->excluded.specials, "paths",
		                              strv_json(r->excluded.special_paths)));
		json_object_set_new(o, "hard_links_copied",
		                    json_pack("{s:I, s:o}", "count",
		                              (json_int_t)r->excluded.hardlinks, "paths",
		                              strv_json(r->excluded.hardlink_paths)));
	}
	json_object_set_new(o, "oom_killed", json_boolean(r->oom_killed));
	char ob[96];
	const char *outcome = run_report_outcome(r, ob, sizeof ob);
	json_object_set_new(o, "outcome", outcome ? json_string(outcome) : json_null());
	return o;
}

void run_report_print_json(const run_report *r, FILE *f)
{
	json_t *o = run_report_json(r);
	char *s = sb_json_dumps(o);
	fprintf(f, "%s\n", s);
	fflush(f);
	free(s);
	json_decref(o);
}

/* One unit everywhere (the progress bar too): MiB. */
static void human_bytes(uint64_t n, char *out, size_t len)
{
	snprintf(out, len, "%.1f MiB", (double)n / (1024.0 * 1024.0));
}

/* A size as given to --memory: 64M, 2G, 512K, else bytes. */
static void size_flag(uint64_t n, char *out, size_t len)
{
	static const char units[] = "GMK";
	for (int i = 0; i < 3; i++) {
		uint64_t u = 1ull << (10 * (3 - i));
		if (n >= u && n % u == 0) {
			snprintf(out, len, "%llu%c", (unsigned long long)(n / u), units[i]);
			return;
		}
	}
	snprintf(out, len, "%llu", (unsigned long long)n);
}

/* A duration as given to --timeout: 10s, 2m, 1h, 1.5s. */
static void duration_flag(int64_t ms, char *out, size_t len)
{
	if (ms >= 3600000 && ms % 3600000 == 0)
		snprintf(out, len, "%lldh", (long long)(ms / 3600000));
	else if (ms >= 60000 && ms % 60000 == 0)
		snprintf(out, len, "%lldm", (long long)(ms / 60000));
	else if (ms % 1000 == 0)
		snprintf(out, len, "%llds", (long long)(ms / 1000));
	else
		snprintf(out, len, "%.1fs", (double)ms / 1000.0);
}

const char *run_report_outcome(const run_report *r, char *buf, size_t len)
{
	char v[32];
	if (r->timed_out) {
		if (!r->timeout_ms)
			return "timed out";
		duration_flag(r->timeout_ms, v, sizeof v);
		snprintf(buf, len, "timed out after %s", v);
		return buf;
	}
	if (r->oom_killed) {
		if (!r->memory_limit)
			return "killed: out of memory";
		size_flag(r->memory_limit, v, sizeof v);
		snprintf(buf, len, "killed: out of memory (limit %s)", v);
		return buf;
	}
	return NULL;
}

void run_report_put_name(FILE *f, const char *name)
{
	bool plain = true;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < 0x20 || *p >= 0x7f || *p == '"' || *p == '\\')
			plain = false;
	if (plain) {
		fputs(name, f);
		return;
	}
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		switch (*p) {
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		default:
			if (*p < 0x20 || *p >= 0x7f)
				fprintf(f, "\\%03o", *p);
			else
				fputc(*p, f);
		}
	}
	fputc('"', f);
}

/* Names the first few paths of a change list; a long list ends with a count. */
static void print_paths(FILE *f, char mark, char **paths)
{
	enum { SHOWN = 10 };
	size_t n = sb_strv_len(paths);
	for (size_t i = 0; i < n && i < SHOWN; i++) {
		fprintf(f, "sandbar:   %c ", mark);
		run_report_put_name(f, paths[i]);
		fputc('\n', f);
	}
	if (n > SHOWN)
		fprintf(f, "sandbar:   %c ... and %zu more\n", mark, n - SHOWN);
}

/* The inverse of name_json, quoted for a terminal. */
static void put_json_name(FILE *f, const json_t *j)
{
	if (json_is_string(j)) {
		run_report_put_name(f, json_string_value(j));
		return;
	}
	const char *b = json_string_value(json_object_get(j, "b64"));
	sb_buf raw = SB_BUF_INIT;
	sb_err *err = b ? sb_b64_decode(b, strlen(b), &raw) : NULL;
	if (b && !err)
		run_report_put_name(f, sb_buf_cstr(&raw));
	else
		fputs("(unnamed)", f);
	sb_err_free(err);
	sb_buf_deinit(&raw);
}

static void print_conflicts(const run_report *r, FILE *f)
{
	size_t i;
	json_t *c;
	json_array_foreach(r->conflicts, i, c)
	{
		const char *copy = json_string_value(json_object_get(c, "remote_copy"));
		fputs("sandbar: conflict: ", f);
		put_json_name(f, json_object_get(c, "path"));
		fprintf(f, " (%s; kept %s%s", json_string_value(json_object_get(c, "kind")),
		        json_string_value(json_object_get(c, "kept")),
		        copy || json_is_object(json_object_get(c, "remote_copy"))
		            ? ", remote version in "
		            : "");
		if (copy || json_is_object(json_object_get(c, "remote_copy")))
			put_json_name(f, json_object_get(c, "remote_copy"));
		fputs(")\n", f);
	}
}

void run_report_print_warnings(const run_report *r, FILE *f)
{
	print_conflicts(r, f);
	if (r->git_warning)
		fprintf(f, "sandbar: warning: %s\n", r->git_warning);
	if (r->has_excluded && r->excluded.specials)
		fprintf(f, "sandbar: warning: %llu FIFOs, sockets or devices were not staged\n",
		        (unsigned long long)r->excluded.specials);
	if (r->has_excluded && r->excluded.hardlinks)
		fprintf(f, "sandbar: warning: %llu hard-linked files staged as copies\n",
		        (unsigned long long)r->excluded.hardlinks);
	char ob[96];
	const char *outcome = run_report_outcome(r, ob, sizeof ob);
	if (outcome)
		fprintf(f, "sandbar: command %s\n", outcome);
	fflush(f);
}

void run_report_print_summary(const run_report *r, FILE *f)
{
	char up[32], down[32];
	human_bytes(r->bytes_up, up, sizeof up);
	human_bytes(r->bytes_down, down, sizeof down);
	size_t nconf = json_array_size(r->conflicts);
	fprintf(f,
	        "sandbar: %zu added, %zu changed, %zu deleted, %zu in conflict; %s up, %s down\n",
	        sb_strv_len(r->added), sb_strv_len(r->changed), sb_strv_len(r->deleted), nconf, up,
	        down);
	print_paths(f, '+', r->added);
	print_paths(f, '~', r->changed);
	print_paths(f, '-', r->deleted);
	print_conflicts(r, f);
	char ob[96];
	const char *outcome = run_report_outcome(r, ob, sizeof ob);
	if (outcome)
		fprintf(f, "sandbar: command %s\n", outcome);
	if (r->has_excluded) {
		for (int s = SB_RULE_GITIGNORE; s < SB_RULE_N_SOURCES; s++) {
			if (!r->excluded.entries[s])
				continue;
			char b[32];
			human_bytes(r->excluded.bytes[s], b, sizeof b);
			fprintf(f, "sandbar: not staged: %llu entries (%s) excluded by %s\n",
			        (unsigned long long)r->excluded.entries[s], b,
			        sb_rule_source_name((sb_rule_source)s));
		}
		if (r->excluded.specials) {
			fprintf(f, "sandbar: not staged: %llu FIFOs, sockets or devices\n",
			        (unsigned long long)r->excluded.specials);
			print_paths(f, '!', r->excluded.special_paths);
		}
		if (r->excluded.hardlinks) {
			fprintf(f,
			        "sandbar: %llu hard-linked files staged as copies: a change made "
			        "to one comes back as a separate file\n",
			        (unsigned long long)r->excluded.hardlinks);
			print_paths(f, '=', r->excluded.hardlink_paths);
		}
	}
	if (r->has_egress) {
		char nu[32], nd[32];
		human_bytes(r->net.bytes_up, nu, sizeof nu);
		human_bytes(r->net.bytes_down, nd, sizeof nd);
		fprintf(f,
		        "sandbar: network allowlist: %llu connections allowed (%s up, %s down), "
		        "%llu denied\n",
		        (unsigned long long)r->net.conns_allowed, nu, nd,
		        (unsigned long long)r->net.conns_denied);
		for (size_t k = 0; r->net.denied && r->net.denied[k]; k++) {
			/* a destination the sandboxed code chose: escaped like a file name */
			fputs("sandbar:   denied ", f);
			run_report_put_name(f, r->net.denied[k]);
			fputc('\n', f);
		}
		if (r->net.denied_more)
			fprintf(f, "sandbar:   ... and %llu more denied destinations\n",
			        (unsigned long long)r->net.denied_more);
	}
	if (r->branch)
		fprintf(f, "sandbar: %zu commit%s made in the sandbox on branch %s\n", r->n_commits,
		        r->n_commits == 1 ? "" : "s", r->branch);
	if (r->git_warning)
		fprintf(f, "sandbar: warning: %s\n", r->git_warning);
	fprintf(
	    f,
	    "sandbar: acquire %lldms, stage %lldms, run %lldms, restore %lldms, release %lldms\n",
	    (long long)r->phases.acquire_ms, (long long)r->phases.prepare_ms,
	    (long long)r->phases.exec_ms, (long long)r->phases.restore_ms,
	    (long long)r->phases.release_ms);
	fflush(f);
}

const char *run_report_restore_hint(const sb_err *err)
{
	if (err->code == SB_E_CONFLICT)
		return "--conflict fail: nothing was applied";
	if (err->sys_errno == ENOSPC)
		return "no space left on device";
	if (err->code == SB_E_FILE_TOO_LARGE)
		return "nothing was applied; raise the limit with --max-restore-size SIZE or "
		       "`unlimited', or max_restore_size in the config";
	return "";
}
