/* fuzz_jp_decode.c — libFuzzer target over the Jupyter message decoder (protocol/).
 *
 * The input is split into frames at each 0xFF byte. Its first byte picks the signer:
 * even, an empty key (nothing is signed, so the JSON parsing and header checks are
 * reached); odd, the key "fuzz" (signature, length and replay checks). Whatever
 * decodes is encoded again and decoded once more with a fresh signer, which must
 * succeed. Build (not part of `make` yet):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. tests/kernel/fuzz_jp_decode.c \
 *     protocol/jp_auth.c protocol/jp_message.c -lzmq -ljansson -lsodium -lpthread -o build/fuzz_jp_decode
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/jp_auth.h"
#include "protocol/jp_message.h"

static jp_auth *g_unsigned, *g_signed;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    jp_frames frames = {0}, again = {0};
    jp_msg msg, back;
    jp_auth *auth, *fresh = NULL;
    size_t start = 1;
    char err[200];
    if (!g_unsigned) {
        jp_init();
        g_unsigned = jp_auth_new("", 0, 1024);
        g_signed = jp_auth_new("fuzz", 4, 1024);
        if (!g_unsigned || !g_signed)
            abort(); /* the harness itself, not the code under test */
    }
    if (size < 1)
        return 0;
    auth = (data[0] & 1) ? g_signed : g_unsigned;
    for (size_t i = 1; i <= size; i++) {
        if (i == size || data[i] == 0xff) {
            if (jp_frames_push(&frames, data + start, i - start) != 0)
                goto done;
            start = i + 1;
        }
    }
    if (jp_msg_decode(&frames, auth, 1 << 16, &msg, err, sizeof err) == JP_OK) {
        fresh = jp_auth_new("k", 1, 16);
        if (fresh && jp_msg_encode(fresh, &msg.idents, msg.header, msg.parent, msg.metadata,
                                   msg.content, &msg.buffers, &again) == 0) {
            if (jp_msg_decode(&again, fresh, 0, &back, err, sizeof err) != JP_OK)
                abort(); /* a decoded message must survive a round trip */
            if (strcmp(back.msg_type, msg.msg_type) != 0)
                abort();
            jp_msg_clear(&back);
        }
    }
    jp_msg_clear(&msg); /* a refused message may keep its header (JP_ERR_JSON) */
done:
    jp_auth_free(fresh);
    jp_frames_free(&frames);
    jp_frames_free(&again);
    return 0;
}
