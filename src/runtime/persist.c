/* Saving a prepared runtime to a file and loading it back, so staging and restoring can happen
 * in different processes (`sandbar push` now, `sandbar pull` later). The file holds everything
 * restore needs: the directories, the exclude lists and the baseline snapshot. Paths are stored
 * base64-encoded because file names need not be UTF-8 and JSON strings must be. */
#include "rt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sb_json.h"

/* 3: file hashes are plain SHA-256. 2 held sb_rt_content_hash's digests: still read (its entries
 * are marked content_digest and compared by that hash), and written again for a baseline that
 * still holds them, so a state saved by the previous sandbar can always be pulled. */
#define PERSIST_VERSION 3
#define PERSIST_VERSION_CONTENT_DIGESTS 2
#define PERSIST_MAX_BYTES (512u * 1024u * 1024u)
#define PERSIST_MAX_DEPTH 8

static json_t *b64_json(const char *s)
{
	sb_buf b = SB_BUF_INIT;
	sb_b64_encode(s, strlen(s), &b);
	json_t *j = json_stringn(b.data ? b.data : "", b.len);
	sb_buf_deinit(&b);
	return j;
}

static json_t *strv_json(char *const *v)
{
	json_t *a = json_array();
	for (size_t i = 0; v && v[i]; i++)
		json_array_append_new(a, b64_json(v[i]));
	return a;
}

static const char *type_code(sb_ftype t)
{
	return t == SB_FT_DIR ? "d" : t == SB_FT_SYMLINK ? "l" : "f";
}

static void append_b64(sb_buf *out, const char *s)
{
	sb_b64_encode(s, strlen(s), out); /* base64's alphabet needs no JSON escape */
}

/* The baseline as a JSON array, written directly: one entry per file of the workspace, so a
 * JSON tree of it (five values per entry) would cost more than everything else in the file.
 * The same text a json_dumps of those entries gives, read back by load_baseline. */
static void append_baseline(sb_buf *out, const sb_snap *s)
{
	sb_buf_appendc(out, '[');
	for (size_t i = 0; i < s->n; i++) {
		const sb_snap_entry *e = &s->v[i];
		sb_buf_appends(out, i ? ",{\"p\":\"" : "{\"p\":\"");
		append_b64(out, e->path);
		sb_buf_appendf(out, "\",\"t\":\"%s\",\"m\":%llu,\"s\":%llu", type_code(e->type),
		               (unsigned long long)e->mode, (unsigned long long)e->size);
		if (e->type == SB_FT_FILE) {
			char hex[SB_SHA256_HEX_LEN];
			sb_hex_encode(e->sha, SB_SHA256_LEN, hex);
			sb_buf_appendf(out, ",\"h\":\"%s\"", hex);
		}
		if (e->type == SB_FT_SYMLINK && e->target) {
			sb_buf_appends(out, ",\"l\":\"");
			append_b64(out, e->target);
			sb_buf_appendc(out, '"');
		}
		sb_buf_appendc(out, '}');
	}
	sb_buf_appendc(out, ']');
}

