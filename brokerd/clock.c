/*
 * The monotonic clock every timeout and rate window is measured on; wall
 * time only appears in logs and the status file.
 */
#include <time.h>

#include "brokerd.h"

uint64_t
now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
}

/* The same clock in seconds, with the sub-millisecond part kept (latency). */
double
now_s(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
}
