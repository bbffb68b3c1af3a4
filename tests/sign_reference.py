#!/usr/bin/env python3
"""Reference signer for tests/signature_reference.rs, written from reference section 6 with the
standard library only, independently of src/rpc/signature.rs.

Reads a JSON list of cases on stdin and writes a JSON list of signatures on stdout, one per
case, in order. A case is either
  {"scheme": "v1", "method": "GET", "params": [[name, value], ...], "secret": "..."}
or
  {"scheme": "v3", "method": "POST", "query": [[name, value], ...],
   "headers": [[name, value], ...], "signed_headers": [name, ...],
   "body_hex": "...", "secret": "..."}
"""

import base64
import hashlib
import hmac
import json
import sys
from urllib.parse import quote


def percent_encode(text):
    # RFC 3986: only the unreserved set stays; quote() writes upper-case hex over UTF-8.
    return quote(text, safe="-_.~", encoding="utf-8")


def canonical_query(pairs):
    # Python orders str by code point, which is the byte order of their UTF-8.
    ordered = sorted((name, value) for name, value in pairs)
    return "&".join(percent_encode(n) + "=" + percent_encode(v) for n, v in ordered)


def sign_v1(case):
    params = [(n, v) for n, v in case["params"] if n != "Signature"]
    string_to_sign = (
        case["method"] + "&" + percent_encode("/") + "&" + percent_encode(canonical_query(params))
    )
    key = (case["secret"] + "&").encode("utf-8")
    digest = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def sign_v3(case):
    names = sorted({name.lower() for name in case["signed_headers"]})
    lines = []
    for name in names:
        value = ""
        for header, header_value in case["headers"]:
            if header.lower() == name:
                value = header_value.strip(" \t")
                break
        lines.append(name + ":" + value + "\n")
    body_hash = hashlib.sha256(bytes.fromhex(case["body_hex"])).hexdigest()
    canonical_request = "\n".join(
        [
            case["method"],
            "/",
            canonical_query(case["query"]),
            "".join(lines),
            ";".join(names),
            body_hash,
        ]
    )
    string_to_sign = (
        "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
    )
    key = case["secret"].encode("utf-8")
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def main():
    cases = json.load(sys.stdin)
    out = []
    for case in cases:
        if case["scheme"] == "v1":
            out.append(sign_v1(case))
        elif case["scheme"] == "v3":
            out.append(sign_v3(case))
        else:
            raise SystemExit("unknown scheme " + repr(case["scheme"]))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
