/*
 * One request and its answer: the answer is written whole into the
 * exchange's buffer, logged and counted here; client.c writes it out in
 * request order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brokerd.h"

#define EXCHANGE_KEEP_OUT	16384	/* a kept exchange's output room */

/* The connection's kept exchange, emptied, with its room; or a new one. */
struct exchange *
exchange_new(struct client *c, struct http_request *req)
{
	struct exchange	*x;
	struct buf	 out, target;

	if ((x = c->spare) != NULL) {
		/* Emptied whole; its two rooms kept (forward_alone). */
		c->spare = NULL;
		out = x->out;
		target = x->ureq_own.target;
		memset(x, 0, sizeof(*x));
		x->out = out;
		buf_reset(&x->out);
		x->ureq_own.target = target;
	} else if ((x = calloc(1, sizeof(*x))) == NULL)
		return (NULL);
	else
		buf_init(&x->out);
	x->c = c;
	x->req = req;
	x->start = now_s();
	x->route = "none";
	if (c->tail != NULL)
		c->tail->next = x;
	else
		c->head = x;
	c->tail = x;
	c->nexchanges++;
	return (x);
}

/*
 * One exchange per connection is kept for its next request, with its
 * output room, so that a kept-alive connection allocates none per request.
 */
void
exchange_free(struct exchange *x)
{
	struct client	*c = x->c;

	forward_abandon(x);
	http_reader_recycle(&c->rd, x->req);
	x->req = NULL;
	config_unref(x->conf);
	x->conf = NULL;
	if (c->spare == NULL && x->out.cap <= EXCHANGE_KEEP_OUT) {
		c->spare = x;
		return;
	}
	buf_free(&x->out);
	buf_free(&x->ureq_own.target);	/* kept by forward_cb */
	free(x);
}

/* The kept exchange goes with its connection. */
void
exchange_drop_spare(struct client *c)
{
	if (c->spare == NULL)
		return;
	buf_free(&c->spare->out);
	buf_free(&c->spare->ureq_own.target);
	free(c->spare);
	c->spare = NULL;
}

/* Closing: the last exchange says so; those before it keep on. */
int
exchange_keep_alive(const struct exchange *x)
{
	const struct client	*c = x->c;

	return (!x->close && (!c->closing || x->next != NULL) &&
	    x->req != NULL && x->req->keep_alive && !c->srv->draining);
}

void
exchange_finish(struct exchange *x, int status)
{
	struct client	*c = x->c;

	x->done = 1;
	log_request(x->req != NULL ? x->req->method : "-",
	    x->req != NULL && x->req->path != NULL ? x->req->path : "-",
	    status, x->bytes, (now_s() - x->start) * 1000.0,
	    x->who[0] ? x->who : "-");
	metrics_request(c->srv->metrics, x->route,
	    x->req != NULL ? x->req->method : "-", status,
	    now_s() - x->start);
	/*
	 * Written from the write callback, never from here: answering may
	 * happen inside another object's callback (a shared fetch answers
	 * many exchanges), and writing can end in freeing the client.
	 */
	if (x == c->head)
		client_want_write(c);
}

/*
 * Finish an exchange with a complete answer.  Answers leave in request
 * order; a later one waits in its buffer.
 */
void
exchange_answer(struct exchange *x, int status, const char *ctype,
    const char *body, size_t len, const char *extra)
{
	int		 keep, head;

	if (x->done || x->streaming)
		return;
	head = x->req != NULL && strcmp(x->req->method, "HEAD") == 0;
	keep = exchange_keep_alive(x);
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
	exchange_finish(x, status);
}

void
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
void
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

void
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

int
exchange_verdict(struct exchange *x, const struct admit_verdict *v)
{
	_Static_assert(sizeof(x->who) == sizeof(v->who), "who");
	if (v->who[0] != '\0')
		memcpy(x->who, v->who, sizeof(x->who));
	if (v->status == 0)
		return (0);
	exchange_error(x, v->status, v->code, v->message,
	    v->extra[0] != '\0' ? v->extra : NULL);
	return (-1);
}

/* Output of an exchange not yet written (it is at the head when streaming). */
size_t
exchange_unsent(const struct exchange *x)
{
	return (x->out.len - (x == x->c->head ? x->c->wpos : 0));
}
