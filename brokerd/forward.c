/*
 * A routed request to the Gateway: identical GETs share one upstream
 * request (the fetches in flight) and, with cache_ms, a kept copy; trades
 * are journaled before they leave; 2xx answers stream to the client as
 * they come.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brokerd.h"

#define FORWARD_STREAM_HIGH	(256 * 1024)	/* unsent: pause the Gateway */

/* An upstream GET shared by every exchange waiting on its cache entry. */
struct fetch {
	struct server	*srv;
	struct cache_entry *entry;
	unsigned	 ttl_ms;
	struct upstream_req req;
	struct fetch	*next;
};

static struct log_spell	 forward_journal_spell;

/*
 * The journal's failures come in spells (a full disk, no descriptors):
 * logged when one starts and when it ends, not per trade.
 */
static void
forward_journal_note(int rc, const char *what)
{
	if (rc == -1) {
		if (log_spell_fail(&forward_journal_spell))
			log_error("journal: an %s line cannot be written: %s; "
			    "trade requests are refused until it can", what,
			    strerror(errno));
	} else if (log_spell_ok(&forward_journal_spell))
		log_warn("journal: written again after %.1f s and %llu "
		    "failed lines", (now_ms() -
		    forward_journal_spell.since_ms) / 1000.0,
		    (unsigned long long)forward_journal_spell.count);
}

static void
forward_fetch_unlink(struct server *srv, struct fetch *f)
{
	struct fetch	**fp;

	for (fp = &srv->fetches; *fp != NULL; fp = &(*fp)->next)
		if (*fp == f) {
			*fp = f->next;
			return;
		}
}

/*
 * The last waiter left a shared GET still waiting for a pacing slot:
 * withdraw it, so it neither holds the queue nor spends a slot for no one.
 */
static void
forward_fetch_abandon(struct server *srv, struct cache_entry *ce)
{
	struct fetch	*f;

	for (f = srv->fetches; f != NULL && f->entry != ce; f = f->next)
		;
	if (f == NULL || f->req.granted)
		return;
	forward_fetch_unlink(srv, f);
	upstream_cancel(srv->upstream, &f->req);
	cache_complete(srv->cache, ce, 0, NULL, NULL, 0, 0, now_ms());
	cache_finish(srv->cache, ce);
	upstream_req_free(&f->req);
	free(f);
}

void
forward_abandon(struct exchange *x)
{
	if (x->journaled && x->c->srv->journal != NULL) {
		forward_journal_note(journal_outcome(x->c->srv->journal,
		    x->journal_id, 0, "client_gone: the client left before "
		    "the answer; the outcome is unknown", NULL, 0), "outcome");
		x->journaled = 0;
	}
	if (x->ureq != NULL) {
		upstream_cancel(x->c->srv->upstream, x->ureq);
		upstream_req_free(x->ureq);
		x->ureq = NULL;
	}
	if (x->centry != NULL) {
		cache_remove_waiter(x->centry, x);
		if (x->centry->nwaiters == 0 && x->centry->inflight)
			forward_fetch_abandon(x->c->srv, x->centry);
		x->centry = NULL;
	}
}

static const char *
forward_error_code(enum upstream_error e, int *status, const char **msg)
{
	switch (e) {
	case UPSTREAM_UNREACHABLE:
		*status = 502;
		*msg = "the Gateway cannot be reached";
		return ("gateway_unreachable");
	case UPSTREAM_CERTIFICATE:
		*status = 502;
		*msg = "the Gateway's certificate is refused (run `brokerd "
		    "gateway-fingerprint`, update gateway.tls.pin_sha256, "
		    "reload)";
		return ("gateway_certificate");
	case UPSTREAM_TOO_LARGE:
		*status = 502;
		*msg = "the Gateway's answer is larger than "
		    "limits.max_response_bytes";
		return ("gateway_bad_response");
	case UPSTREAM_TIMEOUT:
		*status = 504;
		*msg = "the Gateway did not answer in time";
		return ("gateway_timeout");
	case UPSTREAM_OUTCOME_UNKNOWN:
		*status = 502;
		*msg = "the connection to the Gateway was lost after the "
		    "request was sent; its outcome is unknown: check before "
		    "sending it again";
		return ("gateway_outcome_unknown");
	case UPSTREAM_RATE_LIMITED:
		*status = 429;
		*msg = "rate limited: no Gateway slot (limits.gateway_rate) "
		    "or pooled connection (gateway.pool) came free within "
		    "limits.queue_ms";
		return ("rate_limited");
	case UPSTREAM_BAD_RESPONSE:
	default:
		*status = 502;
		*msg = "the Gateway's answer is malformed";
		return ("gateway_bad_response");
	}
}

