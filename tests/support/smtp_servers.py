#!/usr/bin/env python3
"""Real SMTP servers (aiosmtpd) and misbehaving sockets for the connection-test suite.

    smtp_servers.py MODE CERT_DIR [--user U --password P [--password P2 ...]] [--jwks URL] [--allow-sender ADDR]
                    [--mailbox DIR]

Starts one server on 127.0.0.1 (ephemeral port), prints "READY <port>" and serves until its
standard input closes (the Rust test holds the pipe; dropping it stops the server).
CERT_DIR receives ca.pem (the test CA) on first use; server certificates are signed by it.
The aiosmtpd modes refuse every message (DATA answers 554) unless --mailbox DIR is given: then
each accepted message is written to DIR/<n>.json (mail_from, rcpt_tos, data) and answered
"250 2.0.0 Ok: queued as <n>", and a recipient whose local part is "nobody" is refused at
RCPT TO with 550 5.1.1 (an unknown user).

Modes:
  starttls-auth     STARTTLS required, AUTH PLAIN/LOGIN required (U/P)
  implicit-tls      TLS from the first byte, AUTH required (U/P)
  plain-auth        plain text, AUTH allowed without TLS (U/P)
  auth-required     plain text, no AUTH offered, MAIL FROM answers 530
  reject-sender     STARTTLS + AUTH, MAIL FROM answers 550 unless the sender is --allow-sender
  xoauth2           STARTTLS + AUTH XOAUTH2 only; bearer tokens must be JWTs signed by --jwks
  broken-starttls   advertises STARTTLS, answers 220 and then sends garbage instead of TLS
  never-greets      accepts connections and never says anything
  untrusted-cert    STARTTLS with a self-signed certificate (not from the test CA)
  wrong-host        STARTTLS with a test-CA certificate for wrong.example, not localhost
  full-backlog      a listening socket whose accept queue is full: connects time out
  closed            a port that was just closed: connects are refused
  no-newline        answers every connection with bytes that never end a line (a hostile server)
  endless-https     HTTPS (test-CA certificate for localhost) answering 200 with a body that
                    never ends (a hostile token endpoint)
  cert              prints "CERT <cert.pem> <key.pem>": a certificate for localhost from the test CA
"""
import asyncio
import base64
import datetime
import ipaddress
import os
import socket
import ssl
import sys
import threading
import logging
import warnings

# Keep the test output readable: aiosmtpd warns about AUTH without TLS (which plain-auth wants)
# and logs a traceback for every handshake the tests break on purpose.
warnings.simplefilter("ignore")
logging.getLogger("mail.log").setLevel(logging.CRITICAL)

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert(subject_cn, key, issuer_cn, issuer_key, sans, ca=False):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]))
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1))
               .not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