sb_err *sb_runtime_save(sb_runtime *rt, const char *path)
{
	/* The baseline must stand alone: no lazily hashed entry may be left. */
	sb_err *err = sb_snap_hash_all(&rt->baseline);
	if (err)
		return sb_err_prefix(err, "saving the runtime state");
	json_t *root = json_object();
	bool content_digests = false;
	for (size_t i = 0; i < rt->baseline.n; i++)
		content_digests |= rt->baseline.v[i].content_digest;
	json_object_set_new(
	    root, "version",
	    json_integer(content_digests ? PERSIST_VERSION_CONTENT_DIGESTS : PERSIST_VERSION));
	json_object_set_new(root, "local_dir", b64_json(rt->local_dir));
	json_object_set_new(root, "remote_dir", b64_json(rt->remote_dir));
	json_object_set_new(root, "root_dir", b64_json(rt->root_dir));
	json_object_set_new(root, "overlay", b64_json(rt->overlay));
	json_object_set_new(root, "adapter_key", b64_json(rt->adapter_key));
	json_object_set_new(root, "shell", b64_json(rt->shell));
	json_object_set_new(root, "provider_key", b64_json(rt->provider_key));
	json_object_set_new(root, "lease_id", b64_json(rt->lease_id));
	json_object_set_new(root, "timeout_ms", json_integer((json_int_t)rt->ctx.timeout_ms));
	json_object_set_new(root, "native", json_boolean(rt->native));
	json_object_set_new(root, "archive_excludes", strv_json(rt->archive_ex.patterns));
	json_object_set_new(root, "restore_excludes", strv_json(rt->restore_ex.patterns));
	if (rt->matcher) {
		json_t *rules = json_object();
		for (int src = SB_RULE_PRESET; src < SB_RULE_N_SOURCES; src++)
			json_object_set_new(
			    rules, sb_rule_source_name((sb_rule_source)src),
			    b64_json(sb_matcher_rules(rt->matcher, (sb_rule_source)src)));
		json_object_set_new(rules, "gitignore",
		                    json_boolean(sb_matcher_uses_gitignore(rt->matcher)));
		json_object_set_new(root, "rules", rules);
	}
	json_object_set_new(root, "git_base", json_string(rt->git_base));
	json_object_set_new(root, "asset_keys", strv_json(rt->asset_keys));
	json_object_set_new(root, "asset_dirs", strv_json(rt->asset_dirs));
	char *text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	size_t tlen = text ? strlen(text) : 0;
	if (tlen < 2 || text[tlen - 1] != '}') {
		free(text);
		return sb_err_new(SB_E_INTERNAL, "serialising the runtime state failed");
	}
	/* the object's last member: the baseline */
	sb_buf b = SB_BUF_INIT;
	sb_buf_append(&b, text, tlen - 1);
	free(text);
	sb_buf_appends(&b, ",\"baseline\":");
	append_baseline(&b, &rt->baseline);
	sb_buf_appendc(&b, '}');
	err = sb_fs_write_atomic(path, b.data, b.len, 0600);
	sb_buf_deinit(&b);
	return err ? sb_err_prefix(err, "saving the runtime state") : NULL;
}

/* Decodes a base64 string field into a malloc'd C string (no NUL bytes allowed). */
static sb_err *get_b64(const json_t *obj, const char *key, char **out)
{
	const char *s = NULL;
	sb_err *err = sb_json_get_str(obj, key, true, &s);
	if (err)
		return err;
	sb_buf b = SB_BUF_INIT;
	err = sb_b64_decode(s, strlen(s), &b);
	if (!err && memchr(sb_buf_cstr(&b), '\0', b.len))
		err = sb_err_new(SB_E_INVAL, "field \"%s\" holds a NUL byte", key);
	if (err) {
		sb_buf_deinit(&b);
		return sb_err_prefix(err, "field \"%s\"", key);
	}
	*out = sb_buf_steal(&b, NULL);
	return NULL;
}

static sb_err *get_b64_strv(const json_t *obj, const char *key, char ***out)
{
	json_t *a = json_object_get(obj, key);
	if (!json_is_array(a))
		return sb_err_new(SB_E_INVAL, "field \"%s\" must be an array", key);
	char **v = sb_xcalloc(1, sizeof *v);
	size_t i;
	json_t *item;
	json_array_foreach(a, i, item)
	{
		json_t *wrap = json_pack("{s:O}", "x", item);
		char *s = NULL;
		sb_err *err = get_b64(wrap, "x", &s);
		json_decref(wrap);
		if (err) {
			sb_strv_free(v);
			return sb_err_prefix(err, "field \"%s\"[%zu]", key, i);
		}
		sb_strv_push(&v, s);
		free(s);
	}
	*out = v;
	return NULL;
}

static sb_err *load_entry(const json_t *o, bool content_digest, sb_snap_entry *e)
{
	const char *t = NULL, *hex = NULL;
	int64_t mode = 0, size = 0;
	sb_err *err = get_b64(o, "p", &e->path);
	if (!err)
		err = sb_json_get_str(o, "t", true, &t);
	if (!err)
		err = sb_json_get_int(o, "m", true, 0, 0xFFFFFF, &mode);
	if (!err)
		err = sb_json_get_int(o, "s", true, 0, INT64_MAX, &size);
	if (err)
		return err;
	e->mode = (mode_t)mode;
	e->size = (uint64_t)size;
	e->hashed = true;
	if (!strcmp(t, "d")) {
		e->type = SB_FT_DIR;
	} else if (!strcmp(t, "l")) {
		e->type = SB_FT_SYMLINK;
		err = get_b64(o, "l", &e->target);
	} else if (!strcmp(t, "f")) {
		e->type = SB_FT_FILE;
		e->content_digest = content_digest;
		err = sb_json_get_str(o, "h", true, &hex);
		if (!err && strlen(hex) != 2 * SB_SHA256_LEN)
			err = sb_err_new(SB_E_INVAL, "bad digest for %s", e->path);
		for (size_t i = 0; !err && i < SB_SHA256_LEN; i++) {
			unsigned v;
			if (sscanf(hex + 2 * i, "%2x", &v) != 1)
				err = sb_err_new(SB_E_INVAL, "bad digest for %s", e->path);
			e->sha[i] = (unsigned char)v;
		}
	} else {
		err = sb_err_new(SB_E_INVAL, "unknown entry type \"%s\"", t);
	}
	return err;
}

