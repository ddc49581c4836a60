/*
 * A subscriber's messages in the Gateway's syntax (TOPIC+ARGS, IBKR.md
 * "WebSocket") and the SSE query that says the same in a URL.  Outside
 * input: every id is checked against a narrow alphabet before it can be
 * pasted into a message for the Gateway, and every JSON argument is
 * re-serialised by jansson, never passed through as sent.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "stream_impl.h"
#include "value.h"

struct stream_topic_name {
	const char	*name;
	enum stream_op	 op;
};

static const struct stream_topic_name stream_names[] = {
	{ "smd", STREAM_OP_SMD }, { "umd", STREAM_OP_UMD },
	{ "sor", STREAM_OP_SOR }, { "uor", STREAM_OP_UOR },
	{ "str", STREAM_OP_STR }, { "utr", STREAM_OP_UTR },
	{ "spl", STREAM_OP_SPL }, { "upl", STREAM_OP_UPL },
	{ "ssd", STREAM_OP_SSD }, { "usd", STREAM_OP_USD },
	{ "sld", STREAM_OP_SLD }, { "uld", STREAM_OP_ULD },
	{ "smh", STREAM_OP_SMH }, { "umh", STREAM_OP_UMH },
	{ "sbd", STREAM_OP_SBD }, { "ubd", STREAM_OP_UBD },
};

void
stream_cmd_free(struct stream_cmd *c)
{
	free(c->args);
	c->args = NULL;
}

/* An id: 1..31 of [A-Za-z0-9._-]; digits only when digits. */
static int
stream_id(const char *p, size_t len, int digits, char *out, size_t cap)
{
	size_t	 i;

	if (len == 0 || len >= cap)
		return (-1);
	for (i = 0; i < len; i++) {
		if (digits ? !isdigit((unsigned char)p[i]) :
		    !(isalnum((unsigned char)p[i]) || p[i] == '.' ||
		    p[i] == '_' || p[i] == '-'))
			return (-1);
	}
	memcpy(out, p, len);
	out[len] = '\0';
	return (0);
}

/* Split "a+b+c" into at most max parts; the last keeps any '+'. */
static size_t
stream_split(const char *p, size_t len, const char **part, size_t *plen,
    size_t max)
{
	size_t	 n = 0;
	const char *plus;

	while (n + 1 < max && (plus = memchr(p, '+', len)) != NULL) {
		part[n] = p;
		plen[n++] = plus - p;
		len -= plus - p + 1;
		p = plus + 1;
	}
	part[n] = p;
	plen[n++] = len;
	return (n);
}

static int
stream_fields(json_t *args, struct stream_cmd *c, const char **why)
{
	json_t	*f, *v;
	size_t	 i;

	f = json_object_get(args, "fields");
	if (!json_is_array(f) || json_array_size(f) == 0 ||
	    json_array_size(f) > STREAM_MAX_FIELDS) {
		*why = "smd needs {\"fields\":[...]} (1 to 64)";
		return (-1);
	}
	json_array_foreach(f, i, v) {
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    json_string_length(v) >= sizeof(c->fields[0]) ||
		    stream_id(json_string_value(v), json_string_length(v),
		    0, c->fields[i], sizeof(c->fields[i])) == -1) {
			*why = "a field is a short string of [A-Za-z0-9_]";
			return (-1);
		}
	}
	c->nfields = json_array_size(f);
	return (0);
}

/* The JSON object argument, kept compact as brokerd will send it. */
static int
stream_args(const char *p, size_t len, struct stream_cmd *c, int need_fields,
    const char **why)
{
	json_t	*args;
	int	 r = -1;

	args = json_loadb(p, len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(args)) {
		*why = "the argument is not a JSON object";
		goto fail;
	}
	if (need_fields && stream_fields(args, c, why) == -1)
		goto fail;
	if ((c->args = json_dumps(args, JSON_COMPACT)) == NULL) {
		*why = "out of memory";
		goto fail;
	}
	r = 0;
fail:
	json_decref(args);
	return (r);
}

/*
 * smd+CONID[@EXCH]+ARGS, umd+CONID[@EXCH][+{}] (the exchange of its smd,
 * as a client that keys subscriptions by CONID@EXCH sends it; a conid
 * streams from one exchange here), smh+CONID+ARGS, umh+ID.
 */
