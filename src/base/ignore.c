/* The one matcher of user exclusion rules (DESIGN.md §9.4): gitignore syntax evaluated by
 * libgit2, so that --exclude, .sandbarignore, the presets and --gitignore mean exactly what
 * git means by them. libgit2 evaluates ignore rules only through a repository: rules that are
 * not the workspace's own ignore files live as in-memory "internal" rules of a scratch
 * repository created in a private temporary directory (its work tree is empty, so no ignore file
 * of its own ever applies). With --gitignore the internal rules are added to the workspace's
 * own repository object instead, where libgit2 gives them precedence over the ignore files at
 * every level: the one ordered list "ignore files, preset, .sandbarignore, --exclude".
 *
 * Attribution (which source excluded a path) asks one repository object per source, only for
 * paths the whole list excludes. */
#include "sb_git2.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct sb_matcher {
	pthread_mutex_t mu;
	char *root;
	sb_buf rules[SB_RULE_N_SOURCES];
	bool gitignore;
	char *git_workdir; /* with --gitignore: the repository's work tree */
	char *git_prefix;  /* root relative to it: "" or "sub/dir/" */
	bool negation;     /* some rule re-includes */
	bool built, broken;
	char *scratch;
	git_repository *main, *internal;
	git_repository *per[SB_RULE_N_SOURCES];
};

static const char paperclip_rules[] = "node_modules\n"
                                      "vendor\n"
                                      "dist\n"
                                      "build\n"
                                      "out\n"
                                      "coverage\n"
                                      ".next\n"
                                      ".turbo\n"
                                      ".cache\n"
                                      "/.git\n";

const char *sb_matcher_preset_rules(const char *name)
{
	if (name && strcmp(name, "paperclip") == 0)
		return paperclip_rules;
	return NULL;
}

const char *sb_rule_source_name(sb_rule_source s)
{
	switch (s) {
	case SB_RULE_GITIGNORE:
		return "gitignore";
	case SB_RULE_PRESET:
		return "preset";
	case SB_RULE_SANDBARIGNORE:
		return ".sandbarignore";
	case SB_RULE_EXCLUDE:
		return "--exclude";
	default:
		return "";
	}
}

static sb_err *lg2_error(int rc, const char *what)
{
	const git_error *e = git_error_last();
	return sb_err_new(SB_E_IO, "%s: %s (libgit2 %d)", what, e && e->message ? e->message : "?",
	                  rc);
}

sb_err *sb_matcher_new(const char *root, sb_matcher **out)
{
	*out = NULL;
	char *real = realpath(root, NULL);
	if (!real)
		return sb_err_sys(errno, "resolving the workspace %s", root);
	/* Every matcher holds one reference on libgit2, dropped by sb_matcher_free. */
	sb_err *err = sb_git_lib_init();
	if (err) {
		free(real);
		return sb_err_prefix(err, "matching exclusion rules in %s", root);
	}
	sb_matcher *m = sb_xcalloc(1, sizeof *m);
	pthread_mutex_init(&m->mu, NULL);
	m->root = real;
	for (int i = 0; i < SB_RULE_N_SOURCES; i++)
		sb_buf_init(&m->rules[i]);
	*out = m;
	return NULL;
}

void sb_matcher_free(sb_matcher *m)
{
	if (!m)
		return;
	for (int i = 0; i < SB_RULE_N_SOURCES; i++) {
		git_repository_free(m->per[i]);
		sb_buf_deinit(&m->rules[i]);
	}
	git_repository_free(m->main);
	git_repository_free(m->internal);
	if (m->scratch) {
		sb_err_free(sb_fs_rm_rf(m->scratch));
		free(m->scratch);
	}
	free(m->root);
	free(m->git_workdir);
	free(m->git_prefix);
	pthread_mutex_destroy(&m->mu);
	free(m);
	git_libgit2_shutdown();
}

sb_err *sb_matcher_add_rules(sb_matcher *m, sb_rule_source src, const char *text)
{
	if (src != SB_RULE_PRESET && src != SB_RULE_SANDBARIGNORE && src != SB_RULE_EXCLUDE)
		return sb_err_new(SB_E_INVAL, "rules cannot be added for source %d", (int)src);
	if (m->built)
		return sb_err_new(SB_E_INVAL, "the matcher is in use: add rules before matching");
	if (!text)
		return NULL;
	for (const char *p = text; *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		if (n && p[n - 1] == '\r')
			n--;
		if (memchr(p, '\0', n))
			return sb_err_new(SB_E_INVAL, "exclude rule contains a NUL byte");
		size_t lead = 0;
		while (lead < n && (p[lead] == ' ' || p[lead] == '\t'))
			lead++;
		if (lead < n && p[lead] != '#') {
			if (p[0] == '!')
				m->negation = true;
			sb_buf_append(&m->rules[src], p, n);
			sb_buf_appendc(&m->rules[src], '\n');
		}
		p += n;
		if (*p == '\r')
			p++;
		if (*p == '\n')
			p++;
	}
	return NULL;
}

