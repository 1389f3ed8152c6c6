#!/usr/bin/env python3
"""Where a proxied request's instructions go in frontdoor: its ProxyHttp hooks and its TLS server
stream, inclusive (what each calls counted in), per request, from a callgrind file of N requests
(bench/proxy_callgrind.sh prints it after its totals).

    bench/callgrind_parts.py CALLGRIND_FILE N
"""
import re, subprocess, sys

PARTS = [
    ("request_filter (the chain)", r"ProxyHttp>::request_filter::\{\{closure\}\}$"),
    ("upstream_peer", r"ProxyHttp>::upstream_peer::\{\{closure\}\}$"),
    ("upstream_request_filter", r"ProxyHttp>::upstream_request_filter::\{\{closure\}\}$"),
    ("upstream_response_filter", r"ProxyHttp>::upstream_response_filter::\{\{closure\}\}$"),
    ("response_filter", r"ProxyHttp>::response_filter::\{\{closure\}\}$"),
    ("logging", r"ProxyHttp>::logging::\{\{closure\}\}$"),
    ("TLS server stream, reads", r"ServerStream as tokio::io::async_read::AsyncRead>::poll_read$"),
    ("TLS server stream, writes", r"ServerStream as tokio::io::async_write::AsyncWrite>::poll_(write|flush)$"),
]


def main():
    path, n = sys.argv[1], int(sys.argv[2])
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--show=Ir", "--threshold=100", path],
                         capture_output=True, text=True, check=True).stdout
    found = {label: 0 for label, _ in PARTS}
    for line in out.splitlines():
        # "  12,902,123 (9.18%)  ???:function [binary]"
        m = re.match(r"\s*([\d,]+)\s.*?\S+:(.*) \[", line)
        if not m:
            continue
        for label, pattern in PARTS:
            if re.search(pattern, m.group(2)):
                found[label] += int(m.group(1).replace(",", ""))
    print("frontdoor's parts, inclusive instructions per request:")
    for label, ir in found.items():
        print(f"  {label:<28} {ir / n / 1000:>6.1f}k" if ir else f"  {label:<28} {'-':>7}")


if __name__ == "__main__":
    main()