def _ca(cert_dir):
    """The test CA, created once per directory (several servers share it)."""
    ca_pem, ca_key_pem = os.path.join(cert_dir, "ca.pem"), os.path.join(cert_dir, "ca.key")
    lock = os.path.join(cert_dir, ".lock")
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL)
            os.close(fd)
            break
        except FileExistsError:
            if os.path.exists(ca_pem):
                break
    if not os.path.exists(ca_pem):
        key = _key()
        cert = _cert("email-operator test CA", key, "email-operator test CA", key, None, ca=True)
        with open(ca_key_pem, "wb") as f:
            f.write(_pem_key(key))
        with open(ca_pem + ".tmp", "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        os.rename(ca_pem + ".tmp", ca_pem)
    while not os.path.exists(ca_key_pem):
        pass
    with open(ca_key_pem, "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), None)
    with open(ca_pem, "rb") as f:
        ca_cert = x509.load_pem_x509_certificate(f.read())
    return ca_cert, ca_key


def server_context(cert_dir, name="localhost", self_signed=False):
    key = _key()
    sans = [x509.DNSName(name)]
    if name == "localhost":
        sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    if self_signed:
        cert = _cert(name, key, name, key, sans)
    else:
        ca_cert, ca_key = _ca(cert_dir)
        cert = _cert(name, key, ca_cert.subject.rfc4514_string().split("=", 1)[1], ca_key, sans)
    tag = f"{name}-{'self' if self_signed else 'ca'}-{os.getpid()}"
    cert_path, key_path = os.path.join(cert_dir, tag + ".pem"), os.path.join(cert_dir, tag + ".key")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(_pem_key(key))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert_path, key_path)
    return ctx


def ready(port):
    print(f"READY {port}", flush=True)


def wait_for_stdin_close():
    sys.stdin.read()


def run_aiosmtpd(mode, cert_dir, user, passwords, jwks, allow_sender, mailbox):
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

    # An XOAUTH2 initial response carries a JWT, longer than the default 512-byte command limit.
    SMTP.command_size_limit = 8192

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login.decode() == user and auth_data.password.decode() in passwords)
        # handled=False: aiosmtpd itself answers 535 on failure (handled=True would answer nothing).
        return AuthResult(success=ok, handled=False)

    class Handler:
        async def handle_MAIL(self, server, session, envelope, address, mail_options):
            if mode == "reject-sender" and address != allow_sender:
                return "550 5.7.1 Sender address rejected: relay not permitted for " + address
            envelope.mail_from = address
            return "250 OK"

        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            if mailbox and address.split("@")[0].lower() == "nobody":
                return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            if not mailbox:
                return "554 5.6.0 this test server accepts no messages"
            import json
            n = len(os.listdir(mailbox)) + 1
            with open(os.path.join(mailbox, f"{n}.json"), "w") as f:
                json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                           "data": envelope.content.decode("utf-8", "replace")}, f)
            return f"250 2.0.0 Ok: queued as {n}"

    if mode == "xoauth2":
        import jwt

        jwk_client = jwt.PyJWKClient(jwks)

        async def auth_XOAUTH2(self, server, args):
            # args: ["XOAUTH2", initial-response]
            try:
                raw = base64.b64decode(args[1]).decode()
                fields = dict(p.split("=", 1) for p in raw.split("\x01") if "=" in p)
                token = fields["auth"].removeprefix("Bearer ")
                key = jwk_client.get_signing_key_from_jwt(token)
                jwt.decode(token, key.key, algorithms=["RS256"], options={"verify_aud": False})
                ok = fields.get("user") == user
            except Exception:  # any malformed or unverifiable token is a failed login
                ok = False
            return AuthResult(success=ok, handled=False)

        Handler.auth_XOAUTH2 = auth_XOAUTH2

    # aiosmtpd's Controller cannot use port 0 (it connects to its own port to check readiness),
    # so take a free ephemeral port first.
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    kwargs = dict(hostname="127.0.0.1", port=port, server_hostname="localhost")
    if mode in ("starttls-auth", "reject-sender", "xoauth2"):
        kwargs.update(tls_context=server_context(cert_dir), require_starttls=True,
                      auth_required=True, authenticator=authenticator)
    elif mode == "untrusted-cert":
        kwargs.update(tls_context=server_context(cert_dir, self_signed=True), require_starttls=True)
    elif mode == "wrong-host":
        kwargs.update(tls_context=server_context(cert_dir, name="wrong.example"), require_starttls=True)
    elif mode == "implicit-tls":
        kwargs.update(ssl_context=server_context(cert_dir), auth_required=True,
                      auth_require_tls=False, authenticator=authenticator)
    elif mode == "plain-auth":
        kwargs.update(auth_required=True, auth_require_tls=False, authenticator=authenticator)
    elif mode == "auth-required":
        kwargs.update(auth_required=True, auth_require_tls=True)
    if mode == "xoauth2":
        kwargs["auth_exclude_mechanism"] = ["LOGIN", "PLAIN"]
    controller = Controller(Handler(), **kwargs)
    controller.start()
    ready(port)
    wait_for_stdin_close()
    controller.stop()