/* Give one exchange the error its upstream request u ended in. */
static void
forward_error(struct exchange *x, enum upstream_error e,
    const struct upstream_req *u)
{
	const struct route *p = x->policy;
	const char	*code, *msg;
	char		 text[768];
	int		 st;

	code = forward_error_code(e, &st, &msg);
	if (st == 429) {
		/* Say which limit: the caller can plan around it. */
		if (u->paused)
			msg = u->errmsg;
		else if (p != NULL && p->rate.n > 0) {
			snprintf(text, sizeof(text), "rate limited: IBKR "
			    "allows %s %u per %llu ms (brokerd waited "
			    "limits.queue_ms for a slot)", p->to, p->rate.n,
			    (unsigned long long)p->rate.window_ms);
			msg = text;
		}
		exchange_rate_limited(x, u->retry_after_ms, msg);
		return;
	}
	if (u->errmsg[0] != '\0') {
		snprintf(text, sizeof(text), "%s: %s", msg, u->errmsg);
		msg = text;
	}
	exchange_error(x, st, code, msg, NULL);
}

/* Give one exchange what the Gateway answered. */
static void
forward_answer(struct exchange *x, const struct http_response *resp)
{
	if (resp->status == 429) {
		exchange_rate_limited(x, pace_breaker_ms(resp->retry_after_s),
		    "the Gateway answered 429: brokerd holds client calls "
		    "back until its Retry-After passes (15 minutes at most)");
		return;
	}
	exchange_answer(x, resp->status, resp->content_type != NULL ?
	    resp->content_type : "application/octet-stream", resp->body.data,
	    resp->body.len, NULL);
}

/* A kept copy (always a 200: cache_complete keeps no other). */
static void
forward_cached(struct exchange *x, const struct cache_entry *ce, uint64_t now)
{
	char	 extra[64];

	snprintf(extra, sizeof(extra), "Age: %llu\r\n",
	    (unsigned long long)((now - ce->stored_ms) / 1000));
	exchange_answer(x, ce->status, ce->content_type != NULL ?
	    ce->content_type : "application/octet-stream", ce->body.data,
	    ce->body.len, extra);
}

static void
forward_fetch_cb(struct upstream_req *req, enum upstream_error e,
    struct http_response *resp, void *arg)
{
	struct fetch		*f = arg;
	struct server		*srv = f->srv;
	struct cache_entry	*ce = f->entry;
	size_t			 i;

	(void)req;
	forward_fetch_unlink(srv, f);
	if (e == UPSTREAM_OK) {
		session_observe(srv->session, resp->status, resp->body.data,
		    resp->body.len);
		cache_complete(srv->cache, ce, resp->status,
		    resp->content_type, resp->body.data, resp->body.len,
		    f->ttl_ms, now_ms());
	} else
		cache_complete(srv->cache, ce, 0, NULL, NULL, 0, 0, now_ms());
	/* Each waiter is answered once; answering may not touch the list. */
	for (i = 0; i < ce->nwaiters; i++) {
		struct exchange *x = ce->waiters[i];

		x->centry = NULL;
		if (e == UPSTREAM_OK)
			forward_answer(x, resp);
		else
			forward_error(x, e, &f->req);
	}
	ce->nwaiters = 0;
	cache_finish(srv->cache, ce);
	http_response_free(resp);	/* the struct too */
	upstream_req_free(&f->req);
	free(f);
}

/*
 * A head without Content-Length (http_response_head always writes one):
 * the body is chunked, or ends with the connection.  -1 when the Gateway's
 * Content-Type holds a control character.
 */
static int
forward_head_unframed(struct buf *b, int status, const char *ctype, int keep,
    int chunked)
{
	struct http_head h = { .status = status, .content_type = ctype,
	    .framing = chunked ? HTTP_FRAME_CHUNKED : HTTP_FRAME_CLOSE,
	    .keep_alive = keep };

	return (http_write_head_buf(b, &h));
}

/*
 * The Gateway's head is in.  Stream a 2xx answer to the head of the
 * client's queue; everything else waits whole as before: errors (the
 * session watcher and the 429 mapping read them), trade-scope requests
 * (the journal keeps the answer, and a lost one must still be a 502
 * gateway_outcome_unknown), answers queued behind another.
 */
