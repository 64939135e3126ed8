/* Unit tests of common/bridge_chunks_resume.c with common/bridge.c: the
 * terminator's side of a resumable tunnel on the chunked path (raw chunks,
 * docs/protocol.md "Resumable tunnels on the chunked path"). The relay
 * client is a fake: the test links with --wrap for ptth_req_start,
 * ptth_req_cancel and ptth_req_resume, so every request the bridge makes
 * (the framed stream, the chunks, the resume) is recorded here with its
 * path, header lines and body, and the test answers it by hand as the
 * relay client would (the response fields, then on_headers, on_body,
 * on_done). The local end is a socketpair; the loop runs for a moment at a
 * time (spin) so that the bridge's watches, timers and deferred calls act.
 * The whole resume over real programs is faults_resume's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bridge_internal.h"
#include "check_main.h"

/* ---- the fake relay client ---- */

#define FAKE_MAX 64

typedef struct fake_req {
    ptth_req *r;
    char path[PTTH_API_PATH_MAX];
    char headers[PTTH_REQ_HEADERS_MAX][200];
    size_t nh;
    uint8_t *body;
    size_t len;
    bool cancelled;
} fake_req;

static fake_req reqs[FAKE_MAX];
static size_t nreqs;

int __wrap_ptth_req_start(ptth_relay_client *c, ptth_req *r, ptth_req_kind kind, const char *path, const char *const *headers,
                          const void *body, size_t body_len);
void __wrap_ptth_req_cancel(ptth_req *r);
void __wrap_ptth_req_resume(ptth_req *r);

int
__wrap_ptth_req_start(ptth_relay_client *c, ptth_req *r, ptth_req_kind kind, const char *path, const char *const *headers,
                      const void *body, size_t body_len)
{
    (void)c;
    (void)kind;
    ck_assert_uint_lt(nreqs, FAKE_MAX);
    fake_req *f = &reqs[nreqs++];
    memset(f, 0, sizeof(*f));
    f->r = r;
    snprintf(f->path, sizeof(f->path), "%s", path);
    for (; headers != NULL && headers[f->nh] != NULL; f->nh++) {
        ck_assert_uint_lt(f->nh, PTTH_REQ_HEADERS_MAX);
        snprintf(f->headers[f->nh], sizeof(f->headers[f->nh]), "%s", headers[f->nh]);
    }
    f->len = body_len;
    f->body = malloc(body_len + 1);
    ck_assert_ptr_nonnull(f->body);
    if (body_len > 0)
        memcpy(f->body, body, body_len);
    /* what the relay client does at a start: no answer yet */
    r->status = 0;
    r->retry_after = -1;
    r->max_chunk = 0;
    r->conn[0] = r->reason[0] = r->resume_token[0] = '\0';
    r->timed_out = false;
    r->seq = r->peer_received = r->peer_sent = r->epoch = -1;
    r->resume_grace = 0;
    r->active = true;
    return 0;
}

void
__wrap_ptth_req_cancel(ptth_req *r)
{
    if (!r->active)
        return;
    r->active = false;
    for (size_t i = 0; i < nreqs; i++)
        if (reqs[i].r == r && !reqs[i].cancelled)
            reqs[i].cancelled = true;
}

void
__wrap_ptth_req_resume(ptth_req *r)
{
    r->paused = false;
}

static void
fake_reset(void)
{
    for (size_t i = 0; i < nreqs; i++)
        free(reqs[i].body);
    nreqs = 0;
}

/* The header line of f that starts with name ("PTTH-Seq: "), or NULL. */
static const char *
header(const fake_req *f, const char *name)
{
    for (size_t i = 0; i < f->nh; i++)
        if (strncmp(f->headers[i], name, strlen(name)) == 0)
            return f->headers[i];
    return NULL;
}

static bool
has_header(const fake_req *f, const char *line)
{
    const char *h = header(f, line);
    return h != NULL && strcmp(h, line) == 0;
}

static bool
is_chunk(const fake_req *f)
{
    return strcmp(f->path, "/v1/servers/foo/conns/c1/upstream") == 0;
}

