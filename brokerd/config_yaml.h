/*
 * config_yaml.c: YAML nodes (libyaml's document API) into typed values,
 * every error with FILE:LINE:COL and the key path, and the engine that
 * reads a mapping by a table of rows.  Shared by config.c, config_lists.c
 * and their tests; nothing here knows the sections or does I/O.
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

#define CFG_MAX_ROWS	16		/* keys in one section */

enum cfg_type {
	CT_UINT,		/* unsigned, min-max */
	CT_SIZE,		/* size_t, min-max */
	CT_BOOL,		/* int 0 or 1 */
	CT_STR,			/* char *, never null */
	CT_NSTR,		/* char *, null allowed */
	CT_RATE,		/* struct rate */
	CT_SCOPES,		/* unsigned bit set of SCOPE_* */
	CT_FN			/* fn reads the value itself */
};

/* One key of a section. */
struct cfg_row {
	const char	*name;
	enum cfg_type	 type;
	size_t		 off;		/* of the field in its struct */
	unsigned long long min, max;	/* CT_UINT, CT_SIZE */
	unsigned long long def;		/* CT_UINT, CT_SIZE, CT_BOOL */
	const char	*sdef;		/* CT_STR, CT_NSTR, CT_RATE */
	cfg_fn		 fn;		/* CT_FN: reads; others: checks after */
};

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
/* A mapping read by a table of rows into the struct at base. */
int	cfg_section(struct cfg *, yaml_node_t *, const char *,
	    const struct cfg_row *, void *);
void	cfg_names(const struct cfg_row *, const char **);
int	cfg_apply(struct cfg *, const struct cfg_row *, yaml_node_t **,
	    const char *, void *);

/* config_lists.c: the list sections (keys, peers, routes). */
int	config_lists_keys(struct cfg *, yaml_node_t *, const char *);
int	config_lists_peers(struct cfg *, yaml_node_t *, const char *);
int	config_lists_routes(struct cfg *, yaml_node_t *, const char *);
int	config_lists_add_key(struct config *, const char *, const char *,
	    size_t, unsigned);

#endif
