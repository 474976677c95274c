"""A real OpenLDAP server (Debian's slapd) on loopback, for the LDAP sign-in tests.

`Slapd` makes a private temp folder with a fresh CA and a server certificate for 127.0.0.1 and
localhost (made with `cryptography`), an old-style ``slapd.conf`` (back-mdb, the core, cosine, nis and
inetOrgPerson schemas, StartTLS on the plain port), loads the fixed directory below with ``slapadd``
and runs ``/usr/sbin/slapd -d 0`` in the foreground on a free port of 127.0.0.1, as whatever user
runs the tests. `stop` ends exactly that process and removes the folder.

The directory (dc=example,dc=org): people in ou=people, groupOfNames groups in ou=groups, the
service account ``cn=workbench,ou=services`` (a fresh random password each start). alice is in
staff; bob in finance-analysts (itself a member of finance: the nested group) and staff; carol in
staff but disabled (employeeType=disabled); dora in wb-admins. `TABLE` maps staff, the finance DN
and wb-admins to workbench groups; finance-analysts is deliberately unmapped.

ACLs: anyone may bind (auth on userPassword, nothing else for anonymous or for a bound user); the
service account reads everything but passwords; the rootdn (used by the mutation helpers) does
anything. ``allow bind_anon_dn`` makes a DN with an empty password bind anonymously, as many
directories (Active Directory included) do: the tests show that such a bind succeeds here.

Leaves out: LDAPS on its own port, replication, the memberOf overlay (groups come from searches).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SLAPD, SLAPADD = "/usr/sbin/slapd", "/usr/sbin/slapadd"
MODULES, SCHEMAS = "/usr/lib/ldap", "/etc/ldap/schema"
BASE = "dc=example,dc=org"
PEOPLE, GROUPS, SERVICES = f"ou=people,{BASE}", f"ou=groups,{BASE}", f"ou=services,{BASE}"
ROOT_DN = f"cn=admin,{BASE}"
SERVICE_DN = f"cn=workbench,{SERVICES}"
PASSWORD_ENV = "WB_TEST_LDAP_PASSWORD"
USER_FILTER = "(&(objectClass=inetOrgPerson)(!(employeeType=disabled)))"
EMPTY_MEMBER = f"cn=nobody,{BASE}"  # groupOfNames needs a member: this stands in when the last one leaves

PASSWORDS = {"alice": "alice-pass-1", "bob": "bob-pass-1", "carol": "carol-pass-1", "dora": "dora-pass-1"}
DISABLED = ("carol",)
MEMBERS = {  # group cn -> member uids or group cns (finance-analysts sits inside finance)
    "staff": ["alice", "bob", "carol"],
    "finance-analysts": ["bob"],
    "finance": ["cn:finance-analysts"],
    "wb-admins": ["dora"],
}
TABLE = {"staff": ["staff"], f"cn=finance,{GROUPS}": ["finance"], "wb-admins": ["admin"]}


def user_dn(uid: str) -> str:
    return f"uid={uid},{PEOPLE}"


def group_dn(cn: str) -> str:
    return f"cn={cn},{GROUPS}"


def ssha(password: str) -> str:
    """``{SSHA}`` hash of ``password`` as slapd stores it in userPassword / rootpw."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- certificates ------------------------------------------------------------------------------

def make_ca(common_name: str = "workbench test CA"):
    """A fresh self-signed CA: (private key, certificate)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def _server_cert(ca_key, ca_cert):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


def _pem_cert(cert) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def _pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def write_ca(path: str | os.PathLike) -> Path:
    """Write another fresh CA's certificate to ``path`` (a CA that did not sign the server's)."""
    path = Path(path)
    path.write_bytes(_pem_cert(make_ca("some other CA")[1]))
    return path


# --- the directory -----------------------------------------------------------------------------

def _ldif(service_password: str) -> str:
    blocks = [
        f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n",
        *(f"dn: ou={ou},{BASE}\nobjectClass: organizationalUnit\nou: {ou}\n"
          for ou in ("people", "groups", "services")),
        f"dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: workbench\n"
        f"userPassword: {ssha(service_password)}\n",
    ]
    for uid, password in PASSWORDS.items():
        blocks.append(_user_ldif(uid, password) + ("employeeType: disabled\n" if uid in DISABLED else ""))
    for cn, members in MEMBERS.items():
        dns = [group_dn(m[3:]) if m.startswith("cn:") else user_dn(m) for m in members]
        blocks.append(f"dn: {group_dn(cn)}\nobjectClass: groupOfNames\ncn: {cn}\n"
                      + "".join(f"member: {dn}\n" for dn in dns))
    return "\n".join(blocks)


def _user_ldif(uid: str, password: str) -> str:
    return (f"dn: {user_dn(uid)}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid.title()}\nsn: {uid.title()}\n"
            f"userPassword: {ssha(password)}\n")


def _conf(folder: Path, root_password: str) -> str:
    schemas = "".join(f"include {SCHEMAS}/{name}.schema\n" for name in ("core", "cosine", "nis", "inetorgperson"))
    return f"""{schemas}
