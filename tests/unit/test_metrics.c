/*
 * metrics.c: the rendered page is read back by a small parser of the
 * Prometheus text format 0.0.4 (every sample line `name{labels} value`,
 * every family with # HELP and # TYPE before its samples), label escaping,
 * and a histogram whose buckets only grow.
 */
#include <criterion/criterion.h>

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brokerd.h"

#define MAXF	64
#define MAXS	512

struct sample {
	char	 name[128];
	char	 labels[512];	/* raw, between the braces, unescaped */
	double	 value;
};

struct page {
	char	 help[MAXF][128];
	size_t	 nhelp;
	char	 type[MAXF][128];
	char	 typev[MAXF][16];
	size_t	 ntype;
	struct sample s[MAXS];
	size_t	 ns;
};

static int
name_char(int c, int first)
{
	return (isalpha(c) || c == '_' || c == ':' || (!first && isdigit(c)));
}

static const char *
parse_name(const char *p, char *out, size_t outlen)
{
	size_t	 n = 0;

	if (!name_char((unsigned char)*p, 1))
		return (NULL);
	while (name_char((unsigned char)*p, 0) && n + 1 < outlen)
		out[n++] = *p++;
	out[n] = '\0';
	return (p);
}

/* name="value",... with \\ \" \n as the only escapes; unescaped into out */
static const char *
parse_labels(const char *p, char *out, size_t outlen)
{
	char	 lname[128];
	size_t	 n = 0;

	out[0] = '\0';
	for (;;) {
		if (*p == '}')
			return (p + 1);
		if ((p = parse_name(p, lname, sizeof(lname))) == NULL)
			return (NULL);
		if (*p++ != '=' || *p++ != '"')
			return (NULL);
		n += (size_t)snprintf(out + n, outlen - n, "%s%s=", n ? "," :
		    "", lname);
		while (*p != '"') {
			if (*p == '\0' || *p == '\n')
				return (NULL);
			if (*p == '\\') {
				p++;
				if (*p == 'n')
					out[n++] = '\n';
				else if (*p == '\\' || *p == '"')
					out[n++] = *p;
				else
					return (NULL);
			} else
				out[n++] = *p;
			p++;
			if (n + 2 >= outlen)
				return (NULL);
		}
		out[n] = '\0';
		p++;
		if (*p == ',')
			p++;
		else if (*p != '}')
			return (NULL);
	}
}

/* The family a sample belongs to: histograms own _bucket/_sum/_count. */
static const char *
family_type(const struct page *pg, const char *name)
{
	static const char *sfx[] = { "_bucket", "_sum", "_count" };
	size_t	 i, j, len;

	for (i = 0; i < pg->ntype; i++) {
		if (strcmp(pg->type[i], name) == 0)
			return (pg->typev[i]);
		if (strcmp(pg->typev[i], "histogram") != 0)
			continue;
		len = strlen(pg->type[i]);
		for (j = 0; j < 3; j++)
			if (strncmp(name, pg->type[i], len) == 0 &&
			    strcmp(name + len, sfx[j]) == 0)
				return (pg->typev[i]);
	}
	return (NULL);
}

static int
has_help(const struct page *pg, const char *family)
{
	size_t	 i;

	for (i = 0; i < pg->nhelp; i++)
		if (strcmp(pg->help[i], family) == 0)
			return (1);
	return (0);
}

static void
parse_page(const char *text, struct page *pg)
{
	const char	*line, *end, *p;
	char		 l[1024], *ep;
	size_t		 len, i;

	memset(pg, 0, sizeof(*pg));
	cr_assert(strlen(text) > 0 && text[strlen(text) - 1] == '\n',
	    "the page ends with a newline");
	for (line = text; *line != '\0'; line = end + 1) {
		end = strchr(line, '\n');
		cr_assert_not_null(end);
		len = (size_t)(end - line);
		cr_assert_lt(len, sizeof(l));
		memcpy(l, line, len);
		l[len] = '\0';
		cr_assert_gt(len, 0, "no empty lines");
		if (strncmp(l, "# HELP ", 7) == 0) {
			cr_assert_lt(pg->nhelp, MAXF);
			p = parse_name(l + 7, pg->help[pg->nhelp], 128);
			cr_assert(p != NULL && *p == ' ', "HELP: %s", l);
			for (i = 0; i < pg->nhelp; i++)
				cr_assert_str_neq(pg->help[i],
				    pg->help[pg->nhelp], "HELP twice");
			pg->nhelp++;
			continue;
		}
		if (strncmp(l, "# TYPE ", 7) == 0) {
			cr_assert_lt(pg->ntype, MAXF);
			p = parse_name(l + 7, pg->type[pg->ntype], 128);
			cr_assert(p != NULL && *p == ' ', "TYPE: %s", l);
			p++;
			cr_assert(strcmp(p, "counter") == 0 ||
			    strcmp(p, "gauge") == 0 ||
			    strcmp(p, "histogram") == 0, "type %s", p);
			cr_assert(has_help(pg, pg->type[pg->ntype]),
			    "HELP before TYPE for %s", pg->type[pg->ntype]);
			snprintf(pg->typev[pg->ntype], 16, "%s", p);
			pg->ntype++;
			continue;
		}
		cr_assert_neq(l[0], '#', "unknown comment: %s", l);
		cr_assert_lt(pg->ns, MAXS);
		p = parse_name(l, pg->s[pg->ns].name, 128);
		cr_assert_not_null(p, "sample name: %s", l);
		if (*p == '{') {
			p = parse_labels(p + 1, pg->s[pg->ns].labels, 512);
			cr_assert_not_null(p, "labels: %s", l);
		}
		cr_assert_eq(*p, ' ', "one space before the value: %s", l);
		p++;
		if (strcmp(p, "+Inf") == 0)
			pg->s[pg->ns].value = INFINITY;
		else {
			pg->s[pg->ns].value = strtod(p, &ep);
			cr_assert(ep != p && *ep == '\0', "value: %s", l);
		}
		cr_assert_not_null(family_type(pg, pg->s[pg->ns].name),
		    "no TYPE before %s", l);
		pg->ns++;
	}
}