static sb_err *load_baseline(const json_t *root, int64_t version, sb_snap *s)
{
	json_t *a = json_object_get(root, "baseline");
	if (!json_is_array(a))
		return sb_err_new(SB_E_INVAL, "field \"baseline\" must be an array");
	size_t n = json_array_size(a);
	s->v = sb_xcalloc(n ? n : 1, sizeof *s->v);
	s->cap = n ? n : 1;
	for (size_t i = 0; i < n; i++) {
		sb_err *err = load_entry(json_array_get(a, i),
		                         version == PERSIST_VERSION_CONTENT_DIGESTS, &s->v[i]);
		s->n = i + 1;
		if (err)
			return sb_err_prefix(err, "baseline entry %zu", i);
		/* Lookups are binary searches: the saved order must still be sorted. */
		if (i > 0 && strcmp(s->v[i - 1].path, s->v[i].path) >= 0)
			return sb_err_new(SB_E_INVAL, "baseline entries are not sorted at %zu", i);
	}
	return NULL;
}

/* The user's exclusion rules as they were at staging (the .sandbarignore text included), and
 * the git HEAD the remote started from. */
static sb_err *load_rules(const json_t *root, sb_runtime *rt)
{
	const char *base = NULL;
	sb_err *err = sb_json_get_str(root, "git_base", false, &base);
	if (err)
		return err;
	if (base && (strlen(base) >= sizeof rt->git_base ||
	             strspn(base, "0123456789abcdef") != strlen(base)))
		return sb_err_new(SB_E_INVAL, "field \"git_base\" is not a commit id");
	snprintf(rt->git_base, sizeof rt->git_base, "%s", base ? base : "");
	json_t *rules = json_object_get(root, "rules");
	if (!rules)
		return NULL;
	if (!json_is_object(rules))
		return sb_err_new(SB_E_INVAL, "field \"rules\" must be an object");
	err = sb_matcher_new(rt->local_dir, &rt->matcher);
	for (int src = SB_RULE_PRESET; !err && src < SB_RULE_N_SOURCES; src++) {
		char *text = NULL;
		err = get_b64(rules, sb_rule_source_name((sb_rule_source)src), &text);
		if (!err)
			err = sb_matcher_add_rules(rt->matcher, (sb_rule_source)src, text);
		free(text);
	}
	bool gi = false;
	if (!err)
		err = sb_json_get_bool(rules, "gitignore", true, &gi);
	if (!err && gi)
		err = sb_matcher_use_gitignore(rt->matcher);
	if (!err) {
		rt->archive_ex.matcher = rt->matcher;
		rt->restore_ex.matcher = rt->matcher;
	}
	return err ? sb_err_prefix(err, "field \"rules\"") : NULL;
}

/* The saved remote directory and the runtime directory below it, now under `at`. */
static sb_err *move_remote(sb_runtime *rt, const char *at)
{
	size_t n = strlen(rt->remote_dir);
	if (strncmp(rt->root_dir, rt->remote_dir, n) != 0 ||
	    (rt->root_dir[n] != '/' && rt->root_dir[n] != '\0'))
		return sb_err_new(SB_E_INVAL,
		                  "the runtime directory %s is not below the remote "
		                  "directory %s",
		                  rt->root_dir, rt->remote_dir);
	char *root = sb_strfmt("%s%s", at, rt->root_dir + n);
	free(rt->root_dir);
	rt->root_dir = root;
	free(rt->remote_dir);
	rt->remote_dir = sb_xstrdup(at);
	return NULL;
}

