/*
 * The listening sockets: the Unix socket (mode, group, stale file), the
 * optional loopback TCP port, or the ones systemd passes (LISTEN_FDS);
 * accepting on them, and refusing politely: over a connection limit or out
 * of descriptors a client is told 503, never left hanging or reset.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "brokerd.h"
#include "value.h"

#define LISTEN_BACKLOG	511
#define LISTEN_FDS_START 3
#define LISTEN_PAUSE_S	0.2	/* out of descriptors: try again after */
#define LISTEN_REFUSE_MAX 64	/* refusals reading or lingering at once */
#define LISTEN_HEAD_MS	1000	/* a refused client's head, at most */
#define LISTEN_LINGER_MS 1000	/* after the 503: drain before close */
#define LISTEN_DRAIN_MAX 65536	/* ... at most this much */

/* A refused connection: read its head, answer 503, linger, close. */
struct refusal {
	struct server	*srv;
	int		 fd;
	int		 answered;	/* 503 sent, write side shut */
	unsigned	 crlf;		/* of "\r\n\r\n" matched so far */
	size_t		 read;		/* bytes read and dropped */
	const char	*limit;		/* the message names it */
	ev_io		 io;
	ev_timer	 timer;
	struct refusal	*prev;
	struct refusal	*next;
};

static int	 listen_activated;	/* sockets came from systemd */
static char	 listen_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
					/* the socket file we bound, or "" */
static ev_io	*listen_io;		/* one accept watcher per listener */
static size_t	 listen_nio;
static ev_timer	 listen_pause_timer;
static int	 listen_paused;		/* accept watchers stopped */
static int	 listen_spare = -1;	/* kept for answering 503 when short */
static struct server *listen_srv;	/* set by listen_start */
static struct refusal *refusals;
static unsigned	 nrefusals;
static struct log_spell listen_short;	/* out of descriptors */
static uint64_t	 listen_short_refused;	/* ... answered 503 in the spell */
static struct log_spell listen_full[2];	/* over limits 0 and 1 */

static const char *const listen_limit_names[] = {
	"max_connections", "max_tcp_connections", "descriptors"
};

static int
listen_nonblock(int fd)
{
	int	 fl;

	if ((fl = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) == -1)
		return (-1);
	return (0);
}

static int
listen_add(struct listener **ls, size_t *n, int fd, int is_unix,
    const char *name)
{
	struct listener	*p;

	if ((p = reallocarray(*ls, *n + 1, sizeof(**ls))) == NULL)
		return (-1);
	*ls = p;
	p = &(*ls)[*n];
	memset(p, 0, sizeof(*p));
	p->fd = fd;
	p->is_unix = is_unix;
	snprintf(p->name, sizeof(p->name), "%s", name);
	(*n)++;
	return (0);
}

/* mkdir -p for the socket's folder, 0755 for what we create. */
static int
listen_mkdirs(const char *path)
{
	char	 dir[4096];
	char	*p;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return (-1);
	if ((p = strrchr(dir, '/')) == NULL || p == dir)
		return (0);
	*p = '\0';
	for (p = dir + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0755) == -1 && errno != EEXIST)
			return (-1);
		*p = '/';
	}
	if (mkdir(dir, 0755) == -1 && errno != EEXIST)
		return (-1);
	return (0);
}

/*
 * A socket file nobody accepts on is stale and goes; a live one means
 * another brokerd, and we refuse rather than steal its clients.
 */
static int
listen_stale(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un	 sun;
	struct stat		 st;
	int			 fd, rc, saved;

	if (lstat(path, &st) == -1)
		return (errno == ENOENT ? 0 : -1);
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket", path);
		return (-1);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return (-1);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	saved = errno;
	close(fd);
	if (rc == 0) {
		snprintf(err, errlen, "%s: another process is listening "
		    "there (is brokerd already running?)", path);
		return (-1);
	}
	/* Only a refusal proves nobody listens; EACCES proves nothing. */
	if (saved != ECONNREFUSED) {
		snprintf(err, errlen, "%s: cannot tell whether it is in use "
		    "(%s); not removing it", path, strerror(saved));
		return (-1);
	}
	if (unlink(path) == -1 && errno != ENOENT)
		return (-1);
	log_info("removed stale socket %s", path);
	return (0);
}

