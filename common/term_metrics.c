/* term_metrics.c: a terminator's counters and their /metrics text; see term_metrics.h. */
#include "term_metrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const result_names[PTTH_TM_RESULT__COUNT] = {
    [PTTH_TM_FIN] = "fin",         [PTTH_TM_RST] = "rst",         [PTTH_TM_SHUTDOWN] = "shutdown",
    [PTTH_TM_REFUSED] = "refused", [PTTH_TM_BACKEND] = "backend", [PTTH_TM_FAILED] = "failed",
};

static const char *const failure_names[PTTH_TM_FAILURE__COUNT] = {
    [PTTH_TM_F_RELAY_UNREACHABLE] = "relay_unreachable",
    [PTTH_TM_F_RELAY_AUTH] = "relay_auth",
    [PTTH_TM_F_RELAY_BUSY] = "relay_busy",
    [PTTH_TM_F_RELAY_ERROR] = "relay_error",
    [PTTH_TM_F_RELAY_REFUSED] = "relay_refused",
    [PTTH_TM_F_BACKEND] = "backend",
    [PTTH_TM_F_ACCEPT] = "accept",
};

const char *
ptth_tm_result_name(ptth_tm_result r)
{
    return r >= 0 && r < PTTH_TM_RESULT__COUNT ? result_names[r] : "unknown";
}

const char *
ptth_tm_failure_name(ptth_tm_fail f)
{
    return f >= 0 && f < PTTH_TM_FAILURE__COUNT ? failure_names[f] : "unknown";
}

int
ptth_tm_init(ptth_term_metrics *m, const char *program)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->program, sizeof(m->program), "%s", program);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    m->start_time_s = (double)ts.tv_sec + (double)(ts.tv_nsec / 1000000) / 1000.0;
    return 0;
}

void
ptth_tm_dispose(ptth_term_metrics *m)
{
    free(m->ports);
    m->ports = NULL;
    m->n_ports = m->cap_ports = 0;
}

int
ptth_tm_add_port(ptth_term_metrics *m, const char *server, const char *port)
{
    for (size_t i = 0; i < m->n_ports; i++)
        if (strcmp(m->ports[i].server, server) == 0 && strcmp(m->ports[i].port, port) == 0)
            return (int)i;
    if (m->n_ports >= 65536)
        return -1;
    if (m->n_ports == m->cap_ports) {
        size_t cap = m->cap_ports ? m->cap_ports * 2 : 8;
        ptth_tm_port *p = realloc(m->ports, cap * sizeof(*p));
        if (p == NULL)
            return -1;
        m->ports = p;
        m->cap_ports = cap;
    }
    ptth_tm_port *p = &m->ports[m->n_ports];
    memset(p, 0, sizeof(*p));
    snprintf(p->server, sizeof(p->server), "%s", server);
    snprintf(p->port, sizeof(p->port), "%s", port);
    return (int)m->n_ports++;
}

static ptth_tm_port *
port_at(ptth_term_metrics *m, int port)
{
    return port >= 0 && (size_t)port < m->n_ports ? &m->ports[port] : NULL;
}

void
ptth_tm_tunnel_open(ptth_term_metrics *m, int port)
{
    m->open++;
    m->opened++;
    ptth_tm_port *p = port_at(m, port);
    if (p != NULL)
        p->open++;
}

void
ptth_tm_tunnel_end(ptth_term_metrics *m, int port, ptth_tm_result result, uint64_t bytes_up, uint64_t bytes_down)
{
    if (result < 0 || result >= PTTH_TM_RESULT__COUNT)
        result = PTTH_TM_RST;
    if (m->open > 0)
        m->open--;
    m->ended[result]++;
    m->bytes_up += bytes_up;
    m->bytes_down += bytes_down;
    ptth_tm_port *p = port_at(m, port);
    if (p != NULL) {
        if (p->open > 0)
            p->open--;
        p->ended[result]++;
        p->bytes_up += bytes_up;
        p->bytes_down += bytes_down;
    }
}

void
ptth_tm_live(ptth_term_metrics *m, int port, uint64_t bytes_up, uint64_t bytes_down)
{
    m->live_up += bytes_up;
    m->live_down += bytes_down;
    ptth_tm_port *p = port_at(m, port);
    if (p != NULL) {
        p->live_up += bytes_up;
        p->live_down += bytes_down;
    }
}