static int
forward_stream_head(struct upstream_req *req, const struct http_response *resp)
{
	struct exchange	*x = req->arg;
	struct client	*c = x->c;
	const char	*ctype;
	int		 keep;

	if (x->done || x != c->head || x->trade || x->journaled ||
	    x->req == NULL || strcmp(x->req->method, "HEAD") == 0 ||
	    resp->status < 200 || resp->status > 299 || resp->status == 204 ||
	    resp->status == 205)
		return (0);
	ctype = resp->content_type != NULL ? resp->content_type :
	    "application/octet-stream";
	keep = exchange_keep_alive(x);
	buf_reset(&x->out);
	if (req->resp_length >= 0) {
		if (http_response_head(&x->out, resp->status, ctype,
		    (size_t)req->resp_length, keep, NULL) == -1)
			return (0);
	} else {
		/* No length: chunks for HTTP/1.1, the close for HTTP/1.0. */
		x->chunked = x->req->http_minor >= 1;
		if (!x->chunked)
			keep = 0;
		if (forward_head_unframed(&x->out, resp->status, ctype, keep,
		    x->chunked) == -1) {
			buf_reset(&x->out);
			x->chunked = 0;
			return (0);
		}
	}
	if (!keep)
		x->close = 1;
	x->streaming = 1;
	x->status = resp->status;
	x->bytes = 0;
	client_want_write(c);
	return (1);
}

/* A chunk's size line, hex and CRLF, without printf. */
static int
forward_chunk_size(struct buf *b, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	char		 tmp[2 * sizeof(len) + 2], *p = tmp + sizeof(tmp);

	*--p = '\n';
	*--p = '\r';
	do {
		*--p = hex[len & 0xf];
		len >>= 4;
	} while (len != 0);
	return (buf_append(b, p, (size_t)(tmp + sizeof(tmp) - p)));
}

/* A piece of a streamed body: queue it, and say when to pause. */
static int
forward_stream_data(struct upstream_req *req, const char *data, size_t len)
{
	struct exchange	*x = req->arg;
	struct client	*c = x->c;
	int		 rc = 0;

	/* Written from the write watcher (as exchange_answer does). */
	if (c->wpos > 0 && c->wpos >= x->out.len / 2) {
		buf_consume(&x->out, c->wpos);
		c->wpos = 0;
	}
	if (x->chunked)
		rc = forward_chunk_size(&x->out, len);
	if (rc == -1 || buf_append(&x->out, data, len) == -1 ||
	    (x->chunked && buf_puts(&x->out, "\r\n") == -1)) {
		/* The answer is broken now: end it with the connection. */
		x->close = 1;
		c->closing = 1;
		return (1);
	}
	x->bytes += len;
	client_want_write(c);
	if (exchange_unsent(x) > FORWARD_STREAM_HIGH) {
		x->paused = 1;
		return (0);
	}
	return (1);
}

void
forward_resume(struct exchange *x)
{
	if (x->paused && x->ureq != NULL &&
	    exchange_unsent(x) < FORWARD_STREAM_HIGH) {
		x->paused = 0;
		upstream_resume(x->c->srv->upstream, x->ureq);
	}
}

/* The streamed answer ended: well (the last chunk), or cut short. */
static void
forward_stream_end(struct exchange *x, enum upstream_error e,
    const char *errmsg)
{
	const char	*code, *msg;
	int		 st = x->status;

	x->paused = 0;
	if (e == UPSTREAM_OK) {
		if (x->chunked && buf_puts(&x->out, "0\r\n\r\n") == -1)
			x->close = 1;
	} else {
		code = forward_error_code(e, &st, &msg);
		log_warn("%s %s: the Gateway's answer broke off after %zu "
		    "streamed bytes (status %d sent): %s (%s); closing the "
		    "client connection", x->req->method, x->req->path,
		    x->bytes, x->status, errmsg != NULL && errmsg[0] ?
		    errmsg : msg, code);
		x->close = 1;	/* no valid answer can follow */
	}
	exchange_finish(x, st);
}

static void
forward_cb(struct upstream_req *req, enum upstream_error e,
    struct http_response *resp, void *arg)
{
	struct exchange	*x = arg;
	struct journal	*jn = x->c->srv->journal;
	struct buf	 keep;
	const char	*msg;
	int		 st;