static int
listen_unix(const struct config *conf, struct listener **ls, size_t *n,
    char *err, size_t errlen)
{
	struct sockaddr_un	 sun;
	struct stat		 st;
	struct group		*gr;
	mode_t			 old;
	int			 fd = -1, rc;
	char			 name[128];

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (snprintf(sun.sun_path, sizeof(sun.sun_path), "%s",
	    conf->unix_path) >= (int)sizeof(sun.sun_path)) {
		snprintf(err, errlen, "%s: socket path too long",
		    conf->unix_path);
		return (-1);
	}
	if (listen_mkdirs(conf->unix_path) == -1) {
		snprintf(err, errlen, "%s: cannot create its folder: %s",
		    conf->unix_path, strerror(errno));
		return (-1);
	}
	err[0] = '\0';
	if (listen_stale(conf->unix_path, err, errlen) == -1) {
		if (err[0] == '\0')
			snprintf(err, errlen, "%s: %s", conf->unix_path,
			    strerror(errno));
		return (-1);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1)
		goto fail;
	/* No window in which the socket has wider permissions. */
	old = umask(~conf->unix_mode & 0777);
	rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (rc == -1)
		goto fail;
	/*
	 * bind() gave the socket our own group; chown only for another one:
	 * config/brokerd.service denies chown(2) (@privileged).
	 */
	if (conf->unix_group != NULL) {
		if ((gr = getgrnam(conf->unix_group)) == NULL) {
			if (!conf->unix_group_default) {
				snprintf(err, errlen, "%s: group %s does not "
				    "exist", conf->unix_path, conf->unix_group);
				goto fail2;
			}
			log_warn("%s: group %s does not exist; the socket "
			    "keeps brokerd's group", conf->unix_path,
			    conf->unix_group);
		} else if ((lstat(conf->unix_path, &st) == -1 ||
		    st.st_gid != gr->gr_gid) &&
		    lchown(conf->unix_path, (uid_t)-1, gr->gr_gid) == -1)
			goto fail;
	}
	/*
	 * The umask gave the mode; no chmod by path, which a symlink swapped
	 * in after bind() could point elsewhere (lchown above for the same).
	 */
	if (listen(fd, LISTEN_BACKLOG) == -1 || listen_nonblock(fd) == -1)
		goto fail;
	snprintf(name, sizeof(name), "unix %s", conf->unix_path);
	if (listen_add(ls, n, fd, 1, name) == -1)
		goto fail;
	/* A reload may change unix_path; the file to remove stays this. */
	memcpy(listen_path, sun.sun_path, sizeof(listen_path));
	log_info("listening on unix %s (mode %04o)", conf->unix_path,
	    (unsigned)conf->unix_mode);
	return (0);
 fail:
	snprintf(err, errlen, "%s: %s", conf->unix_path, strerror(errno));
 fail2:
	if (fd != -1) {
		close(fd);
		unlink(conf->unix_path);
	}
	return (-1);
}

static void
listen_addr_name(const struct sockaddr_storage *ss, char *out, size_t len)
{
	char	 host[64];

	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		snprintf(out, len, "[%s]:%u", host, ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const void *)ss;

		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		snprintf(out, len, "%s:%u", host, ntohs(s4->sin_port));
	}
}

static int
listen_tcp(const struct config *conf, struct listener **ls, size_t *n,
    char *err, size_t errlen)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sl = sizeof(ss);
	int			 fd, one = 1;
	char			 addr[96], name[128];

	if ((fd = socket(conf->tcp_addr.ss_family, SOCK_STREAM, 0)) == -1)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (conf->tcp_addr.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&conf->tcp_addr,
	    conf->tcp_addrlen) == -1 || listen(fd, LISTEN_BACKLOG) == -1 ||
	    listen_nonblock(fd) == -1 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) == -1)
		goto fail;
	listen_addr_name(&ss, addr, sizeof(addr));
	snprintf(name, sizeof(name), "tcp %s", addr);
	if (listen_add(ls, n, fd, 0, name) == -1)
		goto fail;
	log_info("listening on tcp %s", addr);
	return (0);
 fail:
	snprintf(err, errlen, "listen.tcp %s: %s", conf->tcp, strerror(errno));
	if (fd != -1)
		close(fd);
	return (-1);
}

