/* Streaming base64 (RFC 4648, standard alphabet, padded). The decoder accepts input split at
 * any byte, skips ASCII white space (base64(1) wraps lines), and rejects everything else that
 * is not canonical: foreign characters, data after padding, a dangling final group, and
 * non-zero bits in the unused part of the last group. */
#include <sandbar/base.h>

#include <pthread.h>
#include <string.h>

static const char enc_table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* -1 invalid, -2 white space, -3 padding, else the sextet. */
static signed char dec_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return (signed char)(c - 'A');
	if (c >= 'a' && c <= 'z')
		return (signed char)(c - 'a' + 26);
	if (c >= '0' && c <= '9')
		return (signed char)(c - '0' + 52);
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	if (c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\v' || c == '\f')
		return -2;
	if (c == '=')
		return -3;
	return -1;
}

/* Sextet + 1 for the 64 alphabet characters, 0 for every other byte (fast path only). */
static const unsigned char fast_tab[256] = {
    ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,  ['G'] = 7,  ['H'] = 8,
    ['I'] = 9,  ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
    ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
    ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
    ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
    ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
};

size_t sb_b64_encoded_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

void sb_b64enc_init(sb_b64enc *e)
{
	e->ncarry = 0;
}

static void encode_group(const unsigned char *in, char *out)
{
	out[0] = enc_table[in[0] >> 2];
	out[1] = enc_table[((in[0] & 3) << 4) | (in[1] >> 4)];
	out[2] = enc_table[((in[1] & 15) << 2) | (in[2] >> 6)];
	out[3] = enc_table[in[2] & 63];
}

void sb_b64enc_update(sb_b64enc *e, const void *in, size_t n, sb_buf *out)
{
	const unsigned char *p = in;
	while (e->ncarry > 0 && e->ncarry < 3 && n > 0) {
		e->carry[e->ncarry++] = *p++;
		n--;
	}
	sb_buf_reserve(out, (n / 3 + 1) * 4);
	if (e->ncarry == 3) {
		encode_group(e->carry, out->data + out->len);
		out->len += 4;
		e->ncarry = 0;
	}
	while (n >= 3) {
		encode_group(p, out->data + out->len);
		out->len += 4;
		p += 3;
		n -= 3;
	}
	while (n > 0) {
		e->carry[e->ncarry++] = *p++;
		n--;
	}
	out->data[out->len] = '\0';
}

void sb_b64enc_final(sb_b64enc *e, sb_buf *out)
{
	if (e->ncarry == 0)
		return;
	unsigned char g[3] = {0, 0, 0};
	for (size_t i = 0; i < e->ncarry; i++)
		g[i] = e->carry[i];
	char quad[4];
	encode_group(g, quad);
	if (e->ncarry == 1)
		quad[2] = '=';
	quad[3] = '=';
	sb_buf_append(out, quad, 4);
	e->ncarry = 0;
}

void sb_b64dec_init(sb_b64dec *d)
{
	d->acc = 0;
	d->nacc = 0;
	d->npad = 0;
	d->offset = 0;
}