const char *sb_matcher_rules(const sb_matcher *m, sb_rule_source src)
{
	if (src <= SB_RULE_NONE || src >= SB_RULE_N_SOURCES || !m->rules[src].len)
		return "";
	return sb_buf_cstr((sb_buf *)&m->rules[src]);
}

sb_err *sb_matcher_use_gitignore(sb_matcher *m)
{
	git_repository *r = NULL;
	int rc = git_repository_open_ext(&r, m->root, 0, NULL);
	if (rc == GIT_ENOTFOUND)
		return sb_err_new(
		    SB_E_NOTFOUND,
		    "--gitignore: %s is not inside a git repository; drop the flag or "
		    "use --exclude",
		    m->root);
	if (rc < 0)
		return lg2_error(rc, "--gitignore: opening the repository");
	const char *wd = git_repository_workdir(r);
	char *real = wd ? realpath(wd, NULL) : NULL;
	sb_err *err = NULL;
	size_t n = real ? strlen(real) : 0;
	if (!real)
		err = sb_err_new(SB_E_INVAL, "--gitignore: the repository of %s has no work tree",
		                 m->root);
	else if (strcmp(real, m->root) != 0 &&
	         !(strncmp(real, m->root, n) == 0 && (m->root[n] == '/' || n == 1)))
		err = sb_err_new(SB_E_INVAL, "--gitignore: %s is outside the work tree %s", m->root,
		                 real);
	if (!err) {
		m->gitignore = true;
		m->git_workdir = real;
		const char *rest = m->root + n;
		while (*rest == '/')
			rest++;
		m->git_prefix = *rest ? sb_strfmt("%s/", rest) : sb_xstrdup("");
	} else {
		free(real);
	}
	git_repository_free(r);
	return err;
}

bool sb_matcher_uses_gitignore(const sb_matcher *m)
{
	return m->gitignore;
}

static bool has_internal(const sb_matcher *m)
{
	return m->rules[SB_RULE_PRESET].len || m->rules[SB_RULE_SANDBARIGNORE].len ||
	       m->rules[SB_RULE_EXCLUDE].len;
}

static sb_err *open_scratch(sb_matcher *m, git_repository **out)
{
	int rc = git_repository_open_ext(out, m->scratch, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL);
	return rc < 0 ? lg2_error(rc, "opening the matcher's scratch repository") : NULL;
}

static sb_err *open_real(sb_matcher *m, git_repository **out)
{
	int rc = git_repository_open_ext(out, m->git_workdir, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL);
	return rc < 0 ? lg2_error(rc, "opening the workspace repository") : NULL;
}

static sb_err *add_internal(git_repository *r, const sb_buf *rules)
{
	if (!rules->len)
		return NULL;
	int rc = git_ignore_add_rule(r, sb_buf_cstr((sb_buf *)rules));
	return rc < 0 ? lg2_error(rc, "adding exclude rules") : NULL;
}

static sb_err *build(sb_matcher *m)
{
	sb_err *err = NULL;
	if (has_internal(m)) {
		const char *tmp = getenv("TMPDIR");
		char *tmpl = sb_strfmt("%s/sandbar-match-XXXXXX", tmp && *tmp ? tmp : "/tmp");
		if (!mkdtemp(tmpl)) {
			err =
			    sb_err_sys(errno, "creating the matcher's scratch directory %s", tmpl);
			free(tmpl);
			return err;
		}
		m->scratch = tmpl;
		git_repository *r = NULL;
		int rc = git_repository_init(&r, m->scratch, 0);
		if (rc < 0)
			return lg2_error(rc, "creating the matcher's scratch repository");
		git_config *cfg = NULL;
		/* No global excludes file: only the rules given here apply. */
		rc = git_repository_config(&cfg, r);
		if (rc >= 0)
			rc = git_config_set_string(cfg, "core.excludesFile", "/dev/null");
		git_config_free(cfg);
		git_repository_free(r);
		if (rc < 0)
			return lg2_error(rc, "configuring the matcher's scratch repository");
		for (int s = SB_RULE_PRESET; s < SB_RULE_N_SOURCES && !err; s++) {
			if (!m->rules[s].len)
				continue;
			err = open_scratch(m, &m->per[s]);
			if (!err)
				err = add_internal(m->per[s], &m->rules[s]);
		}
		if (!err)
			err = open_scratch(m, &m->internal);
		for (int s = SB_RULE_PRESET; s < SB_RULE_N_SOURCES && !err; s++)
			err = add_internal(m->internal, &m->rules[s]);
	}
	if (!err && m->gitignore) {
		err = open_real(m, &m->per[SB_RULE_GITIGNORE]);
		/* Workspace at the repository root: internal rules join the repository's own list,
		 * where libgit2 ranks them above the ignore files (so "!" overrides a .gitignore).
		 * Below it they stay anchored at the workspace, in the scratch repository. */
		if (!err && !m->git_prefix[0]) {
			err = open_real(m, &m->main);
			for (int s = SB_RULE_PRESET; s < SB_RULE_N_SOURCES && !err; s++)
				err = add_internal(m->main, &m->rules[s]);
		}
	}
	return err;
}

