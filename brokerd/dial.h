/*
 * dial.c: the Gateway's address and a non-blocking TCP connect to it,
 * for the pool's connections (conn.c) and the Gateway socket
 * (streamup_sock.c) alike.
 */
#ifndef BROKERD_DIAL_H
#define BROKERD_DIAL_H

#include <netdb.h>

/*
 * host and port as numbers, else as a name (blocking, but /etc/hosts
 * for localhost).  getaddrinfo's code: 0 with *ai set, else *ai NULL.
 */
int	dial_resolve(const char *host, const char *port, struct addrinfo **ai);
/*
 * A non-blocking socket (TCP_NODELAY) connecting to ai: the fd, the
 * connect under way or done; -1 with errno set.
 */
int	dial_connect(const struct addrinfo *ai);
/* The connect's outcome once the socket is writable: 0, or an errno. */
int	dial_result(int fd);

#endif /* BROKERD_DIAL_H */
