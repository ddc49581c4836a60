/*
 * libFuzzer: a key file's bytes (key_file in brokerd.yaml), read by
 * config_load as brokerd reads it at start and on reload.  Beyond no
 * crash: a file taken gives the key that is its bytes less one trailing
 * newline (and CR), and auth_key_find knows it and not that key with a
 * byte more; whatever is refused, the error names the file and never
 * holds the file's secret.
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brokerd.h"

static char	 dir[] = "/tmp/fuzz_keyfile.XXXXXX";
static char	 keyfile[64], conffile[64];

static void
cleanup(void)
{
	unlink(keyfile);
	unlink(conffile);
	rmdir(dir);
}

static void
put(const char *path, const void *s, size_t len)
{
	int	 fd;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1 ||
	    (len > 0 && write(fd, s, len) != (ssize_t)len) || close(fd) == -1)
		abort();
}

static void
setup(void)
{
	char	 yaml[256];

	unsetenv("IBKR_BRIDGE_KEY");
	unsetenv("IBKR_BRIDGE_URL");
	unsetenv("IBKR_GATEWAY_URL");
	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(keyfile, sizeof(keyfile), "%s/key", dir);
	snprintf(conffile, sizeof(conffile), "%s/brokerd.yaml", dir);
	snprintf(yaml, sizeof(yaml), "keys:\n  - { name: k, key_file: %s, "
	    "scopes: [read] }\n", keyfile);
	put(conffile, yaml, strlen(yaml));
	atexit(cleanup);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config	*conf;
	char		 err[1024], *more;
	size_t		 len = size;

	if (keyfile[0] == '\0')
		setup();
	put(keyfile, data, size);
	err[0] = '\0';
	conf = config_load(conffile, err, sizeof(err));
	if (len > 0 && data[len - 1] == '\n')
		len--;
	if (len > 0 && data[len - 1] == '\r')
		len--;
	if (conf == NULL) {
		if (strncmp(err, conffile, strlen(conffile)) != 0 ||
		    (len >= 8 && memmem(err, strlen(err), data, len) != NULL))
			abort();
		return (0);
	}
	if (auth_key_find(conf, (const char *)data, len) == NULL ||
	    (more = malloc(len + 1)) == NULL)
		abort();
	memcpy(more, data, len);
	more[len] = 'x';
	if (auth_key_find(conf, more, len + 1) != NULL)
		abort();
	free(more);
	config_free(conf);
	return (0);
}
