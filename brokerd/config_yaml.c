/*
 * YAML nodes (libyaml's document API) -> typed values.  Every error names
 * FILE:LINE:COL and the key path; user text in a message is sanitised.
 * No I/O: config.c reads the file and hands over its text.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "brokerd.h"
#include "config_yaml.h"
#include "value.h"

/* ---------------------------------------------------------------- errors */

/* User text in a message: printable, bounded (no terminal escapes). */
void
cfg_sanitize(char *out, size_t outlen, const char *in, size_t inlen)
{
	size_t	 i, o = 0;

	for (i = 0; i < inlen && o + 4 < outlen; i++)
		out[o++] = isprint((unsigned char)in[i]) ? in[i] : '?';
	if (i < inlen && o + 4 <= outlen) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

int
cfg_errorf(struct cfg *c, const yaml_node_t *node, const char *path,
    const char *fmt, ...)
{
	char	 msg[768];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (node != NULL)
		snprintf(c->err, c->errlen, "%s:%zu:%zu: %s%s%s", c->file,
		    node->start_mark.line + 1, node->start_mark.column + 1,
		    path != NULL ? path : "", path != NULL ? ": " : "", msg);
	else
		snprintf(c->err, c->errlen, "%s: %s%s%s", c->file,
		    path != NULL ? path : "", path != NULL ? ": " : "", msg);
	return (-1);
}

/* A key path for messages; a truncated one still helps, so keep it. */
void
cfg_path(char *out, const char *parent, const char *child)
{
	int	 n;

	if (parent == NULL || *parent == '\0')
		n = snprintf(out, CFG_PATH, "%s", child);
	else
		n = snprintf(out, CFG_PATH, "%s.%s", parent, child);
	if (n < 0)
		out[0] = '\0';
}

static void
cfg_path_index(char *out, const char *parent, size_t i)
{
	if (snprintf(out, CFG_PATH, "%s[%zu]", parent, i) < 0)
		out[0] = '\0';
}

/* ------------------------------------------------------------ YAML nodes */

yaml_node_t *
cfg_node(struct cfg *c, int id)
{
	return (yaml_document_get_node(c->doc, id));
}

int
cfg_is_null(const yaml_node_t *n)
{
	const char *v;

	if (n == NULL)
		return (1);
	if (n->type != YAML_SCALAR_NODE ||
	    n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return (0);
	v = (const char *)n->data.scalar.value;
	return (n->data.scalar.length == 0 || strcmp(v, "~") == 0 ||
	    strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
	    strcmp(v, "NULL") == 0);
}

/* A scalar as a C string; refuses lists, maps and embedded NULs. */
int
cfg_scalar(struct cfg *c, yaml_node_t *n, const char *path, const char **out)
{
	if (n->type == YAML_SEQUENCE_NODE)
		return (cfg_errorf(c, n, path, "expected a value, not a list"));
	if (n->type == YAML_MAPPING_NODE)
		return (cfg_errorf(c, n, path,
		    "expected a value, not a mapping"));
	if (n->type != YAML_SCALAR_NODE)
		return (cfg_errorf(c, n, path, "expected a value"));
	if (strlen((const char *)n->data.scalar.value) !=
	    n->data.scalar.length)
		return (cfg_errorf(c, n, path, "contains a NUL byte"));
	*out = (const char *)n->data.scalar.value;
	return (0);
}

int
cfg_uint(struct cfg *c, yaml_node_t *n, const char *path,
    unsigned long long min, unsigned long long max, unsigned long long *out)
{
	const char		*s, *p;
	unsigned long long	 v = 0;

	if (cfg_scalar(c, n, path, &s) == -1)
		return (-1);
	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || *s == '\0')
		goto bad;
	for (p = s; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			goto bad;
		if (v > (~0ULL - 9) / 10)
			return (cfg_errorf(c, n, path, "%s is too large", s));
		v = v * 10 + (unsigned long long)(*p - '0');
	}
	if (v < min || v > max)
		return (cfg_errorf(c, n, path, "%llu is out of range %llu-%llu",
		    v, min, max));
	*out = v;
	return (0);
bad:
	{
		char	 shown[64];

		cfg_sanitize(shown, sizeof(shown), s, strlen(s));
		return (cfg_errorf(c, n, path,
		    "expected a whole number, got \"%s\"", shown));
	}
}

int
cfg_unsigned(struct cfg *c, yaml_node_t *n, const char *path,
    unsigned long long min, unsigned long long max, unsigned *out)
{
	unsigned long long v;

	if (cfg_uint(c, n, path, min, max, &v) == -1)
		return (-1);
	*out = (unsigned)v;
	return (0);
}

int
cfg_size(struct cfg *c, yaml_node_t *n, const char *path,
    unsigned long long min, unsigned long long max, size_t *out)
{
	unsigned long long v;

	if (cfg_uint(c, n, path, min, max, &v) == -1)
		return (-1);
	*out = (size_t)v;
	return (0);
}

int
cfg_bool(struct cfg *c, yaml_node_t *n, const char *path, int *out)
{
	static const char *const yes[] = { "true", "yes", "on" };
	static const char *const no[] = { "false", "no", "off" };
	const char	*s;
	size_t		 i;

	if (cfg_scalar(c, n, path, &s) == -1)
		return (-1);
	if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
		for (i = 0; i < 3; i++) {
			if (strcasecmp(s, yes[i]) == 0) {
				*out = 1;
				return (0);
			}
			if (strcasecmp(s, no[i]) == 0) {
				*out = 0;
				return (0);
			}
		}
	return (cfg_errorf(c, n, path, "expected true or false"));
}

/* Replace *out with a copy of the scalar (NULL for null when allowed). */
int
cfg_string(struct cfg *c, yaml_node_t *n, const char *path, int nullable,
    char **out)
{
	const char	*s;
	char		*copy = NULL;

	if (cfg_is_null(n)) {
		if (!nullable)
			return (cfg_errorf(c, n, path, "must not be empty"));
	} else {
		if (cfg_scalar(c, n, path, &s) == -1)
			return (-1);
		if ((copy = strdup(s)) == NULL)
			return (cfg_errorf(c, n, path, "out of memory"));
	}
	free(*out);
	*out = copy;
	return (0);
}

int
cfg_rate(struct cfg *c, yaml_node_t *n, const char *path, struct rate *out)
{
	const char	*s;
	char		 shown[64];

	if (cfg_scalar(c, n, path, &s) == -1)
		return (-1);
	if (value_rate_parse(s, out) == -1) {
		cfg_sanitize(shown, sizeof(shown), s, strlen(s));
		return (cfg_errorf(c, n, path, "bad rate \"%s\" (expected "
		    "N/s, N/Ns, N/min, N/Nmin or off)", shown));
	}
	return (0);
}

/* One scope name (read, trade, admin) into its bit. */
int
cfg_scope(struct cfg *c, yaml_node_t *n, const char *path, unsigned *bit)
{
	const char	*s;
	char		 shown[64];

	if (cfg_scalar(c, n, path, &s) == -1)
		return (-1);
	if (auth_scope_parse(s, bit) == -1) {
		cfg_sanitize(shown, sizeof(shown), s, strlen(s));
		return (cfg_errorf(c, n, path, "unknown scope "
		    "\"%s\" (expected read, trade or admin)", shown));
	}
	return (0);
}

/* A list of scope names into a bit set. */
int
cfg_scopes(struct cfg *c, yaml_node_t *n, const char *path, unsigned *out)
{
	yaml_node_item_t *it;
	yaml_node_t	*item;
	char		 ipath[CFG_PATH];
	unsigned	 bits = 0, bit;
	size_t		 i = 0;

	if (cfg_is_null(n)) {
		*out = 0;
		return (0);
	}
	if (n->type != YAML_SEQUENCE_NODE)
		return (cfg_errorf(c, n, path,
		    "expected a list of scopes (read, trade, admin)"));
	for (it = n->data.sequence.items.start;
	    it < n->data.sequence.items.top; it++, i++) {
		cfg_path_index(ipath, path, i);
		if ((item = cfg_node(c, *it)) == NULL)
			return (cfg_errorf(c, n, ipath, "bad node"));
		if (cfg_scope(c, item, ipath, &bit) == -1)
			return (-1);
		bits |= bit;
	}
	*out = bits;
	return (0);
}

/*
 * Check a mapping against the names it may hold: unknown keys, duplicate
 * keys and non-scalar keys are errors.  vals[i] gets the value of names[i]
 * (NULL when absent) and keys[i] its key node.  A null is an empty map.
 */
int
cfg_collect(struct cfg *c, yaml_node_t *map, const char *path,
    const char *const *names, yaml_node_t **vals)
{
	yaml_node_pair_t *pair, *prev;
	yaml_node_t	*k, *pk;
	const char	*ks;
	char		 kpath[CFG_PATH], shown[80];
	size_t		 i, nnames;

	for (nnames = 0; names[nnames] != NULL; nnames++)
		vals[nnames] = NULL;
	if (cfg_is_null(map))
		return (0);
	if (map->type != YAML_MAPPING_NODE)
		return (cfg_errorf(c, map, path && *path ? path : "(top level)",
		    "expected a mapping (key: value)"));
	for (pair = map->data.mapping.pairs.start;
	    pair < map->data.mapping.pairs.top; pair++) {
		if ((k = cfg_node(c, pair->key)) == NULL)
			return (cfg_errorf(c, map, path, "bad node"));
		if (k->type != YAML_SCALAR_NODE)
			return (cfg_errorf(c, k, path,
			    "a key must be a plain name"));
		ks = (const char *)k->data.scalar.value;
		cfg_sanitize(shown, sizeof(shown), ks, k->data.scalar.length);
		cfg_path(kpath, path, shown);
		for (prev = map->data.mapping.pairs.start; prev < pair;
		    prev++) {
			pk = cfg_node(c, prev->key);
			if (pk != NULL && pk->type == YAML_SCALAR_NODE &&
			    pk->data.scalar.length == k->data.scalar.length &&
			    memcmp(pk->data.scalar.value, ks,
			    k->data.scalar.length) == 0)
				return (cfg_errorf(c, k, kpath,
				    "duplicate key (first at line %zu)",
				    pk->start_mark.line + 1));
		}
		for (i = 0; i < nnames; i++)
			if (strlen(names[i]) == k->data.scalar.length &&
			    memcmp(names[i], ks, k->data.scalar.length) == 0)
				break;
		if (i == nnames)
			return (cfg_errorf(c, k, kpath, "unknown key"));
		if ((vals[i] = cfg_node(c, pair->value)) == NULL)
			return (cfg_errorf(c, k, kpath, "bad node"));
	}
	return (0);
}

/* Iterate a list (null: empty); the callback gets each item and its path. */
int
cfg_list(struct cfg *c, yaml_node_t *n, const char *path, cfg_fn fn)
{
	yaml_node_item_t *it;
	yaml_node_t	*item;
	char		 ipath[CFG_PATH];
	size_t		 i = 0;

	if (cfg_is_null(n))
		return (0);
	if (n->type != YAML_SEQUENCE_NODE)
		return (cfg_errorf(c, n, path, "expected a list"));
	for (it = n->data.sequence.items.start;
	    it < n->data.sequence.items.top; it++, i++) {
		cfg_path_index(ipath, path, i);
		if ((item = cfg_node(c, *it)) == NULL)
			return (cfg_errorf(c, n, ipath, "bad node"));
		if (fn(c, item, ipath) == -1)
			return (-1);
	}
	return (0);
}


/* Line and column of a byte offset, for libyaml's reader errors. */
static void
cfg_offset_pos(const struct cfg *c, size_t off, size_t *line, size_t *col)
{
	size_t	 i;

	*line = 1;
	*col = 1;
	for (i = 0; i < off && i < c->textlen; i++) {
		if (c->text[i] == '\n') {
			(*line)++;
			*col = 1;
		} else
			(*col)++;
	}
}

static void
cfg_yaml_error(struct cfg *c, const yaml_parser_t *parser)
{
	size_t	 line, col;

	if (parser->error == YAML_READER_ERROR) {
		cfg_offset_pos(c, parser->problem_offset, &line, &col);
		snprintf(c->err, c->errlen, "%s:%zu:%zu: %s", c->file, line,
		    col, parser->problem != NULL ? parser->problem :
		    "cannot read the YAML");
	} else if (parser->error == YAML_MEMORY_ERROR)
		snprintf(c->err, c->errlen, "%s: out of memory", c->file);
	else if (parser->context != NULL)
		snprintf(c->err, c->errlen, "%s:%zu:%zu: %s (%s at line %zu, "
		    "column %zu)", c->file, parser->problem_mark.line + 1,
		    parser->problem_mark.column + 1,
		    parser->problem != NULL ? parser->problem : "syntax error",
		    parser->context, parser->context_mark.line + 1,
		    parser->context_mark.column + 1);
	else
		snprintf(c->err, c->errlen, "%s:%zu:%zu: %s", c->file,
		    parser->problem_mark.line + 1,
		    parser->problem_mark.column + 1,
		    parser->problem != NULL ? parser->problem : "syntax error");
}

/* The scalars may hold keys: wipe them before libyaml frees them. */
static void
cfg_wipe_document(yaml_document_t *doc)
{
	yaml_node_t	*n;

	for (n = doc->nodes.start; n != NULL && n < doc->nodes.top; n++)
		if (n->type == YAML_SCALAR_NODE && n->data.scalar.value != NULL)
			explicit_bzero(n->data.scalar.value,
			    n->data.scalar.length);
}

static void
cfg_wipe_parser(yaml_parser_t *parser)
{
	if (parser->buffer.start != NULL)
		explicit_bzero(parser->buffer.start,
		    (size_t)(parser->buffer.end - parser->buffer.start));
	if (parser->raw_buffer.start != NULL)
		explicit_bzero(parser->raw_buffer.start,
		    (size_t)(parser->raw_buffer.end -
		    parser->raw_buffer.start));
}

/* Read the whole file (bounded); *text is wiped and freed by the caller. */

/* A second document would be silently ignored: refuse it. */
static int
cfg_one_document(struct cfg *c, yaml_parser_t *parser)
{
	yaml_document_t	 extra;
	yaml_node_t	*root2;

	if (!yaml_parser_load(parser, &extra)) {
		cfg_yaml_error(c, parser);
		return (-1);
	}
	root2 = yaml_document_get_root_node(&extra);
	if (root2 != NULL)
		snprintf(c->err, c->errlen, "%s:%zu:%zu: only one YAML "
		    "document is allowed", c->file, root2->start_mark.line + 1,
		    root2->start_mark.column + 1);
	cfg_wipe_document(&extra);
	yaml_document_delete(&extra);
	return (root2 != NULL ? -1 : 0);
}

/*
 * Parse the text and hand its root to fn (an empty document has none).
 * The parser's buffers and the document's scalars may hold keys: both
 * are wiped before libyaml frees them.
 */
int
cfg_parse(struct cfg *c, const char *text, size_t len,
    int (*fn)(struct cfg *, yaml_node_t *))
{
	yaml_parser_t	 parser;
	yaml_document_t	 doc;
	yaml_node_t	*root;
	int		 rc = -1, have_doc = 0;

	c->text = text;
	c->textlen = len;
	if (!yaml_parser_initialize(&parser)) {
		snprintf(c->err, c->errlen, "%s: out of memory", c->file);
		c->text = NULL;
		return (-1);
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text,
	    len);
	if (!yaml_parser_load(&parser, &doc)) {
		cfg_yaml_error(c, &parser);
		goto out;
	}
	have_doc = 1;
	c->doc = &doc;
	root = yaml_document_get_root_node(&doc);
	if (root != NULL && (cfg_one_document(c, &parser) == -1 ||
	    fn(c, root) == -1))
		goto out;
	rc = 0;
out:
	if (have_doc) {
		cfg_wipe_document(&doc);
		yaml_document_delete(&doc);
	}
	c->doc = NULL;
	cfg_wipe_parser(&parser);
	yaml_parser_delete(&parser);
	c->text = NULL;
	return (rc);
}

/* ------------------------------------------------------------ the tables */

static int
cfg_value(struct cfg *c, const struct cfg_row *row, yaml_node_t *n,
    const char *path, void *base)
{
	char	*f = (char *)base + row->off;
	int	 rc = -1;

	switch (row->type) {
	case CT_UINT:
		rc = cfg_unsigned(c, n, path, row->min, row->max,
		    (unsigned *)(void *)f);
		break;
	case CT_SIZE:
		rc = cfg_size(c, n, path, row->min, row->max,
		    (size_t *)(void *)f);
		break;
	case CT_BOOL:
		rc = cfg_bool(c, n, path, (int *)(void *)f);
		break;
	case CT_STR:
	case CT_NSTR:
		rc = cfg_string(c, n, path, row->type == CT_NSTR,
		    (char **)(void *)f);
		break;
	case CT_RATE:
		rc = cfg_rate(c, n, path, (struct rate *)(void *)f);
		break;
	case CT_SCOPES:
		rc = cfg_scopes(c, n, path, (unsigned *)(void *)f);
		break;
	case CT_FN:
		return (row->fn(c, n, path));
	}
	if (rc == 0 && row->fn != NULL)
		rc = row->fn(c, n, path);
	return (rc);
}

void
cfg_names(const struct cfg_row *rows, const char **names)
{
	size_t	 i;

	for (i = 0; i < CFG_MAX_ROWS && rows[i].name != NULL; i++)
		names[i] = rows[i].name;
	names[i] = NULL;
}

/* The keys given (v[i] for rows[i]), in the table's order. */
int
cfg_apply(struct cfg *c, const struct cfg_row *rows, yaml_node_t **v,
    const char *path, void *base)
{
	char	 p[CFG_PATH];
	size_t	 i;

	for (i = 0; rows[i].name != NULL; i++) {
		if (v[i] == NULL)
			continue;
		cfg_path(p, path, rows[i].name);
		if (cfg_value(c, &rows[i], v[i], p, base) == -1)
			return (-1);
	}
	return (0);
}

int
cfg_section(struct cfg *c, yaml_node_t *n, const char *path,
    const struct cfg_row *rows, void *base)
{
	const char	*names[CFG_MAX_ROWS + 1];
	yaml_node_t	*v[CFG_MAX_ROWS];

	cfg_names(rows, names);
	if (cfg_collect(c, n, path, names, v) == -1)
		return (-1);
	return (cfg_apply(c, rows, v, path, base));
}
