/*
 * bench/unixload.c: a small HTTP/1.1 load generator for bench/speed.sh.
 *
 * wrk speaks only TCP; this keeps CONNS kept-alive connections over a Unix
 * socket or TCP, one GET in flight on each (no pipelining), and either
 * stops after a fixed number of answers (-n, for the callgrind and strace
 * counts) or after a duration (-d, for requests/s).  Answers are read by
 * Content-Length or chunked framing.  The key is read from a file so it
 * never shows in ps.  Prints one line:
 *   requests=N errors=N seconds=S rps=R p50_ms=X p99_ms=Y bytes=B reconnects=N
 */
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define UL_HEAD_MAX	16384
#define UL_READ		65536
#define UL_CONNS_MAX	1024

enum ul_state {
	UL_HEAD,		/* reading the status line and fields */
	UL_BODY,		/* Content-Length bytes left */
	UL_CHUNK_SIZE,		/* a chunk-size line */
	UL_CHUNK_DATA,		/* chunk bytes left */
	UL_CHUNK_CRLF,		/* the CRLF after a chunk's data */
	UL_TRAILER,		/* trailer lines up to the empty one */
	UL_UNTIL_CLOSE		/* no framing: the body ends at EOF */
};

struct ul_conn {
	int		 fd;
	enum ul_state	 state;
	char		 head[UL_HEAD_MAX];
	size_t		 headlen;
	char		 line[64];	/* chunk-size or trailer line */
	size_t		 linelen;
	unsigned long long left;	/* body or chunk bytes still due */
	int		 status;
	int		 close_after;	/* Connection: close seen */
	int		 busy;		/* a request is in flight */
	struct timespec	 sent;
};

struct ul {
	const char	*unix_path;
	struct sockaddr_in sin;
	int		 tcp;
	int		 epfd;
	char		*req;
	size_t		 reqlen;
	long long	 limit;		/* -n: answers to wait for; 0: none */
	double		 duration_s;	/* -d */
	long long	 issued;
	long long	 done;
	long long	 errors;
	long long	 reconnects;
	unsigned long long bytes;
	uint32_t	*lat_us;
	size_t		 nlat, caplat;
	int		 stopping;
};

static double
ul_now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ts.tv_sec + ts.tv_nsec / 1e9);
}

static void
ul_usage(void)
{
	fprintf(stderr, "usage: unixload (-u path | -t host:port) "
	    "[-c conns] [-n requests | -d seconds]\n"
	    "    [-k keyfile] [-N] [-h host] path\n");
	exit(2);
}

static int
ul_connect(struct ul *u, struct ul_conn *c)
{
	struct sockaddr_un	sun;
	int			fd, one = 1;

	if (u->tcp) {
		if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
			return (-1);
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fd, (struct sockaddr *)&u->sin,
		    sizeof(u->sin)) == -1)
			goto fail;
	} else {
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		if (strlen(u->unix_path) >= sizeof(sun.sun_path)) {
			errno = ENAMETOOLONG;
			return (-1);
		}
		memcpy(sun.sun_path, u->unix_path, strlen(u->unix_path));
		if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1)
			return (-1);
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
			goto fail;
	}
	/* Connected while blocking (loopback), then non-blocking. */
	if (fcntl(fd, F_SETFL, O_NONBLOCK) == -1)
		goto fail;
	c->fd = fd;
	c->busy = 0;
	return (0);
fail:
	close(fd);
	return (-1);
}

static void
ul_add(struct ul *u, struct ul_conn *c, uint32_t events)
{
	struct epoll_event	ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.ptr = c;
	if (epoll_ctl(u->epfd, EPOLL_CTL_ADD, c->fd, &ev) == -1) {
		perror("epoll_ctl");
		exit(1);
	}
}

