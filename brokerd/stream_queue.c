/*
 * Each subscriber's outbound queue.  brokerd keeps its own queue rather
 * than wslay's so that a slow subscriber's market data can be conflated
 * in place: past conflate_bytes a new value for a conid merges into the
 * newest queued message for that conid, so no field ever goes back to an
 * older value.  Orders and trades are never merged nor dropped: past
 * max_buffer_bytes the subscriber is closed 1008 instead.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stream_impl.h"

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

/*
 * The newest queued market data message per key, in O(1): a jansson
 * object (a hash table) from the key to the entry's address.  Past
 * conflate_bytes every tick looks here, for every subscriber.  Only
 * entries queued past conflate_bytes, or while some are, go in (a
 * subscriber that keeps up never pays for it): the newest entry of a key
 * is then always the indexed one when there is one, since entries that
 * were not indexed are all older than the first that was.
 */
static struct stream_entry *
stream_queue_find(struct stream_sub *s, const char *key)
{
	json_t	*v;

	if (s->mdidx == NULL || (v = json_object_get(s->mdidx, key)) == NULL)
		return (NULL);
	return ((struct stream_entry *)(uintptr_t)json_integer_value(v));
}

static int
stream_index_set(struct stream_sub *s, struct stream_entry *e)
{
	if (s->mdidx == NULL && (s->mdidx = json_object()) == NULL)
		return (-1);
	if (json_object_set_new(s->mdidx, e->key,
	    json_integer((json_int_t)(uintptr_t)e)) == -1)
		return (-1);
	e->indexed = 1;
	s->nindexed++;
	return (0);
}

static void
stream_index_del(struct stream_sub *s, struct stream_entry *e)
{
	if (!e->indexed)
		return;
	e->indexed = 0;
	s->nindexed--;
	if (stream_queue_find(s, e->key) == e)
		(void)json_object_del(s->mdidx, e->key);
}

static struct stream_text *
stream_text_new(const char *p, size_t len)
{
	struct stream_text *t;

	if ((t = malloc(sizeof(*t) + len + 1)) == NULL)
		return (NULL);
	t->refs = 1;
	t->len = len;
	memcpy(t->s, p, len);
	t->s[len] = '\0';
	return (t);
}

void
stream_text_free(struct stream_text *t)
{
	if (t != NULL && --t->refs == 0)
		free(t);
}

/* A short name into a fixed field, cut like snprintf would. */
static void
stream_name_copy(char *dst, const char *src, size_t size)
{
	size_t	 n = strlen(src);

	if (n >= size)
		n = size - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* The length of a value's compact JSON text, without the text. */
static size_t
stream_json_len(const json_t *v)
{
	return (json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY));
}

/*
 * Newer values over the queued ones, field by field, without parsing or
 * dumping the message: it stays an object until it leaves, and its
 * length follows each field's (keys are plain: "84", "conid").  An
 * object over an object merges a level down (spl's args: one per
 * account), so that a message naming one account keeps the other's.
 */
static int
stream_queue_merge(struct stream *st, struct stream_sub *s,
    struct stream_entry *e, json_t *obj)
{
	json_t		*old, *v, *put, *both = NULL;
	const char	*k;
	size_t		 len;

	if (e->obj == NULL) {
		/* the first merge into a message queued as text */
		if ((e->obj = json_loadb(e->txt->s, e->len, 0, NULL)) == NULL)
			return (-1);
		stream_text_free(e->txt);
		e->txt = NULL;
	}
	len = e->len;
	json_object_foreach(obj, k, v) {
		if ((old = json_object_get(e->obj, k)) != NULL)
			len -= stream_json_len(old);
		else
			len += strlen(k) + 4;	/* "k":  and a comma */
		put = v;
		if (json_is_object(old) && json_is_object(v)) {
			/* a copy: the old object may be another queue's too */
			if ((both = json_copy(old)) == NULL ||
			    json_object_update(both, v) == -1) {
				json_decref(both);
				return (-1);
			}
			put = both;
		}
		len += stream_json_len(put);
		if (json_object_set(e->obj, k, put) == -1) {
			json_decref(both);
			return (-1);
		}
		json_decref(both);
		both = NULL;
	}
	s->queued -= e->bytes;
	e->len = len;
	e->bytes = stream_encoded(s, e->topic, e->len);
	s->queued += e->bytes;
	st->n.conflated++;
	return (0);
}

