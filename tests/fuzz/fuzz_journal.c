/*
 * libFuzzer: the trade journal, fed what comes from outside: a client's
 * request body (the intent) and the Gateway's answer (the outcome); the
 * input is the two, split at the first NUL.  Beyond no crash: the file
 * holds exactly two lines, each one JSON object with the same id, the
 * phase, and the body as it came: the same JSON value when it is JSON,
 * else the same text, else its length; nothing lost, nothing split.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "brokerd.h"

/* every line is fsync'd: on tmpfs when there is one, for speed */
static char	 dir[] = "/dev/shm/fuzz_journal.XXXXXX";
static char	 path[80];

static void
cleanup(void)
{
	unlink(path);
	rmdir(dir);
}

/* The body as the line holds it is the body that was given. */
static void
check_body(json_t *got, const char *b, size_t len)
{
	json_t	*want;

	if (len == 0) {
		if (!json_is_null(got))
			abort();
		return;
	}
	if ((want = json_loadb(b, len, JSON_DECODE_ANY, NULL)) != NULL) {
		if (!json_equal(got, want))
			abort();
		json_decref(want);
		return;
	}
	if (json_is_string(got)) {
		if (json_string_length(got) != len ||
		    memcmp(json_string_value(got), b, len) != 0)
			abort();
	} else if (json_integer_value(json_object_get(got, "bytes")) !=
	    (json_int_t)len)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct journal	*j;
	json_t		*line[2];
	const char	*a = (const char *)data, *b, *nul;
	char		 err[256], *text = NULL;
	size_t		 alen, blen, cap = 0, i;
	ssize_t		 n;
	uint64_t	 id;
	FILE		*f;

	if (path[0] == '\0') {
		if (mkdtemp(dir) == NULL) {
			memcpy(dir, "/tmp/fuzz_journal.XXXXXX", 25);
			if (mkdtemp(dir) == NULL)
				abort();
		}
		snprintf(path, sizeof(path), "%s/trades.jsonl", dir);
		atexit(cleanup);
	}
	nul = memchr(a, '\0', size);
	alen = nul != NULL ? (size_t)(nul - a) : size;
	b = nul != NULL ? nul + 1 : a + size;
	blen = nul != NULL ? size - alen - 1 : 0;
	unlink(path);
	if ((j = journal_open(path, 0, 0, err, sizeof(err))) == NULL)
		abort();
	if (journal_intent(j, "key:k", "POST", "/v1/api/iserver/account/U1/"
	    "orders", a, alen, &id) == -1 ||
	    journal_outcome(j, id, 200, NULL, b, blen) == -1) {
		journal_close(j);
		return (0);	/* the request would not have been sent */
	}
	journal_close(j);
	if ((f = fopen(path, "r")) == NULL)
		abort();
	for (i = 0; (n = getline(&text, &cap, f)) != -1; i++) {
		if (i == 2 || n == 0 || text[n - 1] != '\n' ||
		    (line[i] = json_loadb(text, (size_t)n, JSON_ALLOW_NUL,
		    NULL)) == NULL)
			abort();
	}
	fclose(f);
	free(text);
	if (i != 2 ||
	    strcmp(json_string_value(json_object_get(line[0], "phase")),
	    "intent") != 0 ||
	    !json_equal(json_object_get(line[0], "id"),
	    json_object_get(line[1], "id")))
		abort();
	check_body(json_object_get(line[0], "body"), a, alen);
	check_body(json_object_get(line[1], "body"), b, blen);
	json_decref(line[0]);
	json_decref(line[1]);
	return (0);
}
