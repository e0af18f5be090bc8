/* Loading libarchive on first use (sb_archive.h): one dlopen per process, under pthread_once,
 * binding every function SB_ARCHIVE_FUNCTIONS lists. */
#define SB_ARCHIVE_LOADER
#include "sb_archive.h"

#include <pthread.h>

#include "sb_dl.h"

const sb_archive_api *sb_archive_api_loaded;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static sb_archive_api api;
static char why[512]; /* the first load's failure, "" after a success */

static void load(void)
{
#define NAME(fn) #fn,
#define SLOT(fn) (void **)&api.fn,
	static const char *const names[] = {SB_ARCHIVE_FUNCTIONS(NAME)};
	void **const slots[] = {SB_ARCHIVE_FUNCTIONS(SLOT)};
#undef NAME
#undef SLOT
	if (sb_dl_bind(SB_ARCHIVE_SONAME, SB_ARCHIVE_PACKAGE, names, slots,
	               sizeof slots / sizeof slots[0], why, sizeof why))
		sb_archive_api_loaded = &api;
}

sb_err *sb_archive_load(void)
{
	pthread_once(&once, load);
	return sb_archive_api_loaded ? NULL : sb_err_new(SB_E_UNSUPPORTED, "%s", why);
}