/*
 * systemd socket activation: LISTEN_PID is us, LISTEN_FDS sockets from 3.
 * A passed TCP socket must be loopback too, like listen.tcp.
 */
static int
listen_systemd(struct listener **ls, size_t *n)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sl;
	const char		*pid, *fds;
	char			 name[128], addr[96];
	int			 i, count;

	if ((pid = getenv("LISTEN_PID")) == NULL ||
	    (fds = getenv("LISTEN_FDS")) == NULL ||
	    atol(pid) != (long)getpid())
		return (0);
	count = atoi(fds);
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	for (i = 0; i < count; i++) {
		int fd = LISTEN_FDS_START + i;

		sl = sizeof(ss);
		if (getsockname(fd, (struct sockaddr *)&ss, &sl) == -1 ||
		    listen_nonblock(fd) == -1)
			return (-1);
		if (ss.ss_family == AF_UNIX)
			snprintf(name, sizeof(name), "unix (systemd fd %d)",
			    fd);
		else {
			listen_addr_name(&ss, addr, sizeof(addr));
			if (!value_is_loopback(&ss)) {
				log_warn("systemd fd %d: %s is not a loopback "
				    "address", fd, addr);
				errno = EADDRNOTAVAIL;
				return (-1);
			}
			snprintf(name, sizeof(name), "tcp %s (systemd)", addr);
		}
		if (listen_add(ls, n, fd, ss.ss_family == AF_UNIX, name) == -1)
			return (-1);
		log_info("listening on %s", name);
	}
	listen_activated = count > 0;
	return (count);
}

int
listen_open(const struct config *conf, struct listener **ls, size_t *n,
    char *err, size_t errlen)
{
	int	 rc;

	*ls = NULL;
	*n = 0;
	if ((rc = listen_systemd(ls, n)) == -1) {
		snprintf(err, errlen, "LISTEN_FDS: %s", strerror(errno));
		goto fail;
	}
	if (rc > 0)
		return (0);
	if (conf->unix_path != NULL &&
	    listen_unix(conf, ls, n, err, errlen) == -1)
		goto fail;
	if (conf->tcp != NULL && listen_tcp(conf, ls, n, err, errlen) == -1)
		goto fail;
	if (*n == 0) {
		snprintf(err, errlen, "nothing to listen on");
		goto fail;
	}
	return (0);
 fail:
	listen_close(*ls, *n);
	*ls = NULL;
	*n = 0;
	return (-1);
}

void
listen_close(struct listener *ls, size_t n)
{
	size_t	 i;
	int	 had_unix = 0;

	for (i = 0; i < n; i++) {
		if (ls[i].fd != -1)
			close(ls[i].fd);
		if (ls[i].is_unix)
			had_unix = 1;
	}
	free(ls);
	if (had_unix && !listen_activated && listen_path[0] != '\0')
		unlink(listen_path);
	listen_path[0] = '\0';
}

/* ------------------------------------------------------------ accept */

static void	listen_resume(void);

