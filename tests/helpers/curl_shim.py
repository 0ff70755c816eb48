"""The part of curl the README uses, for machines without curl (CI may have only Python).

The walkthrough tests use the real curl when it is installed. Options: -s/-S (ignored), -H,
-X, -d (POST unless -X, form content type, as curl), -u, -o; the body is printed as received,
HTTP errors included, exit code 0; a connection failure is exit 7, as curl's.
"""

from __future__ import annotations

import base64
import sys
import urllib.error
import urllib.request


def main(argv: list[str]) -> int:
    headers: dict[str, str] = {}
    method: str | None = None
    data: bytes | None = None
    output: str | None = None
    url = ""
    args = iter(argv)
    for arg in args:
        if arg in ("-s", "-S", "-sS"):
            continue
        if arg == "-H":
            name, _, value = next(args).partition(":")
            headers[name.strip()] = value.strip()
        elif arg == "-X":
            method = next(args)
        elif arg == "-d":
            data = next(args).encode()
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif arg == "-u":
            headers["Authorization"] = "Basic " + base64.b64encode(next(args).encode()).decode()
        elif arg == "-o":
            output = next(args)
        elif arg.startswith("-"):
            print(f"curl shim: unsupported option {arg}", file=sys.stderr)
            return 2
        else:
            url = arg
    request = urllib.request.Request(
        url, data=data, headers=headers, method=method or ("POST" if data else "GET")
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
    except urllib.error.HTTPError as error:
        body = error.read()
    except OSError:
        return 7
    if output is not None:
        with open(output, "wb") as file:
            file.write(body)
    else:
        sys.stdout.buffer.write(body)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
