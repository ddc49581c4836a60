/*
 * config_load on arbitrary bytes written to a file: YAML syntax, types,
 * aliases, odd keys.  Whatever it accepts or refuses must leave no leak,
 * no crash, and an error message that names the file and is one line of
 * text (it goes to the log: no control byte from the file in it).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brokerd.h"

static char	 path[] = "/tmp/fuzz_config.XXXXXX";
static int	 fd = -1;

static void
cleanup(void)
{
	if (fd != -1)
		unlink(path);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config	*conf;
	char		 err[1024];
	size_t		 i;

	if (fd == -1) {
		unsetenv("IBKR_BRIDGE_KEY");
		unsetenv("IBKR_BRIDGE_URL");
		unsetenv("IBKR_GATEWAY_URL");
		if ((fd = mkstemp(path)) == -1)
			abort();
		atexit(cleanup);
	}
	if (ftruncate(fd, 0) == -1 ||
	    (size > 0 && pwrite(fd, data, size, 0) != (ssize_t)size))
		abort();
	err[0] = '\0';
	conf = config_load(path, err, sizeof(err));
	if (conf == NULL) {
		if (strncmp(err, path, strlen(path)) != 0)
			abort();
		for (i = 0; err[i] != '\0'; i++)
			if ((unsigned char)err[i] < 0x20 ||
			    (unsigned char)err[i] == 0x7f)
				abort();
	} else {
		if (conf->nroutes > 0 && conf->routes == NULL)
			abort();
		config_free(conf);
	}
	return (0);
}
