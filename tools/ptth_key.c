/*
 * ptth_key: makes and hashes ptth keys (SPEC §2).
 *
 *   ptth_key new FILE    writes a fresh key to FILE (mode 0600, never
 *                        overwriting) and prints its hash
 *   ptth_key hash FILE   prints the hash of the key in FILE
 *
 * The hash is what the relay's --server/--client NAME=KEYHASH options take.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "log.h"
#include "options.h"
#include "sysutil.h"

#define PROGRAM "ptth_key"

typedef struct key_config {
    ptth_cli *cli; /* set before parsing so that validate() sees the arguments */
} key_config;

/* The command and its FILE are positional arguments; check them with the
 * options so that --check-config and the exit code cover them too. */
static void
validate(void *config, ptth_problems *problems)
{
    const ptth_cli *cli = ((key_config *)config)->cli;
    if (cli->n_positional == 0) {
        ptth_problems_add(problems, "missing command: use 'new FILE' or 'hash FILE'");
        return;
    }
    const char *cmd = cli->positional[0];
    if (strcmp(cmd, "new") != 0 && strcmp(cmd, "hash") != 0) {
        ptth_problems_add(problems, "unknown command '%s': use 'new FILE' or 'hash FILE'", cmd);
        return;
    }
    if (cli->n_positional < 2)
        ptth_problems_add(problems, "%s: missing FILE", cmd);
}

static const ptth_program program = {
    .name = PROGRAM,
    .version = PTTH_VERSION,
    .usage = "[OPTIONS] new FILE | hash FILE",
    .summary = "Makes and hashes ptth keys. A key is 32 random bytes written as 43 base64url characters on one line;\n"
               "its hash is the lowercase hex SHA-256 of those 43 characters (printf %s \"$KEY\" | sha256sum).\n"
               "\n"
               "  new FILE    write a fresh key to FILE with mode 0600 (never overwrites) and print its hash\n"
               "  hash FILE   print the hash of the key in FILE (refused if FILE is readable by group or others)",
    .epilog = "Give the relay the hash: --server NAME=HASH or --client NAME=HASH. Keep the key file itself secret.\n"
              "Exit codes: 0 done; 2 usage error, or FILE missing, not a key, too open, or already there (new);\n"
              "1 any other failure (e.g. a write error).",
    .options = NULL,
    .n_options = 0,
    .max_positional = 2,
    .validate = validate,
};

/* Errors about the FILE argument are the user's to fix: exit 2. */
static int
exit_code_for(int rc)
{
    switch (rc) {
    case PTTH_KEY_ERR_PERMS:
    case PTTH_KEY_ERR_FORMAT:
    case -ENOENT:
    case -ENOTDIR:
    case -EISDIR:
    case -EINVAL:
    case -EEXIST:
    case -EACCES:
    case -ENAMETOOLONG:
    case -ELOOP:
        return 2;
    default:
        return 1;
    }
}

/* new FILE and hash FILE: get the key (a fresh one written to path, or the
 * one already in it), then print its hash. */
static int
run(const char *cmd, const char *path)
{
    ptth_key key;
    char err[512];
    int rc = strcmp(cmd, "new") == 0 ? ptth_key_write_new_file(path, &key, err, sizeof(err))
                                     : ptth_key_load_file(path, &key, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", PROGRAM, err);
        return exit_code_for(rc);
    }
    ptth_key_hash hash;
    ptth_key_hash_of(key.text, PTTH_KEY_LEN, &hash);
    memset(&key, 0, sizeof(key));
    printf("%s\n", hash.hex);
    return 0;
}

int
main(int argc, char **argv)
{
    ptth_cli cli;
    key_config config = {&cli};
    ptth_raise_nofile_limit();
    switch (ptth_options_parse(&program, &config, &cli, argc, argv)) {
    case PTTH_PARSE_EXIT_OK:
        return 0;
    case PTTH_PARSE_EXIT_USAGE:
        return 2;
    case PTTH_PARSE_RUN:
        break;
    }
    int code = run(cli.positional[0], cli.positional[1]);
    if (fflush(stdout) != 0 && code == 0) {
        fprintf(stderr, "%s: cannot write to stdout: %s\n", PROGRAM, strerror(errno));
        code = 1;
    }
    ptth_options_free(&program, &config);
    ptth_cli_free(&cli);
    return code;
}
