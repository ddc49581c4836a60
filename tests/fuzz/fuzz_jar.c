/*
 * libFuzzer: the cookie jar, fed the Gateway's Set-Cookie values.  The
 * input is split at newlines into values absorbed in turn.  Whatever they
 * hold, the Cookie header brokerd sends back must stay one header line of
 * name=value pairs: no CR, LF, NUL or control byte, no ';' or ',' inside a
 * value, token names, at most 64 cookies, every name once.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "brokerd.h"

#define JAR_MAX	64	/* JAR_MAX in jar.c */

static int
is_tchar(int ch)
{
	return ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
	    (ch >= 'A' && ch <= 'Z') || (ch != '\0' &&
	    strchr("!#$%&'*+-.^_`|~", ch) != NULL));
}

static void
check_jar(const struct jar *j)
{
	const unsigned char *p;
	size_t		 i, k;

	if (j->n > JAR_MAX)
		abort();
	for (i = 0; i < j->n; i++) {
		if (j->v[i].name[0] == '\0')
			abort();
		for (p = (const unsigned char *)j->v[i].name; *p; p++)
			if (!is_tchar(*p))
				abort();
		for (p = (const unsigned char *)j->v[i].value; *p; p++)
			if (*p < 0x21 || *p == 0x7f || *p == ';' ||
			    *p == ',' || *p == '\\')
				abort();
		for (k = 0; k < i; k++)
			if (strcmp(j->v[i].name, j->v[k].name) == 0)
				abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jar j;
	struct buf	 out;
	char		*s, *line, *next;
	size_t		 i;

	if ((s = malloc(size + 1)) == NULL)
		return (0);
	memcpy(s, data, size);
	s[size] = '\0';
	jar_init(&j);
	for (line = s; line != NULL; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		(void)jar_absorb(&j, line, (time_t)1764050710);
		check_jar(&j);
	}
	buf_init(&out);
	if (jar_format(&j, &out) == 0) {
		for (i = 0; i < out.len; i++)
			if ((unsigned char)out.data[i] < 0x20 ||
			    out.data[i] == 0x7f)
				abort();
		if (j.n == 0 && out.len != 0)
			abort();
	}
	buf_free(&out);
	jar_free(&j);
	free(s);
	return (0);
}
