/*
 * reply.c: see reply.h.
 */
#include "reply.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* Runs when h2o clears the request's pool: the request is over. A hold still
 * attached at that point was never answered. */
static void
on_hold_dispose(void *p)
{
    ptth_hold *hold = p;
    ptth_peer_watch_stop(&hold->peer);
    if (hold->req == NULL)
        return;
    hold->req = NULL;
    if (hold->on_gone != NULL)
        hold->on_gone(hold);
}

ptth_hold *
ptth_hold_new(h2o_req_t *req, size_t size, ptth_hold_cb on_gone)
{
    ptth_hold *hold = h2o_mem_alloc_shared(&req->pool, size, on_hold_dispose);
    memset(hold, 0, size);
    hold->req = req;
    hold->on_gone = on_gone;
    return hold;
}

h2o_req_t *
ptth_hold_release(ptth_hold *hold)
{
    h2o_req_t *req = hold->req;
    hold->req = NULL;
    ptth_peer_watch_stop(&hold->peer);
    return req;
}

/* The HTTP/1 peer of a held request closed: the owner forgets the hold, and
 * an answer lets h2o find out (its write or its next read fails) and close
 * the connection, which frees the request. */
static void
on_hold_peer_gone(ptth_peer_watch *w)
{
    ptth_hold *hold = H2O_STRUCT_FROM_MEMBER(ptth_hold, peer, w);
    h2o_req_t *req = hold->req;
    if (req == NULL)
        return;
    hold->req = NULL;
    if (hold->on_gone != NULL)
        hold->on_gone(hold);
    ptth_reply(req, 400, "the connection was closed by the peer\n");
}

void
ptth_hold_watch_peer(ptth_hold *hold, ptth_peerset *peers)
{
    if (hold->req != NULL)
        ptth_peer_watch_start(peers, &hold->peer, hold->req, on_hold_peer_gone);
}

const char *
ptth_status_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 429:
        return "Too Many Requests";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Error";
    }
}

void
ptth_reply(h2o_req_t *req, int status, const char *body)
{
    static h2o_generator_t generator = {NULL, NULL};
    h2o_iovec_t buf = {NULL, 0};

    req->res.status = status;
    req->res.reason = ptth_status_reason(status);
    if (status == 204 || status == 304) {
        req->res.content_length = SIZE_MAX; /* no body, and no Content-Length either (RFC 9110) */
    } else {
        if (body == NULL)
            body = "";
        buf = h2o_strdup(&req->pool, body, SIZE_MAX);
        req->res.content_length = buf.len;
        if (buf.len != 0)
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("text/plain; charset=utf-8"));
    }
    h2o_start_response(req, &generator);
    if (buf.len == 0 || h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD")))
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
    else
        h2o_send(req, &buf, 1, H2O_SEND_STATE_FINAL);
}

void
ptth_reply_retry(h2o_req_t *req, int status, unsigned secs, const char *body)
{
    char v[16];
    int n = snprintf(v, sizeof(v), "%u", secs);
    ptth_reply_header(req, "retry-after", v, (size_t)n);
    ptth_reply(req, status, body);
}

void
ptth_reply_header(h2o_req_t *req, const char *name, const char *value, size_t len)
{
    h2o_iovec_t v = h2o_strdup(&req->pool, value, len);
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, NULL, v.base, v.len);
}

const char *
ptth_req_header(h2o_req_t *req, const char *name, size_t *len)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    if (i < 0) {
        *len = 0;
        return NULL;
    }
    *len = req->headers.entries[i].value.len;
    return req->headers.entries[i].value.base;
}

bool
ptth_req_peer_closed(h2o_req_t *req)
{
    if (req == NULL || req->version >= 0x200 || req->conn->callbacks->get_socket == NULL)
        return false;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (sock == NULL)
        return false;
    char c;
    ssize_t r = recv(h2o_socket_get_fd(sock), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}