static const struct sample *
find(const struct page *pg, const char *name, const char *labels)
{
	size_t	 i;

	for (i = 0; i < pg->ns; i++)
		if (strcmp(pg->s[i].name, name) == 0 &&
		    strcmp(pg->s[i].labels, labels) == 0)
			return (&pg->s[i]);
	return (NULL);
}

static double
value(const struct page *pg, const char *name, const char *labels)
{
	const struct sample *s;

	s = find(pg, name, labels);
	cr_assert_not_null(s, "no sample %s{%s}", name, labels);
	return (s->value);
}

static void
render(const struct metrics *m, const struct metrics_gauges *g,
    struct page *pg)
{
	struct buf	 b;

	buf_init(&b);
	cr_assert_eq(metrics_render(m, g, &b), 0);
	parse_page(b.data, pg);
	buf_free(&b);
}

Test(metrics, render_parses)
{
	static struct page pg;
	struct metrics	*m;
	struct metrics_gauges g;
	size_t		 i;

	cr_assert_not_null(m = metrics_new());
	metrics_request(m, "/iserver/", "GET", 200, 0.004);
	metrics_request(m, "/iserver/", "GET", 200, 0.02);
	metrics_request(m, "/iserver/", "POST", 403, 0.0001);
	metrics_request(m, NULL, "GET", 404, 0.0002);
	metrics_upstream(m, "requests");
	metrics_upstream(m, "requests");
	metrics_upstream(m, "errors");
	metrics_upstream(m, "handshakes");
	metrics_upstream(m, "timeouts");
	metrics_upstream(m, "429");
	metrics_upstream(m, "bogus");
	metrics_cache(m, 1);
	metrics_cache(m, 1);
	metrics_cache(m, 0);
	memset(&g, 0, sizeof(g));
	g.state = "authenticated";
	g.queue_len = 3;
	g.pool_idle = 2;
	g.pool_busy = 1;
	g.connections = 7;
	g.breaker_s = 12.5;
	g.global_used = 4;
	g.global_n = 10;
	g.heap_bytes = 123456;
	render(m, &g, &pg);

	cr_assert_eq(value(&pg, "brokerd_requests_total",
	    "route=/iserver/,method=GET,status=200"), 2);
	cr_assert_eq(value(&pg, "brokerd_requests_total",
	    "route=/iserver/,method=POST,status=403"), 1);
	cr_assert_eq(value(&pg, "brokerd_requests_total",
	    "route=none,method=GET,status=404"), 1);
	cr_assert_eq(value(&pg, "brokerd_upstream_requests_total", ""), 2);
	cr_assert_eq(value(&pg, "brokerd_upstream_errors_total", ""), 1);
	cr_assert_eq(value(&pg, "brokerd_upstream_handshakes_total", ""), 1);
	cr_assert_eq(value(&pg, "brokerd_upstream_timeouts_total", ""), 1);
	cr_assert_eq(value(&pg, "brokerd_upstream_rate_limited_total", ""), 1);
	cr_assert_eq(value(&pg, "brokerd_cache_hits_total", ""), 2);
	cr_assert_eq(value(&pg, "brokerd_cache_misses_total", ""), 1);
	cr_assert_eq(value(&pg, "brokerd_state", "state=authenticated"), 1);
	cr_assert_eq(value(&pg, "brokerd_state", "state=starting"), 0);
	cr_assert_eq(value(&pg, "brokerd_state", "state=gateway_down"), 0);
	cr_assert_eq(value(&pg, "brokerd_state", "state=unauthenticated"), 0);
	cr_assert_eq(value(&pg, "brokerd_state", "state=competing"), 0);
	cr_assert_eq(value(&pg, "brokerd_state", "state=stopped"), 0);
	cr_assert_eq(value(&pg, "brokerd_queue_length", ""), 3);
	cr_assert_eq(value(&pg, "brokerd_pool_connections", "state=idle"), 2);
	cr_assert_eq(value(&pg, "brokerd_pool_connections", "state=busy"), 1);
	cr_assert_eq(value(&pg, "brokerd_client_connections", ""), 7);
	cr_assert_eq(value(&pg, "brokerd_breaker_seconds", ""), 12.5);
	cr_assert_eq(value(&pg, "brokerd_gateway_rate_used", ""), 4);
	cr_assert_eq(value(&pg, "brokerd_gateway_rate_limit", ""), 10);
	cr_assert_eq(value(&pg, "brokerd_heap_bytes", ""), 123456);
	for (i = 0; i < pg.ns; i++)
		cr_assert_eq(strncmp(pg.s[i].name, "brokerd_", 8), 0);
	for (i = 0; i < pg.ntype; i++)
		cr_assert_eq(strncmp(pg.type[i], "brokerd_", 8), 0);
	cr_assert_eq(pg.nhelp, pg.ntype, "every family has both");

	/* without gauges: no state, still a valid page */
	render(m, NULL, &pg);
	cr_assert_null(find(&pg, "brokerd_state", "state=authenticated"));
	metrics_free(m);
}

