/*
 * Runs a fuzz target without libFuzzer, as a TAP test: over inputs made of
 * valid-looking pieces mixed with random bytes (seeded, so a failure can be
 * reproduced), then over any files given as arguments (a crash corpus).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Pieces that make the random inputs reach deep states of both parsers. */
static const char *const pieces[] = {
    "\x00\x00\x00\x05hello",
    "\x01\x00\x00\x00",
    "\x02\x00\x00\x03why",
    "\x03\x00\x00\x00",
    "\x00\x00\x01\x00",
    "\x03\x00\x01\x01",
    "\x07\x00\x00\x00",
    "\x00\xff\xff\xff",
    "name = foo\n",
    "relay = http://h:1/p\n",
    "listen = [::1]:0\n",
    "server = a=",
    "0123456789abcdef",
    "num = 999\n",
    "flag\n",
    "# c\n",
    " #x",
    "=",
    "\r\n",
    "addr = h:65535\n",
    "config = x\n",
    "--name = y\n",
    "\t",
    "\n",
    "\0",
};

static size_t
make_input(unsigned *seed, uint8_t *buf, size_t cap)
{
    size_t len = 0;
    int n = rand_r(seed) % 24;
    for (int i = 0; i < n; i++) {
        if (rand_r(seed) % 3 == 0) {
            size_t k = (size_t)(rand_r(seed) % 8);
            for (size_t j = 0; j < k && len < cap; j++)
                buf[len++] = (uint8_t)rand_r(seed);
        } else {
            const char *p = pieces[rand_r(seed) % (int)(sizeof(pieces) / sizeof(pieces[0]))];
            size_t k = strlen(p) == 0 ? 1 : strlen(p);
            for (size_t j = 0; j < k && len < cap; j++)
                buf[len++] = (uint8_t)p[j];
        }
    }
    return len;
}

int
main(int argc, char **argv)
{
    int rounds = getenv("PTTH_FUZZ_ROUNDS") != NULL ? atoi(getenv("PTTH_FUZZ_ROUNDS")) : 20000;
    printf("1..%d\n", argc > 1 ? 2 : 1);
    unsigned seed = 20261122;
    static uint8_t buf[4096];
    for (int i = 0; i < rounds; i++) {
        size_t len = make_input(&seed, buf, sizeof(buf));
        LLVMFuzzerTestOneInput(buf, len);
    }
    printf("ok 1 - %d generated inputs\n", rounds);
    if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            FILE *f = fopen(argv[i], "rb");
            if (f == NULL) {
                printf("not ok 2 - cannot open %s\n", argv[i]);
                return 1;
            }
            static uint8_t file[1 << 20];
            size_t n = fread(file, 1, sizeof(file), f);
            fclose(f);
            LLVMFuzzerTestOneInput(file, n);
        }
        printf("ok 2 - %d corpus files\n", argc - 1);
    }
    return 0;
}
