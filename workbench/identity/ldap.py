"""Sign-in against an LDAP / Active Directory server: check a password, look a person up, read groups.

`LdapDirectory` implements `Directory` with ldap3 (pure Python). Every call opens its own
connections (safe from the web server's worker threads): as the service account (``bind_dn``, its
password read once from the environment variable ``bind_password_env`` names), it searches
``(&{user_filter}({user_attr}=NAME))`` under ``user_base`` and wants exactly one entry; a password is
checked by binding as that entry's DN on a fresh connection. Groups are the entry's ``memberOf``
plus the groups under ``group_base`` that list the DN as ``member`` or ``uniqueMember``, followed
through nested groups as ``nested`` says; they map to workbench groups through ``[auth] groups``.
Groups outside ``group_base`` are ignored, ``memberOf`` values included, so a same-named group that
someone creates elsewhere in the tree grants nothing.

Transport: ``ldaps://``, or ``ldap://`` upgraded with StartTLS before any bind; the certificate is
checked against ``ca_file`` (or the system's CAs) and the host name. A plain ``ldap://`` bind is
refused at construction unless ``allow_plaintext``. Names outside NAME_RE and empty or blank
passwords (an "unauthenticated bind" that many servers accept as anonymous) are refused before any
network traffic; names are escaped in filters all the same.

Outcomes: None means "no such user (or filtered out, or ambiguous) / wrong password". Anything else
that goes wrong once the settings have been accepted (a server unreachable, slow or untrusted, the
service account refused, a base DN missing) raises `DirectoryUnavailableError` naming the URL and what
to check, so callers can tell a directory they cannot use from a user who is gone; bad settings
raise ConfigError at construction. Passwords never appear in messages, logs or reprs.

Leaves out: SASL/Kerberos binds, client certificates, connection pools, paged group searches,
following referrals (ignored), caching (callers decide how often to ask).
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import ssl
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from urllib.parse import urlsplit

from workbench.access import NAME_RE
from workbench.errors import ConfigError, DirectoryUnavailableError, WorkbenchError
from workbench.identity.base import LDAP, DirectoryUser, map_groups

MAX_DEPTH = 10  # nested="recursive": levels of groups-in-groups followed beyond the direct ones
IN_CHAIN = "1.2.840.113556.1.4.1941"  # AD's LDAP_MATCHING_RULE_IN_CHAIN
_PER_SEARCH = 50  # member DNs OR-ed into one group search
_WRONG_CREDENTIALS = {48, 49, 50, 53}  # inappropriateAuthentication, invalidCredentials, insufficientAccess, unwilling
_ATTR_RE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)+)$")


class LdapDirectory:
    """The configured LDAP/AD directory (see module). Checks settings at construction, connects per call."""

    source = LDAP

    def __init__(self, settings, table: Mapping[str, Iterable[str]]) -> None:
        """Check ``settings`` ([auth.ldap]) and read the service password; ConfigError saying what to set."""
        self.url = (settings.url or "").strip()
        parts = _parse_url(self.url)
        self._host, self._port, self._use_ssl = parts
        if self._use_ssl and settings.start_tls:
            raise ConfigError(f"[auth.ldap] url {self.url} is ldaps:// (already encrypted): set start_tls = false")
        if not self._use_ssl and not settings.start_tls and not settings.allow_plaintext:
            raise ConfigError(f"[auth.ldap] url {self.url} is plain ldap://: passwords would cross the network in "
                              "clear. Use an ldaps:// url, or set start_tls = true; only for a test directory on "
                              "this machine, set allow_plaintext = true")
        self._start_tls = bool(settings.start_tls) and not self._use_ssl
        ca_file = settings.ca_file
        if ca_file is not None and not os.path.isfile(ca_file):
            raise ConfigError(f"[auth.ldap] ca_file {str(ca_file)!r} is not a file: set it to the PEM file of the CA "
                              "that signed the directory's certificate, or remove it to use the system's CAs")
        self._tls = _tls(self._host, ca_file)
        self.bind_dn = settings.bind_dn or None
        self._password = _service_password(self.bind_dn, settings.bind_password_env)
        self.user_base = settings.user_base.strip()
        if not self.user_base:
            raise ConfigError("[auth.ldap] user_base is not set: set it to where users are, e.g. "
                              "user_base = \"ou=people,dc=corp,dc=example\"")
        if not _ATTR_RE.match(settings.user_attr or ""):
            raise ConfigError(f"[auth.ldap] user_attr {settings.user_attr!r} is not an attribute name: "
                              "set e.g. 'uid' (OpenLDAP) or 'sAMAccountName' (AD)")
        self.user_attr = settings.user_attr
        self.user_filter = _checked_filter("user_filter", settings.user_filter)
        self.group_filter = _checked_filter("group_filter", settings.group_filter)
        self.group_base = settings.group_base.strip() or _parent(self.user_base)
        self.nested = settings.nested
        self.timeout_s = float(settings.timeout_s)
        self.table = {key: list(groups) for key, groups in table.items()}

    def __repr__(self) -> str:
        return f"LdapDirectory(url={self.url!r}, bind_dn={self.bind_dn!r}, user_base={self.user_base!r})"

    __str__ = __repr__

    # --- the Directory protocol -----------------------------------------------------------------

    def authenticate(self, name: str, password: str) -> DirectoryUser | None:
        """The user when ``name`` is one entry matching the user filter and ``password`` binds as it;
        None otherwise (blank passwords and invalid names without asking the server).
        DirectoryUnavailableError when the server cannot be reached or trusted."""
        if not isinstance(password, str) or not password.strip() or not _valid_name(name):
            return None
        with self._service() as conn:
            entry = self._find(conn, name)
            if entry is None or not self._password_ok(entry["dn"], password):
                return None
            return self._user(conn, entry, name)

    def lookup(self, name: str) -> DirectoryUser | None:
        """The user as the directory has them now (no password); None when gone, filtered out
        (disabled) or ambiguous. DirectoryUnavailableError when the server cannot be reached."""
        if not _valid_name(name):
            return None
        with self._service() as conn:
            entry = self._find(conn, name)
            return None if entry is None else self._user(conn, entry, name)

    # --- connections ----------------------------------------------------------------------------

    @contextmanager
    def _talking(self) -> Iterator[None]:
        """Turn ldap3's network and TLS failures into DirectoryUnavailableError naming the URL."""
        from ldap3.core.exceptions import LDAPException, LDAPStartTLSError, LDAPCertificateError

        try:
            yield
        except LDAPException as exc:
            detail = _short(exc)
            if "doesn't match any name" in str(exc):  # ldap3's message lists the whole certificate
                detail = f"its certificate does not name {self._host}"
            tls = isinstance(exc, (LDAPStartTLSError, LDAPCertificateError)) or "ssl" in detail.lower()
            hint = (f"check ca_file (the CA that signed its certificate) and that the certificate names "
                    f"{self._host}" if tls else f"check that it is up and reachable from this machine "
                    f"(url, port, firewall; timeout_s = {self.timeout_s:g})")
            raise DirectoryUnavailableError(f"the LDAP directory at {self.url} could not be used "
                                            f"({type(exc).__name__}: {detail}): {hint}") from None

    def _connect(self, user: str | None, password: str | None):
        """An open, TLS-protected (as configured) connection, bind attempted: (connection, bound?)."""
        import ldap3

        server = ldap3.Server(self._host, port=self._port, use_ssl=self._use_ssl, tls=self._tls,
                              get_info=ldap3.NONE, connect_timeout=self.timeout_s)
        conn = ldap3.Connection(server, user=user, password=password,
                                authentication=ldap3.SIMPLE if user else ldap3.ANONYMOUS, read_only=True,
                                auto_referrals=False, raise_exceptions=False,
                                receive_timeout=max(1, math.ceil(self.timeout_s)))  # ldap3 wants whole seconds
        try:
            conn.open()
            if self._start_tls:
                conn.start_tls()
            return conn, conn.bind()
        except BaseException:
            _close(conn)
            raise

    @contextmanager
    def _service(self):
        """A connection bound as the service account (or anonymous when bind_dn is unset)."""
        with self._talking():
            conn, bound = self._connect(self.bind_dn, self._password)
            try:
                if not bound:
                    code = conn.result.get("result")
                    if code in _WRONG_CREDENTIALS:
                        who = f"the service account {self.bind_dn}" if self.bind_dn else "an anonymous search"
                        raise DirectoryUnavailableError(
                            f"the LDAP directory at {self.url} refused {who} ({conn.result.get('description')}): "
                            "check [auth.ldap] bind_dn and the password in the variable bind_password_env names")
                    raise self._refused("the service account's bind", conn)
                yield conn
            finally:
                _close(conn)

    def _password_ok(self, dn: str, password: str) -> bool:
        """Whether ``password`` binds as ``dn`` (on its own connection, closed at once)."""
        with self._talking():
            conn, bound = self._connect(dn, password)
            try:
                if not bound and conn.result.get("result") not in _WRONG_CREDENTIALS:
                    raise self._refused("a user's bind", conn)
                return bool(bound)
            finally:
                _close(conn)

    def _refused(self, what: str, conn) -> WorkbenchError:
        return DirectoryUnavailableError(f"the LDAP directory at {self.url} answered {what} with "
                                         f"{conn.result.get('description')!r}: check that it is healthy")

    # --- searches -------------------------------------------------------------------------------

    def _search(self, conn, base: str, query: str, attributes, size_limit: int = 0) -> list[dict]:
        """The entries (not referrals) of one subtree search; raises unless it succeeded."""
        import ldap3

        with self._talking():
            conn.search(base, query, ldap3.SUBTREE, attributes=attributes, size_limit=size_limit,
                        time_limit=max(1, math.ceil(self.timeout_s)))
        code = conn.result.get("result")
        entries = [r for r in conn.response or () if r.get("type") == "searchResEntry"]
        if code == 4 and size_limit:  # sizeLimitExceeded: more entries than asked for
            return entries
        if code == 32:
            raise DirectoryUnavailableError(f"the LDAP directory at {self.url} has no entry {base!r}: check "
                                            "[auth.ldap] user_base and group_base")
        if code != 0:
            raise self._refused(f"a search under {base!r}", conn)
        return entries

    def _find(self, conn, name: str) -> dict | None:
        """The one entry named ``name`` that the user filter lets in, or None (none, or several)."""
        from ldap3.utils.conv import escape_filter_chars

        query = f"(&{self.user_filter}({self.user_attr}={escape_filter_chars(name)}))"
        entries = self._search(conn, self.user_base, query, [self.user_attr, "memberOf"], size_limit=2)
        return entries[0] if len(entries) == 1 else None

    def _user(self, conn, entry: dict, name: str) -> DirectoryUser | None:
        """The DirectoryUser for ``entry`` (its user_attr value as stored), None if that is no valid name."""
        stored = [str(v) for v in _values(entry, self.user_attr)]
        matching = [v for v in stored if v.casefold() == name.casefold()]
        if not matching or not _valid_name(matching[0]):
            return None
        member_of = [str(v) for v in _values(entry, "memberOf") if _under(str(v), self.group_base)]
        found = self._groups(conn, entry["dn"], member_of)
        return DirectoryUser(name=matching[0], groups=map_groups(found, self.table), source=LDAP,
                             subject=entry["dn"], directory_groups=found)

    def _groups(self, conn, dn: str, member_of: list[str]) -> tuple[str, ...]:
        """Group DNs of ``dn``: memberOf, direct memberships, then nesting as configured (cycle-safe)."""
        found: dict[str, str] = {}

        def fresh(dns: Iterable[str]) -> list[str]:
            new = []
            for group in dns:
                if group.lower() not in found:
                    found[group.lower()] = group
                    new.append(group)
            return new

        level = fresh(member_of) + fresh(self._groups_of(conn, [dn], chain=self.nested == "in_chain"))
        if self.nested == "recursive":
            for _ in range(MAX_DEPTH):
                if not level:
                    break
                level = fresh(self._groups_of(conn, level))
        return tuple(found.values())

    def _groups_of(self, conn, members: list[str], chain: bool = False) -> list[str]:
        """DNs of the groups under group_base listing any of ``members`` (``chain``: transitively, AD)."""
        from ldap3.utils.conv import escape_filter_chars

        out: list[str] = []
        for start in range(0, len(members), _PER_SEARCH):
            terms = []
            for member in members[start:start + _PER_SEARCH]:
                value = escape_filter_chars(member)
                terms.append(f"(member={value})(uniqueMember={value})")
                if chain:
                    terms.append(f"(member:{IN_CHAIN}:={value})")
            query = f"(&{self.group_filter}(|{''.join(terms)}))"
            out += sorted((e["dn"] for e in self._search(conn, self.group_base, query, ["1.1"])), key=str.lower)
        return out