sb_err *sb_b64dec_update(sb_b64dec *d, const void *in, size_t n, sb_buf *out)
{
	const unsigned char *p = in;
	sb_buf_reserve(out, n / 4 * 3 + 3);
	for (size_t i = 0; i < n; i++, d->offset++) {
		/* Fast path for the bulk of any input: whole groups of four alphabet characters
		 * at a group boundary. Anything else (white space, padding, errors) falls through
		 * to the character-at-a-time state machine below. */
		while (d->nacc == 0 && d->npad == 0 && n - i >= 4) {
			unsigned a = fast_tab[p[i]], b = fast_tab[p[i + 1]];
			unsigned c = fast_tab[p[i + 2]], e = fast_tab[p[i + 3]];
			if (!a || !b || !c || !e)
				break;
			uint32_t g = (a - 1) << 18 | (b - 1) << 12 | (c - 1) << 6 | (e - 1);
			out->data[out->len++] = (char)(g >> 16);
			out->data[out->len++] = (char)(g >> 8);
			out->data[out->len++] = (char)g;
			i += 4;
			d->offset += 4;
		}
		if (i >= n)
			break;
		signed char v = dec_value(p[i]);
		if (v == -2)
			continue;
		if (v == -1)
			return sb_err_new(SB_E_INVAL,
			                  "invalid base64: unexpected byte 0x%02x at offset %llu",
			                  p[i], (unsigned long long)d->offset);
		if (v == -3) {
			/* '=' is only valid as the 3rd/4th character of the final group. */
			if (d->nacc + d->npad < 2 || d->nacc + d->npad >= 4)
				return sb_err_new(SB_E_INVAL,
				                  "invalid base64: misplaced '=' at offset %llu",
				                  (unsigned long long)d->offset);
			d->npad++;
			if (d->nacc + d->npad == 4) {
				/* Group complete with padding: emit and check unused bits. */
				unsigned keep = d->nacc == 2 ? 1u : 2u;
				uint32_t bits = d->acc << (6 * (4 - d->nacc));
				uint32_t unused = keep == 1 ? (bits & 0xFFFF) : (bits & 0xFF);
				if (unused)
					return sb_err_new(SB_E_INVAL,
					                  "invalid base64: non-zero padding bits "
					                  "before offset %llu",
					                  (unsigned long long)d->offset);
				out->data[out->len++] = (char)(bits >> 16);
				if (keep == 2)
					out->data[out->len++] = (char)(bits >> 8);
				d->acc = 0;
				d->nacc = 4; /* marks "finished": nothing may follow */
			}
			continue;
		}
		if (d->npad > 0 || d->nacc == 4)
			return sb_err_new(SB_E_INVAL,
			                  "invalid base64: data after padding at offset %llu",
			                  (unsigned long long)d->offset);
		d->acc = (d->acc << 6) | (uint32_t)v;
		if (++d->nacc == 4) {
			out->data[out->len++] = (char)(d->acc >> 16);
			out->data[out->len++] = (char)(d->acc >> 8);
			out->data[out->len++] = (char)d->acc;
			d->acc = 0;
			d->nacc = 0;
		}
	}
	out->data[out->len] = '\0';
	return NULL;
}

sb_err *sb_b64dec_final(sb_b64dec *d, sb_buf *out)
{
	(void)out;
	bool finished_padded = d->nacc == 4 && d->npad > 0;
	if (d->nacc != 0 && !finished_padded)
		return sb_err_new(SB_E_INVAL,
		                  "invalid base64: input ends inside a group (%llu "
		                  "characters read)",
		                  (unsigned long long)d->offset);
	sb_b64dec_init(d);
	return NULL;
}

void sb_b64_encode(const void *in, size_t n, sb_buf *out)
{
	sb_b64enc e;
	sb_b64enc_init(&e);
	sb_b64enc_update(&e, in, n, out);
	sb_b64enc_final(&e, out);
}

/* Two output characters per 12 input bits: half the lookups of encode_group, for bulk data. */
static char pair_tab[4096][2];
static pthread_once_t pair_once = PTHREAD_ONCE_INIT;

static void pair_init(void)
{
	for (unsigned v = 0; v < 4096; v++) {
		pair_tab[v][0] = enc_table[v >> 6];
		pair_tab[v][1] = enc_table[v & 63];
	}
}

size_t sb_b64_encode_to(const void *in, size_t n, char *out)
{
	const unsigned char *p = in;
	size_t o = 0;
	pthread_once(&pair_once, pair_init);
	for (; n >= 3; p += 3, n -= 3, o += 4) {
		unsigned v = (unsigned)p[0] << 16 | (unsigned)p[1] << 8 | p[2];
		memcpy(out + o, pair_tab[v >> 12], 2);
		memcpy(out + o + 2, pair_tab[v & 0xFFF], 2);
	}
	if (n) {
		unsigned char g[3] = {p[0], n == 2 ? p[1] : 0, 0};
		encode_group(g, out + o);
		if (n == 1)
			out[o + 2] = '=';
		out[o + 3] = '=';
		o += 4;
	}
	return o;
}

sb_err *sb_b64_decode(const void *in, size_t n, sb_buf *out)
{
	sb_b64dec d;
	sb_b64dec_init(&d);
	sb_err *err = sb_b64dec_update(&d, in, n, out);
	if (!err)
		err = sb_b64dec_final(&d, out);
	return err;
}
