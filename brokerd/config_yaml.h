/*
 * config_yaml.c: YAML nodes (libyaml's document API) into typed values,
 * every error with FILE:LINE:COL and the key path.  Shared by config.c
 * and its tests; nothing here knows the sections or does I/O.
 */
#ifndef BROKERD_CONFIG_YAML_H
#define BROKERD_CONFIG_YAML_H

#include <stddef.h>

#include <yaml.h>

#define CFG_PATH	256		/* "routes[3].methods.GET" */

struct config;
struct rate;

/* One load in progress. */
struct cfg {
	const char	*file;		/* for messages */
	const char	*text;		/* the YAML, for reader error offsets */
	size_t		 textlen;
	yaml_document_t	*doc;
	struct config	*conf;		/* what the sections fill */
	int		 have_routes;	/* routes: given, even empty */
	char		*err;
	size_t		 errlen;
};

typedef int	(*cfg_fn)(struct cfg *, yaml_node_t *, const char *);

/* Parse text (one document at most) and hand its root to fn. */
int	cfg_parse(struct cfg *, const char *, size_t,
	    int (*)(struct cfg *, yaml_node_t *));
int	cfg_errorf(struct cfg *, const yaml_node_t *, const char *,
	    const char *, ...) __attribute__((format(printf, 4, 5)));
void	cfg_sanitize(char *, size_t, const char *, size_t);
void	cfg_path(char *, const char *, const char *);
yaml_node_t *cfg_node(struct cfg *, int);
int	cfg_is_null(const yaml_node_t *);
int	cfg_scalar(struct cfg *, yaml_node_t *, const char *, const char **);
int	cfg_uint(struct cfg *, yaml_node_t *, const char *,
	    unsigned long long, unsigned long long, unsigned long long *);
int	cfg_unsigned(struct cfg *, yaml_node_t *, const char *,
	    unsigned long long, unsigned long long, unsigned *);
int	cfg_size(struct cfg *, yaml_node_t *, const char *,
	    unsigned long long, unsigned long long, size_t *);
int	cfg_bool(struct cfg *, yaml_node_t *, const char *, int *);
int	cfg_string(struct cfg *, yaml_node_t *, const char *, int, char **);
int	cfg_rate(struct cfg *, yaml_node_t *, const char *, struct rate *);
int	cfg_scope(struct cfg *, yaml_node_t *, const char *, unsigned *);
int	cfg_scopes(struct cfg *, yaml_node_t *, const char *, unsigned *);
int	cfg_collect(struct cfg *, yaml_node_t *, const char *,
	    const char *const *, yaml_node_t **);
int	cfg_list(struct cfg *, yaml_node_t *, const char *, cfg_fn);

#endif
