"""Hostile HTTP servers on loopback for the fetch-cap tests: endless bodies, a huge
Content-Length, drip feeds, redirect chains, and a server that accepts and never
answers. Every server records the paths it was asked for, so a test can prove that a
blocked URL was never fetched."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

ENDLESS_CHUNK = b"\xff" * 65536


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024
    daemon_threads = True


class RouteServer:
    """An HTTP server on `host` (any loopback address) answering `routes[path](request)`;
    `hits` lists every path requested, in order; `served` maps a path to the seconds it
    was served, until done or until the client hung up."""

    def __init__(self, host: str, routes: dict[str, Callable]):
        self.host, self.routes, self.hits, self.served = host, routes, [], {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                path = urlsplit(self.path).path
                outer.hits.append(path)
                handler = outer.routes.get(path) or outer.routes.get(path.rsplit("/", 1)[0] + "/*")
                if handler is None:
                    self.send_error(404)
                    return
                t0 = time.monotonic()
                try:
                    handler(self)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up: the point of the test
                    pass
                finally:
                    outer.served[path] = time.monotonic() - t0

        self.httpd = _Server((host, 0), Handler)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}/{path.lstrip('/')}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


class SilentServer:
    """Accepts TCP connections and never sends a byte (holds them until closed)."""

    def __init__(self, host: str = "127.0.0.1"):
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(64)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
                self.held.append(conn)
            except OSError:
                continue

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}/{path.lstrip('/')}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop = True
        self._thread.join()
        for c in self.held:
            c.close()
        self.sock.close()


# --- handlers ------------------------------------------------------------------------

def body(data: bytes, ctype: str = "image/jpeg"):
    def handler(req):
        req.send_response(200)
        req.send_header("Content-Type", ctype)
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)

    return handler


def endless(req, announce: int | None = None, seconds: float = 30.0):
    """`200 image/jpeg` and bytes as fast as the client reads, for `seconds` at most
    (a test that fails must still end); `announce` sends that Content-Length first."""
    req.send_response(200)
    req.send_header("Content-Type", "image/jpeg")
    if announce is not None:
        req.send_header("Content-Length", str(announce))
    req.end_headers()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        req.wfile.write(ENDLESS_CHUNK)


def huge_content_length(req):
    endless(req, announce=10**12)


def drip(interval: float, seconds: float = 30.0, length: int | None = 100_000):
    """A JPEG-looking body sent one byte every `interval` seconds (`length`: the
    Content-Length announced, under the tests' caps; None: none, the body ends at close)."""

    def handler(req):
        req.send_response(200)
        req.send_header("Content-Type", "image/jpeg")
        if length is not None:
            req.send_header("Content-Length", str(length))
        else:
            req.close_connection = True
        req.end_headers()
        req.wfile.flush()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            req.wfile.write(b"\xff")
            req.wfile.flush()
            time.sleep(interval)

    return handler


def drip_headers(interval: float, seconds: float = 30.0):
    """The status line, then endless header bytes one at a time: the body never starts."""

    def handler(req):
        req.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        req.wfile.flush()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            req.wfile.write(b"a")
            req.wfile.flush()
            time.sleep(interval)
        req.close_connection = True

    return handler


def cut_chunked(req):
    """A chunked body whose connection closes inside its second chunk."""
    req.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"5\r\nhello\r\n100\r\nabc")
    req.wfile.flush()
    req.close_connection = True


def cut_body(req):
    """A Content-Length of 1000 and 10 bytes, then the connection closes."""
    req.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 1000\r\n\r\n0123456789")
    req.wfile.flush()
    req.close_connection = True


def status(code: int):
    def handler(req):
        req.send_response(code)
        req.send_header("Content-Length", "0")
        req.end_headers()

    return handler


def redirect(target: str):
    def handler(req):
        req.send_response(302)
        req.send_header("Location", target)
        req.send_header("Content-Length", "0")
        req.end_headers()

    return handler


def chain(req):
    """/chain/N redirects to /chain/N+1, forever (a relative Location)."""
    n = int(req.path.rsplit("/", 1)[-1])
    redirect(f"/chain/{n + 1}")(req)


def self_signed_cert(folder, ip: str) -> tuple[str, str]:
    """(cert.pem, key.pem) for a certificate valid for `ip` only, signed by itself."""
    import datetime
    import ipaddress
    from pathlib import Path

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = Path(folder) / "cert.pem", Path(folder) / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


class TlsServer(RouteServer):
    """RouteServer over TLS with the given certificate."""

    def __init__(self, host: str, routes: dict[str, Callable], cert: str, key: str):
        import ssl

        super().__init__(host, routes)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)

    def url(self, path: str) -> str:
        return super().url(path).replace("http://", "https://", 1)


class DripTlsServer(SilentServer):
    """Accepts, then answers the TLS handshake with a record header and one byte every
    `interval` seconds: a handshake that never completes but is never idle."""

    def __init__(self, host: str, interval: float):
        super().__init__(host)
        self.interval = interval

    def _accept(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.held.append(conn)
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn):
        try:
            conn.sendall(b"\x16\x03\x03\x40\x00")  # a handshake record of 16384 bytes ...
            while not self._stop:
                conn.sendall(b"\x02")  # ... arriving one byte at a time
                time.sleep(self.interval)
        except OSError:
            pass

    def url(self, path: str) -> str:
        return super().url(path).replace("http://", "https://", 1)
