/*
 * session_parse_auth on arbitrary bytes: the Gateway's auth/status and
 * tickle answers.  Whatever it accepts must leave a NUL-terminated message
 * that is valid UTF-8 (the JSON writers rely on it) and 0/1 flags.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "brokerd.h"

static int
utf8_ok(const unsigned char *p)
{
	size_t	 n, i;

	while (*p != '\0') {
		if (*p < 0x80)
			n = 1;
		else if ((*p & 0xe0) == 0xc0)
			n = 2;
		else if ((*p & 0xf0) == 0xe0)
			n = 3;
		else if ((*p & 0xf8) == 0xf0)
			n = 4;
		else
			return (0);
		for (i = 1; i < n; i++)
			if ((p[i] & 0xc0) != 0x80)
				return (0);
		p += n;
	}
	return (1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gw_status st;
	enum gw_state	 s;

	memset(&st, 0xa5, sizeof(st));
	st.message[sizeof(st.message) - 1] = '\0';
	if (session_parse_auth((const char *)data, size, &st) == 0) {
		if (st.authenticated > 1 || st.authenticated < 0 ||
		    st.connected > 1 || st.connected < 0 ||
		    st.competing > 1 || st.competing < 0)
			abort();
		if (memchr(st.message, '\0', sizeof(st.message)) == NULL ||
		    !utf8_ok((const unsigned char *)st.message))
			abort();
		s = session_state_of(&st);
		if (s != GW_AUTHENTICATED && s != GW_UNAUTHENTICATED &&
		    s != GW_COMPETING)
			abort();
	}
	return (0);
}