static int
stream_parse_conid(struct stream_cmd *c, const char **part,
    const size_t *plen, size_t n, const char **why)
{
	const char	*at;
	size_t		 clen = plen[1];

	if (n < 2)
		goto fail;
	if (c->op == STREAM_OP_UMH)
		return (n == 2 && stream_id(part[1], plen[1], 0, c->id,
		    sizeof(c->id)) == 0 ? 0 : (*why = "umh+ID", -1));
	if ((c->op == STREAM_OP_SMD || c->op == STREAM_OP_UMD) &&
	    (at = memchr(part[1], '@', plen[1])) != NULL) {
		clen = at - part[1];
		if (stream_id(at + 1, plen[1] - clen - 1, 0, c->exch,
		    sizeof(c->exch)) == -1)
			goto fail;
	}
	if (stream_id(part[1], clen, 1, c->conid, sizeof(c->conid)) ==
	    -1)
		goto fail;
	if (c->op == STREAM_OP_UMD)
		return (n == 2 || stream_args(part[2], plen[2], c, 0,
		    why) == 0 ? 0 : -1);
	if (n != 3)
		goto fail;
	return (stream_args(part[2], plen[2], c, c->op == STREAM_OP_SMD, why));
fail:
	*why = "expected TOPIC+CONID+{...}";
	return (-1);
}

/* ssd+ACCT[+ARGS], usd+ACCT, sld, uld, sbd+ACCT+CONID+EXCH, ubd+ACCT. */
static int
stream_parse_acct(struct stream_cmd *c, const char **part,
    const size_t *plen, size_t n, const char **why)
{
	*why = "expected TOPIC+ACCOUNT";
	if (n < 2 || stream_id(part[1], plen[1], 0, c->acct,
	    sizeof(c->acct)) == -1)
		return (-1);
	switch (c->op) {
	case STREAM_OP_SSD:
	case STREAM_OP_SLD:
		if (n == 2)
			return (0);
		return (n == 3 ? stream_args(part[2], plen[2], c, 0, why) : -1);
	case STREAM_OP_SBD:
		*why = "expected sbd+ACCOUNT+CONID+EXCHANGE";
		if (n != 4 || stream_id(part[2], plen[2], 1, c->conid,
		    sizeof(c->conid)) == -1 || stream_id(part[3], plen[3], 0,
		    c->exch, sizeof(c->exch)) == -1)
			return (-1);
		return (0);
	default:
		return (n == 2 ? 0 : -1);
	}
}

static int
stream_parse_topic(struct stream_cmd *c, const char **part,
    const size_t *plen, size_t n, const char **why)
{
	switch (c->op) {
	case STREAM_OP_SMD: case STREAM_OP_UMD:
	case STREAM_OP_SMH: case STREAM_OP_UMH:
		return (stream_parse_conid(c, part, plen, n, why));
	case STREAM_OP_SSD: case STREAM_OP_USD:
	case STREAM_OP_SLD: case STREAM_OP_ULD:
	case STREAM_OP_SBD: case STREAM_OP_UBD:
		return (stream_parse_acct(c, part, plen, n, why));
	default:
		break;
	}
	/* sor str spl and their ends: TOPIC or TOPIC+{...} */
	if (n == 1)
		return (0);
	if (n != 2) {
		*why = "expected TOPIC+{...}";
		return (-1);
	}
	return (stream_args(part[1], plen[1], c, 0, why));
}

static size_t
stream_nparts(enum stream_op op)
{
	switch (op) {
	case STREAM_OP_SBD:
		return (4);
	case STREAM_OP_SMD: case STREAM_OP_UMD: case STREAM_OP_SMH:
	case STREAM_OP_SSD: case STREAM_OP_SLD:
		return (3);
	default:
		return (2);
	}
}

int
stream_parse(const char *p, size_t len, struct stream_cmd *c,
    const char **why)
{
	const char	*part[4];
	size_t		 plen[4], n, i;

	memset(c, 0, sizeof(*c));
	if (len == 3 && memcmp(p, "tic", 3) == 0) {
		c->op = STREAM_OP_TIC;
		return (0);
	}
	if (len == 6 && memcmp(p, "ech+hb", 6) == 0) {
		c->op = STREAM_OP_ECH;
		return (0);
	}
	for (i = 0; i < sizeof(stream_names) / sizeof(stream_names[0]); i++)
		if (len >= 3 && memcmp(p, stream_names[i].name, 3) == 0 &&
		    (len == 3 || p[3] == '+'))
			break;
	if (i == sizeof(stream_names) / sizeof(stream_names[0])) {
		*why = "unknown topic";
		return (-1);
	}
	c->op = stream_names[i].op;
	/* ARGS may hold '+': only the ids before it are split off. */
	n = stream_split(p, len, part, plen, stream_nparts(c->op));
	if (stream_parse_topic(c, part, plen, n, why) == -1) {
		stream_cmd_free(c);
		return (-1);
	}
	return (0);
}

