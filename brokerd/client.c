/*
 * One client connection: read, parse, authenticate, route, answer,
 * keep-alive.  Pipelined requests are answered in the order they came;
 * each request is an exchange whose answer waits in its own buffer until
 * the ones before it are written.
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <jansson.h>

#include "brokerd.h"
#include "value.h"

#define CLIENT_READ_CHUNK	16384
#define CLIENT_MAX_PIPELINE	32	/* exchanges queued per connection */
#define CLIENT_STREAM_HIGH	(256 * 1024)	/* unsent: pause the Gateway */
#define CLIENT_LINGER_MS	2000	/* discard what follows a closing answer */
#define CLIENT_TRIM_PEAK	256	/* bursts this large are trimmed */

struct client;

struct exchange {
	struct client	*c;
	struct http_request *req;
	struct exchange	*next;
	int		 done;		/* out holds the whole answer */
	int		 close;		/* close after writing it */
	struct buf	 out;
	int		 status;
	size_t		 bytes;		/* body bytes */
	double		 start;
	char		 who[64];	/* key or peer name, never the key */
	const char	*route;		/* metrics label */
	const struct route *policy;	/* its Gateway path's limits */
	const struct config *conf;	/* holds route and policy */
	struct upstream_req *ureq;	/* non-GET in flight, ours */
	struct cache_entry *centry;	/* GET: waiting on this entry */
	int		 trade;
	int		 journaled;	/* an intent line awaits its outcome */
	uint64_t	 journal_id;
	int		 streaming;	/* head sent, body follows in pieces */
	int		 chunked;	/* ... framed as chunks */
	int		 paused;	/* the Gateway connection waits for us */
};

struct client {
	struct server	*srv;
	int		 fd;
	int		 is_unix;
	uid_t		 uid;
	gid_t		 gid;
	int		 has_cred;
	ev_io		 rio;
	ev_io		 wio;
	ev_timer	 timer;
	struct http_reader rd;
	struct buf	 in;
	struct exchange	*head;		/* oldest unanswered */
	struct exchange	*tail;
	size_t		 nexchanges;
	size_t		 wpos;		/* written of head->out */
	int		 reading;	/* rio active */
	int		 closing;	/* stop reading, close when written */
	int		 lingering;	/* answered, half-closed, discarding */
	int		 in_request;	/* bytes of a request arrived */
	ev_tstamp	 req_start;	/* ... since then (the first: accept) */
	unsigned	 nrequests;	/* heads read whole */
	struct client	*prev;
	struct client	*next;
};

/* An upstream GET shared by every exchange waiting on its cache entry. */
struct fetch {
	struct server	*srv;
	struct cache_entry *entry;
	unsigned	 ttl_ms;
	struct upstream_req req;
	struct fetch	*next;
};

static struct client	*clients;
static struct fetch	*fetches;	/* in flight */
static unsigned		 nclients;
static unsigned		 npeak;		/* most connections since a trim */
static unsigned		 nclients_tcp;

static void	client_read_cb(struct ev_loop *, ev_io *, int);
static void	client_write_cb(struct ev_loop *, ev_io *, int);
static void	client_timer_cb(struct ev_loop *, ev_timer *, int);
static void	client_process(struct client *);
static void	client_flush(struct client *);
static void	client_free(struct client *);

static struct log_spell	 client_journal_spell;

/*
 * The journal's failures come in spells (a full disk, no descriptors):
 * logged when one starts and when it ends, not per trade.
 */
static void
client_journal_note(int rc, const char *what)
{
	if (rc == -1) {
		if (log_spell_fail(&client_journal_spell))
			log_error("journal: an %s line cannot be written: %s; "
			    "trade requests are refused until it can", what,
			    strerror(errno));
	} else if (log_spell_ok(&client_journal_spell))
		log_warn("journal: written again after %.1f s and %llu "
		    "failed lines", (now_ms() -
		    client_journal_spell.since_ms) / 1000.0,
		    (unsigned long long)client_journal_spell.count);
}

unsigned
client_count(void)
{
	return (nclients);
}

unsigned
client_count_tcp(void)
{
	return (nclients_tcp);
}

/* ------------------------------------------------------------ answers */

/*
 * Finish an exchange with a complete answer.  Answers leave in request
 * order; a later one waits in its buffer.
 */
static void
exchange_answer(struct exchange *x, int status, const char *ctype,
    const char *body, size_t len, const char *extra)
{
	struct client	*c = x->c;
	int		 keep, head;

	if (x->done || x->streaming)
		return;
	head = x->req != NULL && strcmp(x->req->method, "HEAD") == 0;
	/* Closing: the last exchange says so; those before it keep on. */
	keep = !x->close && (!c->closing || x->next != NULL) &&
	    x->req != NULL && x->req->keep_alive && !c->srv->draining;
	if (!keep)
		x->close = 1;
	buf_reset(&x->out);
	/* HEAD: the same head, Content-Length included, and no body. */
	if (http_response_head(&x->out, status, ctype, len, keep, extra) ==
	    -1 || (!head && buf_append(&x->out, body, len) == -1)) {
		x->close = 1;
		buf_reset(&x->out);
	}
	x->status = status;
	x->bytes = len;
	x->done = 1;
	log_request(x->req != NULL ? x->req->method : "-",
	    x->req != NULL && x->req->path != NULL ? x->req->path : "-",
	    status, len, (now_s() - x->start) * 1000.0,
	    x->who[0] ? x->who : "-");
	metrics_request(c->srv->metrics, x->route,
	    x->req != NULL ? x->req->method : "-", status,
	    now_s() - x->start);
	/*
	 * Written from the write watcher, never from here: answering may
	 * happen inside another object's callback (a shared fetch answers
	 * many exchanges), and writing can end in freeing the client.
	 */
	if (x == c->head)
		ev_io_start(c->srv->loop, &c->wio);
}

static void
exchange_json(struct exchange *x, int status, const char *body,
    const char *extra)
{
	exchange_answer(x, status, "application/json", body, strlen(body),
	    extra);
}

/*
 * Send a JSON error and, when the request's framing cannot be trusted,
 * close after it: the next bytes on this connection may be a smuggled
 * request.
 */