	if (x->journaled && jn != NULL) {
		if (e == UPSTREAM_OK)
			forward_journal_note(journal_outcome(jn, x->journal_id,
			    resp->status, NULL, resp->body.data,
			    resp->body.len), "outcome");
		else
			forward_journal_note(journal_outcome(jn, x->journal_id,
			    0, forward_error_code(e, &st, &msg), NULL, 0),
			    "outcome");
		x->journaled = 0;
	}
	if (x->streaming) {
		forward_stream_end(x, e, req->errmsg);
		http_response_free(resp);
	} else if (e == UPSTREAM_OK) {
		session_observe(x->c->srv->session, resp->status,
		    resp->body.data, resp->body.len);
		forward_answer(x, resp);
		http_response_free(resp);
	} else
		forward_error(x, e, req);
	x->ureq = NULL;
	/* x's own: the struct stays, and its target's room for the next */
	keep = req->target;
	buf_init(&req->target);
	upstream_req_free(req);
	req->target = keep;
}

/*
 * The upstream request: target is the Gateway path forward_request made
 * (route_target, without the query), so it is not made twice.
 */
static int
forward_fill_req(struct upstream_req *u, const struct http_request *r,
    const struct buf *target, const struct route *policy)
{
	const char	*v;

	_Static_assert(sizeof(u->method) == sizeof(r->method), "method");
	memcpy(u->method, r->method, sizeof(u->method));
	buf_reset(&u->target);
	if (buf_append(&u->target, target->data, target->len) == -1 ||
	    (r->query != NULL && r->query[0] != '\0' &&
	    (buf_append(&u->target, "?", 1) == -1 ||
	    buf_puts(&u->target, r->query) == -1)))
		return (-1);
	if ((v = http_request_header(r, "Content-Type")) != NULL &&
	    (u->content_type = strdup(v)) == NULL)
		return (-1);
	if ((v = http_request_header(r, "Accept")) != NULL &&
	    (u->accept = strdup(v)) == NULL)
		return (-1);
	if (r->body.len > 0 &&
	    buf_append(&u->body, r->body.data, r->body.len) == -1)
		return (-1);
	u->policy = policy;
	return (0);
}

/*
 * "no-cache" anywhere in v, in any case (what strcasestr(3) would say),
 * in one pass: glibc's two-way search costs more than this short value.
 */
static int
forward_has_no_cache(const char *v)
{
	static const char	 pat[] = "no-cache";
	size_t			 i;
	int			 c;

	for (; *v != '\0'; v++) {
		for (i = 0; i < sizeof(pat) - 1; i++) {
			c = (unsigned char)v[i];
			if (c >= 'A' && c <= 'Z')
				c += 'a' - 'A';
			if (c != pat[i])
				break;
		}
		if (i == sizeof(pat) - 1)
			return (1);
	}
	return (0);
}

static int
forward_no_cache(const struct http_request *r)
{
	const char	*v;

	if ((v = http_request_header(r, "Cache-Control")) != NULL &&
	    forward_has_no_cache(v))
		return (1);
	if ((v = http_request_header(r, "Pragma")) != NULL &&
	    forward_has_no_cache(v))
		return (1);
	return (0);
}

/* A request of its own (not a shared GET); trades are journaled first. */
static int
forward_alone(struct exchange *x, const struct buf *target)
{
	struct server		*srv = x->c->srv;
	const struct http_request *r = x->req;
	struct upstream_req	*u;
	struct buf		 keep;
	int			 rc;

	/* The target's room stays with the exchange (forward_cb). */
	u = &x->ureq_own;
	keep = u->target;
	upstream_req_init(u);
	u->target = keep;
	buf_release(&u->target, 4096);
	if (forward_fill_req(u, r, target, x->policy) == -1)
		goto fail;
	u->conf = config_ref(x->conf);
	u->cb = forward_cb;
	u->arg = x;
	u->on_head = forward_stream_head;
	u->on_data = forward_stream_data;
	/* Trades are written down before a byte leaves. */
	if (x->trade && srv->journal != NULL) {
		rc = journal_intent(srv->journal, x->who, r->method,
		    u->target.data, u->body.data, u->body.len, &x->journal_id);
		forward_journal_note(rc, "intent");
		if (rc == -1) {
			upstream_req_free(u);
			exchange_error(x, 500, "journal_unavailable", "the "
			    "trade journal cannot be written; the request was "
			    "not sent", NULL);
			return (0);
		}
		x->journaled = 1;
	}
	x->ureq = u;
	upstream_submit(srv->upstream, u);
	return (0);
 fail:
	upstream_req_free(u);
	return (-1);
}

