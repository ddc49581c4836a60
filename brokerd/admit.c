/*
 * Who may ask what: the Host, the key or peer, the route and its method,
 * the scope, the kill switch and the Gateway session a call needs.  Pure
 * but for one stat(2) of trading.halt_file: a parsed request and the
 * configuration in, a verdict out; the caller answers it.
 */
#include <sys/stat.h>

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "brokerd.h"
#include "value.h"

static void
admit_refuse(struct admit_verdict *v, int status, const char *code,
    const char *message, const char *extra)
{
	v->status = status;
	v->code = code;
	v->message = message;
	snprintf(v->extra, sizeof(v->extra), "%s", extra != NULL ? extra : "");
}

/* How many fields are called name (len bytes), in any case. */
static size_t
admit_header_count(const struct http_request *r, const char *name,
    size_t len)
{
	size_t	 i, n = 0;

	if (len == 0 || (r->name_bits & http_name_bit(name, len)) == 0)
		return (0);
	for (i = 0; i < r->nfields; i++)
		if (r->fields[i].name_len == len &&
		    strncasecmp(http_field_name(r, i), name, len) == 0)
			n++;
	return (n);
}

/* v->who = prefix (ours, short) + name, cut to fit; no printf. */
static void
admit_who_name(struct admit_verdict *v, const char *prefix, const char *name)
{
	size_t	 p = strlen(prefix), n = strlen(name);

	if (n > sizeof(v->who) - 1 - p)
		n = sizeof(v->who) - 1 - p;
	memcpy(v->who, prefix, p);
	memcpy(v->who + p, name, n);
	v->who[p + n] = '\0';
}

/*
 * An absolute-form target ("GET http://host/path") names the authority
 * that counts (RFC 9112 section 3.2.2): it gets the Host check too.
 */
static int
admit_target_host_ok(const struct http_request *r)
{
	const char	*u = r->url, *end;
	char		 host[256];
	size_t		 len;

	if (u == NULL || u[0] == '/')
		return (1);
	if (strncasecmp(u, "http://", 7) == 0)
		u += 7;
	else if (strncasecmp(u, "https://", 8) == 0)
		u += 8;
	else
		return (0);
	end = u + strcspn(u, "/?#");
	if ((len = (size_t)(end - u)) >= sizeof(host))
		return (0);
	memcpy(host, u, len);
	host[len] = '\0';
	return (value_host_ok(host));
}

int
admit_host(const struct http_request *r, int is_unix, struct admit_verdict *v)
{
	memset(v, 0, sizeof(*v));
	if (is_unix || (value_host_ok(http_request_header(r, "Host")) &&
	    admit_target_host_ok(r)))
		return (0);
	admit_refuse(v, 421, "misdirected_request", "Host must be "
	    "127.0.0.1, localhost or [::1]", NULL);
	return (-1);
}

/* The key a request carries, or NULL; -1 (answered) when it is unusable. */
static int
admit_key(const struct http_request *r, const char **key,
    struct admit_verdict *v)
{
	/* Two keys: which one counts would be anybody's guess. */
	if (admit_header_count(r, "X-Bridge-Key", 12) +
	    admit_header_count(r, "Authorization", 13) > 1) {
		admit_refuse(v, 400, "bad_request", "more than one key "
		    "(X-Bridge-Key, Authorization)", NULL);
		return (-1);
	}
	*key = http_request_header(r, "X-Bridge-Key");
	if (*key == NULL &&
	    (*key = http_request_header(r, "Authorization")) != NULL) {
		if (strncasecmp(*key, "Bearer ", 7) != 0) {
			admit_refuse(v, 401, "unauthorized", "Authorization "
			    "must be 'Bearer <key>'", "WWW-Authenticate: "
			    "Bearer\r\n");
			return (-1);
		}
		*key += 7;
		while (**key == ' ')
			(*key)++;
	}
	return (0);
}

int
admit_who(const struct config *conf, const struct admit_peer *p,
    const struct http_request *r, struct admit_verdict *v)
{
	return (admit_who_memo(conf, p, NULL, r, v));
}

int
admit_who_memo(const struct config *conf, const struct admit_peer *p,
    struct auth_memo *memo, const struct http_request *r,
    struct admit_verdict *v)
{
	const struct key	*k;
	const char		*key, *name = NULL;

