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
#include "fuzz_files.h"

static void
setup(void)
{
	char	 yaml[256];

	if (!fuzz_files_init("fuzz_keyfile"))
		return;
	snprintf(yaml, sizeof(yaml), "keys:\n  - { name: k, key_file: %s, "
	    "scopes: [read] }\n", fuzz_keyfile);
	fuzz_put(fuzz_conffile, yaml, strlen(yaml));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config	*conf;
	char		 err[1024], *more;
	size_t		 len = size;

	setup();
	fuzz_put(fuzz_keyfile, data, size);
	err[0] = '\0';
	conf = config_load(fuzz_conffile, err, sizeof(err));
	if (len > 0 && data[len - 1] == '\n')
		len--;
	if (len > 0 && data[len - 1] == '\r')
		len--;
	if (conf == NULL) {
		if (strncmp(err, fuzz_conffile, strlen(fuzz_conffile)) != 0 ||
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
