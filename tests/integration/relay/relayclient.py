"""relayclient: small clients that speak ptth_relay's HTTP API (SPEC §4) for
the relay's integration tests.

- H1: one HTTP/1.1 connection on a raw socket. Requests can be sent now and
  their responses read later (a held listen or connect), and a chunked
  response body can be read incrementally (a framed stream).
- Frames: an incremental decoder of the framed streams (type, 3-byte length,
  payload).
- curl_h2(): one request over HTTP/2 with prior knowledge through the curl
  command; curl_h2_stream(): a curl process whose stdout is a framed stream.

Everything has a timeout; nothing here talks to anything but loopback.
"""

import os
import select
import socket
import struct
import subprocess
import time

DATA, FIN, RST, PING = 0, 1, 2, 3
FRAME_NAMES = {DATA: "DATA", FIN: "FIN", RST: "RST", PING: "PING"}


class Response:
    def __init__(self, status, reason, headers):
        self.status = status
        self.reason = reason
        self.headers = headers  # lowercase name -> value (last one wins)
        self.body = b""

    def __repr__(self):
        return "<%d %s %r %r>" % (self.status, self.reason, self.headers, self.body[:200])


class H1:
    """One HTTP/1.1 connection."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0, source=None):
        # source: a loopback address to connect from (127.0.0.2 and up), so
        # that a test can play several client addresses
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = b""
        self.chunk_left = 0  # bytes left in the current chunk of a chunked body
        self.need_crlf = False  # the CRLF after a chunk is still to be read
        self.body_done = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, method, path, headers=None, body=b"", content_length=True):
        lines = ["%s %s HTTP/1.1" % (method, path), "Host: relay"]
        for k, v in (headers or {}).items():
            lines.append("%s: %s" % (k, v))
        if content_length and (body or method == "POST"):
            lines.append("Content-Length: %d" % len(body))
        data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        self.sock.sendall(data)

    def _fill(self, timeout=None):
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        b = self.sock.recv(1 << 18)
        if not b:
            raise EOFError("connection closed by the relay")
        self.buf += b

    def read_head(self, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while b"\r\n\r\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no response head within the timeout")
            self._fill(left)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        self.chunk_left = 0
        self.need_crlf = False
        self.body_done = False
        return Response(status, parts[2] if len(parts) > 2 else "", headers)

    def read_exact(self, n, timeout=None):
        while len(self.buf) < n:
            self._fill(timeout)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_line(self, timeout=None):
        while b"\r\n" not in self.buf:
            self._fill(timeout)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_body(self, resp, timeout=None):
        """Reads a whole body (content-length, chunked, or none for 204)."""
        if resp.status in (204, 304) or resp.status < 200:
            return b""
        if "content-length" in resp.headers:
            resp.body = self.read_exact(int(resp.headers["content-length"]), timeout)
            return resp.body
        if resp.headers.get("transfer-encoding", "").lower() == "chunked":
            out = b""
            while True:
                piece = self.read_some(timeout)
                if piece is None:
                    break
                out += piece
            resp.body = out
            return out
        # until close
        out = self.buf
        self.buf = b""
        try:
            while True:
                self._fill(timeout)
                out += self.buf
                self.buf = b""
        except EOFError:
            pass
        resp.body = out
        return out

    def read_some(self, timeout=None):
        """Next piece of a chunked body; None at its end."""
        if self.body_done:
            return None
        if self.need_crlf:
            self.read_exact(2, timeout)
            self.need_crlf = False
        if self.chunk_left == 0:
            size_line = self.read_line(timeout)
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                # trailers until an empty line
                while self.read_line(timeout) != b"":
                    pass
                self.body_done = True
                return None
            self.chunk_left = size
        if not self.buf:
            self._fill(timeout)
        n = min(self.chunk_left, len(self.buf))
        out, self.buf = self.buf[:n], self.buf[n:]
        self.chunk_left -= n
        if self.chunk_left == 0:
            self.need_crlf = True
        return out

    def request(self, method, path, headers=None, body=b"", timeout=None):
        self.send(method, path, headers, body)
        resp = self.read_head(timeout)
        self.read_body(resp, timeout)
        return resp


class Frames:
    """Incremental decoder of a framed stream: feed bytes, pop frames."""

    def __init__(self):
        self.buf = b""

    def feed(self, data):
        self.buf += data

    def pop(self):
        if len(self.buf) < 4:
            return None
        t = self.buf[0]
        n = struct.unpack(">I", b"\0" + self.buf[1:4])[0]
        if len(self.buf) < 4 + n:
            return None
        payload = self.buf[4:4 + n]
        self.buf = self.buf[4 + n:]
        return (t, payload)


class H1Stream:
    """A framed stream read from the chunked body of an H1 response."""

    def __init__(self, conn, resp):
        self.conn = conn
        self.resp = resp
        self.frames = Frames()
        self.ended = False

    def next_frame(self, timeout=10.0):
        """The next frame, or None when the response ended."""
        deadline = time.monotonic() + timeout
        while True:
            f = self.frames.pop()
            if f is not None:
                return f
            if self.ended:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no frame within %.1fs" % timeout)
            piece = self.conn.read_some(left)
            if piece is None:
                self.ended = True
            else:
                self.frames.feed(piece)

    def next_non_ping(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            f = self.next_frame(max(0.01, deadline - time.monotonic()))
            if f is None or f[0] != PING:
                return f

    def read_data(self, n, timeout=10.0):
        """Reads DATA payloads until n bytes came; returns them. Fails on other frames."""
        out = b""
        deadline = time.monotonic() + timeout
        while len(out) < n:
            f = self.next_non_ping(max(0.01, deadline - time.monotonic()))
            if f is None or f[0] != DATA:
                raise AssertionError("expected DATA, got %r after %d bytes" % (f if f is None else (FRAME_NAMES.get(f[0]), f[1][:80]), len(out)))
            out += f[1]
        return out


def bearer(key):
    return {"Authorization": "Bearer " + (key.text if hasattr(key, "text") else key)}


class Api:
    """The relay's API for one test: paths and auth headers. Each call opens
    its own connection, so held requests can overlap."""

    def __init__(self, port):
        self.port = port

    def conn(self):
        return H1(self.port)

    def start(self, path, key=None, headers=None, body=b""):
        """Sends a POST on a new connection; returns the connection (read later)."""
        c = H1(self.port)
        h = dict(bearer(key)) if key is not None else {}
        h.update(headers or {})
        c.send("POST", path, h, body)
        return c

    def post(self, path, key=None, headers=None, body=b"", timeout=10.0):
        c = self.start(path, key, headers, body)
        try:
            r = c.read_head(timeout)
            c.read_body(r, timeout)
            return r
        finally:
            c.close()

    def get(self, path, headers=None, timeout=10.0):
        c = H1(self.port)
        try:
            return c.request("GET", path, headers or {}, timeout=timeout)
        finally:
            c.close()

    # paths
    @staticmethod
    def listen_path(server):
        return "/v1/servers/%s/listen" % server

    @staticmethod
    def connect_path(server, port):
        return "/v1/servers/%s/ports/%s/connect" % (server, port)

    @staticmethod
    def conn_path(server, cid, verb):
        return "/v1/servers/%s/conns/%s/%s" % (server, cid, verb)

    def chunk(self, server, cid, verb, key, seq, data=b"", fin=False, timeout=10.0):
        h = {"PTTH-Seq": str(seq)}
        if fin:
            h["PTTH-Fin"] = "1"
        return self.post(self.conn_path(server, cid, verb), key, h, data, timeout)


def open_tunnel(api, server, port, skey, ckey, ports="ssh,web"):
    """listen -> connect -> accept. Returns (cid, up_stream, down_stream) where
    up_stream is the server's accept stream (what the client sends) and
    down_stream the client's connect stream (what the server sends)."""
    lc = api.start(api.listen_path(server), skey, {"PTTH-Ports": ports})
    time.sleep(0.05)
    cc = api.start(api.connect_path(server, port), ckey)
    lr = lc.read_head()
    lc.read_body(lr)
    lc.close()
    assert lr.status == 200, lr
    cid = lr.headers["ptth-conn"]
    ac = api.start(api.conn_path(server, cid, "accept"), skey)
    ar = ac.read_head()
    assert ar.status == 200, ar
    cr = cc.read_head()
    assert cr.status == 200, cr
    assert cr.headers.get("ptth-conn") == cid, cr
    return cid, H1Stream(ac, ar), H1Stream(cc, cr)


