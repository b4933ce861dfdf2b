/*
 * fuzz_http.c -- libFuzzer target for http:// request handling: the real
 * conn.c, http/, lua/lua_request.c and llhttp, with the app in
 * fuzz/apps/http.lua building a response from every part of the request
 * (method, url, path, query, headers, body), streaming some of them.
 *
 * Input: [flags][split seed][bytes the client sends ...]; flags bit 0:
 * half-close after the last byte. Crashes, sanitizer reports and leaks are
 * the findings.
 */
#include "worker_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fh_init("http.lua", "web");
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    fh_run(data + 2, size - 2, data[1], data[0] & 1);
    return 0;
}
