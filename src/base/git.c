/* The git operations sandbar needs (DESIGN.md §9.4), with libgit2 kept behind sb_ functions:
 * read a repository's HEAD, and bring a commit from a staged copy of a repository into the
 * host's as a branch, the way `git fetch` would, without touching HEAD, the index or any other
 * ref. */
#include "sb_git2.h"

#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Loading libgit2 (~5 ms of dynamic linking) and its start, which parses the whole system CA
 * bundle (its TLS backend, which sandbar never uses, loads it eagerly: ~7 ms here, paid again
 * after every last git_libgit2_shutdown()). The prewarm pays both once, on a thread of its own,
 * and keeps that reference for the process's life, so later sb_git_* calls only take another.
 * The load and libgit2's start are serialised: a call made while the thread is still in them
 * waits for it to finish. A library that cannot be loaded is reported by the call that needs
 * it. */
static void prewarm_hold(void)
{
	sb_err *err = sb_git_lib_init(); /* never shut down: held until the process exits */
	if (err)
		sb_debug("git support not prewarmed: %s", err->msg);
	sb_err_free(err);
}

static void *prewarm_main(void *arg)
{
	(void)arg;
	prewarm_hold();
	return NULL;
}

static void prewarm_start(void)
{
	pthread_t t;
	if (pthread_create(&t, NULL, prewarm_main, NULL) == 0)
		pthread_detach(t);
	else
		prewarm_hold(); /* no thread: hold the reference all the same, paid now */
}

/* Whether dir can hold a repository for an open without search: a work tree has .git (a
 * directory, or a file naming one), a git dir has HEAD. Without either, libgit2 is not started
 * at all. */
static bool may_hold_repository(const char *dir)
{
	struct stat st;
	char *git = sb_strfmt("%s/.git", dir);
	char *head = sb_strfmt("%s/HEAD", dir);
	bool may = lstat(git, &st) == 0 || lstat(head, &st) == 0;
	free(git);
	free(head);
	return may;
}

void sb_git_prewarm(const char *dir)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	if (!dir || may_hold_repository(dir))
		pthread_once(&once, prewarm_start);
}

static sb_err *lg2_error(int rc, const char *what, const char *dir)
{
	const git_error *e = git_error_last();
	return sb_err_new(SB_E_IO, "%s %s: %s (libgit2 %d)", what, dir,
	                  e && e->message ? e->message : "?", rc);
}

sb_err *sb_git_head(const char *dir, char out[41])
{
	out[0] = '\0';
	if (!may_hold_repository(dir))
		return NULL;
	sb_err *err = sb_git_lib_init();
	if (err)
		return sb_err_prefix(err, "reading HEAD of %s", dir);
	git_repository *r = NULL;
	int rc = git_repository_open_ext(&r, dir, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL);
	if (rc == GIT_ENOTFOUND)
		goto out;
	if (rc < 0) {
		err = lg2_error(rc, "opening the git repository in", dir);
		goto out;
	}
	git_oid oid;
	rc = git_reference_name_to_id(&oid, r, "HEAD");
	if (rc == 0)
		git_oid_tostr(out, 41, &oid);
	else if (rc != GIT_ENOTFOUND && rc != GIT_EUNBORNBRANCH)
		err = lg2_error(rc, "reading HEAD of", dir);
out:
	git_repository_free(r);
	git_libgit2_shutdown();
	return err;
}

sb_err *sb_git_fetch_branch(const char *host_dir, const char *src_dir, const char *src_head,
                            const char *branch, const char *base, size_t *n_commits)
{
	*n_commits = 0;
	sb_err *err = sb_git_lib_init();
	if (err)
		return sb_err_prefix(err, "bringing the sandbox's commits into %s", host_dir);
	git_repository *host = NULL;
	git_remote *remote = NULL;
	git_revwalk *walk = NULL;
	char *ref = sb_strfmt("refs/heads/%s", branch);
	char *spec = sb_strfmt("+HEAD:%s", ref);
	char *url = sb_strfmt("%s/.git", src_dir);
	if (!git_reference_is_valid_name(ref)) {
		err = sb_err_new(SB_E_INVAL, "\"%s\" is not a valid branch name", branch);
		goto out;
	}
	int rc = git_repository_open_ext(&host, host_dir, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL);
	if (rc < 0) {
		err = lg2_error(rc, "opening the git repository in", host_dir);
		goto out;
	}
	/* An anonymous remote on a local path: no url.*.insteadOf rewriting (which would be
	 * wrong for a path, and leaks in libgit2 1.5's PCRE2 matcher). */
	git_remote_create_options ro;
	git_remote_create_options_init(&ro, GIT_REMOTE_CREATE_OPTIONS_VERSION);
	ro.repository = host;
	ro.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
	rc = git_remote_create_with_opts(&remote, url, &ro);
	if (rc < 0) {
		err = lg2_error(rc, "reading the sandbox's repository", url);
		goto out;
	}
	git_fetch_options fo;
	git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
	fo.update_fetchhead = 0;
	fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
	char *specs[] = {spec};
	git_strarray refspecs = {specs, 1};
	char *fetch_head = sb_strfmt("%s/FETCH_HEAD", git_repository_path(host));
	struct stat fst;
	bool had_fetch_head = lstat(fetch_head, &fst) == 0;
	rc = git_remote_fetch(remote, &refspecs, &fo, "sandbar: commits made in the sandbox");
	/* libgit2 creates an empty FETCH_HEAD even when told not to write it. */
	if (!had_fetch_head && lstat(fetch_head, &fst) == 0 && fst.st_size == 0)
		(void)unlink(fetch_head);
	free(fetch_head);
	if (rc < 0) {
		err = lg2_error(rc, "fetching the sandbox's commits from", url);
		goto out;
	}
	git_oid got, want;
	rc = git_reference_name_to_id(&got, host, ref);
	if (rc < 0) {
		err = lg2_error(rc, "reading the new branch in", host_dir);
		goto out;
	}
	if (git_oid_fromstr(&want, src_head) == 0 && !git_oid_equal(&got, &want)) {
		err = sb_err_new(SB_E_PROTOCOL,
		                 "the branch %s fetched from %s is not the sandbox's HEAD %s",
		                 branch, url, src_head);
		goto out;
	}
	if (git_revwalk_new(&walk, host) == 0 && git_revwalk_push(walk, &got) == 0) {
		git_oid b;
		if (base && base[0] && git_oid_fromstr(&b, base) == 0)
			(void)git_revwalk_hide(walk, &b); /* unknown base: count everything */
		git_oid o;
		while (git_revwalk_next(&o, walk) == 0)
			(*n_commits)++;
	}
out:
	git_revwalk_free(walk);
	git_remote_free(remote);
	git_repository_free(host);
	git_libgit2_shutdown();
	free(ref);
	free(spec);
	free(url);
	return err;
}
