/*
 * fuzz_target.c: libFuzzer target for the port-map target parser
 * (transports/target.h, ptth_target_parse: the TARGET of --port-map and of
 * ptth_cc_agent --target) and the name validator (common/names.h, used on
 * every server, port and client name from the command line, files and
 * request paths).
 *
 * The whole input (NUL-terminated; an embedded NUL ends the text as it would
 * in argv) is parsed as a target. Checked:
 *   - the result is 0 or -EINVAL; on -EINVAL the error is a non-empty,
 *     terminated string and the output is all zero; on 0 the error is empty;
 *   - a parsed target is well formed for its kind: strings terminated inside
 *     their arrays, TCP/NVMe ports 1..65535 with port_text matching, a
 *     non-empty host, a cc service that is a valid name, text == input;
 *   - writing the parsed target back in its canonical form and parsing that
 *     gives the same target (a form is read one way only).
 * The same bytes go through the name validator, compared with a reference
 * implementation of SPEC §2 (1 to 64 of A-Z a-z 0-9 . _ -), through both
 * ptth_name_valid and ptth_name_valid_str, and through the options check
 * ptth_check_name.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "options.h"
#include "target.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fail(const char *what, const char *text)
{
    fprintf(stderr, "fuzz_target: invariant broken: %s (input '%.200s')\n", what, text);
    abort();
}

static bool
terminated(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

static bool
ref_name_valid(const uint8_t *s, size_t len)
{
    if (len == 0 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static void
check_names(const uint8_t *data, size_t size, const char *text)
{
    /* ptth_name_valid takes (pointer, length) without a NUL: hand it an
     * exact-size heap copy so ASan sees any read past the end */
    uint8_t *copy = malloc(size > 0 ? size : 1);
    if (copy == NULL)
        abort();
    memcpy(copy, data, size);
    bool want = ref_name_valid(data, size);
    if (ptth_name_valid((const char *)copy, size) != want)
        fail("ptth_name_valid disagrees with SPEC §2", text);
    free(copy);

    size_t tlen = strlen(text);
    bool want_str = ref_name_valid((const uint8_t *)text, tlen);
    if (ptth_name_valid_str(text) != want_str)
        fail("ptth_name_valid_str disagrees with SPEC §2", text);
    char err[256];
    err[0] = '\0';
    int rc = ptth_check_name(text, err, sizeof(err));
    if ((rc == 0) != want_str || (rc != 0 && err[0] == '\0'))
        fail("ptth_check_name disagrees with SPEC §2 or gave no reason", text);
}

static void
check_well_formed(const ptth_target *t, const char *text)
{
    if (!terminated(t->text, sizeof(t->text)) || strcmp(t->text, text) != 0)
        fail("text is not the input", text);
    if (!terminated(t->host, sizeof(t->host)) || !terminated(t->path, sizeof(t->path)) ||
        !terminated(t->port_text, sizeof(t->port_text)) || !terminated(t->cc_service, sizeof(t->cc_service)))
        fail("a string field is not terminated", text);
    char port[8];
    switch (t->kind) {
    case PTTH_TARGET_TCP:
    case PTTH_TARGET_UDP:
    case PTTH_TARGET_NVME:
        if (t->port == 0 || t->host[0] == '\0')
            fail("TCP/UDP/NVMe target without a port or host", text);
        snprintf(port, sizeof(port), "%u", (unsigned)t->port);
        if (strcmp(port, t->port_text) != 0)
            fail("port_text does not match port", text);
        if (t->kind == PTTH_TARGET_NVME && t->path[0] == '\0')
            fail("NVMe target without a device", text);
        break;
    case PTTH_TARGET_UNIX:
        if (t->path[0] == '\0')
            fail("unix target without a path", text);
        break;
    case PTTH_TARGET_CC:
        if (t->cc_carrier == PTTH_CC_SEQPACKET && !ptth_name_valid_str(t->cc_service))
            fail("cc service is not a valid name", text);
        if (t->cc_carrier == PTTH_CC_VSOCK && (t->vsock_cid == UINT32_MAX || t->vsock_port == UINT32_MAX))
            fail("vsock CID or port is the reserved -1", text);
        if (t->cc_carrier != PTTH_CC_SEQPACKET && t->cc_carrier != PTTH_CC_VSOCK)
            fail("unknown cc carrier", text);
        break;
    default:
        fail("unknown target kind", text);
    }
}