# --- settings ------------------------------------------------------------------------------------

def _parse_url(url: str) -> tuple[str, int, bool]:
    """(host, port, use_ssl) of an ldap:// or ldaps:// URL; ConfigError otherwise."""
    if not url:
        raise ConfigError("[auth.ldap] url is not set: set it to the directory, e.g. "
                          "url = \"ldaps://dc1.corp.example\"")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if (parts is None or parts.scheme.lower() not in ("ldap", "ldaps") or not parts.hostname
            or parts.path not in ("", "/") or parts.query or parts.fragment or parts.username):
        raise ConfigError(f"[auth.ldap] url {url!r} is not an ldap:// or ldaps:// address: set e.g. "
                          "\"ldaps://dc1.corp.example\" or \"ldap://dc1.corp.example:389\" (host and port only; "
                          "the base goes in user_base)")
    use_ssl = parts.scheme.lower() == "ldaps"
    return parts.hostname, port or (636 if use_ssl else 389), use_ssl


def _tls(host: str, ca_file):
    """ldap3's Tls: certificate required, checked against ``ca_file`` (else the system's CAs) and ``host``."""
    import ldap3

    try:
        ipaddress.ip_address(host)
        sni = None
    except ValueError:
        sni = host
    return ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(ca_file) if ca_file else None, sni=sni)


