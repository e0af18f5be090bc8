/* JSON from outside, on jansson, with the bounds jansson does not have: a byte limit and a
 * nesting-depth limit checked by a scan before parsing (jansson's own depth cap is a
 * compile-time 2048), and typed field accessors whose errors name the field. */
#include <sandbar/base.h>

#include <stdlib.h>
#include <string.h>
#include "sb_json.h"

/* Depth of the deepest array/object nesting, skipping string contents. Returns the byte offset
 * where max_depth was first exceeded, or len when it never was. */
static size_t depth_scan(const char *s, size_t len, size_t max_depth)
{
	size_t depth = 0;
	bool in_string = false, escaped = false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (in_string) {
			if (escaped)
				escaped = false;
			else if (c == '\\')
				escaped = true;
			else if (c == '"')
				in_string = false;
			continue;
		}
		if (c == '"') {
			in_string = true;
		} else if (c == '[' || c == '{') {
			if (++depth > max_depth)
				return i;
		} else if ((c == ']' || c == '}') && depth > 0) {
			depth--;
		}
	}
	return len;
}

sb_err *sb_json_parse(const char *text, size_t len, size_t max_bytes, size_t max_depth,
                      json_t **out)
{
	*out = NULL;
	if (len > max_bytes)
		return sb_err_new(SB_E_TOO_LARGE, "JSON body is %zu bytes, over the %zu byte limit",
		                  len, max_bytes);
	size_t where = depth_scan(text, len, max_depth);
	if (where < len)
		return sb_err_new(SB_E_TOO_LARGE,
		                  "JSON nesting deeper than %zu levels (at byte %zu)", max_depth,
		                  where);
	json_error_t jerr;
	json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!j)
		return sb_err_new(SB_E_INVAL, "invalid JSON at line %d, column %d: %s", jerr.line,
		                  jerr.column, jerr.text);
	*out = j;
	return NULL;
}

sb_err *sb_json_parse_object(const char *text, size_t len, size_t max_bytes, size_t max_depth,
                             json_t **out)
{
	sb_err *err = sb_json_parse(text, len, max_bytes, max_depth, out);
	if (err)
		return err;
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return sb_err_new(SB_E_INVAL, "expected a JSON object");
	}
	return NULL;
}

char *sb_json_dumps(const json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!s)
		return sb_xstrdup("null");
	/* jansson allocates with malloc; hand back memory the caller frees with free(). */
	return s;
}

/* Looks up key; NULL (and no error) when absent or null and optional. */
static sb_err *field(const json_t *obj, const char *key, bool required, json_t **out)
{
	*out = obj && json_is_object(obj) ? json_object_get(obj, key) : NULL;
	if (*out && json_is_null(*out))
		*out = NULL;
	if (!*out && required)
		return sb_err_new(SB_E_INVAL, "field \"%s\" is required", key);
	return NULL;
}

sb_err *sb_json_get_str(const json_t *obj, const char *key, bool required, const char **out)
{
	json_t *v;
	sb_err *err = field(obj, key, required, &v);
	if (err || !v)
		return err;
	if (!json_is_string(v))
		return sb_err_new(SB_E_INVAL, "field \"%s\" must be a string", key);
	*out = json_string_value(v);
	return NULL;
}

sb_err *sb_json_get_int(const json_t *obj, const char *key, bool required, int64_t min, int64_t max,
                        int64_t *out)
{
	json_t *v;
	sb_err *err = field(obj, key, required, &v);
	if (err || !v)
		return err;
	if (!json_is_integer(v))
		return sb_err_new(SB_E_INVAL, "field \"%s\" must be an integer", key);
	json_int_t n = json_integer_value(v);
	if (n < min || n > max)
		return sb_err_new(SB_E_INVAL, "field \"%s\" must be between %lld and %lld", key,
		                  (long long)min, (long long)max);
	*out = (int64_t)n;
	return NULL;
}

sb_err *sb_json_get_bool(const json_t *obj, const char *key, bool required, bool *out)
{
	json_t *v;
	sb_err *err = field(obj, key, required, &v);
	if (err || !v)
		return err;
	if (!json_is_boolean(v))
		return sb_err_new(SB_E_INVAL, "field \"%s\" must be true or false", key);
	*out = json_is_true(v);
	return NULL;
}

sb_err *sb_json_get_strv(const json_t *obj, const char *key, bool required, size_t max_items,
                         char ***out)
{
	json_t *v;
	sb_err *err = field(obj, key, required, &v);
	if (err || !v)
		return err;
	if (!json_is_array(v))
		return sb_err_new(SB_E_INVAL, "field \"%s\" must be an array of strings", key);
	size_t n = json_array_size(v);
	if (n > max_items)
		return sb_err_new(SB_E_TOO_LARGE,
		                  "field \"%s\" has %zu items, over the limit of %zu", key, n,
		                  max_items);
	char **vec = sb_xcalloc(n + 1, sizeof *vec);
	for (size_t i = 0; i < n; i++) {
		json_t *item = json_array_get(v, i);
		if (!json_is_string(item)) {
			sb_strv_free(vec);
			return sb_err_new(SB_E_INVAL, "field \"%s\"[%zu] must be a string", key, i);
		}
		const char *s = json_string_value(item);
		if (strlen(s) != json_string_length(item)) {
			sb_strv_free(vec);
			return sb_err_new(SB_E_INVAL, "field \"%s\"[%zu] contains a NUL byte", key,
			                  i);
		}
		vec[i] = sb_xstrdup(s);
	}
	*out = vec;
	return NULL;
}