async def broken_starttls(reader, writer):
    writer.write(b"220 localhost ESMTP broken\r\n")
    await writer.drain()
    while line := await reader.readline():
        cmd = line.decode(errors="replace").strip().upper()
        if cmd.startswith(("EHLO", "HELO")):
            writer.write(b"250-localhost\r\n250-STARTTLS\r\n250 8BITMIME\r\n")
        elif cmd == "STARTTLS":
            writer.write(b"220 Ready to start TLS\r\n")
            await writer.drain()
            writer.write(b"this is not a TLS server hello\r\n" * 4)
            await writer.drain()
            writer.close()
            return
        elif cmd == "QUIT":
            writer.write(b"221 bye\r\n")
            await writer.drain()
            writer.close()
            return
        else:
            writer.write(b"502 not implemented\r\n")
        await writer.drain()


async def never_greets(reader, writer):
    await asyncio.sleep(3600)


async def no_newline(reader, writer):
    chunk = b"2" * 65536
    try:
        while True:
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass


def make_endless_https(cert_dir):
    async def endless_https(reader, writer):
        try:
            await reader.read(65536)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n")
            chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
            # Until the client hangs up. Over TLS, drain() returns at once when the peer is
            # gone (the writes go nowhere, logging each), so yield to the loop each time or the
            # lost connection is never delivered and this loop spins forever.
            while not writer.is_closing():
                writer.write(chunk)
                await writer.drain()
                await asyncio.sleep(0)
        except (ConnectionError, OSError, ssl.SSLError):
            pass
    return endless_https


def run_asyncio(handler, tls=None):
    loop = asyncio.new_event_loop()

    async def start():
        return await asyncio.start_server(handler, "127.0.0.1", 0, ssl=tls)

    server = loop.run_until_complete(start())
    ready(server.sockets[0].getsockname()[1])
    threading.Thread(target=lambda: (wait_for_stdin_close(), loop.call_soon_threadsafe(loop.stop)),
                     daemon=True).start()
    loop.run_forever()


def run_full_backlog():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    # Fill the accept queue (never accepted); further SYNs are dropped, so connects time out.
    for _ in range(8):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(s)
    ready(port)
    wait_for_stdin_close()


def run_closed():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    ready(port)
    wait_for_stdin_close()


def main():
    args = sys.argv[1:]
    mode, cert_dir = args[0], args[1]
    opts = {}
    for key, value in zip(args[2::2], args[3::2]):
        opts.setdefault(key, []).append(value)  # --password may be given more than once
    last = lambda key, default=None: opts.get(key, [default])[-1]
    os.makedirs(cert_dir, exist_ok=True)
    _ca(cert_dir)  # every mode leaves ca.pem for the test, whichever server starts first
    if mode == "cert":
        # A certificate for localhost signed by the test CA, for other test servers (HTTPS).
        server_context(cert_dir)
        tag = f"localhost-ca-{os.getpid()}"
        print("CERT", os.path.join(cert_dir, tag + ".pem"), os.path.join(cert_dir, tag + ".key"), flush=True)
        return
    if mode == "broken-starttls":
        run_asyncio(broken_starttls)
    elif mode == "never-greets":
        run_asyncio(never_greets)
    elif mode == "no-newline":
        run_asyncio(no_newline)
    elif mode == "endless-https":
        run_asyncio(make_endless_https(cert_dir), tls=server_context(cert_dir))
    elif mode == "full-backlog":
        run_full_backlog()
    elif mode == "closed":
        run_closed()
    else:
        run_aiosmtpd(mode, cert_dir, last("--user", "user@yourcompany.com"),
                     opts.get("--password", [""]), last("--jwks"), last("--allow-sender"),
                     last("--mailbox"))


if __name__ == "__main__":
    main()