static void
exchange_error(struct exchange *x, int status, const char *code,
    const char *message, const char *extra)
{
	struct buf	 b;

	buf_init(&b);
	if (status == 400 || status == 408 || status == 413 || status == 414 ||
	    status == 431 || status == 501)
		x->close = 1;
	if (buf_puts(&b, "{\"error\":") == -1 ||
	    buf_json_string(&b, code, strlen(code)) == -1 ||
	    buf_puts(&b, ",\"message\":") == -1 ||
	    buf_json_string(&b, message, strlen(message)) == -1 ||
	    buf_puts(&b, "}") == -1) {
		buf_free(&b);
		x->close = 1;
		exchange_answer(x, 500, "application/json", "{}", 2, NULL);
		return;
	}
	exchange_answer(x, status, "application/json", b.data, b.len, extra);
	buf_free(&b);
}

static void
exchange_rate_limited(struct exchange *x, uint64_t retry_ms,
    const char *message)
{
	char	 extra[64];
	uint64_t s = (retry_ms + 999) / 1000;

	if (s == 0)
		s = 1;
	snprintf(extra, sizeof(extra), "Retry-After: %llu\r\n",
	    (unsigned long long)s);
	exchange_error(x, 429, "rate_limited", message, extra);
}

static struct exchange *
exchange_new(struct client *c, struct http_request *req)
{
	struct exchange	*x;

	if ((x = calloc(1, sizeof(*x))) == NULL)
		return (NULL);
	x->c = c;
	x->req = req;
	x->start = now_s();
	x->route = "none";
	buf_init(&x->out);
	if (c->tail != NULL)
		c->tail->next = x;
	else
		c->head = x;
	c->tail = x;
	c->nexchanges++;
	return (x);
}

static void
fetch_unlink(struct fetch *f)
{
	struct fetch	**fp;

	for (fp = &fetches; *fp != NULL; fp = &(*fp)->next)
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
fetch_abandon(struct server *srv, struct cache_entry *ce)
{
	struct fetch	*f;

	for (f = fetches; f != NULL && f->entry != ce; f = f->next)
		;
	if (f == NULL || f->req.granted)
		return;
	fetch_unlink(f);
	upstream_cancel(srv->upstream, &f->req);
	cache_complete(srv->cache, ce, 0, NULL, NULL, 0, 0, now_ms());
	cache_finish(srv->cache, ce);
	upstream_req_free(&f->req);
	free(f);
}

/* Detach an exchange from whatever it waits on; no answer follows. */
static void
exchange_abandon(struct exchange *x)
{
	if (x->journaled && x->c->srv->journal != NULL) {
		client_journal_note(journal_outcome(x->c->srv->journal,
		    x->journal_id, 0, "client_gone: the client left before "
		    "the answer; the outcome is unknown", NULL, 0), "outcome");
		x->journaled = 0;
	}
	if (x->ureq != NULL) {
		upstream_cancel(x->c->srv->upstream, x->ureq);
		upstream_req_free(x->ureq);
		free(x->ureq);
		x->ureq = NULL;
	}
	if (x->centry != NULL) {
		cache_remove_waiter(x->centry, x);
		if (x->centry->nwaiters == 0 && x->centry->inflight)
			fetch_abandon(x->c->srv, x->centry);
		x->centry = NULL;
	}
}

static void
exchange_free(struct exchange *x)
{
	exchange_abandon(x);
	if (x->req != NULL) {
		http_request_free(x->req);
	}
	buf_free(&x->out);
	config_unref(x->conf);
	free(x);
}

/* ------------------------------------------------------------ upstream */

static const char *
client_upstream_error(enum upstream_error e, int *status, const char **msg)
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

/* Give one exchange what the Gateway (or the cache) said. */
static void
exchange_from_upstream(struct exchange *x, enum upstream_error e,
    const struct upstream_req *u, int status, const char *ctype,
    const char *body, size_t len, unsigned retry_after_s, uint64_t age_ms)
{
	const char	*code, *msg, *errmsg = u != NULL ? u->errmsg : NULL;
	char		 extra[64], text[768];
	int		 st;

	if (e != UPSTREAM_OK) {
		code = client_upstream_error(e, &st, &msg);
		if (st == 429) {
			const struct route *p = x->policy;

			/* Say which limit: the caller can plan around it. */
			if (u != NULL && u->paused)
				msg = u->errmsg;
			else if (p != NULL && p->rate.n > 0) {
				snprintf(text, sizeof(text), "rate limited: "
				    "IBKR allows %s %u per %llu ms (brokerd "
				    "waited limits.queue_ms for a slot)", p->to,
				    p->rate.n,
				    (unsigned long long)p->rate.window_ms);
				msg = text;
			}
			exchange_rate_limited(x, u != NULL ?
			    u->retry_after_ms : 0, msg);
			return;
		}
		if (errmsg != NULL && errmsg[0] != '\0') {
			snprintf(text, sizeof(text), "%s: %s", msg, errmsg);
			msg = text;
		}
		exchange_error(x, st, code, msg, NULL);
		return;
	}
	if (status == 429) {
		exchange_rate_limited(x, pace_breaker_ms(retry_after_s),
		    "the Gateway answered 429: brokerd holds client calls "
		    "back until its Retry-After passes (15 minutes at most)");
		return;
	}
	extra[0] = '\0';
	if (age_ms != UINT64_MAX)
		snprintf(extra, sizeof(extra), "Age: %llu\r\n",
		    (unsigned long long)(age_ms / 1000));
	exchange_answer(x, status, ctype != NULL ? ctype :
	    "application/octet-stream", body, len, extra[0] ? extra : NULL);
}

static void
client_fetch_cb(struct upstream_req *req, enum upstream_error e,
    struct http_response *resp, void *arg)
{
	struct fetch		*f = arg;
	struct server		*srv = f->srv;
	struct cache_entry	*ce = f->entry;
	size_t			 i;

	(void)req;
	fetch_unlink(f);
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
			exchange_from_upstream(x, e, NULL, resp->status,
			    resp->content_type, resp->body.data,
			    resp->body.len, resp->retry_after_s, UINT64_MAX);
		else
			exchange_from_upstream(x, e, &f->req, 0, NULL, NULL,
			    0, 0, UINT64_MAX);
	}
	ce->nwaiters = 0;
	cache_finish(srv->cache, ce);
	http_response_free(resp);	/* the struct too */
	upstream_req_free(&f->req);
	free(f);
}

