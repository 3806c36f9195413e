#!/usr/bin/env python3
"""fake_dns.py: a tiny authoritative name server for the DANE tests
(smtp_dane.sh), standard library only.

usage: fake_dns.py ZONES.json ADDRESS READY_FILE

ZONES.json: {"records": {"name": {"A": ["127.0.0.1"], "MX": [[10, "mx.x"]],
"TLSA": [[3, 1, 1, "hex"]], "CNAME": "target"}, ...}, "signed": ["signed.test", ...],
"unsigned_root": false}.
Answers UDP questions on ADDRESS:53 for A, MX, TLSA and NS (the root's
NS, for Postfix's dnssec_probe): the records of that name and type, NODATA
for a known name without them, NXDOMAIN for an unknown one.  A name with a
CNAME is answered as a recursive resolver does: the CNAME, then the
target's answer (chains followed up to 8 links).  The AD bit
("authentic data", RFC 4035) is set in answers whose names are all at or
under a "signed" suffix (and for the root, unless "unsigned_root"), as a
validating resolver would;
never for others.  TLSA questions for names with a "servfail" label get
SERVFAIL (a failed lookup).  The READY_FILE
is written once the socket listens.  Runs until killed.
"""
import json
import socket
import struct
import sys

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "MX": 15, "TLSA": 52}


def encode_name(name):
    out = b""
    for label in name.strip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def parse_question(msg):
    pos, labels = 12, []
    while msg[pos] != 0:
        n = msg[pos]
        labels.append(msg[pos + 1:pos + 1 + n].decode("ascii", "replace").lower())
        pos += 1 + n
    qtype, qclass = struct.unpack(">HH", msg[pos + 1:pos + 5])
    return ".".join(labels), qtype, pos + 5


def rdata(rtype, value):
    if rtype == "A":
        return socket.inet_aton(value)
    if rtype == "MX":
        return struct.pack(">H", value[0]) + encode_name(value[1])
    if rtype in ("NS", "CNAME"):
        return encode_name(value)
    if rtype == "TLSA":
        return bytes(value[:3]) + bytes.fromhex(value[3])
    raise ValueError(rtype)


def main():
    zones = json.load(open(sys.argv[1]))
    records = {k.lower().strip("."): v for k, v in zones["records"].items()}
    records.setdefault("", {"NS": ["ns.test"]})
    signed = [s.lower().strip(".") for s in zones.get("signed", [])]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((sys.argv[2], 53))
    open(sys.argv[3], "w").close()
    while True:
        msg, peer = sock.recvfrom(4096)
        try:
            qname, qtype, end = parse_question(msg)
        except (IndexError, struct.error):
            continue
        ident, qflags = struct.unpack(">HH", msg[:4])
        flags = 0x8000 | 0x0400 | (qflags & 0x0100) | 0x0080
        def under_signed(name):
            return (name == "" and not zones.get("unsigned_root")) or any(
                name == z or name.endswith("." + z) for z in signed)
        answers = []
        chain = [qname]
        while qname in records and "CNAME" in records[qname] and qtype != TYPES["CNAME"] and len(chain) < 9:
            target = records[qname]["CNAME"].lower().strip(".")
            data = rdata("CNAME", target)
            answers.append(encode_name(qname) + struct.pack(">HHIH", TYPES["CNAME"], 1, 60, len(data)) + data)
            qname = target
            chain.append(qname)
        if all(under_signed(n) for n in chain):
            flags |= 0x0020
        if qtype == TYPES["TLSA"] and "servfail" in qname.split("."):
            flags = (flags & ~0x0020) | 2
        elif qname not in records:
            flags |= 3
        else:
            for rtype, values in records[qname].items():
                if TYPES.get(rtype) == qtype:
                    for v in (values if isinstance(values, list) else [values]):
                        data = rdata(rtype, v)
                        answers.append(encode_name(qname) + struct.pack(">HHIH", qtype, 1, 60, len(data)) + data)
        header = struct.pack(">HHHHHH", ident, flags, 1, len(answers), 0, 0)
        sock.sendto(header + msg[12:end] + b"".join(answers), peer)


if __name__ == "__main__":
    main()
