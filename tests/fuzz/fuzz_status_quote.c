/*
 * libFuzzer: the status file's shell quoting of text from outside (the
 * Gateway's message).  The quoted form is read back by the rules of POSIX
 * sh (bare safe characters, '...' with no escapes inside, \' between
 * them): it must give back the input, control bytes turned into spaces,
 * and hold nothing a shell would expand or split on (no unquoted space,
 * $, `, ", \, newline).  The whole file must stay one line per key.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "brokerd.h"

static int
bare_ok(int ch)
{
	return ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
	    (ch >= 'A' && ch <= 'Z') || (ch != '\0' &&
	    strchr("_.:+-", ch) != NULL));
}

/* sh's reading of a word; -1 on anything it would not take literally. */
static int
sh_unquote(const char *q, size_t len, char *out, size_t *olen)
{
	size_t	 i = 0, o = 0;

	while (i < len) {
		if (q[i] == '\'') {
			for (i++; i < len && q[i] != '\''; i++) {
				if (q[i] == '\n')
					return (-1);
				out[o++] = q[i];
			}
			if (i == len)
				return (-1);	/* unterminated */
			i++;
		} else if (q[i] == '\\') {
			if (i + 1 >= len || q[i + 1] != '\'')
				return (-1);
			out[o++] = '\'';
			i += 2;
		} else if (bare_ok((unsigned char)q[i]))
			out[o++] = q[i++];
		else
			return (-1);
	}
	*olen = o;
	return (0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gw_status st;
	struct buf	 b;
	char		*in, *want, *got;
	size_t		 n, i, glen, lines;

	if ((in = malloc(size + 1)) == NULL)
		return (0);
	memcpy(in, data, size);
	in[size] = '\0';
	n = strlen(in);
	want = malloc(n + 1);
	got = malloc(4 * n + 8);
	if (want == NULL || got == NULL)
		goto out;
	for (i = 0; i < n; i++)
		want[i] = ((unsigned char)in[i] < 0x20 ||
		    (unsigned char)in[i] == 0x7f) ? ' ' : in[i];
	want[n] = '\0';

	buf_init(&b);
	if (status_quote(&b, in) == 0) {
		if (sh_unquote(b.data, b.len, got, &glen) == -1)
			abort();
		if (glen != n || memcmp(got, want, n) != 0)
			abort();
	}
	buf_free(&b);

	memset(&st, 0, sizeof(st));
	st.state = GW_DOWN;
	n = size < sizeof(st.message) - 1 ? size : sizeof(st.message) - 1;
	memcpy(st.message, data, n);
	buf_init(&b);
	if (status_format(&st, &b) == 0) {
		/* every line is a KEY=, so nothing was split or injected */
		for (i = 0, lines = 0; i < b.len; i++) {
			if (i == 0 || b.data[i - 1] == '\n') {
				if (strncmp(b.data + i, "BROKERD_", 8) != 0)
					abort();
				lines++;
			}
		}
		if (lines < 10 || b.data[b.len - 1] != '\n')
			abort();
	}
	buf_free(&b);
out:
	free(want);
	free(got);
	free(in);
	return (0);
}