static size_t
count_chunks(size_t from)
{
    size_t n = 0;
    for (size_t i = from; i < nreqs; i++)
        n += is_chunk(&reqs[i]);
    return n;
}

/* The relay client's answer to a chunk: status (and reason), from the loop. */
static void
answer(fake_req *f, long status, const char *reason)
{
    ptth_req *r = f->r;
    ck_assert(r->active);
    ck_assert(!f->cancelled);
    r->status = status;
    snprintf(r->conn, sizeof(r->conn), "c1");
    const char *seq = header(f, "PTTH-Seq: ");
    r->seq = seq != NULL ? atoll(seq + strlen("PTTH-Seq: ")) : -1;
    snprintf(r->reason, sizeof(r->reason), "%s", reason);
    r->active = false;
    r->ops->on_done(r, NULL);
}

/* A framed stream's 200 (the connect's, or a resume's). */
static void
answer_stream(fake_req *f, const char *token, long long epoch, long long peer_received, long long peer_sent)
{
    ptth_req *r = f->r;
    ck_assert(r->active);
    r->status = 200;
    snprintf(r->conn, sizeof(r->conn), "c1");
    snprintf(r->resume_token, sizeof(r->resume_token), "%s", token);
    r->resume_grace = 30;
    r->epoch = epoch;
    r->peer_received = peer_received;
    r->peer_sent = peer_sent;
    r->ops->on_headers(r);
}

/* Bytes of the framed stream, as the relay client delivers them. */
static void
stream_bytes(ptth_bridge *b, const uint8_t *p, size_t len)
{
    ck_assert(b->stream.active);
    ck_assert_uint_eq(b->stream.ops->on_body(&b->stream, p, len), len);
}

static bool
body_is_data(const fake_req *f, const char *text)
{
    size_t n = strlen(text);
    return f->len == PTTH_FRAME_HEADER_LEN + n && f->body[0] == PTTH_FRAME_DATA && f->body[1] == 0 && f->body[2] == 0 &&
           f->body[3] == n && memcmp(f->body + PTTH_FRAME_HEADER_LEN, text, n) == 0;
}

/* ---- the bridge ---- */

static ptth_loop *L;
static int peer_fd = -1;
static int ends;
static bool ended_clean;

static void
on_end(ptth_bridge *b, const ptth_bridge_result *res, void *data)
{
    (void)b;
    (void)data;
    ends++;
    ended_clean = res->clean;
}

static void
on_spin(ptth_timer *t)
{
    ptth_loop_stop(t->data);
}

/* Lets the loop run for ms: the watches, timers and deferred calls act. */
static void
spin(long ms)
{
    ptth_timer t;
    memset(&t, 0, sizeof(t));
    ptth_timer_start(L, &t, ms, on_spin, L);
    ck_assert_int_eq(ptth_loop_run(L), 0);
}

/* ptth_proxy's side of a tunnel on the chunked path whose framed stream's
 * 200 granted resumption (token "tok", grace 30 s): raw. */
static ptth_bridge *
open_raw(void)
{
    if (L == NULL)
        L = ptth_loop_new();
    ck_assert_ptr_nonnull(L);
    fake_reset();
    ends = 0;
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    peer_fd = sv[1];
    ptth_local_end e;
    ck_assert_int_eq(ptth_local_end_fds(&e, sv[0], sv[0]), 0);
    ptth_bridge_config cfg = {
        .loop = L,
        .server = "foo",
        .chunk_kind = "upstream",
        .local_name = "client",
        .max_chunk = 262144,
        .resume_buffer = 4u << 20,
        .port = "ssh",
        .on_end = on_end,
    };
    ptth_bridge *b = ptth_bridge_new(&cfg, &e);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(ptth_bridge_start(b, "/v1/servers/foo/ports/ssh/connect", NULL), 0);
    ck_assert_uint_eq(nreqs, 1);
    ck_assert_str_eq(reqs[0].path, "/v1/servers/foo/ports/ssh/connect");
    ck_assert(has_header(&reqs[0], "PTTH-Resumable: 1"));
    answer_stream(&reqs[0], "tok", -1, -1, -1);
    ck_assert_int_eq(b->state, ST_OPEN);
    ck_assert(b->raw);
    ck_assert_int_eq(b->rs.state, RS_LIVE);
    return b;
}

