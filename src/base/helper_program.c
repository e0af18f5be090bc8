/* Finding one of sandbar's own programs (sandbar-init, sandbar-serve): see base.h. */
#include <sandbar/base.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* dir_of_exe/rel when that is executable (malloc'd), else NULL. */
static char *beside_exe(const char *exe_dir, const char *rel)
{
	char *c = sb_strfmt("%s/%s", exe_dir, rel);
	if (access(c, X_OK) == 0)
		return c;
	free(c);
	return NULL;
}

char *sb_helper_program(const char *env_var, const char *name, const char *build_path,
                        const char *install_path)
{
	const char *env = getenv(env_var);
	if (env && *env)
		return sb_xstrdup(
		    env); /* the user's choice, as is: a wrong one fails by its name */
	char *found = NULL;
	char *exe = realpath("/proc/self/exe", NULL);
	char *slash = exe ? strrchr(exe, '/') : NULL;
	if (slash) {
		*slash = '\0';
		char *libexec = sb_strfmt("../libexec/sandbar/%s", name);
		found = beside_exe(exe, name);
		if (!found)
			found = beside_exe(exe, libexec);
		free(libexec);
	}
	free(exe);
	if (!found && build_path && access(build_path, X_OK) == 0)
		found = sb_xstrdup(build_path);
	return found ? found : sb_xstrdup(install_path);
}