	memset(v, 0, sizeof(*v));
	if (admit_key(r, &key, v) == -1)
		return (-1);
	if (key != NULL) {
		if ((k = auth_key_find_memo(conf, memo, key,
		    strlen(key))) == NULL) {
			snprintf(v->who, sizeof(v->who), "bad-key");
			admit_refuse(v, 401, "unauthorized", "unknown key",
			    "WWW-Authenticate: Bearer\r\n");
			return (-1);
		}
		v->scopes = k->scopes;
		admit_who_name(v, "key:", k->name);
		return (0);
	}
	if (p->is_unix && p->has_cred &&
	    (v->scopes = auth_peer_scopes(conf, p->uid, p->gid, &name)) != 0) {
		admit_who_name(v, "peer:", name);
		return (0);
	}
	/* Not for web pages: browsers send Origin or Sec-Fetch-*. */
	if (!p->is_unix && conf->tcp_anonymous != 0 &&
	    http_request_header(r, "Origin") == NULL &&
	    http_request_header(r, "Sec-Fetch-Site") == NULL) {
		v->scopes = conf->tcp_anonymous;
		snprintf(v->who, sizeof(v->who), "anonymous");
		return (0);
	}
	admit_refuse(v, 401, "unauthorized", "a key is needed: send "
	    "X-Bridge-Key or Authorization: Bearer", "WWW-Authenticate: "
	    "Bearer\r\n");
	return (-1);
}

int
admit_scope(struct admit_verdict *v, unsigned need)
{
	if ((v->scopes & need) == need)
		return (0);
	snprintf(v->text, sizeof(v->text), "this needs the %s scope",
	    auth_scope_name(need));
	admit_refuse(v, 403, "forbidden", v->text, NULL);
	return (-1);
}

void
admit_allow(struct admit_verdict *v, const char *allow)
{
	char	 extra[sizeof(v->extra)];

	snprintf(extra, sizeof(extra), "Allow: %s\r\n", allow);
	admit_refuse(v, 405, "method_not_allowed", "method not allowed here",
	    extra);
}

/* The route's methods, for a 405's Allow. */
static void
admit_route_allow(struct admit_verdict *v, const struct route *rt)
{
	struct buf	 allow;
	size_t		 i;

	buf_init(&allow);
	for (i = 0; i < rt->nmethods; i++)
		buf_printf(&allow, "%s%s", i ? ", " : "",
		    rt->methods[i].method);
	admit_allow(v, allow.data ? allow.data : "");
	buf_free(&allow);
}

/* Fail fast rather than queue for a session that is not there. */
static int
admit_session(const struct gw_status *st, const struct route *rt,
    const char *path, struct admit_verdict *v)
{
	if (strncmp(rt->to, "/v1/api/iserver/", 16) != 0 ||
	    strncmp(path, "/iserver/auth/", 14) == 0)
		return (0);
	/* the operator must act: say what, not "down" */
	if (st->state == GW_DOWN && st->cert_error) {
		admit_refuse(v, 502, "gateway_certificate", st->message, NULL);
		return (-1);
	}
	if (st->state == GW_DOWN) {
		admit_refuse(v, 502, "gateway_unreachable", "the Gateway is "
		    "down (see /gateway/auth-status)", NULL);
		return (-1);
	}
	if (st->state == GW_UNAUTHENTICATED || st->state == GW_COMPETING) {
		admit_refuse(v, 503, "not_authenticated", st->state ==
		    GW_COMPETING ? "the brokerage session is taken by another "
		    "login (competing)" : "the Gateway has no authenticated "
		    "brokerage session", "Retry-After: 10\r\n");
		return (-1);
	}
	return (0);
}

int
admit_request(const struct config *conf, const struct gw_status *st,
    const struct admit_peer *p, struct auth_memo *memo,
    const struct http_request *r, const char *path, struct admit_verdict *v)
{
	struct stat	 sb;

	if (admit_who_memo(conf, p, memo, r, v) == -1)
		return (-1);
	if ((v->route = route_match(conf->routes, conf->nroutes, path,
	    strlen(path))) == NULL) {
		admit_refuse(v, 404, "no_route", "no route for this path",
		    NULL);
		return (-1);
	}
	if (route_method_scope(v->route, r->method, &v->need) == -1) {
		admit_route_allow(v, v->route);
		return (-1);
	}
	if (admit_scope(v, v->need) == -1)
		return (-1);
	if ((v->need & SCOPE_TRADE) && conf->halt_file != NULL &&
	    stat(conf->halt_file, &sb) == 0) {
		admit_refuse(v, 423, "trading_halted", "trading is halted "
		    "(trading.halt_file exists)", NULL);
		return (-1);
	}
	return (admit_session(st, v->route, path, v));
}
