/* Opening a library by soname and binding its functions into a table (internal/sb_dl.h). */
#include "sb_dl.h"

#include <dlfcn.h>
#include <stdio.h>

bool sb_dl_bind(const char *soname, const char *package, const char *const *names,
                void **const *slots, size_t n, char *why, size_t why_len)
{
	/* RTLD_NOW: a missing function fails here, with its name, rather than at its first call;
	 * RTLD_LOCAL: the library's names stay out of the process's global scope. */
	void *lib = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		snprintf(why, why_len, "cannot load %s (install the package %s): %s", soname,
		         package, dlerror());
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		*slots[i] = dlsym(lib, names[i]);
		if (!*slots[i]) {
			snprintf(why, why_len,
			         "%s has no function %s (the package %s is not the "
			         "version sandbar was built for?): %s",
			         soname, names[i], package, dlerror());
			return false;
		}
	}
	return true;
}