/* %XX and '+' as space, as a browser or curl --data-urlencode sends. */
static int
stream_unescape(const char *p, size_t len, char *out, size_t cap)
{
	size_t		 i, o = 0;
	int		 hi, lo;

	for (i = 0; i < len; i++) {
		if (o + 1 >= cap)
			return (-1);
		if (p[i] == '%') {
			if (i + 2 >= len ||
			    (hi = value_hexval((unsigned char)p[i + 1])) == -1 ||
			    (lo = value_hexval((unsigned char)p[i + 2])) == -1 ||
			    (hi | lo) == 0)
				return (-1);
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else
			out[o++] = p[i] == '+' ? ' ' : p[i];
	}
	out[o] = '\0';
	return (0);
}

/* smd=CONID:F,F as the command smd+CONID+{"fields":[F,F]}. */
static int
stream_query_smd(const char *v, struct stream_cmd *c, const char **why)
{
	const char	*colon, *f;
	size_t		 flen;

	*why = "smd=CONID:FIELD,FIELD";
	c->op = STREAM_OP_SMD;
	if ((colon = strchr(v, ':')) == NULL ||
	    stream_id(v, colon - v, 1, c->conid, sizeof(c->conid)) == -1)
		return (-1);
	for (f = colon + 1; ; f += flen + 1) {
		flen = strcspn(f, ",");
		if (c->nfields == STREAM_MAX_FIELDS ||
		    stream_id(f, flen, 0, c->fields[c->nfields],
		    sizeof(c->fields[0])) == -1)
			return (-1);
		c->nfields++;
		if (f[flen] == '\0')
			break;
	}
	return (0);
}

static int
stream_query_one(const char *k, const char *v, struct stream_cmd *c,
    const char **why)
{
	memset(c, 0, sizeof(*c));
	if (strcmp(k, "smd") == 0)
		return (stream_query_smd(v, c, why));
	*why = "unknown query parameter";
	if (strcmp(k, "sor") == 0 || strcmp(k, "str") == 0 ||
	    strcmp(k, "spl") == 0) {
		c->op = k[1] == 'o' ? STREAM_OP_SOR : k[1] == 't' ?
		    STREAM_OP_STR : STREAM_OP_SPL;
		*why = "sor, str, spl take 1";
		return (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 ? 0 : -1);
	}
	if (strcmp(k, "ssd") == 0 || strcmp(k, "sld") == 0) {
		c->op = k[1] == 's' ? STREAM_OP_SSD : STREAM_OP_SLD;
		*why = "ssd and sld take an account";
		return (stream_id(v, strlen(v), 0, c->acct,
		    sizeof(c->acct)));
	}
	return (-1);
}

int
stream_parse_query(const char *query, struct stream_cmd **cmds,
    size_t *ncmds, const char **why)
{
	char		 k[16], v[1024];
	const char	*p, *eq;
	size_t		 len, n = 0;
	struct stream_cmd *c = NULL;

	*cmds = NULL;
	*ncmds = 0;
	for (p = query == NULL ? "" : query; *p != '\0'; p += len +
	    (p[len] == '&')) {
		if ((len = strcspn(p, "&")) == 0)
			continue;
		if (n == 128 || (c = reallocarray(*cmds, n + 1,
		    sizeof(*c))) == NULL) {
			*why = "too many subscriptions";
			goto fail;
		}
		*cmds = c;
		eq = memchr(p, '=', len);
		*why = "expected NAME=VALUE";
		if (eq == NULL || stream_unescape(p, eq - p, k, sizeof(k)) ==
		    -1 || stream_unescape(eq + 1, len - (eq - p) - 1, v,
		    sizeof(v)) == -1 ||
		    stream_query_one(k, v, &c[n], why) == -1)
			goto fail;
		n++;
	}
	if (n == 0) {
		*why = "nothing to stream: smd=CONID:FIELDS, sor=1, ...";
		goto fail;
	}
	*ncmds = n;
	return (0);
fail:
	free(*cmds);
	*cmds = NULL;
	return (-1);
}
