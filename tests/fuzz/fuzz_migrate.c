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
#include "fuzz_files.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct migrate_env me;
	struct config	*conf;
	char		 err[512], yaml[8192];

	fuzz_files_init("fuzz_migrate");
	if (migrate_parse((const char *)data, size, &me, err,
	    sizeof(err)) == -1)
		return (0);
	/* The key shows only inside a value the .env gave beside it. */
	if (me.key == NULL || migrate_yaml(&me, fuzz_keyfile, yaml,
	    sizeof(yaml)) == -1 || (strstr(yaml, me.key) != NULL &&
	    (me.gw_url == NULL || strstr(me.gw_url, me.key) == NULL) &&
	    (me.tcp == NULL || strstr(me.tcp, me.key) == NULL)))
		abort();
	fuzz_put(fuzz_keyfile, me.key, strlen(me.key));
	fuzz_put(fuzz_conffile, yaml, strlen(yaml));
	if ((conf = config_load(fuzz_conffile, err, sizeof(err))) == NULL) {
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
