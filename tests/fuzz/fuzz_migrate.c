/*
 * libFuzzer: `brokerd migrate-env`'s .env reader (migrate_parse) and the
 * key file reader behind key_file.  Whatever .env it takes, what it prints
 * must be what brokerd serves: the key, written to a key file as
 * migrate-env writes it, and the YAML lines migrate_yaml prints must load
 * (config_load) with the same TCP listener and Gateway URL and a key that
 * auth_key_find knows; the key itself never appears in the YAML.
 */
#include <sys/stat.h>

#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brokerd.h"

static char	 dir[] = "/tmp/fuzz_migrate.XXXXXX";
static char	 keyfile[64], conffile[64];

static void
cleanup(void)
{
	unlink(keyfile);
	unlink(conffile);
	rmdir(dir);
}

static void
put(const char *path, const char *s, size_t len)
{
	int	 fd;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1 ||
	    write(fd, s, len) != (ssize_t)len || close(fd) == -1)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct migrate_env me;
	struct config	*conf;
	char		 err[512], yaml[8192];

	if (keyfile[0] == '\0') {
		unsetenv("IBKR_BRIDGE_KEY");
		unsetenv("IBKR_BRIDGE_URL");
		unsetenv("IBKR_GATEWAY_URL");
		if (mkdtemp(dir) == NULL)
			abort();
		snprintf(keyfile, sizeof(keyfile), "%s/key", dir);
		snprintf(conffile, sizeof(conffile), "%s/brokerd.yaml", dir);
		atexit(cleanup);
	}
	if (migrate_parse((const char *)data, size, &me, err,
	    sizeof(err)) == -1)
		return (0);
	if (me.key == NULL || migrate_yaml(&me, keyfile, yaml,
	    sizeof(yaml)) == -1 || strstr(yaml, me.key) != NULL)
		abort();
	put(keyfile, me.key, strlen(me.key));
	put(conffile, yaml, strlen(yaml));
	if ((conf = config_load(conffile, err, sizeof(err))) == NULL) {
		fprintf(stderr, "migrate-env printed:\n%s\nconfig_load: %s\n",
		    yaml, err);
		abort();
	}
	if ((me.tcp == NULL) != (conf->tcp == NULL) ||
	    (me.tcp != NULL && strcmp(me.tcp, conf->tcp) != 0) ||
	    (me.gw_url != NULL && strcmp(me.gw_url, conf->gw_url) != 0) ||
	    auth_key_find(conf, me.key, strlen(me.key)) == NULL)
		abort();
	config_free(conf);
	migrate_env_free(&me);
	return (0);
}