Test(metrics, label_escaping)
{
	static struct page pg;
	struct metrics	*m;
	struct buf	 b;

	cr_assert_not_null(m = metrics_new());
	metrics_request(m, "/a\"b\\c\nd}e,f=\"g", "GET", 200, 0.1);
	buf_init(&b);
	cr_assert_eq(metrics_render(m, NULL, &b), 0);
	cr_assert_not_null(strstr(b.data,
	    "route=\"/a\\\"b\\\\c\\nd}e,f=\\\"g\""), "%s", b.data);
	parse_page(b.data, &pg);
	cr_assert_eq(value(&pg, "brokerd_requests_total",
	    "route=/a\"b\\c\nd}e,f=\"g,method=GET,status=200"), 1);
	buf_free(&b);
	metrics_free(m);
}

Test(metrics, histogram_monotone)
{
	static struct page pg;
	static const double le[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	    0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
	struct metrics	*m;
	char		 lab[64];
	double		 v, prev = 0, sum = 0, want;
	size_t		 i, j, nb = 0;
	unsigned	 n = 0;

	cr_assert_not_null(m = metrics_new());
	srand(4242);
	for (i = 0; i < 5000; i++) {
		v = (double)(rand() % 20000) / 1000.0 *
		    ((rand() % 3 == 0) ? 0.001 : 1);
		metrics_request(m, "/x", "GET", 200, v);
		sum += v;
		n++;
	}
	metrics_request(m, "/x", "GET", 200, 0.001);	/* le is inclusive */
	metrics_request(m, "/x", "GET", 200, -1);	/* clock step: 0 */
	metrics_request(m, "/x", "GET", 200, NAN);
	sum += 0.001;
	n += 3;
	render(m, NULL, &pg);
	for (i = 0; i < pg.ns; i++) {
		if (strcmp(pg.s[i].name,
		    "brokerd_request_duration_seconds_bucket") != 0)
			continue;
		cr_assert_geq(pg.s[i].value, prev, "bucket %s goes down",
		    pg.s[i].labels);
		prev = pg.s[i].value;
		nb++;
	}
	cr_assert_eq(nb, 14, "13 bounds and +Inf");
	cr_assert_eq(value(&pg, "brokerd_request_duration_seconds_bucket",
	    "le=+Inf"), n);
	cr_assert_eq(value(&pg, "brokerd_request_duration_seconds_count", ""),
	    n);
	v = value(&pg, "brokerd_request_duration_seconds_sum", "") - sum;
	cr_assert(v < 1e-3 * sum && -v < 1e-3 * sum, "sum off by %g", v);
	/* each bucket holds exactly what the bounds say: recount */
	metrics_free(m);
	cr_assert_not_null(m = metrics_new());
	for (i = 0; i < 1000; i++)
		metrics_request(m, "/x", "GET", 200, (double)i / 50.0);
	render(m, NULL, &pg);
	for (j = 0; j < sizeof(le) / sizeof(le[0]); j++) {
		want = 0;
		for (i = 0; i < 1000; i++)
			if ((double)i / 50.0 <= le[j])
				want++;
		snprintf(lab, sizeof(lab), "le=%g", le[j]);
		cr_assert_eq(value(&pg,
		    "brokerd_request_duration_seconds_bucket", lab), want,
		    "bucket %s", lab);
	}
	metrics_free(m);
}

Test(metrics, empty_and_unknown_state)
{
	static struct page pg;
	struct metrics	*m;
	struct metrics_gauges g;
	size_t		 i;

	cr_assert_not_null(m = metrics_new());
	memset(&g, 0, sizeof(g));
	g.state = "nonsense";
	render(m, &g, &pg);
	for (i = 0; i < pg.ns; i++)
		if (strcmp(pg.s[i].name, "brokerd_state") == 0)
			cr_assert_eq(pg.s[i].value, 0);
	cr_assert_eq(value(&pg, "brokerd_request_duration_seconds_count", ""),
	    0);
	metrics_free(m);
	metrics_free(NULL);
}