static void
done_with(ptth_bridge *b)
{
    if (b != NULL && ends == 0)
        ptth_bridge_free(b);
    close(peer_fd);
    peer_fd = -1;
    fake_reset();
}

static void
local_write(const char *text)
{
    ck_assert_int_eq(write(peer_fd, text, strlen(text)), (ssize_t)strlen(text));
}

/* The next chunk posted after request index from (spinning until it came). */
static fake_req *
next_chunk(size_t *from)
{
    for (int i = 0; i < 50; i++) {
        for (; *from < nreqs; (*from)++)
            if (is_chunk(&reqs[*from]))
                return &reqs[(*from)++];
        spin(10);
    }
    ck_abort_msg("no chunk was posted");
    return NULL;
}

/* A chunk answered 409 (suspended) or 404 (the relay restarted, or forgot
 * the tunnel) is a loss, not the end: every request of the tunnel is
 * cancelled (the framed stream too) and a plain resume request goes out,
 * at once, with the counts, the token and no Upgrade. */
static void
refused_chunk_resumes(long status, const char *reason)
{
    ptth_bridge *b = open_raw();
    size_t from = 1;
    local_write("hello");
    fake_req *c = next_chunk(&from);
    ck_assert(has_header(c, "PTTH-Seq: 0"));
    ck_assert(has_header(c, "PTTH-Epoch: 0"));
    ck_assert(body_is_data(c, "hello"));
    ck_assert_ptr_null(header(c, "PTTH-Fin: "));
    size_t before = nreqs;
    answer(c, status, reason);
    ck_assert(!b->failed);
    ck_assert_int_eq(ends, 0);
    ck_assert_int_eq(b->rs.state, RS_WAITING);
    ck_assert(reqs[0].cancelled); /* the framed stream went with the loss */
    ck_assert(!b->stream.active);
    ck_assert_uint_eq(b->in_flight, 0);
    ck_assert_uint_eq(b->next_seq, 0);
    ck_assert_uint_eq(nreqs, before); /* the resume goes from the loop */
    spin(20);
    ck_assert_uint_eq(nreqs, before + 1);
    fake_req *rq = &reqs[before];
    ck_assert_str_eq(rq->path, "/v1/servers/foo/conns/c1/resume");
    ck_assert(rq->r == &b->stream);
    ck_assert(has_header(rq, "PTTH-Resume: tok"));
    ck_assert(has_header(rq, "PTTH-Port: ssh"));
    ck_assert(has_header(rq, "PTTH-Proto: tcp"));
    ck_assert(has_header(rq, "PTTH-Received: 0"));
    ck_assert(has_header(rq, "PTTH-Sent: 5"));
    ck_assert_ptr_null(header(rq, "Upgrade"));
    ck_assert_ptr_null(header(rq, "Connection"));
    ck_assert_ptr_null(header(rq, "PTTH-Client: ")); /* the client side */
    ck_assert_int_eq(b->rs.state, RS_ATTEMPT);
    /* the local end is not read while resuming */
    local_write("more");
    spin(20);
    ck_assert_uint_eq(count_chunks(before), 0);
    done_with(b);
}

START_TEST(chunk_answered_409_loses_the_tunnel_and_resumes)
{
    refused_chunk_resumes(409, "tunnel suspended: resume it");
}
END_TEST

START_TEST(chunk_answered_404_loses_the_tunnel_and_resumes)
{
    refused_chunk_resumes(404, "tunnel unknown");
}
END_TEST

/* After the resume's 200 (PTTH-Epoch 1, the peer received "hello"): what
 * the peer did not get goes again as the first chunk of the new epoch,
 * PTTH-Seq 0 with PTTH-Epoch: 1, before anything the local end has read
 * since; then the local end's bytes follow as PTTH-Seq 1, at once (not
 * only once the replay's chunk was answered). */
