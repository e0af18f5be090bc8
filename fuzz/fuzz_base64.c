/* Fuzz target: the streaming base64 decoder must never crash, and whatever it accepts must
 * re-encode to the same characters (minus white space) and decode identically when split. */
#include <sandbar/base.h>

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sb_buf whole = SB_BUF_INIT;
	sb_err *err = sb_b64_decode(data, size, &whole);
	size_t cut = size ? data[0] % (size + 1) : 0;
	sb_b64dec d;
	sb_b64dec_init(&d);
	sb_buf split = SB_BUF_INIT;
	sb_err *e1 = sb_b64dec_update(&d, data, cut, &split);
	sb_err *e2 = e1 ? NULL : sb_b64dec_update(&d, data + cut, size - cut, &split);
	sb_err *e3 = (e1 || e2) ? NULL : sb_b64dec_final(&d, &split);
	bool split_ok = !e1 && !e2 && !e3;
	if ((err == NULL) != split_ok)
		abort();
	if (!err) {
		if (whole.len != split.len ||
		    (whole.len && memcmp(whole.data, split.data, whole.len)))
			abort();
		sb_buf again = SB_BUF_INIT;
		sb_b64_encode(whole.data, whole.len, &again);
		sb_buf stripped = SB_BUF_INIT;
		for (size_t i = 0; i < size; i++)
			if (!strchr(" \n\r\t\v\f", data[i]) || data[i] == 0)
				sb_buf_appendc(&stripped, (char)data[i]);
		if (again.len != stripped.len ||
		    (again.len && memcmp(again.data, stripped.data, again.len)))
			abort();
		sb_buf_deinit(&again);
		sb_buf_deinit(&stripped);
	}
	sb_err_free(err);
	sb_err_free(e1);
	sb_err_free(e2);
	sb_err_free(e3);
	sb_buf_deinit(&whole);
	sb_buf_deinit(&split);
	return 0;
}
