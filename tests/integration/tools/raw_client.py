#!/usr/bin/env python3
"""A hand-driven client of migrated's protocol, for tests that play a
misbehaving or unauthorised party: TLS with any certificate, a Hello that
says whatever it is told, then one request. Prints one JSON object:
{"stage": "tls"|"hello"|"request", "ok": bool, "code": int, "message": str}.

usage: raw_client.py PB_DIR HOST PORT CA CERT KEY REQUEST
         [--hello-node NAME] [--hello-role daemon|controller]
REQUEST: status | migrate | pull
PB_DIR holds migrated_pb2.py (protoc --python_out).
"""
import argparse
import json
import socket
import ssl
import struct
import subprocess
import sys


def frame(env):
    header = env.SerializeToString()
    return struct.pack(">II", len(header), 0) + header


def read_exact(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


def read_frame(sock, pb):
    header_len, payload_len = struct.unpack(">II", read_exact(sock, 8))
    env = pb.Envelope()
    env.ParseFromString(read_exact(sock, header_len))
    read_exact(sock, payload_len)
    return env


def say(stage, ok, code=0, message=""):
    print(json.dumps({"stage": stage, "ok": ok, "code": code, "message": message}))
    sys.exit(0)


def main():
    ap = argparse.ArgumentParser()
    for name in ("pb_dir", "host", "port", "ca", "cert", "key", "request"):
        ap.add_argument(name)
    ap.add_argument("--hello-node")
    ap.add_argument("--hello-role", default=None)
    a = ap.parse_args()
    sys.path.insert(0, a.pb_dir)
    import migrated_pb2 as pb

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False  # the name is checked against the certificate's CN, not DNS
    ctx.load_verify_locations(a.ca)
    ctx.load_cert_chain(a.cert, a.key)
    try:
        raw = socket.create_connection((a.host, int(a.port)), timeout=10)
        sock = ctx.wrap_socket(raw)
        peer_cn = dict(x[0] for x in sock.getpeercert()["subject"])["commonName"]
    except (ssl.SSLError, OSError) as e:
        say("tls", False, 6, str(e))

    # What our own certificate says, unless told to claim something else.
    subject = subprocess.run(["openssl", "x509", "-in", a.cert, "-noout", "-subject", "-nameopt", "multiline"],
                             capture_output=True, text=True, check=True).stdout
    fields = {k.strip(): v.strip() for k, v in (l.split(" = ", 1) for l in subject.splitlines() if " = " in l)}
    own_cn = a.hello_node if a.hello_node is not None else fields["commonName"]
    role = a.hello_role
    if role is None:
        role = "controller" if fields.get("organizationalUnitName") == "controller" else "daemon"
    hello = pb.Envelope()
    hello.hello.protocol_version = 2
    hello.hello.node = own_cn
    hello.hello.role = pb.ROLE_CONTROLLER if role == "controller" else pb.ROLE_DAEMON
    try:
        sock.sendall(frame(hello))
        answer = read_frame(sock, pb)
    except (ssl.SSLError, OSError, ConnectionError) as e:
        say("hello", False, 6, str(e))
    if answer.HasField("reply"):
        say("hello", answer.reply.ok, answer.reply.code, answer.reply.message)
    if not answer.HasField("hello") or answer.hello.node != peer_cn:
        say("hello", False, 5, "unexpected answer to Hello")

    req = pb.Envelope()
    req.request_id = 7
    if a.request == "status":
        req.status.SetInParent()
    elif a.request == "migrate":
        req.migrate.container = "raw-client-test"
        req.migrate.destination = "nowhere"
    elif a.request == "pull":
        req.pull.migration_id = "m-raw-client"
    else:
        say("request", False, 1, "unknown request " + a.request)
    try:
        sock.sendall(frame(req))
        answer = read_frame(sock, pb)
    except (ssl.SSLError, OSError, ConnectionError) as e:
        say("request", False, 14, str(e))
    if answer.HasField("reply"):
        say("request", answer.reply.ok, answer.reply.code, answer.reply.message)
    say("request", True, 0, "answered with message " + answer.WhichOneof("body"))


if __name__ == "__main__":
    main()