/* Sends the next request if the run wants more; 0 when one went out. */
static int
ul_send(struct ul *u, struct ul_conn *c)
{
	size_t	off = 0;
	ssize_t	n;

	if (u->stopping || (u->limit > 0 && u->issued >= u->limit))
		return (-1);
	/* Requests are small: a fresh socket buffer takes them whole. */
	while (off < u->reqlen) {
		n = write(c->fd, u->req + off, u->reqlen - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN) {
			struct timespec	ts = { 0, 100000 };

			nanosleep(&ts, NULL);
			continue;
		}
		if (n <= 0)
			return (-1);
		off += (size_t)n;
	}
	clock_gettime(CLOCK_MONOTONIC, &c->sent);
	c->busy = 1;
	c->state = UL_HEAD;
	c->headlen = 0;
	c->status = 0;
	c->close_after = 0;
	u->issued++;
	return (0);
}

static void
ul_record(struct ul *u, struct ul_conn *c)
{
	struct timespec	ts;
	uint32_t	*p;
	long long	 us;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	us = (ts.tv_sec - c->sent.tv_sec) * 1000000LL +
	    (ts.tv_nsec - c->sent.tv_nsec) / 1000;
	if (u->nlat == u->caplat) {
		u->caplat = u->caplat ? u->caplat * 2 : 65536;
		if ((p = realloc(u->lat_us, u->caplat * sizeof(*p))) == NULL) {
			perror("realloc");
			exit(1);
		}
		u->lat_us = p;
	}
	u->lat_us[u->nlat++] = us < 0 ? 0 : (uint32_t)us;
	u->done++;
	if (c->status < 200 || c->status > 399)
		u->errors++;
	c->busy = 0;
}

/* The head is complete: status, framing, Connection. */
static int
ul_head(struct ul_conn *c)
{
	char	*p, *eol, *end = c->head + c->headlen;
	int	 chunked = 0, have_len = 0;

	if (c->headlen < 12 || strncmp(c->head, "HTTP/1.", 7) != 0)
		return (-1);
	c->status = atoi(c->head + 9);
	c->left = 0;
	if ((p = memchr(c->head, '\n', c->headlen)) == NULL)
		return (-1);
	p++;
	while (p < end && (eol = memchr(p, '\n', end - p)) != NULL) {
		if (strncasecmp(p, "content-length:", 15) == 0) {
			c->left = strtoull(p + 15, NULL, 10);
			have_len = 1;
		} else if (strncasecmp(p, "transfer-encoding:", 18) == 0 &&
		    memmem(p, eol - p, "chunked", 7) != NULL)
			chunked = 1;
		else if (strncasecmp(p, "connection:", 11) == 0 &&
		    memmem(p, eol - p, "close", 5) != NULL)
			c->close_after = 1;
		p = eol + 1;
	}
	if (c->status == 204 || c->status == 304 || c->status < 200)
		c->state = UL_BODY, c->left = 0;
	else if (chunked)
		c->state = UL_CHUNK_SIZE, c->linelen = 0;
	else if (have_len)
		c->state = UL_BODY;
	else
		c->state = UL_UNTIL_CLOSE;
	return (0);
}

/* A line of a chunked body; 1 when it is complete. */
static int
ul_line(struct ul_conn *c, const char **p, const char *end)
{
	while (*p < end) {
		char	ch = *(*p)++;

		if (ch == '\n')
			return (1);
		if (c->linelen < sizeof(c->line) - 1)
			c->line[c->linelen++] = ch;
	}
	return (0);
}

/*
 * Feeds bytes to the connection's answer; returns 1 when an answer ended,
 * 0 when more is needed, -1 on a framing error.  *used says how many bytes
 * it took (the rest belong to nothing: no pipelining).
 */