START_TEST(replay_is_the_first_chunks_of_the_new_epoch)
{
    ptth_bridge *b = open_raw();
    size_t from = 1;
    local_write("hello");
    fake_req *c0 = next_chunk(&from);
    ck_assert(has_header(c0, "PTTH-Seq: 0"));
    answer(c0, 204, "");
    local_write("world!");
    fake_req *c1 = next_chunk(&from);
    ck_assert(has_header(c1, "PTTH-Seq: 1"));
    ck_assert(has_header(c1, "PTTH-Epoch: 0"));
    ck_assert(body_is_data(c1, "world!"));
    answer(c1, 409, "tunnel suspended: resume it");
    spin(20);
    fake_req *rq = &reqs[nreqs - 1];
    ck_assert_str_eq(rq->path, "/v1/servers/foo/conns/c1/resume");
    ck_assert(has_header(rq, "PTTH-Sent: 11"));
    local_write("again"); /* waits in the socket while resuming */
    spin(20);
    size_t at_200 = nreqs;
    answer_stream(rq, "tok2", 1, 5, 0);
    ck_assert(!b->failed);
    ck_assert_int_eq(b->rs.state, RS_LIVE);
    ck_assert_uint_eq(b->epoch, 1);
    ck_assert_str_eq(b->rs.token, "tok2");
    from = at_200;
    fake_req *r0 = next_chunk(&from);
    ck_assert(has_header(r0, "PTTH-Seq: 0"));
    ck_assert(has_header(r0, "PTTH-Epoch: 1"));
    ck_assert(body_is_data(r0, "world!")); /* from the peer's PTTH-Peer-Received on */
    fake_req *r1 = next_chunk(&from);
    ck_assert(has_header(r1, "PTTH-Seq: 1"));
    ck_assert(has_header(r1, "PTTH-Epoch: 1"));
    ck_assert(body_is_data(r1, "again"));
    ck_assert_uint_eq(b->rs.resumes, 1);
    done_with(b);
}
END_TEST

static fake_req *
only_new_chunk(size_t *from)
{
    spin(20);
    ck_assert_uint_eq(count_chunks(*from), 1);
    return next_chunk(from);
}

/* Our FIN is a FIN frame in a chunk; the empty PTTH-Fin chunk says "done"
 * and goes only when both FINs went through, ours was acknowledged and our
 * last chunk (the ACK of the peer's FIN) was answered, in either order
 * (peer_ack_first: the peer's ACK of our FIN comes while that chunk is
 * unanswered); then the stream's clean end is the tunnel's. */
