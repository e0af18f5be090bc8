/* Loading libcurl on first use (internal/sb_curl.h). */
#include "sb_curl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#define LIBCURL "libcurl.so.4"

const sb_curl_api *sb_curl_api_loaded;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static sb_curl_api api;
static char why[512]; /* the first load's failure, "" after a success */

static bool bind_symbol(void *lib, const char *name, void **slot)
{
	*slot = dlsym(lib, name);
	if (!*slot)
		snprintf(why, sizeof why, "%s has no %s: %s", LIBCURL, name, dlerror());
	return *slot != NULL;
}

static void load(void)
{
	/* never closed: handles and connections of the library live as long as the process */
	void *lib = dlopen(LIBCURL, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		snprintf(why, sizeof why, "cannot load %s (install libcurl4): %s", LIBCURL,
		         dlerror());
		return;
	}
	CURLcode (*global_init)(long) = NULL;
	if (!bind_symbol(lib, "curl_global_init", (void **)&global_init) ||
	    !bind_symbol(lib, "curl_easy_init", (void **)&api.easy_init) ||
	    !bind_symbol(lib, "curl_easy_setopt", (void **)&api.easy_setopt) ||
	    !bind_symbol(lib, "curl_easy_perform", (void **)&api.easy_perform) ||
	    !bind_symbol(lib, "curl_easy_getinfo", (void **)&api.easy_getinfo) ||
	    !bind_symbol(lib, "curl_easy_reset", (void **)&api.easy_reset) ||
	    !bind_symbol(lib, "curl_easy_cleanup", (void **)&api.easy_cleanup) ||
	    !bind_symbol(lib, "curl_easy_strerror", (void **)&api.easy_strerror) ||
	    !bind_symbol(lib, "curl_slist_append", (void **)&api.slist_append) ||
	    !bind_symbol(lib, "curl_slist_free_all", (void **)&api.slist_free_all))
		return;
	CURLcode rc = global_init(CURL_GLOBAL_ALL);
	if (rc != CURLE_OK) {
		snprintf(why, sizeof why, "%s failed to initialise: %s", LIBCURL,
		         api.easy_strerror(rc));
		return;
	}
	sb_curl_api_loaded = &api;
}

sb_err *sb_curl_load(void)
{
	pthread_once(&once, load);
	return sb_curl_api_loaded ? NULL : sb_err_new(SB_E_INTERNAL, "%s", why);
}
