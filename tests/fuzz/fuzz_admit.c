/*
 * libFuzzer: who may ask what.  The input, after its first byte (bit 0:
 * the Unix socket, else TCP; bit 1: keyless TCP gets read), is a
 * connection's bytes: every request the reader takes goes through
 * admit_host and admit_request as client.c sends it, with the
 * connection's key memo.  Beyond no crash: on TCP nothing is admitted
 * whose Host (or absolute-form authority) is not a loopback name; what
 * is admitted by a key carried exactly one key header, naming a
 * configured key byte for byte, and has the scopes its route and method
 * need (trade only with the trade key); the memo never changes a
 * verdict; a refusal has a code and header lines that stay lines; no
 * verdict holds a key.
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "brokerd.h"
#include "value.h"

#define KREAD	"read-key-0123456789abcdef"
#define KTRADE	"trade-key-0123456789abcdef"

static struct config	*conf[2];

static void
load(int anon)
{
	char	 path[] = "/tmp/fuzz_admit.XXXXXX", err[512], yaml[512];
	int	 fd, n;

	n = snprintf(yaml, sizeof(yaml), "listen:\n  tcp: 127.0.0.1:8000\n"
	    "  tcp_anonymous: [%s]\nkeys:\n"
	    "  - { name: r, key: %s, scopes: [read] }\n"
	    "  - { name: t, key: %s, scopes: [read, trade] }\n"
	    "trading:\n  halt_file: /nonexistent/halt\n",
	    anon ? "read" : "", KREAD, KTRADE);
	if ((fd = mkstemp(path)) == -1 || write(fd, yaml, n) != n ||
	    close(fd) == -1)
		abort();
	unsetenv("IBKR_BRIDGE_KEY");
	unsetenv("IBKR_BRIDGE_URL");
	unsetenv("IBKR_GATEWAY_URL");
	if ((conf[anon] = config_load(path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	unlink(path);
}

/* The Host rule, written again: a loopback name, at most a port. */
static int
host_ok(const char *h)
{
	static const char *const names[] = { "127.0.0.1", "localhost",
	    "[::1]" };
	size_t	 i, n;

	for (i = 0; i < 3; i++) {
		n = strlen(names[i]);
		if (strncasecmp(h, names[i], n) == 0 && (h[n] == '\0' ||
		    (h[n] == ':' && value_digits(h + n + 1))))
			return (1);
	}
	return (0);
}

static void
check_refusal(const struct admit_verdict *v)
{
	const char	*p;

	if (v->status < 400 || v->status > 599 || v->code == NULL ||
	    v->message == NULL)
		abort();
	for (p = v->extra; *p != '\0'; p++)
		if ((*p == '\r' && p[1] != '\n') ||
		    (*p == '\n' && (p == v->extra || p[-1] != '\r')))
			abort();
}

static void
check(const struct config *c, const struct admit_peer *peer,
    struct auth_memo *memo, const struct http_request *r)
{
	struct admit_verdict v, w;
	const char	*path, *h, *key;
	size_t		 len;
	unsigned	 keys;
	int		 rc, rc2;

	if (admit_host(r, peer->is_unix, &v) == -1) {
		check_refusal(&v);
		return;
	}
	if (!peer->is_unix && ((h = http_request_header(r, "Host")) == NULL ?
	    r->http_minor != 0 : !host_ok(h)))
		abort();
	len = strlen(r->path);
	path = route_strip_v1(r->path, &len);
	rc = admit_request(c, &(struct gw_status){ .state = GW_AUTHENTICATED,
	    .authenticated = 1, .connected = 1 }, peer, memo, r, path, &v);
	rc2 = admit_request(c, &(struct gw_status){ .state = GW_AUTHENTICATED,
	    .authenticated = 1, .connected = 1 }, peer, NULL, r, path, &w);
	if (rc != rc2 || v.status != w.status || v.scopes != w.scopes ||
	    strcmp(v.who, w.who) != 0)
		abort();
	if (strstr(v.who, "key-0123") != NULL ||
	    strstr(v.text, "key-0123") != NULL ||
	    strstr(v.extra, "key-0123") != NULL)
		abort();
	if (rc == -1) {
		check_refusal(&v);
		return;
	}
	if (v.route == NULL || (v.scopes & v.need) != v.need || v.need == 0)
		abort();
	keys = (http_request_header(r, "X-Bridge-Key") != NULL) +
	    (http_request_header(r, "Authorization") != NULL);
	if (strncmp(v.who, "key:", 4) == 0) {
		key = http_request_header(r, "X-Bridge-Key");
		if (key == NULL) {
			key = http_request_header(r, "Authorization") + 7;
			while (*key == ' ')
				key++;
		}
		if (keys != 1 || (strcmp(key, KREAD) != 0 &&
		    strcmp(key, KTRADE) != 0) ||
		    ((v.need & SCOPE_TRADE) && strcmp(key, KTRADE) != 0))
			abort();
	} else if (keys != 0 || (v.need & SCOPE_TRADE))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_reader rd;
	struct http_request *req;
	struct admit_peer peer = { 0, 0, 0, 0 };
	struct auth_memo memo;
	const struct config *c;
	const char	*p = (const char *)data + 1;
	size_t		 len, used;
	enum http_feed	 r;

	if (size < 1)
		return (0);
	if (conf[0] == NULL) {
		load(0);
		load(1);
	}
	c = conf[(data[0] >> 1) & 1];
	peer.is_unix = data[0] & 1;
	len = size - 1;
	memset(&memo, 0, sizeof(memo));
	http_reader_init(&rd, 8192, 4096);
	while (len > 0) {
		r = http_reader_feed(&rd, p, len, &used);
		p += used;
		len -= used;
		if (r != HTTP_FEED_DONE)
			break;
		if ((req = http_reader_take(&rd)) == NULL)
			abort();
		check(c, &peer, &memo, req);
		http_reader_recycle(&rd, req);
	}
	http_reader_free(&rd);
	auth_memo_clear(&memo);
	return (0);
}