/* Output of an exchange not yet written (it is at the head when streaming). */
static size_t
exchange_unsent(const struct exchange *x)
{
	return (x->out.len - (x == x->c->head ? x->c->wpos : 0));
}

/*
 * A head without Content-Length (http_response_head always writes one):
 * the body is chunked, or ends with the connection.  -1 when the Gateway's
 * Content-Type holds a control character.
 */
static int
client_head_unframed(struct buf *b, int status, const char *ctype, int keep,
    int chunked)
{
	const unsigned char	*p;

	for (p = (const unsigned char *)ctype; *p != '\0'; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return (-1);
	return (buf_printf(b, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%s"
	    "Connection: %s\r\n\r\n", status, http_reason(status), ctype,
	    chunked ? "Transfer-Encoding: chunked\r\n" : "",
	    keep ? "keep-alive" : "close"));
}

/*
 * The Gateway's head is in.  Stream a 2xx answer to the head of the
 * client's queue; everything else waits whole as before: errors (the
 * session watcher and the 429 mapping read them), trade-scope requests
 * (the journal keeps the answer, and a lost one must still be a 502
 * gateway_outcome_unknown), answers queued behind another.
 */
static int
client_stream_head(struct upstream_req *req, const struct http_response *resp)
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
	keep = !x->close && (!c->closing || x->next != NULL) &&
	    x->req->keep_alive && !c->srv->draining;
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
		if (client_head_unframed(&x->out, resp->status, ctype, keep,
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
	ev_io_start(c->srv->loop, &c->wio);
	return (1);
}

/* A piece of a streamed body: queue it, and say when to pause. */
static int
client_stream_data(struct upstream_req *req, const char *data, size_t len)
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
		rc = buf_printf(&x->out, "%zx\r\n", len);
	if (rc == -1 || buf_append(&x->out, data, len) == -1 ||
	    (x->chunked && buf_puts(&x->out, "\r\n") == -1)) {
		/* The answer is broken now: end it with the connection. */
		x->close = 1;
		c->closing = 1;
		return (1);
	}
	x->bytes += len;
	ev_io_start(c->srv->loop, &c->wio);
	if (exchange_unsent(x) > CLIENT_STREAM_HIGH) {
		x->paused = 1;
		return (0);
	}
	return (1);
}

/* The streamed answer ended: well (the last chunk), or cut short. */
static void
client_stream_end(struct exchange *x, enum upstream_error e,
    const char *errmsg)
{
	struct client	*c = x->c;
	const char	*code, *msg;
	int		 st = x->status;

	x->paused = 0;
	if (e == UPSTREAM_OK) {
		if (x->chunked && buf_puts(&x->out, "0\r\n\r\n") == -1)
			x->close = 1;
	} else {
		code = client_upstream_error(e, &st, &msg);
		log_warn("%s %s: the Gateway's answer broke off after %zu "
		    "streamed bytes (status %d sent): %s (%s); closing the "
		    "client connection", x->req->method, x->req->path,
		    x->bytes, x->status, errmsg != NULL && errmsg[0] ?
		    errmsg : msg, code);
		x->close = 1;	/* no valid answer can follow */
	}
	x->done = 1;
	log_request(x->req->method, x->req->path, st, x->bytes,
	    (now_s() - x->start) * 1000.0, x->who[0] ? x->who : "-");
	metrics_request(c->srv->metrics, x->route, x->req->method, st,
	    now_s() - x->start);
	if (x == c->head)
		ev_io_start(c->srv->loop, &c->wio);
}

static void
client_forward_cb(struct upstream_req *req, enum upstream_error e,
    struct http_response *resp, void *arg)
{
	struct exchange	*x = arg;
	struct journal	*jn = x->c->srv->journal;
	const char	*msg;
	int		 st;

	if (x->journaled && jn != NULL) {
		if (e == UPSTREAM_OK)
			client_journal_note(journal_outcome(jn, x->journal_id,
			    resp->status, NULL, resp->body.data,
			    resp->body.len), "outcome");
		else
			client_journal_note(journal_outcome(jn, x->journal_id,
			    0, client_upstream_error(e, &st, &msg), NULL, 0),
			    "outcome");
		x->journaled = 0;
	}
	if (x->streaming) {
		client_stream_end(x, e, req->errmsg);
		http_response_free(resp);
	} else if (e == UPSTREAM_OK) {
		session_observe(x->c->srv->session, resp->status,
		    resp->body.data, resp->body.len);
		exchange_from_upstream(x, e, NULL, resp->status,
		    resp->content_type, resp->body.data, resp->body.len,
		    resp->retry_after_s, UINT64_MAX);
		http_response_free(resp);
	} else
		exchange_from_upstream(x, e, req, 0, NULL, NULL, 0, 0,
		    UINT64_MAX);
	x->ureq = NULL;
	upstream_req_free(req);
	free(req);
}

static int
client_fill_req(struct upstream_req *u, const struct http_request *r,
    const struct route *rt, const struct route *policy)
{
	const char	*v;

	snprintf(u->method, sizeof(u->method), "%s", r->method);
	if (route_target(rt, r->path, strlen(r->path), r->query,
	    &u->target) == -1)
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

static int
client_no_cache(const struct http_request *r)
{
	const char	*v;

	if ((v = http_request_header(r, "Cache-Control")) != NULL &&
	    strcasestr(v, "no-cache") != NULL)
		return (1);
	if ((v = http_request_header(r, "Pragma")) != NULL &&
	    strcasestr(v, "no-cache") != NULL)
		return (1);
	return (0);
}

static void
client_forward(struct exchange *x, const struct route *rt)
{
	struct server		*srv = x->c->srv;
	const struct http_request *r = x->req;
	const struct route	*policy;
	struct cache_entry	*ce;
	struct upstream_req	*u;
	struct fetch		*f;
	struct buf		 target, key;
	uint64_t		 now = now_ms();
	int			 rc;

	buf_init(&target);
	buf_init(&key);
	if (route_target(rt, r->path, strlen(r->path), NULL, &target) == -1)
		goto oom;
	policy = route_policy(srv->conf->routes, srv->conf->nroutes,
	    target.data, target.len);
	x->policy = policy;
	x->route = policy != NULL ? policy->prefix : rt->prefix;

	if (strcmp(r->method, "GET") != 0 || client_no_cache(r)) {
		if ((u = calloc(1, sizeof(*u))) == NULL)
			goto oom;
		upstream_req_init(u);
		if (client_fill_req(u, r, rt, policy) == -1) {
			upstream_req_free(u);
			free(u);
			goto oom;
		}
		u->conf = config_ref(x->conf);
		u->cb = client_forward_cb;
		u->arg = x;
		u->on_head = client_stream_head;
		u->on_data = client_stream_data;
		/* Trades are written down before a byte leaves. */
		if (x->trade && srv->journal != NULL) {
			rc = journal_intent(srv->journal, x->who, r->method,
			    u->target.data, u->body.data, u->body.len,
			    &x->journal_id);
			client_journal_note(rc, "intent");
			if (rc == -1) {
				upstream_req_free(u);
				free(u);
				exchange_error(x, 500, "journal_unavailable",
				    "the trade journal cannot be written; the "
				    "request was not sent", NULL);
				goto done;
			}
			x->journaled = 1;
		}
		x->ureq = u;
		upstream_submit(srv->upstream, u);
		goto done;
	}

	/* GET: share one upstream request, or serve a fresh copy. */
	if (buf_printf(&key, "GET %s", target.data) == -1 ||
	    (r->query != NULL && buf_printf(&key, "?%s", r->query) == -1))
		goto oom;
	if ((ce = cache_find(srv->cache, key.data, now)) != NULL) {
		if (!ce->inflight) {
			metrics_cache(srv->metrics, 1);
			exchange_from_upstream(x, UPSTREAM_OK, NULL,
			    ce->status, ce->content_type, ce->body.data,
			    ce->body.len, 0, now - ce->stored_ms);
			goto done;
		}
		if (cache_add_waiter(ce, x) == -1)
			goto oom;
		x->centry = ce;
		metrics_cache(srv->metrics, 1);
		goto done;
	}
	metrics_cache(srv->metrics, 0);
	if ((f = calloc(1, sizeof(*f))) == NULL)
		goto oom;
	upstream_req_init(&f->req);
	if (client_fill_req(&f->req, r, rt, policy) == -1 ||
	    (ce = cache_begin(srv->cache, key.data)) == NULL) {
		upstream_req_free(&f->req);
		free(f);
		goto oom;
	}
	if (cache_add_waiter(ce, x) == -1) {
		cache_finish(srv->cache, ce);
		upstream_req_free(&f->req);
		free(f);
		goto oom;
	}
	x->centry = ce;
	f->req.conf = config_ref(x->conf);
	f->srv = srv;
	f->entry = ce;
	f->ttl_ms = policy != NULL ? policy->cache_ms : 0;
	f->req.cb = client_fetch_cb;
	f->req.arg = f;
	f->next = fetches;
	fetches = f;
	upstream_submit(srv->upstream, &f->req);
 done:
	buf_free(&target);
	buf_free(&key);
	return;
 oom:
	buf_free(&target);
	buf_free(&key);
	exchange_error(x, 500, "internal_error", "out of memory", NULL);
}

/* ------------------------------------------------------------ built-ins */

static void
client_json_time(struct buf *b, const char *name, time_t t)
{
	char	 ts[40];

	if (t == 0) {
		buf_printf(b, "\"%s\":null", name);
		return;
	}
	status_time(t, ts, sizeof(ts));
	buf_printf(b, "\"%s\":\"%s\"", name, ts);
}

/* The watcher's last word, as /gateway/auth-status and /gateway/status say. */
static void
client_state_json(struct buf *b, const struct gw_status *st)
{
	buf_printf(b, "\"authenticated\":%s,\"connected\":%s,"
	    "\"competing\":%s,\"state\":\"%s\",",
	    st->state == GW_AUTHENTICATED ? "true" : "false",
	    st->connected ? "true" : "false",
	    st->competing ? "true" : "false", status_state_name(st->state));
	client_json_time(b, "since", st->since);
	buf_puts(b, ",");
	client_json_time(b, "checked_at", st->checked);
	buf_puts(b, ",\"message\":");
	buf_json_string(b, st->message, strlen(st->message));
}

static void
client_auth_status(struct exchange *x)
{
	struct buf	 b;

	buf_init(&b);
	buf_puts(&b, "{");
	client_state_json(&b, session_status(x->c->srv->session));
	buf_puts(&b, "}");
	exchange_answer(x, 200, "application/json", b.data, b.len, NULL);
	buf_free(&b);
}

/* Pool and pacing figures, for /gateway/status and /metrics. */
struct figures {
	struct upstream_stats	 us;
	struct pace_stats	 ps;
	double			 breaker_s;
	uint64_t		 now;
};

static void
client_figures(struct server *srv, struct figures *f)
{
	f->now = now_ms();
	upstream_stats(srv->upstream, &f->us);
	pace_stats(upstream_pace(srv->upstream), f->now, &f->ps);
	f->breaker_s = (double)pace_breaker_remaining(
	    upstream_pace(srv->upstream), f->now) / 1000.0;
}

static void
client_gateway_status(struct exchange *x)
{
	struct server		*srv = x->c->srv;
	const struct config	*conf = srv->conf;
	struct figures		 f;
	struct buf		 b;

	client_figures(srv, &f);
	buf_init(&b);
	buf_puts(&b, "{");
	client_state_json(&b, session_status(srv->session));
	buf_puts(&b, ",\"transitions\":");
	session_history_json(srv->session, &b);
	buf_puts(&b, ",\"gateway\":{\"url\":");
	buf_json_string(&b, conf->gw_url, strlen(conf->gw_url));
	buf_printf(&b, ",\"verify\":\"%s\",\"fingerprint\":",
	    conf->gw_has_pin ? "pin" : conf->gw_ca_file != NULL ? "ca" :
	    "insecure");
	if (f.us.fingerprint[0] != '\0')
		buf_json_string(&b, f.us.fingerprint,
		    strlen(f.us.fingerprint));
	else
		buf_puts(&b, "null");
	buf_printf(&b, "},\"pool\":{\"size\":%u,\"idle\":%u,\"busy\":%u,"
	    "\"handshakes\":%llu,\"resumed\":%llu,\"requests\":%llu,"
	    "\"errors\":%llu},", conf->gw_pool, f.us.idle, f.us.busy,
	    (unsigned long long)f.us.handshakes,
	    (unsigned long long)f.us.resumed,
	    (unsigned long long)f.us.requests,
	    (unsigned long long)f.us.errors);
	buf_printf(&b, "\"rate\":{\"limit\":%u,\"window_ms\":%llu,\"used\":%u,"
	    "\"queued\":%u,\"granted\":%llu,\"waited\":%llu,"
	    "\"rejected\":%llu,\"breaker_s\":%.1f,\"breaker_opened\":%llu},",
	    f.ps.global_n, (unsigned long long)f.ps.global_window_ms,
	    f.ps.global_used, f.ps.queued, (unsigned long long)f.ps.granted,
	    (unsigned long long)f.ps.waited,
	    (unsigned long long)f.ps.rejected, f.breaker_s,
	    (unsigned long long)f.ps.breaker_opened);
	buf_printf(&b, "\"cache\":{\"entries\":%zu},\"clients\":%u,"
	    "\"version\":\"%s\",\"pid\":%ld,\"uptime_s\":%llu}",
	    cache_count(srv->cache), nclients, BROKERD_VERSION,
	    (long)getpid(),
	    (unsigned long long)((f.now - srv->started_ms) / 1000));
	exchange_answer(x, 200, "application/json", b.data, b.len, NULL);
	buf_free(&b);
}

/* Live heap, what a soak compares at its start and end. */
static uint64_t
client_heap_bytes(void)
{
	struct mallinfo2	 mi;

	mi = mallinfo2();
	return ((uint64_t)mi.uordblks + mi.hblkhd);
}

static void
client_metrics(struct exchange *x)
{
	struct server		*srv = x->c->srv;
	struct metrics_gauges	 g;
	struct figures		 f;
	struct buf		 b;

	client_figures(srv, &f);
	memset(&g, 0, sizeof(g));
	g.state = status_state_name(session_status(srv->session)->state);
	g.queue_len = f.ps.queued;
	g.pool_idle = f.us.idle;
	g.pool_busy = f.us.busy;
	g.connections = nclients;
	g.connections_tcp = nclients_tcp;
	g.breaker_s = f.breaker_s;
	g.global_used = f.ps.global_used;
	g.global_n = f.ps.global_n;
	g.heap_bytes = client_heap_bytes();
	buf_init(&b);
	if (metrics_render(srv->metrics, &g, &b) == -1)
		exchange_error(x, 500, "internal_error", "metrics", NULL);
	else
		exchange_answer(x, 200, "text/plain; version=0.0.4; "
		    "charset=utf-8", b.data, b.len, NULL);
	buf_free(&b);
}

/* The kill switch: {"enabled": false} halts every trade-scope request. */
static void
client_trading(struct exchange *x)
{
	const char	*halt = x->c->srv->conf->halt_file;
	json_t		*j, *v;
	json_error_t	 je;
	struct stat	 st;
	int		 fd;

	if (halt == NULL) {
		exchange_error(x, 404, "no_route", "trading.halt_file is not "
		    "configured", NULL);
		return;
	}
	if (strcmp(x->req->method, "POST") == 0) {
		j = json_loadb(x->req->body.data, x->req->body.len, 0, &je);
		v = j != NULL ? json_object_get(j, "enabled") : NULL;
		if (v == NULL || !json_is_boolean(v)) {
			json_decref(j);
			exchange_error(x, 400, "bad_request", "expected "
			    "{\"enabled\": true|false}", NULL);
			return;
		}
		if (json_is_false(v)) {
			fd = open(halt, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
			if (fd != -1)
				close(fd);
			log_warn("trading halted by %s (%s)", x->who, halt);
		} else if (unlink(halt) == 0)
			log_warn("trading resumed by %s", x->who);
		json_decref(j);
	}
	if (stat(halt, &st) == 0)
		exchange_json(x, 200, "{\"trading\":\"halted\","
		    "\"enabled\":false}", NULL);
	else
		exchange_json(x, 200, "{\"trading\":\"enabled\","
		    "\"enabled\":true}", NULL);
}

/* ------------------------------------------------------------ dispatch */

static size_t
client_header_count(const struct http_request *r, const char *name)
{
	size_t	 i, n = 0;

	for (i = 0; i < r->nheaders; i++)
		if (strcasecmp(r->headers[i].name, name) == 0)
			n++;
	return (n);
}

/*
 * An absolute-form target ("GET http://host/path") names the authority
 * that counts (RFC 9112 section 3.2.2): it gets the Host check too.
 */
static int
client_target_host_ok(const struct http_request *r)
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

/* Who is asking and what they may do; -1 after answering 401. */
static int
client_authenticate(struct exchange *x, unsigned *scopes)
{
	struct client		*c = x->c;
	const struct config	*conf = c->srv->conf;
	const struct key	*k;
	const char		*key, *name = NULL;

	*scopes = 0;
	/* Two keys: which one counts would be anybody's guess. */
	if (client_header_count(x->req, "X-Bridge-Key") +
	    client_header_count(x->req, "Authorization") > 1) {
		exchange_error(x, 400, "bad_request", "more than one key "
		    "(X-Bridge-Key, Authorization)", NULL);
		return (-1);
	}
	key = http_request_header(x->req, "X-Bridge-Key");
	if (key == NULL &&
	    (key = http_request_header(x->req, "Authorization")) != NULL) {
		if (strncasecmp(key, "Bearer ", 7) != 0) {
			exchange_error(x, 401, "unauthorized", "Authorization "
			    "must be 'Bearer <key>'", "WWW-Authenticate: "
			    "Bearer\r\n");
			return (-1);
		}
		key += 7;
		while (*key == ' ')
			key++;
	}
	if (key != NULL) {
		if ((k = auth_key_find(conf, key, strlen(key))) == NULL) {
			snprintf(x->who, sizeof(x->who), "bad-key");
			exchange_error(x, 401, "unauthorized", "unknown key",
			    "WWW-Authenticate: Bearer\r\n");
			return (-1);
		}
		*scopes = k->scopes;
		snprintf(x->who, sizeof(x->who), "key:%s", k->name);
		return (0);
	}
	if (c->is_unix && c->has_cred &&
	    (*scopes = auth_peer_scopes(conf, c->uid, c->gid, &name)) != 0) {
		snprintf(x->who, sizeof(x->who), "peer:%s", name);
		return (0);
	}
	/* Not for web pages: browsers send Origin or Sec-Fetch-*. */
	if (!c->is_unix && conf->tcp_anonymous != 0 &&
	    http_request_header(x->req, "Origin") == NULL &&
	    http_request_header(x->req, "Sec-Fetch-Site") == NULL) {
		*scopes = conf->tcp_anonymous;
		snprintf(x->who, sizeof(x->who), "anonymous");
		return (0);
	}
	exchange_error(x, 401, "unauthorized", "a key is needed: send "
	    "X-Bridge-Key or Authorization: Bearer", "WWW-Authenticate: "
	    "Bearer\r\n");
	return (-1);
}

static int
client_need(struct exchange *x, unsigned have, unsigned need)
{
	char	 msg[128];

	if ((have & need) == need)
		return (0);
	snprintf(msg, sizeof(msg), "this needs the %s scope",
	    auth_scope_name(need));
	exchange_error(x, 403, "forbidden", msg, NULL);
	return (-1);
}

static void
client_method_not_allowed(struct exchange *x, const char *allow)
{
	char	 extra[128];

	snprintf(extra, sizeof(extra), "Allow: %s\r\n", allow);
	exchange_error(x, 405, "method_not_allowed", "method not allowed here",
	    extra);
}

static void
client_health(struct exchange *x)
{
	exchange_json(x, 200, "{\"status\":\"ok\",\"bridge\":\"running\"}",
	    NULL);
}

static void
client_reauthenticate(struct exchange *x)
{
	switch (session_reauthenticate(x->c->srv->session)) {
	case 0:
		exchange_json(x, 202, "{\"status\":\"requested\"}", NULL);
		break;
	case 1:
		exchange_json(x, 202, "{\"status\":\"in_progress\"}", NULL);
		break;
	default:
		exchange_rate_limited(x, 1000, "a brokerage session was asked "
		    "for less than a second ago");
		break;
	}
}

/* brokerd's own paths; scope 0 needs no key. */
static const struct builtin {
	const char	*path;
	const char	*method;
	unsigned	 scope;
	void		(*fn)(struct exchange *);
} builtins[] = {
	{ "/health", "GET", 0, client_health },
	{ "/gateway/auth-status", "GET", 0, client_auth_status },
	{ "/gateway/status", "GET", SCOPE_READ, client_gateway_status },
	{ "/metrics", "GET", SCOPE_READ, client_metrics },
	{ "/gateway/reauthenticate", "POST", SCOPE_TRADE,
	    client_reauthenticate },
	{ "/gateway/trading", "GET", SCOPE_READ, client_trading },
	{ "/gateway/trading", "POST", SCOPE_ADMIN, client_trading },
};

/* Answer a built-in path; 0 when the path is not one. */
static int
client_builtin(struct exchange *x, const char *path)
{
	const struct builtin	*b, *found = NULL;
	struct buf		 allow;
	size_t			 i;
	unsigned		 scopes;

	buf_init(&allow);
	for (i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++) {
		b = &builtins[i];
		if (strcmp(path, b->path) != 0)
			continue;
		x->route = b->path;
		buf_printf(&allow, "%s%s", allow.len ? ", " : "", b->method);
		if (strcmp(x->req->method, b->method) == 0 ||
		    (strcmp(x->req->method, "HEAD") == 0 &&
		    strcmp(b->method, "GET") == 0))
			found = b;
	}
	if (found == NULL && allow.len > 0)
		client_method_not_allowed(x, allow.data);
	buf_free(&allow);
	if (found == NULL)
		return (x->done);
	if (found->scope == 0 || (client_authenticate(x, &scopes) == 0 &&
	    client_need(x, scopes, found->scope) == 0))
		found->fn(x);
	return (1);
}

static void
client_dispatch(struct exchange *x)
{
	struct client		*c = x->c;
	struct server		*srv = c->srv;
	const struct config	*conf = srv->conf;
	const struct http_request *r = x->req;
	const struct route	*rt;
	const char		*path;
	size_t			 len;
	unsigned		 scopes, need;
	struct stat		 st;
	enum gw_state		 state;

	if (!c->is_unix && (!value_host_ok(http_request_header(r, "Host")) ||
	    !client_target_host_ok(r))) {
		exchange_error(x, 421, "misdirected_request", "Host must be "
		    "127.0.0.1, localhost or [::1]", NULL);
		return;
	}
	len = strlen(r->path);
	path = route_strip_v1(r->path, &len);
	if (client_builtin(x, path))
		return;
	if (client_authenticate(x, &scopes) == -1)
		return;
	if ((rt = route_match(conf->routes, conf->nroutes, path, len)) ==
	    NULL) {
		exchange_error(x, 404, "no_route", "no route for this path",
		    NULL);
		return;
	}
	x->route = rt->prefix;
	x->conf = config_ref(conf);
	if (route_method_scope(rt, r->method, &need) == -1) {
		struct buf	 allow;
		size_t		 i;

		buf_init(&allow);
		for (i = 0; i < rt->nmethods; i++)
			buf_printf(&allow, "%s%s", i ? ", " : "",
			    rt->methods[i].method);
		client_method_not_allowed(x, allow.data ? allow.data : "");
		buf_free(&allow);
		return;
	}
	if (client_need(x, scopes, need) == -1)
		return;
	if ((need & SCOPE_TRADE) && conf->halt_file != NULL &&
	    stat(conf->halt_file, &st) == 0) {
		exchange_error(x, 423, "trading_halted", "trading is halted "
		    "(trading.halt_file exists)", NULL);
		return;
	}
	/* Fail fast rather than queue for a session that is not there. */
	state = session_status(srv->session)->state;
	if (strncmp(rt->to, "/v1/api/iserver/", 16) == 0 &&
	    strncmp(path, "/iserver/auth/", 14) != 0) {
		/* the operator must act: say what, not "down" */
		if (state == GW_DOWN && session_status(srv->session)->
		    cert_error) {
			exchange_error(x, 502, "gateway_certificate",
			    session_status(srv->session)->message, NULL);
			return;
		}
		if (state == GW_DOWN) {
			exchange_error(x, 502, "gateway_unreachable", "the "
			    "Gateway is down (see /gateway/auth-status)", NULL);
			return;
		}
		if (state == GW_UNAUTHENTICATED || state == GW_COMPETING) {
			exchange_error(x, 503, "not_authenticated", state ==
			    GW_COMPETING ? "the brokerage session is taken "
			    "by another login (competing)" : "the Gateway "
			    "has no authenticated brokerage session",
			    "Retry-After: 10\r\n");
			return;
		}
	}
	x->trade = (need & SCOPE_TRADE) != 0;
	/* The route maps the client path; forward the stripped form. */
	if (path != r->path) {
		memmove(x->req->path, path, len + 1);
	}
	client_forward(x, rt);
}

/* ------------------------------------------------------------ I/O */

static void
client_arm_timer(struct client *c)
{
	const struct config	*conf = c->srv->conf;
	double			 t;

	ev_timer_stop(c->srv->loop, &c->timer);
	if (c->in_request || c->in.len > 0 || c->nrequests == 0) {
		/*
		 * From the first byte, or for a new connection from accept:
		 * slow drips and silent sockets do not extend it.
		 */
		t = conf->header_timeout_ms / 1000.0 -
		    (ev_now(c->srv->loop) - c->req_start);
		if (t < 0.001)
			t = 0.001;
	} else if (c->head == NULL)
		t = conf->idle_timeout_ms / 1000.0;
	else
		return;		/* waiting on the Gateway: its own timeout */
	ev_timer_set(&c->timer, t, 0.);
	ev_timer_start(c->srv->loop, &c->timer);
}

static void
client_reading(struct client *c, int on)
{
	if (on && !c->reading && !c->closing) {
		ev_io_start(c->srv->loop, &c->rio);
		c->reading = 1;
	} else if (!on && c->reading) {
		ev_io_stop(c->srv->loop, &c->rio);
		c->reading = 0;
	}
}

/*
 * A burst of connections leaves its freed memory scattered through the
 * heap, where glibc keeps it (it gives back only the heap's top).  Once
 * the burst has mostly gone, hand the free pages back in one pass; a few
 * milliseconds, once per burst, never per request.
 */
static void
client_trim(void)
{
	if (npeak < CLIENT_TRIM_PEAK || nclients > npeak / 16)
		return;
	malloc_trim(0);
	npeak = nclients;
}

static void
client_free(struct client *c)
{
	struct exchange	*x, *nx;

	ev_io_stop(c->srv->loop, &c->rio);
	ev_io_stop(c->srv->loop, &c->wio);
	ev_timer_stop(c->srv->loop, &c->timer);
	for (x = c->head; x != NULL; x = nx) {
		nx = x->next;
		exchange_free(x);
	}
	http_reader_free(&c->rd);
	buf_free(&c->in);
	close(c->fd);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		clients = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	nclients--;
	if (!c->is_unix)
		nclients_tcp--;
	free(c);
	client_trim();
}

/* The client caught up with a paused stream: let the Gateway go on. */
static void
client_stream_resume(struct exchange *x)
{
	if (x->paused && x->ureq != NULL &&
	    exchange_unsent(x) < CLIENT_STREAM_HIGH) {
		x->paused = 0;
		upstream_resume(x->c->srv->upstream, x->ureq);
	}
}

/*
 * After an answer that closes, send the FIN but keep reading (and
 * discarding) for up to CLIENT_LINGER_MS when the client may still be
 * sending: a bad request's rest, pipelined requests.  Closing with unread
 * bytes makes TCP send a reset, which can destroy the answer before the
 * client reads it, and a Unix-socket client's next write fails with EPIPE
 * before it reads the answer (RFC 9112 section 9.6).
 */
static void
client_linger(struct client *c)
{
	struct exchange	*x, *nx;

	shutdown(c->fd, SHUT_WR);
	if ((!c->closing && c->in.len == 0) || c->srv->draining) {
		client_free(c);
		return;
	}
	for (x = c->head; x != NULL; x = nx) {
		nx = x->next;
		exchange_free(x);
	}
	c->head = c->tail = NULL;
	c->nexchanges = 0;
	c->closing = 1;
	c->lingering = 1;
	buf_reset(&c->in);
	ev_io_stop(c->srv->loop, &c->wio);
	ev_timer_stop(c->srv->loop, &c->timer);
	ev_timer_set(&c->timer, CLIENT_LINGER_MS / 1000.0, 0.);
	ev_timer_start(c->srv->loop, &c->timer);
	if (!c->reading) {
		ev_io_start(c->srv->loop, &c->rio);
		c->reading = 1;
	}
}

/* Write what is ready, in order; close when an answer said so. */
static void
client_flush(struct client *c)
{
	struct exchange	*x;
	ssize_t		 n;

	while ((x = c->head) != NULL && (x->done || x->streaming)) {
		while (c->wpos < x->out.len) {
			n = send(c->fd, x->out.data + c->wpos,
			    x->out.len - c->wpos, MSG_NOSIGNAL);
			if (n == -1 && errno == EINTR)
				continue;
			if (n == -1 && (errno == EAGAIN ||
			    errno == EWOULDBLOCK)) {
				client_stream_resume(x);
				ev_io_start(c->srv->loop, &c->wio);
				return;
			}
			if (n <= 0) {
				client_free(c);
				return;
			}
			c->wpos += (size_t)n;
		}
		if (!x->done) {
			/* Streaming: all written so far; more will come. */
			buf_reset(&x->out);
			c->wpos = 0;
			client_stream_resume(x);
			break;
		}
		c->wpos = 0;
		c->head = x->next;
		if (c->head == NULL)
			c->tail = NULL;
		c->nexchanges--;
		if (x->close) {
			exchange_free(x);
			client_linger(c);
			return;
		}
		exchange_free(x);
	}
	ev_io_stop(c->srv->loop, &c->wio);
	if (c->head == NULL && c->srv->draining) {
		client_free(c);
		return;
	}
	if (c->nexchanges < CLIENT_MAX_PIPELINE) {
		client_reading(c, 1);
		if (c->in.len > 0 && c->head == NULL) {
			client_process(c);
			return;
		}
	}
	client_arm_timer(c);
}

static void
client_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	client_flush(w->data);
}

/*
 * Parse bytes into exchanges; returns how many were taken, or -1 when the
 * client is gone.  Bytes left over wait in c->in.
 */
static ssize_t
client_parse(struct client *c, const char *data, size_t len)
{
	struct exchange		*x;
	struct http_request	*req;
	enum http_feed		 rc;
	size_t			 off = 0, used;
	static const char	 cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

	while (off < len && !c->closing &&
	    c->nexchanges < CLIENT_MAX_PIPELINE) {
		if (!c->in_request) {
			c->in_request = 1;
			if (c->nrequests > 0)
				c->req_start = ev_now(c->srv->loop);
		}
		rc = http_reader_feed(&c->rd, data + off, len - off, &used);
		off += used;
		if (rc == HTTP_FEED_ERROR) {
			c->closing = 1;
			client_reading(c, 0);
			if ((x = exchange_new(c, NULL)) == NULL) {
				client_free(c);
				return (-1);
			}
			x->close = 1;
			exchange_error(x, c->rd.err_status, c->rd.err_code,
			    c->rd.err_msg ? c->rd.err_msg : "bad request",
			    NULL);
			return ((ssize_t)len);	/* the rest is dropped */
		}
		if (rc == HTTP_FEED_MORE) {
			if (http_reader_wants_continue(&c->rd) &&
			    c->head == NULL) {
				send(c->fd, cont, sizeof(cont) - 1,
				    MSG_NOSIGNAL);
				c->rd.continue_sent = 1;
			} else if (http_reader_wants_continue(&c->rd))
				c->rd.continue_sent = 1;
			break;
		}
		c->in_request = 0;
		c->nrequests++;
		if ((req = http_reader_take(&c->rd)) == NULL ||
		    (x = exchange_new(c, req)) == NULL) {
			http_request_free(req);
			client_free(c);
			return (-1);
		}
		if (c->srv->draining)
			x->close = 1;
		client_dispatch(x);
	}
	return ((ssize_t)off);
}

static void
client_parsed(struct client *c)
{
	if (c->nexchanges >= CLIENT_MAX_PIPELINE)
		client_reading(c, 0);
	client_arm_timer(c);
}

/* Parse what waited in c->in; its memory goes once it is empty. */
static void
client_process(struct client *c)
{
	ssize_t	 n;

	if ((n = client_parse(c, c->in.data, c->in.len)) == -1)
		return;
	buf_consume(&c->in, (size_t)n);
	if (c->in.len == 0)
		buf_free(&c->in);
	client_parsed(c);
}

/*
 * Every connection reads into one shared chunk and the reader copies out
 * what it keeps, so an idle connection holds no read buffer: only a
 * pipelined remainder is kept, in c->in, and freed once parsed.
 */
static void
client_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	static char	 chunk[CLIENT_READ_CHUNK];
	struct client	*c = w->data;
	ssize_t		 n, used;

	(void)loop;
	(void)revents;
	if (c->lingering) {
		n = recv(c->fd, chunk, sizeof(chunk), 0);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0)
			client_free(c);
		return;
	}
	n = recv(c->fd, chunk, sizeof(chunk), 0);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* The peer is gone (or half-closed): nothing more to do. */
		client_free(c);
		return;
	}
	if (c->in.len > 0) {
		if (buf_append(&c->in, chunk, (size_t)n) == -1) {
			client_free(c);
			return;
		}
		client_process(c);
		return;
	}
	if ((used = client_parse(c, chunk, (size_t)n)) == -1)
		return;
	if (used < n && buf_append(&c->in, chunk + used,
	    (size_t)(n - used)) == -1) {
		client_free(c);
		return;
	}
	client_parsed(c);
}