void
ptth_tm_relay_answered(ptth_term_metrics *m)
{
    if (!m->relay_up)
        m->relay_connects++;
    m->relay_up = true;
}

void
ptth_tm_relay_failure(ptth_term_metrics *m, long status)
{
    ptth_tm_fail f;
    if (status <= 0) {
        f = PTTH_TM_F_RELAY_UNREACHABLE;
        m->relay_up = false;
    } else {
        ptth_tm_relay_answered(m); /* an error status is still an answer */
        if (status == 401 || status == 403)
            f = PTTH_TM_F_RELAY_AUTH;
        else if (status == 429 || status == 503)
            f = PTTH_TM_F_RELAY_BUSY;
        else if (status >= 500)
            f = PTTH_TM_F_RELAY_ERROR;
        else
            f = PTTH_TM_F_RELAY_REFUSED;
    }
    m->failures[f]++;
}

void
ptth_tm_failure(ptth_term_metrics *m, ptth_tm_fail what)
{
    if (what >= 0 && what < PTTH_TM_FAILURE__COUNT)
        m->failures[what]++;
}

void
ptth_tm_resumed(ptth_term_metrics *m, uint64_t replayed)
{
    m->resumes++;
    m->replayed_bytes += replayed;
}

ptth_tm_result
ptth_tm_classify(bool established, bool clean, long status, const char *reason)
{
    if (reason != NULL && strcmp(reason, "shutdown") == 0)
        return PTTH_TM_SHUTDOWN;
    if (established)
        return clean ? PTTH_TM_FIN : PTTH_TM_RST;
    return status != 0 ? PTTH_TM_REFUSED : PTTH_TM_FAILED;
}

/* name{result="..."} for every result, from an array of counts */
static void
by_result(ptth_sbuf *b, const char *name, const uint64_t *counts)
{
    for (int r = 0; r < PTTH_TM_RESULT__COUNT; r++)
        ptth_sbuf_printf(b, "%s{result=\"%s\"} %" PRIu64 "\n", name, result_names[r], counts[r]);
}

static void
render_ports(const ptth_term_metrics *m, ptth_sbuf *b)
{
    ptth_sbuf_prom_family(b, "ptth_terminator_port_tunnels_open", "gauge", "Tunnels open now, by server and port.");
    for (size_t i = 0; i < m->n_ports; i++)
        ptth_sbuf_prom_sample(b, "ptth_terminator_port_tunnels_open", m->ports[i].server, m->ports[i].port, NULL, m->ports[i].open);
    ptth_sbuf_prom_family(b, "ptth_terminator_port_tunnels_total", "counter", "Tunnels ended, by server, port and result.");
    for (size_t i = 0; i < m->n_ports; i++)
        for (int r = 0; r < PTTH_TM_RESULT__COUNT; r++) {
            char extra[40];
            snprintf(extra, sizeof(extra), ",result=\"%s\"", result_names[r]);
            ptth_sbuf_prom_sample(b, "ptth_terminator_port_tunnels_total", m->ports[i].server, m->ports[i].port, extra,
                                  m->ports[i].ended[r]);
        }
    ptth_sbuf_prom_family(b, "ptth_terminator_port_bytes_total", "counter",
                          "Bytes carried, by server, port and direction (open tunnels included).");
    for (size_t i = 0; i < m->n_ports; i++) {
        const ptth_tm_port *p = &m->ports[i];
        ptth_sbuf_prom_sample(b, "ptth_terminator_port_bytes_total", p->server, p->port, ",direction=\"up\"",
                              p->bytes_up + p->live_up);
        ptth_sbuf_prom_sample(b, "ptth_terminator_port_bytes_total", p->server, p->port, ",direction=\"down\"",
                              p->bytes_down + p->live_down);
    }
}

