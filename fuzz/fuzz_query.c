/* Fuzz target: the query-string parser and its canonical form. Every accepted query has at most
 * SB_QUERY_MAX_PAIRS pairs without NUL bytes, and canonicalisation is idempotent: the canonical
 * query of a canonical query is itself (when it still fits the
 * length bound). */
#include <sandbar/auth.h>

#include <stdlib.h>
#include <string.h>

#include "../src/server/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sb_query q;
	sb_err *err = sb_query_parse((const char *)data, size, &q);
	if (!err) {
		if (q.n > SB_QUERY_MAX_PAIRS)
			abort();
		sb_query_deinit(&q);
	}
	sb_err_free(err);
	sb_buf c1 = SB_BUF_INIT, c2 = SB_BUF_INIT;
	err = sb_hmac_canonical_query((const char *)data, size, &c1);
	if (!err && c1.len <= SB_HMAC_CANON_MAX) {
		sb_err *again = sb_hmac_canonical_query(c1.data ? c1.data : "", c1.len, &c2);
		if (again || c1.len != c2.len || (c1.len && memcmp(c1.data, c2.data, c1.len)))
			abort();
	}
	sb_err_free(err);
	sb_buf_deinit(&c1);
	sb_buf_deinit(&c2);
	return 0;
}
