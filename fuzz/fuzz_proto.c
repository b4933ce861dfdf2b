/*
 * fuzz_proto.c -- libFuzzer target for the stream protocol layer through
 * conn.c: built twice, as fuzz_proto_lua (a custom protocol in Lua,
 * lua/lua_proto.c) and fuzz_proto_decl (declarative length framing, proto.c on
 * framing.c), both served from fuzz/apps/proto.lua.
 *
 * Input: [flags][split seed][bytes the client sends ...]; flags bit 0:
 * half-close after the last byte.
 */
#include "worker_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fh_init("proto.lua", FUZZ_LISTENER);
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