static void
listen_spare_open(void)
{
	if (listen_spare == -1)
		listen_spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void
listen_refusal_free(struct refusal *r)
{
	ev_io_stop(r->srv->loop, &r->io);
	ev_timer_stop(r->srv->loop, &r->timer);
	close(r->fd);
	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		refusals = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	nrefusals--;
	free(r);
	/* A descriptor came free: the spare first, then accept again. */
	listen_spare_open();
	listen_resume();
}

/*
 * Answer 503 and shut the write side; the client reads the answer, then
 * closes, and we close after it.  Closing at once with its request unread
 * would send a reset that can destroy the answer before it is read.
 */
static void
listen_refusal_answer(struct refusal *r)
{
	struct http_head h = { .status = 503,
	    .content_type = "application/json",
	    .extra = "Retry-After: 1\r\n" };
	char	 out[512];
	int	 body, len;
	char	 msg[160];

	if (strcmp(r->limit, "descriptors") == 0)
		body = snprintf(msg, sizeof(msg), "{\"error\":"
		    "\"too_many_connections\",\"message\":\"brokerd is out "
		    "of file descriptors; try again later\"}");
	else
		body = snprintf(msg, sizeof(msg), "{\"error\":"
		    "\"too_many_connections\",\"message\":\"limits.%s "
		    "reached; try again later\"}", r->limit);
	h.content_length = body > 0 ? (size_t)body : 0;
	len = http_write_head(out, sizeof(out), &h);
	if (body > 0 && (size_t)body < sizeof(msg) && len > 0 &&
	    (size_t)len + (size_t)body < sizeof(out)) {
		memcpy(out + len, msg, (size_t)body);
		(void)send(r->fd, out, (size_t)len + (size_t)body,
		    MSG_NOSIGNAL);
	}
	shutdown(r->fd, SHUT_WR);
	r->answered = 1;
	ev_timer_stop(r->srv->loop, &r->timer);
	ev_timer_set(&r->timer, LISTEN_LINGER_MS / 1000.0, 0.);
	ev_timer_start(r->srv->loop, &r->timer);
}

static void
listen_refusal_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct refusal	*r = w->data;
	char		 b[4096];
	ssize_t		 n, i;

	(void)loop;
	(void)revents;
	n = recv(r->fd, b, sizeof(b), 0);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		listen_refusal_free(r);		/* gone, or done reading */
		return;
	}
	r->read += (size_t)n;
	if (r->answered) {
		if (r->read > LISTEN_DRAIN_MAX)
			listen_refusal_free(r);
		return;
	}
	for (i = 0; i < n && r->crlf < 4; i++) {
		if (b[i] == ((r->crlf & 1) ? '\n' : '\r'))
			r->crlf++;
		else
			r->crlf = b[i] == '\r';
	}
	if (r->crlf == 4 || r->read > r->srv->conf->max_header_bytes)
		listen_refusal_answer(r);
}

static void
listen_refusal_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct refusal	*r = w->data;

	(void)loop;
	(void)revents;
	if (r->answered)
		listen_refusal_free(r);
	else
		listen_refusal_answer(r);	/* no head in time: told too */
}

/*
 * Refuse a connection, which never counts against the limits.  Past
 * LISTEN_REFUSE_MAX refusals at once, the answer goes out and the socket
 * closes at once: a flood must not hold our descriptors.
 */
static void
listen_refuse(struct server *srv, int fd, int limit)
{
	struct refusal	*r;
	double		 head_s;

	metrics_refused(srv->metrics, limit);
	if (nrefusals >= LISTEN_REFUSE_MAX ||
	    (r = calloc(1, sizeof(*r))) == NULL) {
		struct http_head h = { .status = 503 };
		char	 busy[128];
		int	 len;

		/* No allocation here: the head goes from the stack. */
		len = http_write_head(busy, sizeof(busy), &h);
		if (len > 0 && (size_t)len < sizeof(busy))
			(void)send(fd, busy, (size_t)len, MSG_NOSIGNAL);
		close(fd);
		return;
	}
	r->srv = srv;
	r->fd = fd;
	r->limit = listen_limit_names[limit];
	ev_io_init(&r->io, listen_refusal_read_cb, fd, EV_READ);
	r->io.data = r;
	head_s = (srv->conf->header_timeout_ms < LISTEN_HEAD_MS ?
	    srv->conf->header_timeout_ms : LISTEN_HEAD_MS) / 1000.0;
	ev_timer_init(&r->timer, listen_refusal_timer_cb, head_s, 0.);
	r->timer.data = r;
	r->next = refusals;
	if (refusals != NULL)
		refusals->prev = r;
	refusals = r;
	nrefusals++;
	ev_io_start(srv->loop, &r->io);
	ev_timer_start(srv->loop, &r->timer);
}

static void
listen_pause_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	listen_spare_open();
	listen_resume();
}

/*
 * Out of descriptors (or kernel memory): the listener stays readable, so
 * accepting on would spin.  Answer one waiting client 503 with the spare
 * descriptor, stop accepting, and try again after a short pause or when a
 * refusal frees its descriptor.  Logged once per spell.
 */
static void
listen_pause(struct server *srv, struct listener *l, int err)
{
	size_t	 i;
	int	 fd;

	if (log_spell_fail(&listen_short)) {
		listen_short_refused = 0;
		log_warn("accept on %s: %s; pausing accepts, waiting clients "
		    "are answered 503 one at a time", l->name, strerror(err));
	}
	if (listen_spare != -1) {
		close(listen_spare);
		listen_spare = -1;
		fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd != -1) {
			listen_short_refused++;
			listen_refuse(srv, fd, 2);
		} else
			listen_spare_open();
	}
	if (listen_paused)
		return;
	for (i = 0; i < listen_nio; i++)
		ev_io_stop(srv->loop, &listen_io[i]);
	listen_paused = 1;
	ev_timer_set(&listen_pause_timer, LISTEN_PAUSE_S, 0.);
	ev_timer_start(srv->loop, &listen_pause_timer);
}