# ---- HTTP/2 through curl ----------------------------------------------------

def curl_h2(url, key=None, headers=None, data=None, timeout=15, extra=()):
    """One request over cleartext HTTP/2 (prior knowledge). Returns
    (status, headers, body)."""
    argv = ["curl", "-sS", "--http2-prior-knowledge", "-D", "-", "-o", "-", "--max-time", str(timeout)]
    if key is not None:
        argv += ["-H", "Authorization: Bearer " + (key.text if hasattr(key, "text") else key)]
    for k, v in (headers or {}).items():
        argv += ["-H", "%s: %s" % (k, v)]
    if data is not None:
        argv += ["-X", "POST", "--data-binary", "@-"]
    argv += list(extra) + [url]
    p = subprocess.run(argv, input=data if data is not None else b"", capture_output=True, timeout=timeout + 5)
    return parse_curl_output(p.stdout, p.stderr)


def parse_curl_output(out, err=b""):
    if b"\r\n\r\n" not in out:
        raise AssertionError("curl gave no response: %r %r" % (out[:200], err[:400]))
    head, body = out.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


class CurlStream:
    """A curl process holding one HTTP/2 request open; its stdout carries the
    response head (-D -) then the body (a framed stream)."""

    def __init__(self, url, key, headers=None, data=b"", timeout=60):
        argv = ["curl", "-sS", "-N", "--http2-prior-knowledge", "-D", "-", "-o", "-", "--max-time", str(timeout),
                "-H", "Authorization: Bearer " + (key.text if hasattr(key, "text") else key), "-X", "POST",
                "--data-binary", "@-"]
        for k, v in (headers or {}).items():
            argv += ["-H", "%s: %s" % (k, v)]
        argv.append(url)
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.proc.stdin.write(data)
        self.proc.stdin.close()
        self.buf = b""
        self.frames = Frames()
        self.status = None
        self.headers = {}
        self.eof = False

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("curl stream: nothing within the timeout")
        r, _, _ = select.select([self.proc.stdout], [], [], left)
        if not r:
            raise socket.timeout("curl stream: nothing within the timeout")
        b = os.read(self.proc.stdout.fileno(), 1 << 16)
        if not b:
            self.eof = True
        self.buf += b

    def read_head(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            if self.eof:
                raise AssertionError("curl ended without a response: %r" % self.proc.stderr.read()[:400])
            self._fill(deadline)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        for line in lines[1:]:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.frames.feed(self.buf)
        self.buf = b""
        return self.status

    def next_frame(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            f = self.frames.pop()
            if f is not None:
                return f
            if self.eof:
                return None
            self._fill(deadline)
            self.frames.feed(self.buf)
            self.buf = b""

    def next_non_ping(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            f = self.next_frame(max(0.01, deadline - time.monotonic()))
            if f is None or f[0] != PING:
                return f

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self.proc.stdout.close()
        self.proc.stderr.close()


# ---- a raw HTTP/2 connection ------------------------------------------------

class RawH2:
    """A bare HTTP/2 client connection (prior knowledge) that sends frames
    and never reads unless told: for tests that need the relay's writes to
    one connection to wait (its socket buffers full) while the client keeps
    several requests open on it. Header blocks are HPACK literals without
    indexing and without Huffman coding (names and values under 127 bytes).
    The client advertises windows of 2^31-1, so that only TCP holds the
    relay back."""

    def __init__(self, port, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.next_id = 1
        big = 0x7FFFFFFF
        self.sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" +
                          self.frame(4, 0, 0, struct.pack(">HI", 4, big)) +  # SETTINGS_INITIAL_WINDOW_SIZE
                          self.frame(8, 0, 0, struct.pack(">I", big - 65535)))  # connection WINDOW_UPDATE

    @staticmethod
    def frame(ftype, flags, stream_id, payload=b""):
        return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream_id) + payload

    @staticmethod
    def literal(name, value):
        name, value = name.encode(), value.encode()
        assert len(name) < 127 and len(value) < 127
        return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value

    def post(self, path, headers=None, body=b""):
        """Opens a stream with a POST of body (HEADERS, then one DATA frame
        unless body is empty); returns its stream id. Nothing is read."""
        sid = self.next_id
        self.next_id += 2
        block = b"".join(self.literal(k, v) for k, v in [(":method", "POST"), (":scheme", "http"), (":path", path),
                                                          (":authority", "relay")] + list((headers or {}).items()))
        if body:
            self.sock.sendall(self.frame(1, 0x4, sid, block) + self.frame(0, 0x1, sid, body))
        else:
            self.sock.sendall(self.frame(1, 0x5, sid, block))
        return sid

    def ping(self):
        self.sock.sendall(self.frame(6, 0, 0, b"\0" * 8))

    def read_frames(self, timeout):
        """The frames that arrive within timeout, as (type, flags, stream
        id, payload); ends early at EOF, marked by a final (None, ...)."""
        out = []
        buf = getattr(self, "_rbuf", b"")
        deadline = time.monotonic() + timeout
        while True:
            while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
                n = int.from_bytes(buf[:3], "big")
                out.append((buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF, buf[9:9 + n]))
                buf = buf[9 + n:]
            left = deadline - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                break
            try:
                piece = self.sock.recv(1 << 16)
            except OSError:
                piece = b""
            if not piece:
                out.append((None, 0, 0, b""))
                break
            buf += piece
        self._rbuf = buf
        return out

    def reset(self):
        """Closes with SO_LINGER 0: the relay gets RST."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
