/* Fuzz target: bounded JSON parsing never crashes, never accepts nesting over the limit, and
 * what it accepts survives a dump and re-parse. */
#include <sandbar/base.h>

#include <stdlib.h>
#include <string.h>
#include "sb_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *j = NULL;
	sb_err *err = sb_json_parse((const char *)data, size, 1 << 16, 16, &j);
	if (!err) {
		char *s = sb_json_dumps(j);
		json_t *k = NULL;
		sb_err *again = sb_json_parse(s, strlen(s), 1 << 20, 16, &k);
		if (again || !json_equal(j, k))
			abort();
		const char *str = NULL;
		int64_t n = 0;
		bool b = false;
		char **v = NULL;
		sb_err_free(sb_json_get_str(j, "a", false, &str));
		sb_err_free(sb_json_get_int(j, "a", false, 0, 100, &n));
		sb_err_free(sb_json_get_bool(j, "a", false, &b));
		sb_err *ev = sb_json_get_strv(j, "a", false, 8, &v);
		if (!ev)
			sb_strv_free(v);
		sb_err_free(ev);
		json_decref(k);
		free(s);
		json_decref(j);
	}
	sb_err_free(err);
	return 0;
}