static int
ul_feed(struct ul_conn *c, const char *buf, size_t len, size_t *used)
{
	const char	*p = buf, *end = buf + len, *hend;
	size_t		 n, room;

	while (p < end) {
		switch (c->state) {
		case UL_HEAD:
			room = sizeof(c->head) - c->headlen;
			n = (size_t)(end - p) < room ? (size_t)(end - p) : room;
			memcpy(c->head + c->headlen, p, n);
			hend = memmem(c->head, c->headlen + n, "\r\n\r\n", 4);
			if (hend == NULL) {
				if (n == room)
					return (-1);
				c->headlen += n;
				p += n;
				break;
			}
			n = (size_t)(hend + 4 - c->head) - c->headlen;
			c->headlen += n;
			p += n;
			if (ul_head(c) == -1)
				return (-1);
			if (c->state == UL_BODY && c->left == 0)
				goto done;
			break;
		case UL_BODY:
			n = (size_t)(end - p);
			if (n > c->left)
				n = c->left;
			c->left -= n;
			p += n;
			if (c->left == 0)
				goto done;
			break;
		case UL_CHUNK_SIZE:
			if (!ul_line(c, &p, end))
				break;
			c->line[c->linelen] = '\0';
			c->left = strtoull(c->line, NULL, 16);
			c->linelen = 0;
			c->state = c->left ? UL_CHUNK_DATA : UL_TRAILER;
			break;
		case UL_CHUNK_DATA:
			n = (size_t)(end - p);
			if (n > c->left)
				n = c->left;
			c->left -= n;
			p += n;
			if (c->left == 0)
				c->state = UL_CHUNK_CRLF;
			break;
		case UL_CHUNK_CRLF:
			if (!ul_line(c, &p, end))
				break;
			c->linelen = 0;
			c->state = UL_CHUNK_SIZE;
			break;
		case UL_TRAILER:
			if (!ul_line(c, &p, end))
				break;
			n = c->linelen;
			c->linelen = 0;
			if (n == 0 || (n == 1 && c->line[0] == '\r'))
				goto done;
			break;
		case UL_UNTIL_CLOSE:
			p = end;
			break;
		}
	}
	*used = (size_t)(p - buf);
	return (0);
done:
	*used = (size_t)(p - buf);
	return (1);
}

static void
ul_reopen(struct ul *u, struct ul_conn *c)
{
	close(c->fd);
	u->reconnects++;
	if (ul_connect(u, c) == -1) {
		perror("connect");
		exit(1);
	}
	ul_add(u, c, EPOLLIN);
	if (ul_send(u, c) == -1)
		c->busy = 0;
}

static void
ul_readable(struct ul *u, struct ul_conn *c, char *buf)
{
	ssize_t	n;
	size_t	used;
	int	r;

	for (;;) {
		n = read(c->fd, buf, UL_READ);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		if (n <= 0) {
			if (c->busy && n == 0 && c->state == UL_UNTIL_CLOSE)
				ul_record(u, c);
			else if (c->busy) {
				u->errors++;
				u->done++;
				c->busy = 0;
			}
			ul_reopen(u, c);
			return;
		}
		u->bytes += (size_t)n;
		if (!c->busy)
			continue;
		if ((r = ul_feed(c, buf, (size_t)n, &used)) == -1) {
			u->errors++;
			u->done++;
			c->busy = 0;
			ul_reopen(u, c);
			return;
		}
		if (r == 1) {
			ul_record(u, c);
			if (c->close_after) {
				ul_reopen(u, c);
				return;
			}
			ul_send(u, c);
		}
		if (n < UL_READ)
			return;
	}
}

static int
ul_cmp(const void *a, const void *b)
{
	uint32_t	x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x < y ? -1 : x > y);
}

static double
ul_pct(struct ul *u, double q)
{
	size_t	i;

	if (u->nlat == 0)
		return (0);
	i = (size_t)(q * (u->nlat - 1) + 0.5);
	return (u->lat_us[i] / 1000.0);
}

static char *
ul_key(const char *path)
{
	FILE	*f;
	char	*line = NULL;
	size_t	 cap = 0;
	ssize_t	 n;

	if ((f = fopen(path, "r")) == NULL) {
		perror(path);
		exit(2);
	}
	if ((n = getline(&line, &cap, f)) <= 0) {
		fprintf(stderr, "%s: empty\n", path);
		exit(2);
	}
	fclose(f);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	return (line);
}

