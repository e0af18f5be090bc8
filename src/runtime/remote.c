/* The remote scripts of the command path (spec §2.5, §2.6). They need only POSIX sh, find, tar,
 * dd, mkdir and rm, address everything by absolute single-quoted path (they run from cwd "/"),
 * and never hand tar a "./" self-entry: extracting one would chmod/utime a directory the sandbox
 * user may not own.
 */
#include "rt.h"

#include <stdlib.h>

char *sb_rt_script_extract(const char *dir, const char *tar, char *const *spare)
{
	sb_buf s = SB_BUF_INIT;
	if (tar) {
		/* The trap command is itself quoted once more, as one argument of `trap`. */
		sb_buf q = SB_BUF_INIT;
		sb_shell_quote(&q, tar);
		char *rm = sb_strfmt("rm -f %s", sb_buf_cstr(&q));
		sb_buf_appends(&s, "trap ");
		sb_shell_quote(&s, rm);
		sb_buf_appends(&s, " EXIT; ");
		free(rm);
		sb_buf_deinit(&q);
	}
	sb_buf_appends(&s, "trap 'exit 129' HUP INT TERM; ");
	if (spare) {
		sb_buf_appends(&s, "mkdir -p ");
		sb_shell_quote(&s, dir);
		sb_buf_appends(&s, " && find ");
		sb_shell_quote(&s, dir);
		sb_buf_appends(&s, " -mindepth 1 -maxdepth 1");
		for (size_t i = 0; spare[i]; i++) {
			sb_buf_appends(&s, " ! -name ");
			sb_shell_quote(&s, spare[i]);
		}
		sb_buf_appends(&s, " -exec rm -rf -- {} +");
	} else {
		sb_buf_appends(&s, "rm -rf ");
		sb_shell_quote(&s, dir);
		sb_buf_appends(&s, " && mkdir -p ");
		sb_shell_quote(&s, dir);
	}
	/* -p: the archive's modes, not the remote umask (a umask-narrowed mode would read back as
	 * a remote change); -o: never chown to the host's uids when the sandbox runs as root. */
	sb_buf_appends(&s, " && tar -x -p -o -f ");
	if (tar)
		sb_shell_quote(&s, tar);
	else
		sb_buf_appendc(&s, '-');
	sb_buf_appends(&s, " -C ");
	sb_shell_quote(&s, dir);
	if (tar) {
		sb_buf_appends(&s, " && rm -f ");
		sb_shell_quote(&s, tar);
	}
	return sb_buf_steal(&s, NULL);
}

char *sb_rt_script_archive(const char *dir, const char *tar, const sb_excludes *ex)
{
	char **segments, **toplevel;
	sb_rt_remote_tar_filters(ex, &segments, &toplevel);
	char *tardir = tar ? sb_rt_dirname(tar) : NULL;
	sb_buf s = SB_BUF_INIT;
	/* cd first: a workspace that vanished must fail the restore, not be recreated (by the
	 * mkdir of the archive's directory inside it) and read back as "everything deleted". */
	sb_buf_appends(&s, "cd ");
	sb_shell_quote(&s, dir);
	if (tardir) {
		sb_buf_appends(&s, " && mkdir -p ");
		sb_shell_quote(&s, tardir);
	}
	sb_buf_appends(&s, " || exit 1; set --; for e in * .[!.]* ..?*; do ");
	if (toplevel) {
		sb_buf_appends(&s, "case \"$e\" in ");
		for (size_t i = 0; toplevel[i]; i++) {
			if (i)
				sb_buf_appendc(&s, '|');
			sb_shell_quote(&s, toplevel[i]);
		}
		sb_buf_appends(&s, ") continue;; esac; ");
	}
	/* Globs that matched nothing stay literal: keep only names that exist (or dangle). */
	sb_buf_appends(&s, "if [ -e \"$e\" ] || [ -L \"$e\" ]; then set -- \"$@\" \"$e\"; fi; "
	                   "done; if [ \"$#\" -eq 0 ]; then dd if=/dev/zero");
	if (tar) {
		sb_buf_appends(&s, " of=");
		sb_shell_quote(&s, tar);
	}
	sb_buf_appends(&s, " bs=1024 count=1 2>/dev/null; else { tar -cf ");
	if (tar)
		sb_shell_quote(&s, tar);
	else
		sb_buf_appendc(&s, '-');
	sb_buf_appends(&s, " --exclude '._*'");
	for (size_t i = 0; segments && segments[i]; i++) {
		sb_buf_appends(&s, " --exclude ");
		sb_shell_quote(&s, segments[i]);
	}
	/* Exit 1 is "file changed as we read it" on a live workspace: benign (#8287). */
	sb_buf_appends(&s, " -- \"$@\"; rc=$?; if [ \"$rc\" -gt 1 ]; then exit \"$rc\"; fi; }; fi");
	free(tardir);
	sb_strv_free(segments);
	sb_strv_free(toplevel);
	return sb_buf_steal(&s, NULL);
}

char *sb_rt_script_guard(const char *dir, const char *ours)
{
	sb_buf s = SB_BUF_INIT;
	sb_buf_appends(&s, "if [ -d ");
	sb_shell_quote(&s, dir);
	sb_buf_appends(&s, " ] && [ -n \"$(ls -A ");
	sb_shell_quote(&s, dir);
	sb_buf_appends(&s, " 2>/dev/null | head -n 1)\" ] && [ ! -d ");
	sb_shell_quote(&s, ours);
	sb_buf_appendf(&s, " ]; then exit %d; fi; ", SB_RT_FOREIGN_EXIT);
	return sb_buf_steal(&s, NULL);
}

void sb_rt_script_stage_head(sb_buf *b, const sb_rt_stage *s)
{
	if (s->create_fresh) {
		/* mkdir without -p: whatever is already there (a planted directory or link) fails
		 * the staging rather than receiving the workspace */
		sb_buf_appends(b, "mkdir -m 700 -- ");
		sb_shell_quote(b, s->remote_dir);
		sb_buf_appendf(b, " || exit %d; ", SB_RT_TAKEN_EXIT);
	}
	if (s->ours_marker) {
		char *guard = sb_rt_script_guard(s->remote_dir, s->ours_marker);
		sb_buf_appends(b, guard);
		free(guard);
	}
}

sb_err *sb_rt_stage_head_error(const sb_rt_stage *s, const sb_exec_result *res, sb_err *rerr)
{
	if (!rerr || !res->has_exit_code)
		return rerr;
	if (s->ours_marker && res->exit_code == SB_RT_FOREIGN_EXIT) {
		sb_err_free(rerr);
		return sb_rt_foreign_error(s->remote_dir);
	}
	if (s->create_fresh && res->exit_code == SB_RT_TAKEN_EXIT) {
		sb_err_free(rerr);
		return sb_err_new(SB_E_EXISTS,
		                  "the remote directory %s to be made for this run exists already: "
		                  "nothing was staged into it",
		                  s->remote_dir);
	}
	return rerr;
}

sb_err *sb_rt_foreign_error(const char *dir)
{
	return sb_err_new(SB_E_EXISTS,
	                  "%s is not empty and was not created by sandbar: staging would replace "
	                  "its content; pick an empty or new directory, or pass --force",
	                  dir);
}