/* The canonical text of a parsed target. */
static void
canonical(const ptth_target *t, char *out, size_t cap)
{
    bool v6 = strchr(t->host, ':') != NULL;
    switch (t->kind) {
    case PTTH_TARGET_TCP:
        snprintf(out, cap, v6 ? "[%s]:%u" : "%s:%u", t->host, (unsigned)t->port);
        break;
    case PTTH_TARGET_UDP:
        snprintf(out, cap, v6 ? "udp:[%s]:%u" : "udp:%s:%u", t->host, (unsigned)t->port);
        break;
    case PTTH_TARGET_UNIX:
        snprintf(out, cap, "unix:%s", t->path);
        break;
    case PTTH_TARGET_NVME:
        snprintf(out, cap, v6 ? "nvme:%s:%u@[%s]" : "nvme:%s:%u@%s", t->path, (unsigned)t->port, t->host);
        break;
    case PTTH_TARGET_CC:
        if (t->cc_carrier == PTTH_CC_VSOCK)
            snprintf(out, cap, "cc:vsock:%u:%u", (unsigned)t->vsock_cid, (unsigned)t->vsock_port);
        else
            snprintf(out, cap, "cc:%s", t->cc_service);
        break;
    }
}

static void
check_round_trip(const ptth_target *t, const char *text)
{
    char canon[PTTH_TARGET_TEXT_MAX + 64];
    canonical(t, canon, sizeof(canon));
    if (strlen(canon) >= PTTH_TARGET_TEXT_MAX)
        return; /* "host:port" of a 255-byte host and the like may not fit again */
    ptth_target again;
    char err[512];
    if (ptth_target_parse(canon, &again, err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz_target: canonical form '%s' refused: %s\n", canon, err);
        fail("the canonical form of an accepted target is refused", text);
    }
    bool same = again.kind == t->kind && strcmp(again.host, t->host) == 0 && again.port == t->port &&
                strcmp(again.port_text, t->port_text) == 0 && strcmp(again.path, t->path) == 0;
    if (t->kind == PTTH_TARGET_CC)
        same = same && again.cc_carrier == t->cc_carrier && strcmp(again.cc_service, t->cc_service) == 0 &&
               again.vsock_cid == t->vsock_cid && again.vsock_port == t->vsock_port;
    if (!same) {
        fprintf(stderr, "fuzz_target: canonical form '%s' parses differently\n", canon);
        fail("round trip through the canonical form changed the target", text);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4 * PTTH_TARGET_TEXT_MAX)
        return 0;
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    check_names(data, size, text);

    ptth_target t;
    char err[512];
    memset(&t, 0x5A, sizeof(t));
    memset(err, 'E', sizeof(err));
    int rc = ptth_target_parse(text, &t, err, sizeof(err));
    if (rc == 0) {
        if (err[0] != '\0')
            fail("success with an error message", text);
        check_well_formed(&t, text);
        check_round_trip(&t, text);
    } else if (rc == -EINVAL) {
        if (!terminated(err, sizeof(err)) || err[0] == '\0')
            fail("-EINVAL without a terminated reason", text);
        static const ptth_target zero;
        if (memcmp(&t, &zero, sizeof(t)) != 0)
            fail("a refused target left data in the output", text);
    } else {
        fail("result is neither 0 nor -EINVAL", text);
    }
    /* a small error buffer must be respected, and a NULL one accepted */
    char small[8];
    memset(small, 'S', sizeof(small));
    ptth_target t2;
    if (ptth_target_parse(text, &t2, small, sizeof(small)) != rc || !terminated(small, sizeof(small)))
        fail("a small error buffer changed the result or was not terminated", text);
    if (ptth_target_parse(text, &t2, NULL, 0) != rc)
        fail("a NULL error buffer changed the result", text);
    free(text);
    return 0;
}