/* Which limit a new connection on l is over: -1 none, else an index. */
static int
listen_over(const struct server *srv, const struct listener *l)
{
	if (srv->nclients >= srv->conf->max_connections)
		return (0);
	if (!l->is_unix && srv->nclients_tcp >=
	    srv->conf->max_tcp_connections)
		return (1);
	return (-1);
}

static void
listen_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct listener	*l = w->data;
	struct server	*srv = listen_srv;
	int		 fd, i, limit, one = 1;

	(void)loop;
	(void)revents;
	/* A few at a time: do not starve the connections we have. */
	for (i = 0; i < 64; i++) {
		fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR || errno == ECONNABORTED)
				return;
			/* EMFILE, ENFILE, ENOBUFS, ENOMEM, or worse. */
			listen_pause(srv, l, errno);
			return;
		}
		if (log_spell_ok(&listen_short))
			log_warn("accept: descriptors available again after "
			    "%.1f s; %llu connections were answered 503 and "
			    "%llu accepts paused meanwhile",
			    (now_ms() - listen_short.since_ms) / 1000.0,
			    (unsigned long long)listen_short_refused,
			    (unsigned long long)listen_short.count);
		if ((limit = listen_over(srv, l)) != -1) {
			if (log_spell_fail(&listen_full[limit]))
				log_warn("%s: limits.%s reached; new "
				    "connections are answered 503", l->name,
				    listen_limit_names[limit]);
			listen_refuse(srv, fd, limit);
			continue;
		}
		for (limit = 0; limit < 2; limit++)
			if ((limit == 0 || !l->is_unix) &&
			    log_spell_ok(&listen_full[limit]))
				log_info("limits.%s: accepting again; %llu "
				    "connections were refused in %.1f s",
				    listen_limit_names[limit], (unsigned long
				    long)listen_full[limit].count, (now_ms() -
				    listen_full[limit].since_ms) / 1000.0);
		/*
		 * Answers leave in pieces (a head, then streamed chunks):
		 * Nagle would hold a piece back until the client's delayed
		 * ACK of the one before.  Unix sockets have no Nagle.
		 */
		if (!l->is_unix)
			(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
			    sizeof(one));
		client_accept(srv, l, fd);
	}
}

int
listen_start(struct server *srv)
{
	size_t	 i;

	if ((listen_io = calloc(srv->nlisteners, sizeof(*listen_io))) == NULL)
		return (-1);
	listen_nio = srv->nlisteners;
	for (i = 0; i < listen_nio; i++) {
		ev_io_init(&listen_io[i], listen_accept_cb,
		    srv->listeners[i].fd, EV_READ);
		listen_io[i].data = &srv->listeners[i];
		ev_io_start(srv->loop, &listen_io[i]);
	}
	ev_timer_init(&listen_pause_timer, listen_pause_cb, LISTEN_PAUSE_S, 0.);
	listen_srv = srv;
	listen_spare_open();
	return (0);
}

/* Accept again after a pause, unless stopped for good. */
static void
listen_resume(void)
{
	struct server	*srv = listen_srv;
	size_t		 i;

	if (!listen_paused || srv == NULL || srv->draining)
		return;
	ev_timer_stop(srv->loop, &listen_pause_timer);
	listen_paused = 0;
	for (i = 0; i < listen_nio; i++)
		ev_io_start(srv->loop, &listen_io[i]);
}

/* Stop accepting for good (draining, exit); refusals go now. */
void
listen_stop(struct server *srv)
{
	size_t	 i;

	for (i = 0; i < listen_nio; i++)
		ev_io_stop(srv->loop, &listen_io[i]);
	ev_timer_stop(srv->loop, &listen_pause_timer);
	listen_paused = 0;
	while (refusals != NULL)
		listen_refusal_free(refusals);
	free(listen_io);
	listen_io = NULL;
	listen_nio = 0;
	if (listen_spare != -1) {
		close(listen_spare);
		listen_spare = -1;
	}
}
