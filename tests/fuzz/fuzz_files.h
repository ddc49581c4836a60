/*
 * For fuzz targets that feed config_load a key file and a brokerd.yaml:
 * a private folder made once, removed at exit, and a way to write them.
 * Header-only: each target is built from its one .c file (Makefile).
 */
#ifndef FUZZ_FILES_H
#define FUZZ_FILES_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char	 fuzz_dir[64];
static char	 fuzz_keyfile[96], fuzz_conffile[96];

static void
fuzz_files_cleanup(void)
{
	unlink(fuzz_keyfile);
	unlink(fuzz_conffile);
	rmdir(fuzz_dir);
}

/* Once: the folder /tmp/NAME.XXXXXX, its key and brokerd.yaml paths. */
static int
fuzz_files_init(const char *name)
{
	if (fuzz_keyfile[0] != '\0')
		return (0);
	unsetenv("IBKR_BRIDGE_KEY");
	unsetenv("IBKR_BRIDGE_URL");
	unsetenv("IBKR_GATEWAY_URL");
	snprintf(fuzz_dir, sizeof(fuzz_dir), "/tmp/%s.XXXXXX", name);
	if (mkdtemp(fuzz_dir) == NULL)
		abort();
	snprintf(fuzz_keyfile, sizeof(fuzz_keyfile), "%s/key", fuzz_dir);
	snprintf(fuzz_conffile, sizeof(fuzz_conffile), "%s/brokerd.yaml",
	    fuzz_dir);
	atexit(fuzz_files_cleanup);
	return (1);
}

/* PATH holds exactly LEN bytes of S, mode 0600. */
static void
fuzz_put(const char *path, const void *s, size_t len)
{
	int	 fd;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1 ||
	    (len > 0 && write(fd, s, len) != (ssize_t)len) || close(fd) == -1)
		abort();
}

#endif