/* The first GET for key: one upstream request its followers wait on. */
static int
forward_fetch(struct exchange *x, const struct buf *target, const char *key)
{
	struct server		*srv = x->c->srv;
	struct cache_entry	*ce;
	struct fetch		*f;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return (-1);
	upstream_req_init(&f->req);
	if (forward_fill_req(&f->req, x->req, target, x->policy) == -1 ||
	    (ce = cache_begin(srv->cache, key)) == NULL)
		goto fail;
	if (cache_add_waiter(ce, x) == -1) {
		cache_finish(srv->cache, ce);
		goto fail;
	}
	x->centry = ce;
	f->req.conf = config_ref(x->conf);
	f->srv = srv;
	f->entry = ce;
	f->ttl_ms = x->policy != NULL ? x->policy->cache_ms : 0;
	f->req.cb = forward_fetch_cb;
	f->req.arg = f;
	f->next = srv->fetches;
	srv->fetches = f;
	upstream_submit(srv->upstream, &f->req);
	return (0);
 fail:
	upstream_req_free(&f->req);
	free(f);
	return (-1);
}

/*
 * Expired copies go, at most once a second: a client whose query varies
 * with each call (a cache-busting parameter) would otherwise leave every
 * answer behind until the same GET came again.
 */
static void
forward_expire(struct server *srv, uint64_t now)
{
	static uint64_t	 last_ms;

	if (now - last_ms < 1000)
		return;
	last_ms = now;
	cache_expire(srv->cache, now);
}

/* GET: share one upstream request, or serve a fresh copy. */
static int
forward_get(struct exchange *x, const struct buf *target)
{
	struct server		*srv = x->c->srv;
	const struct http_request *r = x->req;
	struct cache_entry	*ce;
	struct buf		 key;
	uint64_t		 now = now_ms();
	int			 rc = -1;

	forward_expire(srv, now);
	buf_init(&key);
	if (buf_puts(&key, "GET ") == -1 ||
	    buf_append(&key, target->data, target->len) == -1 ||
	    (r->query != NULL && (buf_puts(&key, "?") == -1 ||
	    buf_puts(&key, r->query) == -1)))
		goto done;
	if ((ce = cache_find(srv->cache, key.data, now)) == NULL) {
		metrics_cache(srv->metrics, 0);
		rc = forward_fetch(x, target, key.data);
	} else if (!ce->inflight) {
		metrics_cache(srv->metrics, 1);
		forward_cached(x, ce, now);
		rc = 0;
	} else if (cache_add_waiter(ce, x) == 0) {
		x->centry = ce;
		metrics_cache(srv->metrics, 1);
		rc = 0;
	}
 done:
	buf_free(&key);
	return (rc);
}

/*
 * The Gateway path names the pacing policy.  Its room is kept from one
 * request to the next (one event loop, and nothing below keeps it).
 */
void
forward_request(struct exchange *x, const struct route *rt)
{
	static struct buf	 target;
	struct server		*srv = x->c->srv;
	const struct http_request *r = x->req;
	const struct route	*policy;
	int			 rc = -1;

	buf_release(&target, 4096);
	if (route_target(rt, r->path, strlen(r->path), NULL, &target) == -1)
		goto done;
	policy = route_policy(srv->conf->routes, srv->conf->nroutes,
	    target.data, target.len);
	x->policy = policy;
	x->route = policy != NULL ? policy->prefix : rt->prefix;
	if (memcmp(r->method, "GET", 4) != 0 || forward_no_cache(r))
		rc = forward_alone(x, &target);
	else
		rc = forward_get(x, &target);
 done:
	if (rc == -1)
		exchange_error(x, 500, "internal_error", "out of memory",
		    NULL);
}

void
forward_cache_feed(void *arg, const char *target,
    const struct http_response *resp)
{
	struct server		*srv = arg;
	const struct route	*policy;
	struct cache_entry	*ce;
	struct buf		 key;
	uint64_t		 now = now_ms();

	policy = route_policy(srv->conf->routes, srv->conf->nroutes, target,
	    strcspn(target, "?"));
	if (policy == NULL || policy->cache_ms == 0 || resp->status != 200)
		return;
	buf_init(&key);
	/* A client's own request in flight wins; then nothing to add. */
	if (buf_printf(&key, "GET %s", target) == 0 &&
	    cache_find(srv->cache, key.data, now) == NULL &&
	    (ce = cache_begin(srv->cache, key.data)) != NULL) {
		cache_complete(srv->cache, ce, resp->status,
		    resp->content_type, resp->body.data, resp->body.len,
		    policy->cache_ms, now);
		cache_finish(srv->cache, ce);
	}
	buf_free(&key);
}