static void
fin_chunk_test(bool peer_ack_first)
{
    ptth_bridge *b = open_raw();
    size_t from = 1;
    local_write("hello");
    fake_req *c0 = next_chunk(&from);
    ck_assert(body_is_data(c0, "hello"));
    ck_assert(shutdown(peer_fd, SHUT_WR) == 0);
    fake_req *c1 = next_chunk(&from);
    ck_assert_uint_eq(c1->len, PTTH_FRAME_HEADER_LEN);
    ck_assert(memcmp(c1->body, "\x01\x00\x00\x00", PTTH_FRAME_HEADER_LEN) == 0);
    ck_assert_ptr_null(header(c1, "PTTH-Fin: "));
    answer(c0, 204, "");
    answer(c1, 204, "");
    ck_assert_int_eq(b->to_relay, TO_RELAY_DONE);
    spin(20);
    ck_assert_uint_eq(count_chunks(from), 0); /* the peer's FIN has not come */

    /* the peer's DATA and FIN: written through, the local end's write side
     * shut, and the ACK of both goes at once, in a chunk of its own */
    static const uint8_t down[] = {PTTH_FRAME_DATA, 0, 0, 5, 'w', 'o', 'r', 'l', 'd', PTTH_FRAME_FIN, 0, 0, 0};
    stream_bytes(b, down, sizeof(down));
    spin(20);
    char got[16];
    ck_assert_int_eq(read(peer_fd, got, sizeof(got)), 5);
    ck_assert(memcmp(got, "world", 5) == 0);
    ck_assert_int_eq(read(peer_fd, got, sizeof(got)), 0);
    ck_assert_int_eq(b->from_relay, FROM_RELAY_SHUT);
    fake_req *ack = only_new_chunk(&from);
    uint8_t want[PTTH_FRAME_ACK_LEN];
    ptth_frame_ack(want, 6, 4u << 20); /* "world" and the FIN */
    ck_assert_uint_eq(ack->len, PTTH_FRAME_ACK_LEN);
    ck_assert(memcmp(ack->body, want, PTTH_FRAME_ACK_LEN) == 0);
    ck_assert(has_header(ack, "PTTH-Seq: 2"));
    ck_assert_ptr_null(header(ack, "PTTH-Fin: "));

    uint8_t peer_ack[PTTH_FRAME_ACK_LEN];
    ptth_frame_ack(peer_ack, 5, 4u << 20);
    stream_bytes(b, peer_ack, sizeof(peer_ack));
    spin(20);
    ck_assert_uint_eq(count_chunks(from), 0); /* "hello" acknowledged, not our FIN */
    if (peer_ack_first) {
        ptth_frame_ack(peer_ack, 6, 4u << 20); /* "hello" and our FIN */
        stream_bytes(b, peer_ack, sizeof(peer_ack));
        spin(20);
        ck_assert_uint_eq(count_chunks(from), 0); /* our last chunk is not answered */
        ck_assert(!b->done_sent);
        answer(ack, 204, "");
    } else {
        answer(ack, 204, "");
        spin(20);
        ck_assert_uint_eq(count_chunks(from), 0); /* our FIN is not acknowledged */
        ck_assert(!b->done_sent);
        ptth_frame_ack(peer_ack, 6, 4u << 20);
        stream_bytes(b, peer_ack, sizeof(peer_ack));
    }
    fake_req *fin = only_new_chunk(&from);
    ck_assert(has_header(fin, "PTTH-Fin: 1"));
    ck_assert(has_header(fin, "PTTH-Seq: 3"));
    ck_assert(has_header(fin, "PTTH-Epoch: 0"));
    ck_assert_uint_eq(fin->len, 0);
    ck_assert(b->done_sent);
    answer(fin, 204, "");
    spin(20);
    ck_assert_uint_eq(count_chunks(from), 0); /* once */
    ck_assert_int_eq(ends, 0);                /* the relay ends the stream */
    b->stream.active = false;
    b->stream.ops->on_done(&b->stream, NULL);
    spin(20);
    ck_assert_int_eq(ends, 1);
    ck_assert(ended_clean);
    done_with(NULL);
}

START_TEST(fin_chunk_only_when_done)
{
    fin_chunk_test(false);
}
END_TEST

START_TEST(fin_chunk_only_when_done_peer_ack_first)
{
    fin_chunk_test(true);
}
END_TEST

/* A stream that ends cleanly before we were done is a loss: resumed. */
START_TEST(stream_ending_before_done_is_a_loss)
{
    ptth_bridge *b = open_raw();
    b->stream.active = false;
    b->stream.ops->on_done(&b->stream, NULL);
    ck_assert(!b->failed);
    ck_assert_int_eq(b->rs.state, RS_WAITING);
    spin(20);
    ck_assert_str_eq(reqs[nreqs - 1].path, "/v1/servers/foo/conns/c1/resume");
    done_with(b);
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("bridge_chunks_resume");
    TCase *tc = tcase_create("bridge_chunks_resume");
    tcase_add_test(tc, chunk_answered_409_loses_the_tunnel_and_resumes);
    tcase_add_test(tc, chunk_answered_404_loses_the_tunnel_and_resumes);
    tcase_add_test(tc, replay_is_the_first_chunks_of_the_new_epoch);
    tcase_add_test(tc, fin_chunk_only_when_done);
    tcase_add_test(tc, fin_chunk_only_when_done_peer_ack_first);
    tcase_add_test(tc, stream_ending_before_done_is_a_loss);
    suite_add_tcase(s, tc);
    return s;
}
