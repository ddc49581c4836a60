/*
 * Resolving the Gateway and opening TCP to it, without blocking the loop
 * past the resolver: the one path conn.c and streamup_sock.c share.  TLS
 * is theirs (tls.c).
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <netdb.h>
#include <string.h>
#include <unistd.h>

#include "dial.h"

int
dial_resolve(const char *host, const char *port, struct addrinfo **ai)
{
	struct addrinfo	 hints;
	int		 r;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	r = getaddrinfo(host, port, &hints, ai);
	if (r == EAI_NONAME) {
		/* A name: blocking, but /etc/hosts for localhost. */
		hints.ai_flags = AI_ADDRCONFIG;
		r = getaddrinfo(host, port, &hints, ai);
	}
	if (r != 0)
		*ai = NULL;
	return (r);
}

int
dial_connect(const struct addrinfo *ai)
{
	int	 fd, one = 1, saved;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, ai->ai_protocol);
	if (fd == -1)
		return (-1);
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == -1 &&
	    errno != EINPROGRESS) {
		saved = errno;
		close(fd);
		errno = saved;
		return (-1);
	}
	return (fd);
}

int
dial_result(int fd)
{
	socklen_t	 len = sizeof(int);
	int		 err = 0;

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	return (err);
}
