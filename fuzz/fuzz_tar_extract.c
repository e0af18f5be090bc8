/* libFuzzer target: any bytes as a tar archive for sb_tar_extract. Extraction happens in
 * <tmp>/box/root; afterwards <tmp>/box must hold nothing but root, so an escape through "..",
 * an absolute name or a symlink aborts the run instead of passing silently. */
#include <sandbar/base.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void check_only_root(const char *box)
{
	DIR *d = opendir(box);
	if (!d)
		abort();
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    strcmp(de->d_name, "root") == 0)
			continue;
		fprintf(stderr, "fuzz_tar_extract: %s/%s was written outside the target\n", box,
		        de->d_name);
		abort();
	}
	closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool quiet;
	if (!quiet) {
		sb_log_set_level(SB_LOG_ERROR); /* skipped members warn; not interesting here */
		quiet = true;
	}
	int fd = memfd_create("fuzz-tar", MFD_CLOEXEC);
	if (fd < 0)
		abort();
	sb_err *err = sb_write_all(fd, data, size);
	if (err || lseek(fd, 0, SEEK_SET) != 0)
		abort();
	char *box = NULL;
	err = sb_fs_mkdtemp("fuzz-tar", &box);
	if (err)
		abort();
	char *root = sb_strfmt("%s/root", box);
	uint64_t bytes = 0;
	err = sb_tar_extract(fd, root, &bytes);
	sb_err_free(err);
	if (bytes > size)
		abort(); /* cannot read more than was there */
	check_only_root(box);
	err = sb_fs_rm_rf(box);
	if (err) {
		fprintf(stderr, "fuzz_tar_extract: cleaning %s: %s\n", box, err->msg);
		abort();
	}
	free(root);
	free(box);
	close(fd);
	return 0;
}