def _service_password(bind_dn: str | None, env: str | None) -> str | None:
    """The service account's password from the environment; ConfigError naming the variable."""
    if not env:
        if bind_dn:
            raise ConfigError("[auth.ldap] bind_dn is set but bind_password_env is not: set bind_password_env to "
                              "the name of the environment variable holding the service account's password")
        return None
    if not bind_dn:
        raise ConfigError("[auth.ldap] bind_password_env is set but bind_dn is not: set bind_dn to the service "
                          "account's DN")
    password = os.environ.get(env)
    if not password:
        raise ConfigError(f"the environment variable {env} (named by [auth.ldap] bind_password_env) is not set or "
                          "empty: set it to the service account's password before starting the workbench")
    return password


def _checked_filter(setting: str, value: str) -> str:
    """``value`` if ldap3 can parse it as a filter; ConfigError otherwise."""
    from ldap3.core.exceptions import LDAPException
    from ldap3.operation.search import parse_filter

    value = (value or "").strip()
    try:
        parse_filter(value, None, True, True, None, False)
    except (LDAPException, ValueError, IndexError) as exc:
        raise ConfigError(f"[auth.ldap] {setting} {value!r} is not an LDAP filter ({_short(exc)}): write it in "
                          "parentheses, e.g. \"(objectClass=person)\"") from None
    return value


