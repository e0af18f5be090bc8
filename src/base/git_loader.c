/* Loading and starting libgit2 on first use (sb_git2.h): one dlopen per process, under
 * pthread_once, binding every function SB_GIT2_FUNCTIONS lists; then libgit2's own reference
 * counted start. */
#define SB_GIT2_LOADER
#include "sb_git2.h"

#include <pthread.h>

#include "sb_dl.h"

const sb_git2_api *sb_git2_api_loaded;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static sb_git2_api api;
static char why[512]; /* the first load's failure, "" after a success */

static void load(void)
{
#define NAME(fn) #fn,
#define SLOT(fn) (void **)&api.fn,
	static const char *const names[] = {SB_GIT2_FUNCTIONS(NAME)};
	void **const slots[] = {SB_GIT2_FUNCTIONS(SLOT)};
#undef NAME
#undef SLOT
	if (sb_dl_bind(SB_GIT2_SONAME, SB_GIT2_PACKAGE, names, slots,
	               sizeof slots / sizeof slots[0], why, sizeof why))
		sb_git2_api_loaded = &api;
}

sb_err *sb_git_lib_init(void)
{
	pthread_once(&once, load);
	if (!sb_git2_api_loaded)
		return sb_err_new(SB_E_UNSUPPORTED, "%s", why);
	int rc = api.git_libgit2_init();
	if (rc < 0) {
		const git_error *e = api.git_error_last();
		return sb_err_new(SB_E_INTERNAL, "starting libgit2: %s (libgit2 %d)",
		                  e && e->message ? e->message : "?", rc);
	}
	api.git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, 0);
	return NULL;
}
