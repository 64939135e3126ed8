/*
 * Runs a libFuzzer target without libFuzzer (any compiler), as a TAP test:
 * first over every file of the directories or files given as arguments (the
 * target's seed corpus in tests/fuzz/corpus/, or a crash input), then over
 * inputs made of valid-looking pieces mixed with random bytes (seeded, so a
 * failure can be reproduced). The gcc and sanitizer builds run the frame and
 * config targets this way in the normal test suite (tests/unit/common).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

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

/* Feeds one file to the target; returns 0, or -1 when it cannot be read. */
static int
run_file(const char *path)
{
    static uint8_t file[1 << 20];
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    size_t n = fread(file, 1, sizeof(file), f);
    fclose(f);
    LLVMFuzzerTestOneInput(file, n);
    return 0;
}

/* A file, or every regular file of a directory; returns how many were run or -1. */
static int
run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode))
        return run_file(path) == 0 ? 1 : -1;
    DIR *dir = opendir(path);
    if (dir == NULL)
        return -1;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char full[4096];
        snprintf(full, sizeof(full), "%s/%s", path, e->d_name);
        if (stat(full, &st) == 0 && S_ISREG(st.st_mode)) {
            if (run_file(full) != 0) {
                closedir(dir);
                return -1;
            }
            count++;
        }
    }
    closedir(dir);
    return count;
}

int
main(int argc, char **argv)
{
    if (LLVMFuzzerInitialize != NULL)
        LLVMFuzzerInitialize(&argc, &argv);
    int rounds = getenv("PTTH_FUZZ_ROUNDS") != NULL ? atoi(getenv("PTTH_FUZZ_ROUNDS")) : 20000;
    printf("1..%d\n", argc > 1 ? 2 : 1);
    int test = 1;
    if (argc > 1) {
        int files = 0;
        for (int i = 1; i < argc; i++) {
            int n = run_path(argv[i]);
            if (n < 0) {
                printf("not ok %d - cannot read %s\n", test, argv[i]);
                return 1;
            }
            files += n;
        }
        if (files == 0) {
            printf("not ok %d - no input files in the corpus given\n", test);
            return 1;
        }
        printf("ok %d - %d corpus files\n", test++, files);
    }
    unsigned seed = 20261122;
    static uint8_t buf[4096];
    for (int i = 0; i < rounds; i++) {
        size_t len = make_input(&seed, buf, sizeof(buf));
        LLVMFuzzerTestOneInput(buf, len);
    }
    printf("ok %d - %d generated inputs\n", test, rounds);
    return 0;
}
