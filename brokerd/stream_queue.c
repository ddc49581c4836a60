/*
 * Each subscriber's outbound queue.  brokerd keeps its own queue rather
 * than wslay's so that a slow subscriber's market data can be conflated
 * in place: past conflate_bytes a new value for a conid merges into the
 * newest queued message for that conid, so no field ever goes back to an
 * older value.  Orders and trades are never merged nor dropped: past
 * max_buffer_bytes the subscriber is closed 1008 instead.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stream_impl.h"

#define STREAM_SSE_FMT	"event: %s\ndata: %s\n\n"

static size_t
stream_encoded(const struct stream_sub *s, const char *topic, size_t len)
{
	if (s->enc == STREAM_ENC_SSE)
		return (len + strlen(topic) +
		    sizeof("event: \ndata: \n\n") - 1);
	return (len + 10);	/* a server frame's head is 2 to 10 bytes */
}

static void
stream_verdict(struct stream *st, struct stream_sub *s, const char *why)
{
	if (s->closing)
		return;
	s->closing = 1;
	st->n.dropped++;
	if (st->cb.close != NULL)
		st->cb.close(s->owner, s, 1008, why);
}

/* The newest queued message with this key, to merge into. */
static struct stream_entry *
stream_queue_find(struct stream_sub *s, const char *key)
{
	struct stream_entry *e;

	for (e = s->tail; e != NULL; e = e->prev)
		if (e->kind == STREAM_Q_MD && strcmp(e->key, key) == 0)
			return (e);
	return (NULL);
}

static int
stream_queue_merge(struct stream *st, struct stream_sub *s,
    struct stream_entry *e, json_t *obj)
{
	json_t	*old;
	char	*json;

	if ((old = json_loadb(e->json, e->len, 0, NULL)) == NULL)
		return (-1);
	if (json_object_update_recursive(old, obj) == -1 ||
	    (json = json_dumps(old, JSON_COMPACT)) == NULL) {
		json_decref(old);
		return (-1);
	}
	json_decref(old);
	s->queued -= e->bytes;
	free(e->json);
	e->json = json;
	e->len = strlen(json);
	e->bytes = stream_encoded(s, e->topic, e->len);
	s->queued += e->bytes;
	st->n.conflated++;
	return (0);
}

static int
stream_queue_add(struct stream *st, struct stream_sub *s, const char *topic,
    const char *key, enum stream_kind kind, char *json)
{
	struct stream_entry *e;
	int		 was_empty = s->head == NULL;

	if ((e = calloc(1, sizeof(*e))) == NULL) {
		free(json);
		return (-1);
	}
	snprintf(e->key, sizeof(e->key), "%s", key);
	snprintf(e->topic, sizeof(e->topic), "%s", topic);
	e->kind = kind;
	e->json = json;
	e->len = strlen(json);
	e->bytes = stream_encoded(s, topic, e->len);
	e->prev = s->tail;
	if (s->tail != NULL)
		s->tail->next = e;
	else
		s->head = e;
	s->tail = e;
	s->queued += e->bytes;
	st->n.msgs_out++;
	if (s->queued > st->lim.max_buffer_bytes)
		stream_verdict(st, s, "subscriber too slow: buffer full");
	else if (was_empty && st->cb.ready != NULL)
		st->cb.ready(s->owner, s);
	return (0);
}

int
stream_queue_push(struct stream *st, struct stream_sub *s, const char *topic,
    const char *key, enum stream_kind kind, json_t *obj)
{
	struct stream_entry *e;
	char		*json;

	if (s->closing)
		return (0);
	if (kind == STREAM_Q_MD && s->queued > st->lim.conflate_bytes &&
	    (e = stream_queue_find(s, key)) != NULL)
		return (stream_queue_merge(st, s, e, obj));
	if ((json = json_dumps(obj, JSON_COMPACT)) == NULL)
		return (-1);
	return (stream_queue_add(st, s, topic, key, kind, json));
}

int
stream_queue_text(struct stream *st, struct stream_sub *s, const char *topic,
    const char *json)
{
	char	*copy;

	if (s->closing)
		return (0);
	if ((copy = strdup(json)) == NULL)
		return (-1);
	return (stream_queue_add(st, s, topic, "", STREAM_Q_KEEP, copy));
}

static void
stream_entry_drop(struct stream_sub *s, struct stream_entry *e)
{
	s->head = e->next;
	if (s->head != NULL)
		s->head->prev = NULL;
	else
		s->tail = NULL;
	s->queued -= e->bytes;
	free(e->json);
	free(e);
}

void
stream_queue_clear(struct stream_sub *s)
{
	while (s->head != NULL)
		stream_entry_drop(s, s->head);
}

size_t
stream_sub_queued(const struct stream_sub *s)
{
	return (s->queued);
}

static int
stream_emit_one(struct stream_sub *s, struct stream_entry *e,
    stream_emit_fn emit, void *arg)
{
	char	*sse;
	int	 r;

	if (s->enc == STREAM_ENC_WS)
		return (emit(arg, e->json, e->len));
	if ((sse = malloc(e->bytes + 1)) == NULL)
		return (-1);
	snprintf(sse, e->bytes + 1, STREAM_SSE_FMT, e->topic, e->json);
	r = emit(arg, sse, e->bytes);
	free(sse);
	return (r);
}

int
stream_sub_take(struct stream *st, struct stream_sub *s, size_t max_bytes,
    stream_emit_fn emit, void *arg)
{
	size_t	 sent = 0;
	int	 n = 0;

	(void)st;
	while (s->head != NULL && (n == 0 || sent + s->head->bytes <=
	    max_bytes)) {
		if (stream_emit_one(s, s->head, emit, arg) == -1)
			return (-1);
		sent += s->head->bytes;
		stream_entry_drop(s, s->head);
		n++;
	}
	return (n);
}
