/* The thread-local UTF-8 locale libarchive runs under while sandbar creates or extracts tar
 * archives (tar_create.c, tar_extract.c). */
#include "tar_int.h"

#include <pthread.h>

/* ---------------------------------------------------------------- locale */

/* libarchive converts names between the archive's charset and the current locale's; in the "C"
 * locale it replaces or refuses every non-ASCII byte. A UTF-8 locale for this thread only
 * (uselocale) keeps names byte-exact without touching the rest of the process. */
static locale_t the_utf8_locale;
static pthread_once_t utf8_once = PTHREAD_ONCE_INIT;

static void make_utf8_locale(void)
{
	the_utf8_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	if (!the_utf8_locale)
		the_utf8_locale = newlocale(LC_CTYPE_MASK, "en_US.UTF-8", (locale_t)0);
}

static locale_t utf8_locale(void)
{
	pthread_once(&utf8_once, make_utf8_locale);
	return the_utf8_locale;
}

locale_t sb_tar_enter_utf8(void)
{
	locale_t loc = utf8_locale();
	if (!loc) {
		sb_warn("tar: no UTF-8 locale on this host; non-ASCII member names may be altered");
		return (locale_t)0;
	}
	return uselocale(loc);
}

void sb_tar_leave_utf8(locale_t prev)
{
	if (prev)
		uselocale(prev);
}
