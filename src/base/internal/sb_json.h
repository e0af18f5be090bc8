/* Bounded JSON on top of jansson: parsing with size and depth limits, compact dumps and typed
 * field accessors. Internal to sandbar: the layers that speak JSON (runner, sandbox, runtime,
 * server, cli) include it; the public headers (include/sandbar) never expose jansson's types.
 */
#ifndef SANDBAR_SB_JSON_H
#define SANDBAR_SB_JSON_H

#include <sandbar/base.h>

#include <jansson.h>

#define SB_JSON_MAX_DEPTH_DEFAULT 64
#define SB_JSON_MAX_BYTES_DEFAULT (1u << 20)

/* Parse text into *out after checking its size and nesting depth (an object or array inside
 * another counts one level). Errors are SB_E_TOO_LARGE or SB_E_INVAL with the position. */
sb_err *sb_json_parse(const char *text, size_t len, size_t max_bytes, size_t max_depth,
                      json_t **out);
/* Same, but the top level must be an object. */
sb_err *sb_json_parse_object(const char *text, size_t len, size_t max_bytes, size_t max_depth,
                             json_t **out);
/* Compact serialisation; malloc'd. */
char *sb_json_dumps(const json_t *j);
/* Field accessors. Absent (or JSON null) optional fields leave *out untouched and succeed; a
 * present field of the wrong type is an SB_E_INVAL error naming the field. */
sb_err *sb_json_get_str(const json_t *obj, const char *key, bool required, const char **out);
sb_err *sb_json_get_int(const json_t *obj, const char *key, bool required, int64_t min, int64_t max,
                        int64_t *out);
sb_err *sb_json_get_bool(const json_t *obj, const char *key, bool required, bool *out);
/* An array of strings into a NULL-terminated vector (caller frees with sb_strv_free). */
sb_err *sb_json_get_strv(const json_t *obj, const char *key, bool required, size_t max_items,
                         char ***out);

#endif
