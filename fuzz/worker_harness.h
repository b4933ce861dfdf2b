/*
 * worker_harness.h -- a worker without a master, for the libFuzzer targets
 * that drive whole connections (fuzz_http, fuzz_ws).
 *
 * It sets up what ls_worker_main() does (event loop, Lua state, the app's
 * listener, its protocol) from an app in fuzz/apps/, then runs one
 * connection per input over a socketpair: the real conn.c reads the input in
 * the arrivals the fuzzer chose, the real protocol parses it and calls the
 * app, and the answers are read back and thrown away.
 */
#ifndef LS_FUZZ_WORKER_HARNESS_H
#define LS_FUZZ_WORKER_HARNESS_H

#include <stddef.h>
#include <stdint.h>

/* Once: load fuzz/apps/<app> and serve its listener <name>. */
void fh_init(const char *app, const char *name);

/* One connection: data in arrivals of 1..64 bytes chosen by seed (0: all at
 * once); eof: half-close after the last one. Returns the bytes answered. */
size_t fh_run(const uint8_t *data, size_t size, uint8_t seed, int eof);

#endif