static void
client_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct client	*c = w->data;
	struct exchange	*x;

	(void)loop;
	(void)revents;
	if (c->lingering || (!c->in_request && c->in.len == 0)) {
		client_free(c);		/* idle, or done lingering */
		return;
	}
	c->closing = 1;
	client_reading(c, 0);
	buf_free(&c->in);
	if ((x = exchange_new(c, NULL)) == NULL) {
		client_free(c);
		return;
	}
	x->close = 1;
	exchange_error(x, 408, "request_timeout", "the request did not "
	    "arrive within limits.header_timeout_ms", NULL);
}

void
client_accept(struct server *srv, struct listener *l, int fd)
{
	struct client	*c;
	struct ucred	 cred;
	socklen_t	 len = sizeof(cred);

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		return;
	}
	c->srv = srv;
	c->fd = fd;
	c->is_unix = l->is_unix;
	if (c->is_unix &&
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
		c->uid = cred.uid;
		c->gid = cred.gid;
		c->has_cred = 1;
	}
	buf_init(&c->in);
	http_reader_init(&c->rd, srv->conf->max_header_bytes,
	    srv->conf->max_body_bytes);
	ev_io_init(&c->rio, client_read_cb, fd, EV_READ);
	ev_io_init(&c->wio, client_write_cb, fd, EV_WRITE);
	ev_timer_init(&c->timer, client_timer_cb, 0., 0.);
	c->rio.data = c;
	c->wio.data = c;
	c->timer.data = c;
	c->next = clients;
	if (clients != NULL)
		clients->prev = c;
	clients = c;
	if (++nclients > npeak)
		npeak = nclients;
	if (!c->is_unix)
		nclients_tcp++;
	c->req_start = ev_now(srv->loop);
	client_reading(c, 1);
	client_arm_timer(c);
}

/*
 * Draining: idle connections go now, the others after their answers
 * (exchange_answer marks them close while draining).
 */
void
client_close_all(struct server *srv)
{
	struct client	*c, *nc;

	for (c = clients; c != NULL; c = nc) {
		nc = c->next;
		if (srv->draining && c->head != NULL) {
			client_reading(c, 0);
			c->closing = 1;
			continue;
		}
		client_free(c);
	}
}

void
client_cache_feed(void *arg, const char *target,
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
