/*
 * value.c: pure checkers shared by config, listen, client, route, the
 * status file and the WebSocket.  No
 * sockets, no event loop, no globals: each takes text or an address and
 * says yes or no, or parses into the caller's storage.
 */
#ifndef BROKERD_VALUE_H
#define BROKERD_VALUE_H

#include <sys/types.h>
#include <sys/socket.h>

#include <stddef.h>

struct rate;

/* 127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104: the one loopback rule. */
int	value_is_loopback(const struct sockaddr_storage *);
/* "HOST:PORT" (listen.tcp, IBKR_BRIDGE_URL) that is loopback, parsed. */
int	value_loopback_hostport(const char *, int, struct sockaddr_storage *,
	    socklen_t *, char *, size_t);
/* A Host header naming loopback (SPEC section 4); NULL (HTTP/1.0) is. */
int	value_host_ok(const char *);
/* https://HOST[:PORT][/] into host (no brackets) and port ("443"). */
int	value_https_url(const char *, char *, size_t, char *, size_t,
	    char *, size_t);
int	value_hexval(int);
int	value_pin(const char *, unsigned char [32]);
int	value_key_ok(const char *, size_t, char *, size_t);
int	value_name_ok(const char *);
int	value_route_path_ok(const char *);
int	value_digits(const char *);
int	value_rate_parse(const char *, struct rate *);
int	value_mode(const char *, unsigned *);
/*
 * The length of the valid UTF-8 sequence at p (n bytes left), or 0:
 * RFC 3629's shortest forms, no surrogates, nothing past U+10FFFF (what
 * JSON readers and RFC 6455 text frames accept).
 */
size_t	value_utf8_len(const unsigned char *, size_t);

#endif