modulepath {MODULES}
moduleload back_mdb
pidfile {folder}/slapd.pid
argsfile {folder}/slapd.args
TLSCACertificateFile {folder}/ca.pem
TLSCertificateFile {folder}/server.pem
TLSCertificateKeyFile {folder}/server.key
allow bind_anon_dn

database mdb
maxsize 16777216
suffix "{BASE}"
rootdn "{ROOT_DN}"
rootpw {ssha(root_password)}
directory {folder}/db
index objectClass,uid,member eq

access to attrs=userPassword
  by anonymous auth
  by * none
access to *
  by dn.exact="{SERVICE_DN}" read
  by * none
"""


class Slapd:
    """One slapd on 127.0.0.1 with the fixed directory above (see module). ``with Slapd() as bed:``."""

    base = BASE
    service_dn = SERVICE_DN

    def __init__(self) -> None:
        self.folder: Path | None = None
        self.port = 0
        self.service_password = secrets.token_urlsafe(18)
        self._root_password = secrets.token_urlsafe(18)
        self._proc: subprocess.Popen | None = None

    # --- life ---------------------------------------------------------------------------------

    def start(self) -> "Slapd":
        """Write certificates, config and data, start slapd and wait until its port answers (20 s)."""
        if self._proc is not None:
            return self
        for path in (SLAPD, SLAPADD):
            if not os.access(path, os.X_OK):
                raise RuntimeError(f"{path} is missing: install Debian's slapd and ldap-utils (`make setup-directory`)")
        self.folder = Path(tempfile.mkdtemp(prefix="wb-slapd-"))
        try:
            conf = self._prepare()
            last = ""
            for _ in range(3):  # the free port may be taken between our probe and slapd's bind
                self.port = _free_port()
                last = self._launch(conf)
                if not last:
                    return self
            raise RuntimeError(f"slapd did not answer on 127.0.0.1:{self.port} within 20 s: {last}")
        except BaseException:
            self.stop()
            raise

    def _prepare(self) -> Path:
        """Write certificates, slapd.conf and the data, load it with slapadd; the config's path."""
        (self.folder / "db").mkdir()
        ca_key, ca_cert = make_ca()
        key, cert = _server_cert(ca_key, ca_cert)
        (self.folder / "ca.pem").write_bytes(_pem_cert(ca_cert))
        (self.folder / "server.pem").write_bytes(_pem_cert(cert))
        (self.folder / "server.key").write_bytes(_pem_key(key))
        os.chmod(self.folder / "server.key", 0o600)
        conf = self.folder / "slapd.conf"
        conf.write_text(_conf(self.folder, self._root_password))
        (self.folder / "data.ldif").write_text(_ldif(self.service_password))
        done = subprocess.run([SLAPADD, "-q", "-f", str(conf), "-l", str(self.folder / "data.ldif")],
                              capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"slapadd failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        return conf

    def _launch(self, conf: Path) -> str:
        """Start slapd on self.port; '' once the port answers, else why not (its stderr)."""
        log = self.folder / "slapd.log"
        with open(log, "wb") as err:
            self._proc = subprocess.Popen([SLAPD, "-f", str(conf), "-h", f"ldap://127.0.0.1:{self.port}/", "-d", "0"],
                                          stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return ""
            except OSError:
                time.sleep(0.05)
        self._kill()
        return f"exit code {self._proc.returncode}, stderr: {log.read_text(errors='replace').strip()[-2000:]!r}"

    def stop(self) -> None:
        """End this slapd and remove its folder (safe to call twice)."""
        self._kill()
        self._proc = None
        self._clean()

    def _kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def _clean(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __enter__(self) -> "Slapd":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Slapd(url={self.url!r}, running={self._proc is not None and self._proc.poll() is None})"

    # --- what tests configure -----------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        if self.folder is None:
            raise RuntimeError("slapd is not started")
        return self.folder / "ca.pem"

    def env(self) -> dict[str, str]:
        """The environment variable that `auth_settings` names, with the service account's password."""
        return {PASSWORD_ENV: self.service_password}

    def auth_settings(self, **overrides) -> dict:
        """The ``[auth]`` table of a workbench.toml for this directory, as a dict. ``refresh_s``,
        ``groups`` and ``oidc`` overrides go into [auth]; any other key into [auth.ldap]."""
        top = {k: overrides.pop(k) for k in ("refresh_s", "groups", "oidc") if k in overrides}
        ldap = {"url": self.url, "start_tls": True, "ca_file": str(self.ca_file), "bind_dn": SERVICE_DN,
                "bind_password_env": PASSWORD_ENV, "user_base": PEOPLE, "user_attr": "uid",
                "user_filter": USER_FILTER, "group_base": GROUPS, "nested": "recursive", **overrides}
        return {"refresh_s": 1, "groups": {k: list(v) for k, v in TABLE.items()}, **top, "ldap": ldap}

    # --- changes, as the directory's administrator --------------------------------------------

    def _admin(self):
        import ldap3

        conn = ldap3.Connection(ldap3.Server(self.url, get_info=ldap3.NONE), user=ROOT_DN,
                                password=self._root_password, raise_exceptions=True, receive_timeout=10)
        conn.open()
        conn.bind()
        return conn

    def add_user(self, uid: str, password: str, groups=()) -> str:
        """Add an inetOrgPerson ``uid`` to ou=people, in each group of ``groups`` (cns); its DN."""
        conn = self._admin()
        try:
            conn.add(user_dn(uid), ["inetOrgPerson"], {"uid": uid, "cn": uid.title(), "sn": uid.title(),
                                                       "userPassword": ssha(password)})
        finally:
            conn.unbind()
        for cn in groups:
            self.add_to_group(uid, cn)
        return user_dn(uid)

    def add_to_group(self, uid: str, group_cn: str) -> None:
        """Make ``uid`` a member of ``group_cn`` (the group is created when missing)."""
        import ldap3

        conn = self._admin()
        try:
            if not conn.search(GROUPS, f"(cn={group_cn})", ldap3.LEVEL, attributes=["member"]):
                conn.add(group_dn(group_cn), ["groupOfNames"], {"cn": group_cn, "member": user_dn(uid)})
                return
            members = [str(m).lower() for m in conn.entries[0].member.values]
            if user_dn(uid).lower() not in members:
                conn.modify(group_dn(group_cn), {"member": [(ldap3.MODIFY_ADD, [user_dn(uid)])]})
            if EMPTY_MEMBER.lower() in members:
                conn.modify(group_dn(group_cn), {"member": [(ldap3.MODIFY_DELETE, [EMPTY_MEMBER])]})
        finally:
            conn.unbind()

    def remove_from_group(self, uid: str, group_cn: str) -> None:
        """Take ``uid``'s DN out of ``group_cn`` (a placeholder member stands in if it was the last)."""
        self._drop_member(user_dn(uid), [group_cn])

    def remove_user(self, uid: str) -> None:
        """Delete ``uid``'s entry and its memberships."""
        import ldap3

        dn = user_dn(uid)
        conn = self._admin()
        try:
            conn.search(GROUPS, f"(member={ldap3.utils.conv.escape_filter_chars(dn)})", ldap3.LEVEL, attributes=["cn"])
            cns = [str(e.cn.value) for e in conn.entries]
            conn.delete(dn)
        finally:
            conn.unbind()
        self._drop_member(dn, cns)

    def _drop_member(self, dn: str, cns) -> None:
        import ldap3

        conn = self._admin()
        try:
            for cn in cns:
                if not conn.search(GROUPS, f"(cn={cn})", ldap3.LEVEL, attributes=["member"]):
                    continue
                members = [str(m) for m in conn.entries[0].member.values]
                if dn.lower() not in (m.lower() for m in members):
                    continue
                changes = [(ldap3.MODIFY_DELETE, [dn])]
                if len(members) == 1:
                    changes = [(ldap3.MODIFY_REPLACE, [EMPTY_MEMBER])]
                conn.modify(group_dn(cn), {"member": changes})
        finally:
            conn.unbind()

    def disable(self, uid: str) -> None:
        """Set ``employeeType: disabled`` on ``uid`` (the user filter then leaves it out)."""
        import ldap3

        conn = self._admin()
        try:
            conn.modify(user_dn(uid), {"employeeType": [(ldap3.MODIFY_REPLACE, ["disabled"])]})
        finally:
            conn.unbind()