def _parent(dn: str) -> str:
    """``dn`` without its first RDN (``dn`` itself when it has only one)."""
    from ldap3.utils.dn import to_dn

    try:
        rdns = to_dn(dn)
    except Exception:  # ldap3 raises LDAPInvalidDnError or plain errors on odd DNs
        raise ConfigError(f"[auth.ldap] user_base {dn!r} is not a DN: set e.g. \"ou=people,dc=corp,dc=example\"") \
            from None
    return ",".join(rdns[1:]) if len(rdns) > 1 else dn


# --- small helpers -------------------------------------------------------------------------------

def _valid_name(name) -> bool:
    return isinstance(name, str) and bool(NAME_RE.match(name))


def _values(entry: dict, attribute: str) -> list:
    """The values of ``attribute`` in a search entry, whatever the case the server wrote it in."""
    attributes = entry.get("attributes") or {}
    for key, value in attributes.items():
        if key.lower() == attribute.lower():
            return list(value) if isinstance(value, (list, tuple)) else [value]
    return []


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def _close(conn) -> None:
    """Unbind and close ``conn``, ignoring a connection that is already gone."""
    try:
        conn.unbind()
    except Exception:  # closing a broken socket must not hide the error that broke it
        pass


def _under(dn: str, base: str) -> bool:
    """Whether ``dn`` lies in the subtree ``base`` (case and spaces after commas ignored)."""
    norm = lambda text: ",".join(part.strip() for part in text.lower().split(","))  # noqa: E731
    dn, base = norm(dn), norm(base)
    return dn == base or dn.endswith("," + base)
