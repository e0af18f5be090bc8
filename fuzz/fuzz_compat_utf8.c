/* Fuzz target: the bridge's UTF-8 repair of command output always yields valid UTF-8 (jansson
 * accepts it as a JSON string), leaves valid input unchanged, and gives the same bytes whether
 * the output arrives whole or in pieces (the streamed `stdout` events and the `complete`
 * result must agree). */
#include "../src/server/bridge.h" /* private header, reached without extra include paths */

#include <stdlib.h>
#include <string.h>
#include "sb_json.h"
#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	size_t piece = (size_t)(data[0] % 7) + 1;
	const char *s = (const char *)data + 1;
	size_t n = size - 1;
	sb_buf whole = SB_BUF_INIT, split = SB_BUF_INIT, carry = SB_BUF_INIT;
	sb_utf8_repair(s, n, &whole);
	for (size_t off = 0; off < n; off += piece)
		sb_utf8_feed(&carry, s + off, n - off < piece ? n - off : piece, false, &split);
	sb_utf8_feed(&carry, "", 0, true, &split);
	if (carry.len != 0 || whole.len != split.len ||
	    memcmp(sb_buf_cstr(&whole), sb_buf_cstr(&split), whole.len) != 0)
		abort();
	json_t *j = json_stringn(sb_buf_cstr(&whole), whole.len);
	if (!j)
		abort();
	json_decref(j);
	json_t *orig = json_stringn(s, n);
	if (orig && (whole.len != n || memcmp(whole.data ? whole.data : "", s, n) != 0))
		abort();
	json_decref(orig);
	sb_buf_deinit(&whole);
	sb_buf_deinit(&split);
	sb_buf_deinit(&carry);
	return 0;
}