/* Queue txt (a reference of its own) or, when it is NULL, a copy of obj. */
static int
stream_queue_add(struct stream *st, struct stream_sub *s, const char *topic,
    const char *key, enum stream_kind kind, struct stream_text *txt,
    json_t *obj)
{
	struct stream_entry *e;
	int		 was_empty = s->head == NULL;

	if ((e = malloc(sizeof(*e))) == NULL)
		return (-1);
	e->next = NULL;
	e->indexed = 0;
	e->obj = NULL;
	e->txt = NULL;
	stream_name_copy(e->key, key, sizeof(e->key));
	stream_name_copy(e->topic, topic, sizeof(e->topic));
	e->kind = kind;
	if (kind == STREAM_Q_MD && (s->queued > st->lim.conflate_bytes ||
	    s->nindexed > 0) && stream_index_set(s, e) == -1) {
		free(e);
		return (-1);
	}
	if (txt != NULL) {
		txt->refs++;
		e->txt = txt;
		e->len = txt->len;
	} else {
		/* its own: merges change it, the cut may be shared */
		if ((e->obj = json_copy(obj)) == NULL) {
			stream_index_del(s, e);
			free(e);
			return (-1);
		}
		e->len = stream_json_len(obj);
	}
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

/*
 * Queue obj for s.  *text is its compact JSON, dumped at most once for
 * all the subscribers a message goes to (the caller frees it): each
 * queue takes a copy of the bytes, not a serialisation of its own.
 */
int
stream_queue_push_shared(struct stream *st, struct stream_sub *s,
    const char *topic, const char *key, enum stream_kind kind, json_t *obj,
    struct stream_text **text)
{
	struct stream_entry *e;
	char		*json;

	if (s->closing)
		return (0);
	if (kind == STREAM_Q_MD && s->queued > st->lim.conflate_bytes) {
		if ((e = stream_queue_find(s, key)) != NULL)
			return (stream_queue_merge(st, s, e, obj));
		/* behind: it will likely be merged into, keep the object */
		return (stream_queue_add(st, s, topic, key, kind, NULL, obj));
	}
	if (*text == NULL) {
		if ((json = json_dumps(obj, JSON_COMPACT)) == NULL)
			return (-1);
		*text = stream_text_new(json, strlen(json));
		free(json);
		if (*text == NULL)
			return (-1);
	}
	return (stream_queue_add(st, s, topic, key, kind, *text, NULL));
}

int
stream_queue_push(struct stream *st, struct stream_sub *s, const char *topic,
    const char *key, enum stream_kind kind, json_t *obj)
{
	struct stream_text *text = NULL;
	int		 r;

	r = stream_queue_push_shared(st, s, topic, key, kind, obj, &text);
	stream_text_free(text);
	return (r);
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
	stream_index_del(s, e);
	stream_text_free(e->txt);
	json_decref(e->obj);
	free(e);
}

void
stream_queue_clear(struct stream_sub *s)
{
	while (s->head != NULL)
		stream_entry_drop(s, s->head);
	json_decref(s->mdidx);
	s->mdidx = NULL;
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
	char			 head[STREAM_KEY_LEN + 16], *dumped = NULL;
	struct stream_out	 o;
	size_t			 tl;
	int			 r;

	memset(&o, 0, sizeof(o));
	o.head = o.tail = "";
	o.json = e->txt != NULL ? e->txt->s : NULL;
	o.len = e->len;
	if (e->obj != NULL) {
		if ((dumped = json_dumps(e->obj, JSON_COMPACT)) == NULL)
			return (-1);
		o.json = dumped;
		o.len = strlen(dumped);
	}
	if (s->enc == STREAM_ENC_SSE) {
		/* "event: TOPIC\ndata: " (a topic is under STREAM_KEY_LEN) */
		tl = strlen(e->topic);
		memcpy(head, "event: ", 7);
		memcpy(head + 7, e->topic, tl);
		memcpy(head + 7 + tl, "\ndata: ", 7);
		o.head = head;
		o.hlen = tl + 14;
		o.tail = "\n\n";
		o.tlen = 2;
	}
	r = emit(arg, &o);
	free(dumped);
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