void
ptth_tm_render(ptth_term_metrics *m, void (*live)(void *data, ptth_term_metrics *m), void *data, ptth_sbuf *b)
{
    m->live_up = m->live_down = 0;
    for (size_t i = 0; i < m->n_ports; i++)
        m->ports[i].live_up = m->ports[i].live_down = 0;
    if (live != NULL)
        live(data, m);

    ptth_sbuf_prom_family(b, "ptth_terminator_info", "gauge", "Always 1; which program this is and its version.");
    ptth_sbuf_lit(b, "ptth_terminator_info{program=\"");
    ptth_sbuf_labels(b, m->program);
    ptth_sbuf_lit(b, "\",version=\"");
    ptth_sbuf_labels(b, PTTH_VERSION);
    ptth_sbuf_lit(b, "\"} 1\n");
    ptth_sbuf_prom_family(b, "ptth_terminator_start_time_seconds", "gauge",
                          "When this program started, in seconds since the Unix epoch.");
    ptth_sbuf_printf(b, "ptth_terminator_start_time_seconds %.3f\n", m->start_time_s);

    ptth_sbuf_prom_family(b, "ptth_terminator_tunnels_open", "gauge", "Tunnels open now.");
    ptth_sbuf_printf(b, "ptth_terminator_tunnels_open %" PRIu64 "\n", m->open);
    ptth_sbuf_prom_family(b, "ptth_terminator_tunnels_opened_total", "counter", "Tunnels started.");
    ptth_sbuf_printf(b, "ptth_terminator_tunnels_opened_total %" PRIu64 "\n", m->opened);
    ptth_sbuf_prom_family(b, "ptth_terminator_tunnels_total", "counter",
                          "Tunnels ended, by result (fin: clean end; rst: broken; shutdown: this program stopped; "
                          "refused: the relay answered with an error; backend: the backend could not be opened; "
                          "failed: the relay did not answer).");
    by_result(b, "ptth_terminator_tunnels_total", m->ended);
    ptth_sbuf_prom_family(b, "ptth_terminator_bytes_total", "counter",
                          "Bytes carried, by direction (up: client to server, down: server to client; open tunnels included).");
    ptth_sbuf_printf(b, "ptth_terminator_bytes_total{direction=\"up\"} %" PRIu64 "\n", m->bytes_up + m->live_up);
    ptth_sbuf_printf(b, "ptth_terminator_bytes_total{direction=\"down\"} %" PRIu64 "\n", m->bytes_down + m->live_down);

    ptth_sbuf_prom_family(b, "ptth_terminator_relay_up", "gauge",
                          "1 when the last request to the relay got an HTTP answer, 0 when it got none (or none was made).");
    ptth_sbuf_printf(b, "ptth_terminator_relay_up %d\n", m->relay_up ? 1 : 0);
    ptth_sbuf_prom_family(b, "ptth_terminator_relay_connects_total", "counter",
                          "Times the relay became reachable: the first answer, and the first after each request without one.");
    ptth_sbuf_printf(b, "ptth_terminator_relay_connects_total %" PRIu64 "\n", m->relay_connects);
    ptth_sbuf_prom_family(b, "ptth_terminator_failures_total", "counter",
                          "Failures, by reason (relay_unreachable: no answer; relay_auth: 401/403; relay_busy: 429/503; "
                          "relay_error: other 5xx; relay_refused: other errors such as 404; backend: a backend could not "
                          "be opened; accept: accept() on a forward failed).");
    for (int f = 0; f < PTTH_TM_FAILURE__COUNT; f++)
        ptth_sbuf_printf(b, "ptth_terminator_failures_total{reason=\"%s\"} %" PRIu64 "\n", failure_names[f], m->failures[f]);
    ptth_sbuf_prom_family(b, "ptth_terminator_resumes_total", "counter",
                          "Tunnels resumed on a new relay connection after theirs was lost (resumable tunnels).");
    ptth_sbuf_printf(b, "ptth_terminator_resumes_total %" PRIu64 "\n", m->resumes);
    ptth_sbuf_prom_family(b, "ptth_terminator_replayed_bytes_total", "counter",
                          "Positions (DATA bytes, and a FIN as 1) this program wrote again after resumes: sent before the loss, "
                          "not received by the other side.");
    ptth_sbuf_printf(b, "ptth_terminator_replayed_bytes_total %" PRIu64 "\n", m->replayed_bytes);
    render_ports(m, b);
}