static void
ul_args(struct ul *u, int argc, char **argv, int *conns)
{
	const char	*host = "localhost", *keyfile = NULL, *target;
	char		*key = NULL, *port;
	int		 ch, nocache = 0, len;

	while ((ch = getopt(argc, argv, "u:t:c:n:d:k:Nh:")) != -1) {
		switch (ch) {
		case 'u':
			u->unix_path = optarg;
			break;
		case 't':
			if ((port = strrchr(optarg, ':')) == NULL)
				ul_usage();
			*port++ = '\0';
			u->sin.sin_family = AF_INET;
			u->sin.sin_port = htons((uint16_t)atoi(port));
			if (inet_pton(AF_INET, optarg, &u->sin.sin_addr) != 1)
				ul_usage();
			u->tcp = 1;
			break;
		case 'c':
			*conns = atoi(optarg);
			break;
		case 'n':
			u->limit = atoll(optarg);
			break;
		case 'd':
			u->duration_s = atof(optarg);
			break;
		case 'k':
			keyfile = optarg;
			break;
		case 'N':
			nocache = 1;
			break;
		case 'h':
			host = optarg;
			break;
		default:
			ul_usage();
		}
	}
	if (optind != argc - 1 || (u->unix_path == NULL) == !u->tcp ||
	    *conns < 1 || *conns > UL_CONNS_MAX ||
	    (u->limit <= 0 && u->duration_s <= 0))
		ul_usage();
	target = argv[optind];
	if (keyfile != NULL)
		key = ul_key(keyfile);
	len = asprintf(&u->req, "GET %s HTTP/1.1\r\nHost: %s\r\n%s%s%s%s"
	    "\r\n", target, host, key ? "X-Bridge-Key: " : "", key ? key : "",
	    key ? "\r\n" : "", nocache ? "Cache-Control: no-cache\r\n" : "");
	if (len < 0) {
		perror("asprintf");
		exit(1);
	}
	u->reqlen = (size_t)len;
	if (key != NULL) {
		explicit_bzero(key, strlen(key));
		free(key);
	}
}

int
main(int argc, char *argv[])
{
	struct ul		 u;
	struct ul_conn		*conns;
	struct epoll_event	 evs[64];
	char			*buf;
	double			 t0, t1, end;
	int			 nconns = 16, i, n;

	memset(&u, 0, sizeof(u));
	ul_args(&u, argc, argv, &nconns);
	if ((conns = calloc(nconns, sizeof(*conns))) == NULL ||
	    (buf = malloc(UL_READ)) == NULL ||
	    (u.epfd = epoll_create1(0)) == -1) {
		perror("unixload");
		return (1);
	}
	for (i = 0; i < nconns; i++) {
		if (ul_connect(&u, &conns[i]) == -1) {
			perror("connect");
			return (1);
		}
		ul_add(&u, &conns[i], EPOLLIN);
	}
	t0 = ul_now();
	end = t0 + u.duration_s;
	for (i = 0; i < nconns; i++)
		ul_send(&u, &conns[i]);
	for (;;) {
		if (u.duration_s > 0 && !u.stopping && ul_now() >= end)
			u.stopping = 1;
		if (u.done >= u.issued && (u.stopping ||
		    (u.limit > 0 && u.issued >= u.limit)))
			break;
		n = epoll_wait(u.epfd, evs, 64, 100);
		if (n == -1 && errno != EINTR) {
			perror("epoll_wait");
			return (1);
		}
		for (i = 0; i < n; i++)
			ul_readable(&u, evs[i].data.ptr, buf);
		/* a duration run ends at its deadline, answers still out */
		if (u.stopping)
			break;
	}
	t1 = ul_now();
	qsort(u.lat_us, u.nlat, sizeof(*u.lat_us), ul_cmp);
	printf("requests=%lld errors=%lld seconds=%.3f rps=%.1f p50_ms=%.3f "
	    "p99_ms=%.3f bytes=%llu reconnects=%lld\n", (long long)u.nlat,
	    u.errors, t1 - t0, u.nlat / (t1 - t0), ul_pct(&u, 0.50),
	    ul_pct(&u, 0.99), u.bytes, u.reconnects);
	for (i = 0; i < nconns; i++)
		close(conns[i].fd);
	free(conns);
	free(buf);
	free(u.lat_us);
	free(u.req);
	return (u.errors > 0 && u.nlat == 0);
}
