/* libcurl, loaded when first needed (sb_curl_load) instead of at the start of every sandbar
 * process: its dependency tree (TLS, LDAP, Kerberos, SSH, IDN ...) costs a process ~7 ms of
 * dynamic linking, and only `--bridge` runs and callback relays send HTTP. A file that calls
 * curl includes this header instead of <curl/curl.h>; after a successful sb_curl_load the usual
 * curl_* names below call into the loaded library. */
#ifndef SB_CURL_H
#define SB_CURL_H

#include <curl/curl.h>
#include <sandbar/base.h>

typedef struct sb_curl_api {
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_perform)(CURL *);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	void (*easy_reset)(CURL *);
	void (*easy_cleanup)(CURL *);
	const char *(*easy_strerror)(CURLcode);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void (*slist_free_all)(struct curl_slist *);
} sb_curl_api;

/* Set once, by the first successful sb_curl_load; never changed after. */
extern const sb_curl_api *sb_curl_api_loaded;

/* Load libcurl (libcurl.so.4) and run its global init, once per process; later calls answer
 * the first one's result. The error names the library and why it could not be used. */
sb_err *sb_curl_load(void);

/* curl's names, through the loaded table (curl's type-checking macros give way to these). */
#undef curl_easy_setopt
#undef curl_easy_getinfo
#define curl_easy_init() (sb_curl_api_loaded->easy_init())
#define curl_easy_setopt(h, opt, ...) (sb_curl_api_loaded->easy_setopt((h), (opt), __VA_ARGS__))
#define curl_easy_perform(h) (sb_curl_api_loaded->easy_perform(h))
#define curl_easy_getinfo(h, info, ...) (sb_curl_api_loaded->easy_getinfo((h), (info), __VA_ARGS__))
#define curl_easy_reset(h) (sb_curl_api_loaded->easy_reset(h))
#define curl_easy_cleanup(h) (sb_curl_api_loaded->easy_cleanup(h))
#define curl_easy_strerror(rc) (sb_curl_api_loaded->easy_strerror(rc))
#define curl_slist_append(l, s) (sb_curl_api_loaded->slist_append((l), (s)))
#define curl_slist_free_all(l) (sb_curl_api_loaded->slist_free_all(l))

#endif
