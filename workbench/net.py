"""Which host names and addresses are this machine only: the one test, asked by `llm-serve` and by
the web app's guard. Leaves out: binding, TLS and proxies (the servers' own).
"""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine only; a host name other than
    "localhost", or "" (every interface), counts as reachable from outside."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