static bool ignored(git_repository *r, const char *path)
{
	int ig = 0;
	if (!r || git_ignore_path_is_ignored(&ig, r, path) < 0)
		return false;
	return ig != 0;
}

/* libgit2 reports every ".git" as ignored; git never applies ignore rules to it at all. A
 * repository directory is left out only by a rule that names it literally (".git", "/.git",
 * with or without a trailing "/"), the last such rule deciding; "!" lines re-include it. */
static sb_rule_source match_dotgit(const sb_matcher *m, bool top)
{
	sb_rule_source src = SB_RULE_NONE;
	for (int s = SB_RULE_PRESET; s < SB_RULE_N_SOURCES; s++) {
		const char *p = m->rules[s].len ? sb_buf_cstr((sb_buf *)&m->rules[s]) : "";
		while (*p) {
			const char *nl = strchr(p, '\n');
			size_t n = nl ? (size_t)(nl - p) : strlen(p);
			bool neg = n && p[0] == '!';
			const char *l = p + neg;
			size_t ln = n - neg;
			if (ln && l[ln - 1] == '/')
				ln--;
			bool anchored = ln && l[0] == '/';
			if (anchored) {
				l++;
				ln--;
			}
			if (ln == 4 && memcmp(l, ".git", 4) == 0 && (top || !anchored))
				src = neg ? SB_RULE_NONE : (sb_rule_source)s;
			p += n;
			if (*p)
				p++;
		}
	}
	return src;
}

sb_rule_source sb_matcher_match(sb_matcher *m, const char *relpath, bool is_dir)
{
	if (!m || !relpath || !*relpath || (!m->gitignore && !has_internal(m)))
		return SB_RULE_NONE;
	const char *last = strrchr(relpath, '/');
	if (strcmp(last ? last + 1 : relpath, ".git") == 0)
		return match_dotgit(m, !last);
	pthread_mutex_lock(&m->mu);
	if (!m->built) {
		m->built = true;
		sb_err *err = build(m);
		if (err) {
			sb_warn(
			    "exclude rules cannot be evaluated, nothing is excluded by them: %s",
			    err->msg);
			sb_err_free(err);
			m->broken = true;
		}
	}
	sb_rule_source src = SB_RULE_NONE;
	if (m->broken)
		goto out;
	char *rel = sb_strfmt("%s%s", relpath, is_dir ? "/" : "");
	char *full = m->gitignore ? sb_strfmt("%s%s", m->git_prefix, rel) : NULL;
	bool ex;
	if (m->main)
		ex = ignored(m->main, full);
	else
		ex = ignored(m->internal, rel) ||
		     (m->gitignore && ignored(m->per[SB_RULE_GITIGNORE], full));
	if (ex) {
		src = SB_RULE_EXCLUDE; /* overwritten below unless no single source explains it */
		for (int s = SB_RULE_EXCLUDE; s > SB_RULE_NONE; s--) {
			if (!m->per[s])
				continue;
			if (ignored(m->per[s], s == SB_RULE_GITIGNORE ? full : rel)) {
				src = (sb_rule_source)s;
				break;
			}
		}
	}
	free(rel);
	free(full);
out:
	pthread_mutex_unlock(&m->mu);
	return src;
}

char **sb_matcher_far_side_names(const sb_matcher *m)
{
	if (!m || m->gitignore || m->negation)
		return NULL;
	char **v = NULL;
	const sb_buf *b = &m->rules[SB_RULE_PRESET];
	const char *p = b->len ? sb_buf_cstr((sb_buf *)b) : "";
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		char *line = sb_xstrndup(p, n);
		/* A plain name: gitignore matches it at any depth, file or directory, exactly like
		 * an unanchored `tar --exclude NAME`. */
		if (line[0] && strcspn(line, "/*?[\\! \t") == n)
			sb_strv_push(&v, line);
		free(line);
		p += n;
		if (*p)
			p++;
	}
	return v;
}
