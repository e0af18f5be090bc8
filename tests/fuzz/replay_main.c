/* Driver for replaying a libFuzzer target without libFuzzer: feeds every file of the corpus
 * directory given as argv[1], then a fixed set of generated inputs (empty, all byte values,
 * long runs, truncations of each corpus file), so the fuzz.* tests exercise the parsers in every
 * build. Prints the plain closing line "N passed, 0 failed". */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t runs;

static void feed(const uint8_t *p, size_t n)
{
	/* Copy so the target sees an exact-size heap block (ASan catches overreads). */
	uint8_t *copy = malloc(n ? n : 1);
	if (!copy)
		abort();
	if (n)
		memcpy(copy, p, n);
	LLVMFuzzerTestOneInput(copy, n);
	free(copy);
	runs++;
}

static void feed_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return;
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (len == cap) {
			cap = cap ? cap * 2 : 4096;
			buf = realloc(buf, cap);
			if (!buf)
				abort();
		}
		size_t got = fread(buf + len, 1, cap - len, f);
		if (got == 0)
			break;
		len += got;
	}
	fclose(f);
	feed(buf, len);
	for (size_t cut = 1; cut < len && cut < 64; cut++)
		feed(buf, len - cut);
	free(buf);
}

int main(int argc, char **argv)
{
	uint8_t all[256];
	for (int i = 0; i < 256; i++)
		all[i] = (uint8_t)i;
	feed(all, 0);
	feed(all, sizeof all);
	uint8_t *run = malloc(1 << 16);
	if (!run)
		abort();
	const uint8_t fills[] = {'[', '{', '"', '=', 'A', '\n', 0xff};
	for (size_t i = 0; i < sizeof fills; i++) {
		memset(run, fills[i], 1 << 16);
		feed(run, 1 << 16);
	}
	free(run);
	if (argc > 1) {
		DIR *d = opendir(argv[1]);
		if (d) {
			struct dirent *de;
			while ((de = readdir(d)) != NULL) {
				if (de->d_name[0] == '.')
					continue;
				char path[4096];
				snprintf(path, sizeof path, "%s/%s", argv[1], de->d_name);
				feed_file(path);
			}
			closedir(d);
		}
	}
	printf("%zu passed, 0 failed\n", runs);
	return 0;
}
