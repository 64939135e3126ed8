#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/.

The seeds are small hand-made valid inputs (and a few near misses) in the
layout each target expects; see the comment at the top of each
tests/fuzz/fuzz_<target>.c. The files are committed; run this again after
changing a layout or adding a seed:  tests/fuzz/make_corpus.py
"""
import hashlib
import os
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

TARGETS = {}


def target(fn):
    TARGETS[fn.__name__] = fn
    return fn


# ---- frame: [limit selector][split seed] then a framed stream (SPEC §4) ----

def frame(ftype, payload=b"", length=None):
    n = len(payload) if length is None else length
    return bytes([ftype]) + n.to_bytes(3, "big") + payload


@target
def frame_seeds():
    data = frame(0, b"hello") + frame(0, b"world")
    return {
        "data": b"\x00\x07" + data,
        "data_fin": b"\x00\x11" + frame(0, b"SSH-2.0-OpenSSH_9.2\r\n") + frame(1),
        "rst": b"\x00\x23" + frame(2, "backend closed: connection refused".encode()),
        "ping_data_fin_rst": b"\x00\x42" + frame(3) + frame(0, b"x" * 40) + frame(1) + frame(3, b"p" * 8) + frame(2, b"done"),
        "empty_data": b"\x00\x01" + frame(0) + frame(0, b"a"),
        "partial": b"\x00\x05" + frame(0, b"abcdefgh")[:7],
        "limit16": b"\x03\x09" + frame(0, b"0123456789abcdef") + frame(0, b"0123456789abcdefg"),
        "long_rst": b"\x00\x0b" + frame(2, b"r" * 300),
        "bad_type": b"\x00\x00" + frame(0, b"ok") + frame(7),
        "data_after_fin": b"\x00\x00" + frame(1) + frame(0, b"late"),
        "ack": b"\x00\x07" + frame(0, b"abc") + frame(4, (3).to_bytes(8, "big") + (524288).to_bytes(4, "big")) + frame(1) +
        frame(4, (131076).to_bytes(8, "big") + (4194304).to_bytes(4, "big")),
        "ack_short": b"\x00\x02" + frame(4, b"\x00" * 11),
        "ack_long": b"\x00\x03" + frame(4, b"\x00" * 13),
        "ack_max": b"\x00\x13" + frame(4, b"\xff" * 12) + frame(3),
    }


# ---- config: [mode] then a config file; odd mode: file NUL arg NUL arg ... ----

HASH = hashlib.sha256(b"A" * 43).hexdigest()


@target
def config_seeds():
    full = (
        "# a relay-like file\n"
        "relay = https://relay.example.com:8443/ptth\n"
        "name = foo-1.bar_2\n"
        "addr = [::1]:4000\n"
        "text = anything at all # a comment\n"
        "mode = fast\n"
        "insecure\n"
        "verbose = off\n"
        "listens = 64\n"
        "max-chunk = 1024\n"
        "number = 18446744073709551615\n"
        "server = foo=%s\n"
        "server = bar=%s\n"
        "listen = 127.0.0.1:0\n"
        "listen = [::]:443\n"
        "note = first\n"
        "note = second#not a comment\n"
        "log-level = debug\n" % (HASH, HASH)
    )
    return {
        "empty": b"\x00",
        "full": b"\x00" + full.encode(),
        "crlf_tabs": b"\x00" + b"\tname\t=\tx\r\n\r\n  # only a comment\r\nlistens=1\r\n",
        "problems": b"\x00" + b"nope = 1\nname = bad name\nlistens = 65\nlistens = 2\n--relay = http://x\nconfig = y\n= v\nmode\n",
        "key_not_hash": b"\x00server = foo=" + b"A" * 43 + b"\n",
        "validate": b"\x00relay = http://h:1/\ninsecure = yes\n",
        "argv": b"\x01name = file\n\x00--name=cli\x00--listen\x00[::1]:1\x00--insecure=false\x00pos1\x00--\x00--pos2",
        "argv_help": b"\x01\x00--help",
        "argv_bad": b"\x01\x00--nope\x00-x\x00--relay\x00--name\x00--config=/dev/null\x00--log-level=loud",
    }


# ---- target: a port-map TARGET (SPEC §5), also fed to the name validator ----

@target
def target_seeds():
    return {
        "port": "22",
        "host_port": "db.internal:5432",
        "ipv4": "10.0.0.7:8080",
        "ipv6": "[fe80::1%eth0]:22",
        "unix": "unix:/run/app.sock",
        "unix_abstract": "unix:@ptth-test",
        "nvme": "nvme:/dev/nvme0:22",
        "nvme_node": "nvme:/dev/nvme0:8080@10.1.0.2",
        "nvme_v6": "nvme:/tmp/csd.sock:22@[::1]",
        "nvme_colons": "nvme:/dev/disk/by-id/x:y:22@node-1",
        "cc": "cc:ssh-svc",
        "cc_vsock": "cc:vsock:3:5000",
        "name": "foo-1.bar_2",
        "name_64": "n" * 64,
        "bad_v6_unbracketed": "::1:22",
    }


# ---- cc_msg: [limit/mode][seed] then one message (mode 0) or a stream (4) ----

def ccmsg(mtype, tunnel, payload=b"", flags=0, length=None):
    n = len(payload) if length is None else length
    return bytes([mtype, flags]) + struct.pack(">HI", n, tunnel) + payload


def hello(version=1, max_msg=4096, window=16, max_clients=512):
    return ccmsg(1, 0, struct.pack(">HHIII", version, 0, max_msg, window, max_clients))


@target
def cc_msg_seeds():
    msgs = {
        "hello": hello(),
        "hello_long": ccmsg(1, 0, struct.pack(">HHIII", 2, 0, 70000, 8, 0) + b"future"),
        "open": ccmsg(2, 7, b"203.0.113.9:51234"),
        "open_empty": ccmsg(2, 1),
        "open_ok": ccmsg(3, 7),
        "open_fail": ccmsg(4, 7, b"connect to 127.0.0.1:22: Connection refused"),
        "data": ccmsg(5, 7, b"SSH-2.0-OpenSSH_9.2\r\n"),
        "fin": ccmsg(6, 7),
        "credit": ccmsg(7, 7, struct.pack(">I", 4)),
        "abort": ccmsg(8, 7, b"reset by peer"),
        "close": ccmsg(9, 0xFFFFFFFF, b"client went away"),
        "bad_flags": ccmsg(5, 7, b"x", flags=1),
        "bad_trailing": ccmsg(6, 7, b"", length=0) + b"z",
    }
    seeds = {"msg_" + k: b"\x01\x00" + v for k, v in msgs.items()}
    seeds["msg_big_data_limit512"] = b"\x00\x00" + ccmsg(5, 3, b"d" * 600)
    session = hello() + ccmsg(2, 1, b"[::1]:4000") + ccmsg(3, 1) + ccmsg(5, 1, b"hello") + ccmsg(7, 1, struct.pack(">I", 1)) + ccmsg(6, 1) + ccmsg(9, 1)
    seeds["stream_session"] = b"\x05\x03" + session
    seeds["stream_big"] = b"\x06\x3f" + ccmsg(5, 2, b"B" * 4000) + ccmsg(5, 2, b"b" * 100)
    seeds["stream_truncated"] = b"\x05\x00" + hello()[:13]
    seeds["stream_oversized"] = b"\x04\x00" + ccmsg(5, 2, b"", length=1000)
    return seeds


# ---- relay_parse: [parser] then a path, Authorization value, XFF or CIDR ----

KEY = "q8Zr1m0x2W3v4U5t6S7r8Q9p0O1n2M3l4K5j6I7h8G9"  # 43 base64url characters
ID = "AbCdEfGhIjKlMnOpQrStUv"  # 22: a connection id


@target
def relay_parse_seeds():
    import base64
    paths = {
        "index": "/", "healthz": "/healthz", "metrics": "/metrics?x=1", "status": "/v1/status",
        "listen": "/v1/servers/foo/listen", "connect": "/v1/servers/foo/ports/ssh/connect",
        "accept": "/v1/servers/foo/conns/%s/accept" % ID, "reject": "/v1/servers/foo/conns/%s/reject" % ID,
        "downstream": "/v1/servers/foo/conns/%s/downstream" % ID, "upstream": "/v1/servers/foo/conns/%s/upstream" % ID,
        "resume": "/v1/servers/foo/conns/%s/resume" % ID,
        "close": "/v1/servers/foo.bar-1_2/conns/%s/close?reason=x" % ID, "bad_encoded": "/v1/servers/f%6Fo/listen",
    }
    seeds = {"path_" + k: b"\x00" + v.encode() for k, v in paths.items()}
    seeds["bearer"] = b"\x01Bearer " + KEY.encode()
    seeds["bearer_spaces"] = b"\x01bearer   " + KEY.encode() + b" \t"
    seeds["basic"] = b"\x02Basic " + base64.b64encode(("admin:" + KEY).encode())
    seeds["basic_urlsafe"] = b"\x02Basic " + base64.urlsafe_b64encode((":" + KEY).encode()).rstrip(b"=")
    peer_v4 = b"\x00" + bytes([10, 0, 0, 1]) + bytes(12) + b"\x1f\x90"
    peer_v6 = b"\x01" + bytes.fromhex("fd000000000000000000000000000001") + b"\x00\x50"
    peer_mapped = b"\x02" + bytes(12) + bytes([127, 0, 0, 1]) + b"\x04\xd2"
    seeds["xff_v4"] = b"\x03" + peer_v4 + b"10.0.0.0/8 192.168.0.0/16\n203.0.113.7, 192.168.1.1 , 10.0.0.2"
    seeds["xff_v6"] = b"\x03" + peer_v6 + b"fd00::/8\n[2001:db8::1]:443,fd00::9"
    seeds["xff_mapped"] = b"\x03" + peer_mapped + b"127.0.0.1 ::ffff:0:0/96\n198.51.100.2:8080"
    seeds["xff_untrusted"] = b"\x03" + peer_v4 + b"172.16.0.0/12\n1.2.3.4"
    for i, c in enumerate(["10.0.0.0/8", "192.168.1.7", "fd00::/8", "::1", "::ffff:10.1.2.3/120", "0.0.0.0/0"]):
        seeds["cidr_%d" % i] = b"\x04" + c.encode()
    return seeds


# ---- seqwin: 8 bytes start, then ops: 0/1 put(next-8+arg%24) 2 put(MAX-arg)
# 3 take 4 remove(slot arg%8) 5 pop_any 6 parse(arg%24 bytes of text) ----

def seq_ops(*ops):
    out = b""
    for op in ops:
        if isinstance(op, tuple):
            out += bytes([op[0], op[1]]) + (op[2] if len(op) > 2 else b"")
        else:
            out += bytes([op])
    return out


@target
def seqwin_seeds():
    near0 = b"\x80\x00" + bytes(6)
    in_order = seq_ops(*[x for i in range(6) for x in ((0, 8), 3)])
    out_of_order = seq_ops((0, 10), (0, 9), (0, 8), 3, 3, 3, (0, 8 + 7), (0, 8 + 8))
    retry = seq_ops((0, 8), (0, 8), 3, (0, 7), (0, 9), (4, 1), 5)
    parsed = seq_ops((6, 1, b"0"), 3, (6, 1, b"1"), (6, 2, b"05"), (6, 20, b"18446744073709551607"), (6, 3, b"-12"))
    top = bytes.fromhex("fffffffffffffff0") + seq_ops((2, 15), (2, 7), (0, 8), 3, (6, 20, b"18446744073709551607"))
    return {
        "in_order": near0 + in_order,
        "out_of_order": near0 + out_of_order,
        "retry_remove": near0 + retry,
        "parse": near0 + parsed,
        "near_top": top,
    }


# ---- relay_http: HTTP/1 scripts, one connection each, split at "@NEXT@";
# @ID@ = the relay's newest tunnel, @SKEY@/@AKEY@/@BKEY@/@XKEY@ = keys of foo,
# alice, bob (allowed nothing) and the admin, @NKEY@ foo's after @RELOAD2@;
# @WAIT<secs>@ moves the clock, @RELOAD<n>@ reloads (see fuzz_relay_http.c) ----

def req(method, path, key=None, headers=(), body=b"", basic=None):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: relay.test"]
    if key:
        lines.append("Authorization: Bearer " + key)
    if basic:
        lines.append("Authorization: Basic " + basic)
    lines += list(headers)
    if method == "POST" or body:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def conns(*scripts):
    return b"@NEXT@".join(scripts)


# HTTP/2 with prior knowledge, written by hand: frames and HPACK literals
# without indexing or Huffman coding (RFC 7540, RFC 7541).
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def h2_frame(ftype, flags, stream, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + stream.to_bytes(4, "big") + payload


def hpack_int(value, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def hpack_literal(name, value):
    name, value = name.encode(), value.encode()
    return b"\x00" + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value


def h2_request(stream, method, path, key=None, headers=(), body=None):
    block = b"".join(hpack_literal(n, v) for n, v in [(":method", method), (":scheme", "http"), (":path", path),
                                                       (":authority", "relay.test")])
    if key:
        block += hpack_literal("authorization", "Bearer " + key)
    for h in headers:
        n, v = h.split(": ", 1)
        block += hpack_literal(n.lower(), v)
    if body is None:
        return h2_frame(1, 0x5, stream, block)  # HEADERS, END_HEADERS | END_STREAM
    block += hpack_literal("content-length", str(len(body)))
    return h2_frame(1, 0x4, stream, block) + h2_frame(0, 0x1, stream, body)


# Inside HTTP/2 frames the placeholders must keep their length: the keys of
# fuzz_relay_http.c themselves, and the 22-character id marker.
H2_SKEY = "S" * 42 + "k"
H2_AKEY = "A" * 42 + "k"
H2_BKEY = "B" * 42 + "k"
H2_XKEY = "X" * 42 + "k"
H2_ID = "@IDIDIDIDIDIDIDIDIDID@"


def h2_conn(*frames):
    return H2_PREFACE + h2_frame(4, 0, 0) + h2_frame(4, 1, 0) + b"".join(frames)  # SETTINGS, SETTINGS ack


RESUMABLE = ["Connection: Upgrade", "Upgrade: ptth-tunnel/1", "PTTH-Resumable: 1"]
RESUME_FIELDS = ["PTTH-Resume: " + "R" * 43, "PTTH-Port: ssh", "PTTH-Proto: tcp", "PTTH-Received: 0", "PTTH-Sent: 12"]


@target
def relay_http_seeds():
    import base64
    conn_path = "/v1/servers/foo/conns/@ID@/"
    listen = req("POST", "/v1/servers/foo/listen", "@SKEY@", ["PTTH-Ports: ssh,web"])
    connect = req("POST", "/v1/servers/foo/ports/ssh/connect", "@AKEY@")
    accept = req("POST", conn_path + "accept", "@SKEY@")
    return {
        "healthz": req("GET", "/healthz"),
        "pipelined_gets": req("GET", "/healthz") + req("HEAD", "/healthz") + req("GET", "/nope") + req("GET", "/metrics", "@XKEY@"),
        "admin": conns(req("GET", "/metrics", "@XKEY@"), req("GET", "/v1/status", "@XKEY@"),
                       req("GET", "/", basic=base64.b64encode(b"admin:@XKEY@").decode()), req("GET", "/v1/status", "@AKEY@")),
        "auth_errors": conns(req("POST", "/v1/servers/foo/ports/ssh/connect"), req("POST", "/v1/servers/foo/ports/ssh/connect", "@BKEY@"),
                             req("POST", "/v1/servers/nope/ports/ssh/connect", "@AKEY@"), req("POST", "/v1/servers/foo/listen", "@AKEY@"),
                             req("GET", "/v1/servers/foo/listen", "@SKEY@")),
        "offline": req("POST", "/v1/servers/foo/ports/ssh/connect", "@AKEY@"),
        # both directions end with FIN; chunks out of order on their own connections
        "tunnel_fin": conns(listen, connect, accept,
                            req("POST", conn_path + "upstream", "@AKEY@", ["PTTH-Seq: 0"], b"hello"),
                            req("POST", conn_path + "downstream", "@SKEY@", ["PTTH-Seq: 0"], b"world")
                            + req("POST", conn_path + "downstream", "@SKEY@", ["PTTH-Seq: 1", "PTTH-Fin: 1"]),
                            req("POST", conn_path + "upstream", "@AKEY@", ["PTTH-Seq: 2"], b"later"),
                            req("POST", conn_path + "upstream", "@AKEY@", ["PTTH-Seq: 1"], b"mid")
                            + req("POST", conn_path + "upstream", "@AKEY@", ["PTTH-Seq: 1"], b"mid"),
                            req("POST", conn_path + "upstream", "@AKEY@", ["PTTH-Seq: 3", "PTTH-Fin: 1"])),
        "tunnel_close": conns(listen, connect, accept,
                              req("POST", conn_path + "upstream", "@AKEY@", ["PTTH-Seq: 0"], b"hello"),
                              req("POST", conn_path + "close", "@SKEY@", ["PTTH-Reason: backend went away"]),
                              req("POST", conn_path + "upstream", "@AKEY@", ["PTTH-Seq: 1"], b"too late")),
        "chunk_errors": conns(listen, connect, accept,
                              req("POST", conn_path + "upstream", "@AKEY@", ["PTTH-Seq: 9"], b"x")
                              + req("POST", conn_path + "upstream", "@AKEY@", ["PTTH-Seq: 0"], b"y" * 1025)
                              + req("POST", conn_path + "upstream", "@AKEY@", ["PTTH-Seq: x"], b"z")
                              + req("POST", conn_path + "upstream", "@AKEY@", ["PTTH-Seq: 0", "PTTH-Fin: 2"])
                              + req("POST", conn_path + "upstream", "@AKEY@", ["PTTH-Seq: 0"]),
                              req("POST", conn_path + "downstream", "@AKEY@", ["PTTH-Seq: 0"], b"wrong side")),
        "reject": conns(listen, connect, req("POST", conn_path + "reject", "@SKEY@", ["PTTH-Reason: connect to 127.0.0.1:22: Connection refused"])),
        "limits": conns(listen, listen, connect, connect, connect, connect),
        "chunked_request": b"POST /v1/servers/foo/listen HTTP/1.1\r\nHost: r\r\nAuthorization: Bearer @SKEY@\r\n"
                           b"PTTH-Ports: ssh\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "xff": req("POST", "/v1/servers/foo/listen", "@SKEY@", ["PTTH-Ports: ssh", "X-Forwarded-For: 203.0.113.5, 127.0.0.1"]),
        # the clock moved forward: listen timeout (204), connect timeout (504),
        # heartbeats (PING) and the idle timeout of an open tunnel
        "timeouts": conns(listen, b"@WAIT26@", connect, b"@WAIT11@"),
        "heartbeat_idle": conns(listen, connect, accept, b"@WAIT21@",
                                req("POST", conn_path + "upstream", "@AKEY@", ["PTTH-Seq: 0"], b"ping?"), b"@WAIT121@"),
        # SIGHUP reloads while tunnels and listens are open
        "reload_revoke_client": conns(listen, connect, accept, b"@RELOAD1@",
                                      req("POST", conn_path + "upstream", "@AKEY@", ["PTTH-Seq: 0"], b"after")),
        "reload_change_server": conns(listen, listen, connect, accept, b"@RELOAD2@",
                                      req("POST", "/v1/servers/foo/listen", "@NKEY@", ["PTTH-Ports: ssh"], b"")),
        "reload_limits": conns(listen, b"@RELOAD3@", req("POST", "/v1/servers/foo/ports/web/connect", "@BKEY@"),
                               connect, b"@RELOAD4@", b"@RELOAD0@"),
        # HTTP/2: listen and connect multiplexed on one connection, accept on
        # another, chunks, a RST_STREAM of a held chunk, GOAWAY
        "h2_tunnel": conns(
            h2_conn(h2_request(1, "POST", "/v1/servers/foo/listen", H2_SKEY, ["PTTH-Ports: ssh"], b""),
                    h2_request(3, "POST", "/v1/servers/foo/ports/ssh/connect", H2_AKEY, (), b"")),
            h2_conn(h2_request(1, "POST", "/v1/servers/foo/conns/%s/accept" % H2_ID, H2_SKEY, (), b"")),
            h2_conn(h2_request(1, "POST", "/v1/servers/foo/conns/%s/upstream" % H2_ID, H2_AKEY, ["PTTH-Seq: 1"], b"second"),
                    h2_frame(3, 0, 1, struct.pack(">I", 8)),  # RST_STREAM(CANCEL) of the held chunk
                    h2_request(3, "POST", "/v1/servers/foo/conns/%s/upstream" % H2_ID, H2_AKEY, ["PTTH-Seq: 0"], b"first"),
                    h2_request(5, "POST", "/v1/servers/foo/conns/%s/downstream" % H2_ID, H2_SKEY,
                               ["PTTH-Seq: 0", "PTTH-Fin: 1"], b""),
                    h2_request(7, "GET", "/v1/status", H2_XKEY),
                    h2_frame(7, 0, 0, struct.pack(">II", 7, 0))),  # GOAWAY
        ),
        # resumable tunnels (docs/protocol.md "Resumable tunnels"): both 101s
        # with tokens, then resumes the harness cannot prove (403, 400, 401)
        "resume_refused": conns(listen,
                                req("POST", "/v1/servers/foo/ports/ssh/connect", "@AKEY@", RESUMABLE),
                                req("POST", conn_path + "accept", "@SKEY@", RESUMABLE),
                                req("POST", conn_path + "resume", "@AKEY@", RESUMABLE[:2] + RESUME_FIELDS),
                                req("POST", conn_path + "resume", "@SKEY@", RESUMABLE[:2] + RESUME_FIELDS),
                                req("POST", conn_path + "resume", "@SKEY@", RESUMABLE[:2] + RESUME_FIELDS + ["PTTH-Client: alice"]),
                                req("POST", conn_path + "resume", "@AKEY@", RESUME_FIELDS[1:]),
                                req("POST", conn_path + "resume", None, RESUMABLE[:2] + RESUME_FIELDS),
                                req("POST", conn_path + "resume", "@BKEY@", RESUMABLE[:2] + RESUME_FIELDS)),
        "resume_unknown": req("POST", "/v1/servers/foo/conns/k3Jx0v4GZ9yS1b3mYw2aQQ/resume", "@AKEY@",
                              RESUMABLE[:2] + RESUME_FIELDS[:3] + ["PTTH-Received: 18446744073709551616", "PTTH-Sent: x"]),
        "h2_gets": h2_conn(h2_request(1, "GET", "/healthz"), h2_request(3, "GET", "/metrics", H2_XKEY),
                           h2_request(5, "POST", "/v1/servers/foo/ports/ssh/connect", H2_BKEY, (), b"")),
    }


# ---- h2_client: what a relay sends a terminator after its preface (the
# harness writes the empty SETTINGS itself); streams 1 (framed stream),
# 3 (short, 100-byte body) and 5 (short, 70,000-byte body) ----

@target
def h2_client_seeds():
    # frame types: DATA 0, HEADERS 1, RST_STREAM 3, SETTINGS 4, PUSH_PROMISE 5,
    # PING 6, GOAWAY 7, WINDOW_UPDATE 8, CONTINUATION 9
    ack = h2_frame(4, 1, 0)

    def headers(stream, status, fields=(), end_stream=False, end_headers=True):
        block = hpack_literal(":status", status) + b"".join(hpack_literal(n, v) for n, v in fields)
        return h2_frame(1, (0x4 if end_headers else 0) | (0x1 if end_stream else 0), stream, block)

    def data(stream, payload, end_stream=False):
        return h2_frame(0, 0x1 if end_stream else 0, stream, payload)

    def rst(stream, code):
        return h2_frame(3, 0, stream, code.to_bytes(4, "big"))

    def goaway(last, code, debug=b""):
        return h2_frame(7, 0, 0, last.to_bytes(4, "big") + code.to_bytes(4, "big") + debug)

    def window_update(stream, inc):
        return h2_frame(8, 0, stream, inc.to_bytes(4, "big"))

    def settings(*pairs):
        return h2_frame(4, 0, 0, b"".join(k.to_bytes(2, "big") + v.to_bytes(4, "big") for k, v in pairs))

    def ptth_frame(ftype, payload=b""):  # SPEC §4 framed stream, inside DATA
        return bytes([ftype]) + len(payload).to_bytes(3, "big") + payload

    conn_id = "Zk3pQ9vR2mXc7LbN4sTe1w"
    connect_ok = headers(1, "200", [("ptth-conn", conn_id), ("ptth-port", "ssh"), ("ptth-client-addr", "127.0.0.1:40000"),
                                    ("ptth-max-chunk", "1024"), ("x-accel-buffering", "no")])
    chunk_ok = headers(3, "200", [("ptth-seq", "0"), ("content-length", "0")], end_stream=True)
    return {
        "ok_200": ack + connect_ok + data(1, ptth_frame(0, b"SSH-2.0-OpenSSH_9.2\r\n")) + chunk_ok
        + window_update(0, 65536) + window_update(5, 65536)
        + data(1, ptth_frame(0, b"x" * 40) + ptth_frame(1)) + data(1, b"", end_stream=True)
        + headers(5, "200", [("ptth-seq", "1")], end_stream=True),
        "status_204": ack + headers(1, "204", [("ptth-reason", "no server listening")], end_stream=True)
        + headers(3, "503", [("retry-after", "5")]) + data(3, b"relay busy\nsecond line", end_stream=True)
        + h2_frame(1, 0x5, 5, b"\x88"),  # indexed :status 200
        "rst_streams": ack + rst(1, 8) + rst(3, 7) + rst(5, 2),
        "refused_then_ok": ack + rst(1, 7) + rst(3, 7) + headers(5, "413", [("ptth-reason", "chunk too large")], end_stream=True),
        "goaway": ack + connect_ok + goaway(1, 0, b"graceful shutdown") + data(1, ptth_frame(0, b"last"), end_stream=True),
        "goaway_error": ack + goaway(0, 2, b"internal error"),
        "settings_ping": ack + settings((3, 0), (4, 1 << 20)) + h2_frame(6, 0, 0, b"pingpong") + settings((3, 10))
        + chunk_ok,
        "continuation": ack + headers(1, "200", [("ptth-conn", conn_id)], end_headers=False)
        + h2_frame(9, 0x4, 1, hpack_literal("ptth-port", "web")) + data(1, ptth_frame(0, b"y" * 100), end_stream=True),
        "big_data": ack + connect_ok + b"".join(data(1, bytes([i]) * 1200) for i in range(3)) + data(1, b"z" * 100, end_stream=True)
        + chunk_ok,
        "interim_trailers": ack + headers(1, "100") + connect_ok + data(1, ptth_frame(0, b"abc"))
        + h2_frame(1, 0x5, 1, hpack_literal("ptth-reason", "done")),
        "push_promise": ack + h2_frame(5, 0x4, 1, (2).to_bytes(4, "big") + hpack_literal(":method", "GET")),
        "padded_data": ack + connect_ok + h2_frame(0, 0x9, 1, b"\x04" + ptth_frame(0, b"pad") + b"\x00" * 4) + chunk_ok,
    }



# ---- csd: [mode] then a request body (even) or a response body (odd) ----

def nvme_cmd(opcode=0xC0, cdw10=0, cdw11=0, cdw12=0, cdw13=0, data_len=4096, timeout=0):
    return struct.pack("<BBHIIIQQIIIIIIIIII", opcode, 0, 0, 0, 0, 0, 0, 0, 0, data_len,
                       cdw10, cdw11, cdw12, cdw13, 0, 0, timeout, 0)


@target
def csd_seeds():
    node_service = b"127.0.0.1".ljust(256, b"\0") + b"22".ljust(256, b"\0")
    return {
        "open": b"\x00" + nvme_cmd(cdw10=128) + node_service,
        "open_bad_field": b"\x00" + nvme_cmd(cdw10=128) + b"bad node".ljust(256, b"\0") + b"22",
        "write_live": b"\x00" + nvme_cmd(cdw10=64, cdw11=1, cdw12=5) + b"hello",
        "read_live": b"\x00" + nvme_cmd(cdw10=64, cdw11=0, timeout=0xFFFFFFFF),
        "write_bad_desc": b"\x00" + nvme_cmd(cdw10=64, cdw11=1, cdw12=3, cdw13=0x00010005) + b"abc",
        "close_bad_desc": b"\x00" + nvme_cmd(cdw10=129, cdw13=7, data_len=0),
        "other_opcode": b"\x00" + nvme_cmd(opcode=0x06, data_len=0),
        "response_open": b"\x01" + struct.pack("<II", 0, 0) + struct.pack("<i", 0x10000),
        "response_read": b"\x01" + struct.pack("<II", 0, 0) + struct.pack("<I", 5) + b"world",
        "response_error": b"\x01" + struct.pack("<II", 0x0702, 111),
    }


def write(name, seeds):
    d = os.path.join(CORPUS, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    for label, content in sorted(seeds.items()):
        if isinstance(content, str):
            content = content.encode()
        with open(os.path.join(d, label), "wb") as f:
            f.write(content)


# ---- leg: [split seed] then what a relay answers an upgraded leg ----

H101 = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: ptth-tunnel/1\r\nConnection: Upgrade\r\n"


@target
def leg_seeds():
    return {
        "upgraded": b"\x01" + H101 + b"PTTH-Heartbeat: 30\r\nPTTH-Idle-Timeout: 120\r\nPTTH-Conn: c-1\r\n\r\nraw bytes",
        "wrong_token": b"\x02HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        "interim": b"\x03HTTP/1.1 100 Continue\r\n\r\n" + H101 + b"\r\n",
        "chunked": b"\x04HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nPTTH-Max-Chunk: 65536\r\n\r\n"
        b"5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: t\r\n\r\nafter",
        "length": b"\x05HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world and more",
        "until_close": b"\x06HTTP/1.0 200 OK\r\n\r\nhello world",
        "forbidden": b"\x07HTTP/1.1 403 Forbidden\r\nPTTH-Reason: client alice may not reach foo/ssh\r\n"
        b"Content-Length: 9\r\n\r\nforbidden",
        "unavailable": b"\x08HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nPTTH-Upgrade: off\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n10\r\n  relay busy:\r\n \r\n0\r\n\r\n",
        "bad_length": b"\x09HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        "garbage": b"\x0aSSH-2.0-OpenSSH_9.2\r\n",
        "partial": b"\x0bHTTP/1.1 101 Switching Protoc",
        "big_head": b"\x0cHTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 17000 + b"\r\n\r\n",  # above PTTH_LEG_HEAD_MAX, and sets libFuzzer's default -max_len
        "resumable": b"\x0d" + H101 + b"PTTH-Conn: c-1\r\nPTTH-Resume: abcdefghijklmnopqrstuvwxyzABCDEFGHIJK-_0123\r\n"
        b"PTTH-Resume-Grace: 30\r\n\r\n",
        "resumed": b"\x0e" + H101 + b"PTTH-Resume: tok_en\r\nPTTH-Resume-Grace: 99999999\r\n"
        b"PTTH-Peer-Received: 131072\r\nPTTH-Peer-Sent: 18446744073709551616\r\n\r\n\x00\x00\x00\x01x",
    }


# ---- socks5: [mode: bit 0 = a user list] then what a SOCKS5 client sends ----

def socks_connect(host, cmd=1):
    h = host.encode()
    return bytes([5, cmd, 0, 3, len(h)]) + h + b"\x00\x16"


@target
def socks5_seeds():
    return {
        "noauth_connect_opened": b"\x00\x05\x01\x00" + socks_connect("ssh.foo") + b"\x00",
        "noauth_connect_refused_403": b"\x00\x05\x02\x00\x02" + socks_connect("web.host.lan") + b"\x05",
        "userpass_connect": b"\x01\x05\x01\x02\x01\x04user\x04pass" + socks_connect("ssh.foo") + b"\x00",
        "userpass_wrong": b"\x01\x05\x01\x02\x01\x04user\x04PASS",
        "bind": b"\x00\x05\x01\x00" + socks_connect("ssh.foo", cmd=2),
        "udp_associate": b"\x00\x05\x01\x00" + socks_connect("ssh.foo", cmd=3),
        "ipv4": b"\x00\x05\x01\x00\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x16",
        "ipv6": b"\x00\x05\x01\x00\x05\x01\x00\x04" + bytes(15) + b"\x01\x00\x16",
        "no_dot": b"\x00\x05\x01\x00" + socks_connect("localhost"),
        "socks4": b"\x00\x04\x01\x00\x16\x7f\x00\x00\x01\x00",
        "max_methods": b"\x00\x05\xff" + bytes(range(255)) + socks_connect("a" * 120 + "." + "b" * 60),
    }


# ---- dgram: [split seed] then a UDP session's stream (2-byte length, payload) ----

def dgram_frame(payload):
    return struct.pack(">H", len(payload)) + payload


@target
def dgram_seeds():
    return {
        "one": b"\x00" + dgram_frame(b"hello"),
        "several": b"\x07" + dgram_frame(b"a") + dgram_frame(b"") + dgram_frame(b"dns query" * 3) + dgram_frame(b"z"),
        "empty_only": b"\x03" + dgram_frame(b"") * 8,
        "cut_at_the_end": b"\x11" + dgram_frame(b"whole") + dgram_frame(b"cut in the middle")[:7],
        "length_only": b"\x02\x00",
        "too_long": b"\x05" + dgram_frame(b"before") + b"\xff\xe4" + b"x" * 10,
        "max_length_header": b"\x09" + b"\xff\xe3" + b"y" * 300,  # 65507: valid, the payload never completes
        "big": b"\x21" + dgram_frame(bytes(range(256)) * 8) + dgram_frame(b"after"),
        "dns": b"\x13" + dgram_frame(bytes.fromhex("1a2b01000001000000000000076578616d706c6503636f6d0000010001")),
    }


# ---- metrics_req: [split seed] then what a scraper sends --metrics-listen ----

@target
def metrics_req_seeds():
    return {
        "scrape": b"\x01GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9470\r\nUser-Agent: Prometheus/2.42.0\r\n"
        b"Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n"
        b"Accept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n",
        "query": b"\x02GET /metrics?x=1 HTTP/1.0\r\n\r\n",
        "other_path": b"\x03GET /favicon.ico HTTP/1.1\r\n\r\n",
        "post": b"\x04POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        "pipelined": b"\x05GET /metrics HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        "partial": b"\x06GET /metrics HTTP/1.1\r\nHost: x\r\n",
        "garbage": b"\x07\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
        "big_head": b"\x08GET /metrics HTTP/1.1\r\nX-Pad: " + b"a" * 9000 + b"\r\n\r\n",  # above PTTH_METRICS_REQ_MAX
    }


def main():
    wanted = sys.argv[1:] or [n[: -len("_seeds")] for n in TARGETS]
    for name in wanted:
        write(name, TARGETS[name + "_seeds"]())
        print("corpus/%s: %d seeds" % (name, len(os.listdir(os.path.join(CORPUS, name)))))


if __name__ == "__main__":
    main()