sb_err *sb_runtime_load(const char *path, const sb_runtime_load_opts *o, sb_runtime **out)
{
	*out = NULL;
	if (!o || !o->runner)
		return sb_err_new(SB_E_INVAL, "loading a runtime needs a runner");
	sb_buf text = SB_BUF_INIT;
	sb_err *err = sb_read_file(path, PERSIST_MAX_BYTES, &text);
	json_t *root = NULL;
	if (!err)
		err = sb_json_parse_object(sb_buf_cstr(&text), text.len, PERSIST_MAX_BYTES,
		                           PERSIST_MAX_DEPTH, &root);
	sb_buf_deinit(&text);
	if (err)
		return sb_err_prefix(err, "loading the runtime state %s", path);
	sb_runtime *rt = sb_xcalloc(1, sizeof *rt);
	sb_excludes_init(&rt->archive_ex);
	sb_excludes_init(&rt->restore_ex);
	sb_snap_init(&rt->baseline);
	sb_snap_init(&rt->git_snap); /* no mtimes saved: restores take the full path */
	int64_t version = 0, timeout_ms = 0;
	bool native = false;
	char **archive = NULL, **restore = NULL;
	err = sb_json_get_int(root, "version", true, 1, 1000, &version);
	if (!err && version != PERSIST_VERSION && version != PERSIST_VERSION_CONTENT_DIGESTS)
		err = sb_err_new(
		    SB_E_UNSUPPORTED,
		    "state version %lld is not %d (or %d): it was saved by another sandbar "
		    "version; pull with that version, or read the lease's workspace "
		    "with `sandbar exec` and destroy it",
		    (long long)version, PERSIST_VERSION, PERSIST_VERSION_CONTENT_DIGESTS);
	if (!err)
		err = get_b64(root, "local_dir", &rt->local_dir);
	if (!err)
		err = get_b64(root, "remote_dir", &rt->remote_dir);
	if (!err)
		err = get_b64(root, "root_dir", &rt->root_dir);
	if (!err)
		err = get_b64(root, "overlay", &rt->overlay);
	if (!err)
		err = get_b64(root, "adapter_key", &rt->adapter_key);
	if (!err)
		err = get_b64(root, "shell", &rt->shell);
	if (!err)
		err = get_b64(root, "provider_key", &rt->provider_key);
	if (!err)
		err = get_b64(root, "lease_id", &rt->lease_id);
	if (!err)
		err = sb_json_get_int(root, "timeout_ms", true, 1, INT64_MAX, &timeout_ms);
	if (!err)
		err = sb_json_get_bool(root, "native", true, &native);
	if (!err)
		err = get_b64_strv(root, "archive_excludes", &archive);
	if (!err)
		err = get_b64_strv(root, "restore_excludes", &restore);
	if (!err)
		err = get_b64_strv(root, "asset_keys", &rt->asset_keys);
	if (!err)
		err = get_b64_strv(root, "asset_dirs", &rt->asset_dirs);
	if (!err && sb_strv_len(rt->asset_keys) != sb_strv_len(rt->asset_dirs))
		err = sb_err_new(SB_E_INVAL, "asset keys and directories do not pair up");
	if (!err)
		err = load_baseline(root, version, &rt->baseline);
	if (!err)
		err = load_rules(root, rt);
	json_decref(root);
	for (size_t i = 0; archive && archive[i]; i++)
		sb_excludes_add(&rt->archive_ex, archive[i]);
	for (size_t i = 0; restore && restore[i]; i++)
		sb_excludes_add(&rt->restore_ex, restore[i]);
	sb_strv_free(archive);
	sb_strv_free(restore);
	if (!err && strcmp(rt->shell, "sh") && strcmp(rt->shell, "bash"))
		err = sb_err_new(SB_E_INVAL, "shell must be sh or bash");
	if (err) {
		sb_runtime_free(rt);
		return sb_err_prefix(err, "loading the runtime state %s", path);
	}
	if (o->lock_root)
		rt->lock_root = sb_xstrdup(o->lock_root);
	if (o->remote_dir_at && (err = move_remote(rt, o->remote_dir_at))) {
		sb_runtime_free(rt);
		return sb_err_prefix(err, "loading the runtime state %s", path);
	}
	rt->native = native && (sb_runner_caps(o->runner) & SB_RUNNER_CAP_FILE_TRANSFER) &&
	             !o->force_command_path;
	rt->ctx = (sb_rt_ctx){
	    .runner = o->runner,
	    .shell = rt->shell,
	    .timeout_ms = timeout_ms,
	    .cancel = o->cancel,
	    .progress = o->progress,
	    .status = o->status,
	};
	*out = rt;
	return NULL;
}
