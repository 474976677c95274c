"""A real Samba file server (Debian's smbd 4.17) on loopback, for the SMB source tests.

`Samba` makes a private temp folder holding an smb.conf, Samba's state (a tdbsam passdb, the group
mapping, locks, logs) and the shared folder, and runs ``smbd --foreground -p PORT`` on a free port
of 127.0.0.1, sharing that folder as "docs" (signing mandatory, SMB 3 encryption offered, no guest).
smbd must run in a process group of its own: its shutdown signals its whole group, which must never
be the test's. So no ``--no-process-group``: smbd then calls setsid() itself, right after it
starts (and fails with "Failed to create session" if Popen made it a session or group leader
already, so no ``start_new_session`` either). `stop` kills that process group with SIGKILL (and
reaps smbd's children itself, so no zombie smbd waits on PID 1), then removes the accounts and the
folder. It needs root (useradd, and smbd switches to each user).

Accounts: unix users and groups (useradd/groupadd) that are also in Samba's passdb and group
mapping, with SIDs pinned under a random domain SID. All are named ``wbt<token>-<short>`` with a
fresh random token per instance, so two beds, or what an aborted run left, never clash; their GECOS
field ("smbbed <pid> <folder>") lets the next start remove the leftovers of a test process that
died. The domain is the server's NetBIOS name (``WBT<TOKEN>``), so users are ``DOMAIN\\name``.
RIDs: alice 1101, bob 1102, carol 1103 (passwords "<short>-pass-1", primary group staff, also in
finance), admin 1110, svc 1111; groups finance 1201, staff 1202.

``admin`` is in ``admin users``: root on the share. The helpers (`write`, `mkdir`, `set_acl`, `move`,
`remove`) act through SMB as admin, so Samba (vfs acl_xattr: NT ACLs kept in the security.NTACL
xattr and mapped onto POSIX ACLs) applies ACL inheritance as a Windows server does; what admin
creates, it owns. ``svc`` is the workbench's reader (`service_user`, a random password): it is in
``admin users`` too, so Samba skips the ACL checks for it and it reads every file and security
descriptor whatever the DACLs say (what a backup/indexing account does on Windows), and in
``read list``, so it can change nothing. The DACLs the tests set say who else may read. Samba also
enforces them for alice, bob and carol, but through the POSIX ACLs it derives: a folder that
denies a user also stops that user passing through it, and a deny after an allow is not mapped.

Leaves out: samba-dcerpcd (``rpc start on demand helpers = no``: no RPC pipes, so no name lookups or
share listing; SIDs are known because they are pinned), NetBIOS, Kerberos and AD (NTLM against the
local passdb), SACLs, owner changes, DFS, and percent-encoding in `url`.
"""

from __future__ import annotations

import contextlib
import ctypes
import grp
import os
import pwd
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

SMBD, PDBEDIT, NET = "/usr/sbin/smbd", "/usr/bin/pdbedit", "/usr/bin/net"
SHARE = "docs"
PASSWORD_ENV = "WB_TEST_SMB_PASSWORD"
USERS = ("alice", "bob", "carol")
GROUPS = {"finance": USERS, "staff": USERS}
PRIMARY_GROUP = "staff"
# pinned RIDs, clear of the 1000, 1001... that tdbsam hands out (and then replaces) while adding a user
RIDS = {"alice": 1101, "bob": 1102, "carol": 1103, "admin": 1110, "svc": 1111, "finance": 1201, "staff": 1202}
MARK = "smbbed"  # first word of the GECOS field of the bed's users
EVERYONE = "S-1-1-0"
FULL = 0x001F01FF
ACE_TYPES = {"allow": 0x00, "deny": 0x01}
ACE_FLAGS = {"OI": 0x01, "CI": 0x02, "NP": 0x04, "IO": 0x08, "I": 0x10}
SE_DACL_PRESENT, SE_DACL_AUTO_INHERIT_REQ, SE_DACL_AUTO_INHERITED = 0x0004, 0x0100, 0x0400
SE_DACL_PROTECTED, SE_SELF_RELATIVE = 0x1000, 0x8000
OWNER_GROUP_DACL, DACL_ONLY = 0x7, 0x4  # SECURITY_INFORMATION bits
PR_SET_CHILD_SUBREAPER, PR_GET_CHILD_SUBREAPER = 36, 37


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args: list[str], stdin: str = "") -> str:
    """Run a tool and return its stdout; RuntimeError with its stderr if it fails. Waits while
    another process holds the lock on /etc/passwd or /etc/group (useradd and friends)."""
    for _ in range(100):
        done = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=30)
        if done.returncode == 0:
            return done.stdout
        if "lock" not in done.stderr:
            break
        time.sleep(0.1)
    raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-1000:]}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _members(pgid: int) -> list[int]:
    """The processes (zombies too) of group ``pgid``, from /proc."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            group = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()[2]
        except (OSError, ValueError):
            continue
        if int(group) == pgid:
            pids.append(int(entry))
    return pids


def _kill_and_reap(proc: subprocess.Popen) -> None:
    """SIGKILL smbd's process group and reap all of it. Killed children are orphans: PID 1 would
    get their zombies, and may reap them only much later (they show in ``pgrep smbd``). So for that
    moment this process is a "child subreaper" (prctl), which makes it their parent instead."""
    libc = ctypes.CDLL(None, use_errno=True)
    was = ctypes.c_int(0)
    libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(was), 0, 0, 0)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    try:
        _kill_group(proc.pid)
        proc.wait(10)
        deadline = time.monotonic() + 5
        while (left := _members(proc.pid)) and time.monotonic() < deadline:
            for pid in left:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
            time.sleep(0.005)
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, was.value, 0, 0, 0)


def _delete_accounts(prefix: str) -> list[str]:
    """userdel/groupdel every user, then group, named ``prefix...``; the errors, if any."""
    errors = []
    users = [p.pw_name for p in pwd.getpwall() if p.pw_name.startswith(prefix)]
    groups = [g.gr_name for g in grp.getgrall() if g.gr_name.startswith(prefix)]
    for args in [["userdel", "-f", name] for name in users] + [["groupdel", name] for name in groups]:
        try:
            _run(args)
        except RuntimeError as exc:
            errors.append(str(exc))
    return errors


def _reap_stale() -> None:
    """Remove what aborted runs left: the beds whose users' GECOS names a process that is gone
    (their smbd, accounts and folder)."""
    done = set()
    for entry in pwd.getpwall():
        parts = entry.pw_gecos.split(" ")
        prefix = entry.pw_name.split("-")[0] + "-"
        if len(parts) != 3 or parts[0] != MARK or not parts[1].isdigit() or prefix in done:
            continue
        if _alive(int(parts[1])):
            continue
        done.add(prefix)
        _kill_stale_smbd(Path(parts[2]))
        _delete_accounts(prefix)
        shutil.rmtree(parts[2], ignore_errors=True)


def _kill_stale_smbd(base: Path) -> None:
    try:
        pid = int((base / "pid" / "smbd.pid").read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return
    if str(base).encode() in cmdline:  # the pid still is that bed's smbd
        _kill_group(pid)


def _log_tail(log: Path) -> str:
    """The last lines of smbd's log, without its panic's backtrace and banners."""
    lines = [line for line in log.read_text(errors="replace").splitlines()
             if line.strip() and not line.startswith((" #", "====", "If you are running"))]
    return " | ".join(lines[-8:])


def _conf(base: Path, domain: str, admin: str, service: str, encrypt: str) -> str:
    return f"""[global]
  netbios name = {domain}
  workgroup = WBTEST
  server role = standalone server
  security = user
  passdb backend = tdbsam:{base}/private/passdb.tdb
  private dir = {base}/private
  lock directory = {base}/lock
  state directory = {base}/state
  cache directory = {base}/cache
  pid directory = {base}/pid
  ncalrpc dir = {base}/ncalrpc
  log file = {base}/log/log.%m
  log level = 1
  interfaces = 127.0.0.1
  bind interfaces only = yes
  disable netbios = yes
  server min protocol = SMB2
  server signing = mandatory
  server smb encrypt = {encrypt}
  map to guest = never
  restrict anonymous = 2
  load printers = no
  printing = bsd
  printcap name = /dev/null
  disable spoolss = yes
  usershare max shares = 0
  idmap config * : backend = tdb
  idmap config * : range = 3000-7999
  rpc start on demand helpers = no

[{SHARE}]
  path = {base}/{SHARE}
  read only = no
  vfs objects = acl_xattr
  map acl inherit = yes
  store dos attributes = yes
  admin users = {admin} {service}
  read list = {service}
"""


# --- security descriptors ----------------------------------------------------------------------

def _sid_bytes(sid: str) -> bytes:
    _, rev, auth, *subs = sid.split("-")
    return bytes([int(rev), len(subs)]) + int(auth).to_bytes(6, "big") + struct.pack(f"<{len(subs)}I", *map(int, subs))


def _flags(text: str) -> int:
    flags = 0
    for part in filter(None, (p.strip().upper() for p in text.split("|"))):
        flags |= ACE_FLAGS[part]
    return flags


def _ace(kind: str, sid: str, flags: int, mask: int) -> bytes:
    body = struct.pack("<I", mask) + _sid_bytes(sid)
    return struct.pack("<BBH", ACE_TYPES[kind.lower()], flags, 4 + len(body)) + body


def _dacl_sd(aces: list[bytes], control: int) -> bytes:
    """A self-relative security descriptor holding only a DACL (revision 2) of ``aces``."""
    acl = struct.pack("<BBHHH", 2, 0, 8 + sum(map(len, aces)), len(aces), 0) + b"".join(aces)
    header = struct.pack("<BBHIIII", 1, 0, control | SE_SELF_RELATIVE | SE_DACL_PRESENT, 0, 0, 0, 20)
    return header + acl


def _security_call(path: str, is_dir: bool, kw: dict, sd: bytes | None) -> bytes:
    """QUERY_INFO of the owner, group and DACL (``sd`` None) or SET_INFO of the DACL of ``sd``,
    SMB2_0_INFO_SECURITY, on a handle of ``path``. smbclient has no helper for either."""
    import smbclient
    from smbprotocol.file_info import InfoType
    from smbprotocol.open import FilePipePrinterAccessMask as Access
    from smbprotocol.open import SMB2QueryInfoRequest, SMB2QueryInfoResponse, SMB2SetInfoRequest, SMB2SetInfoResponse

    if sd is None:
        req, resp, access = SMB2QueryInfoRequest(), SMB2QueryInfoResponse(), Access.READ_CONTROL
        req["output_buffer_length"], req["additional_information"] = 65536, OWNER_GROUP_DACL
    else:
        req, resp, access = SMB2SetInfoRequest(), SMB2SetInfoResponse(), Access.READ_CONTROL | Access.WRITE_DAC
        req["buffer"], req["additional_information"] = sd, DACL_ONLY
    req["info_type"], req["file_info_class"] = InfoType.SMB2_0_INFO_SECURITY, 0
    with smbclient.open_file(path, mode="rb", buffering=0, file_type="dir" if is_dir else "file",
                             share_access="rwd", desired_access=access | Access.FILE_READ_ATTRIBUTES, **kw) as raw:
        fd = raw.fd
        req["file_id"] = fd.file_id
        sent = fd.connection.send(req, sid=fd.tree_connect.session.session_id, tid=fd.tree_connect.tree_connect_id)
        resp.unpack(fd.connection.receive(sent)["data"].get_value())
    return resp["buffer"].get_value() if sd is None else b""


class Samba:
    """smbd on 127.0.0.1:<free port> sharing a temp folder as share "docs" (see module); a context manager."""

    host = "127.0.0.1"
    share = SHARE
    users = USERS
    groups = tuple(GROUPS)
    server_smb_encrypt = "default"  # smb.conf `server smb encrypt` (set before start: "required", "off"...)

    def __init__(self) -> None:
        self._token = secrets.token_hex(3)
        self.domain = f"WBT{self._token.upper()}"
        self._domain_sid = "S-1-5-21-" + "-".join(str(secrets.randbelow(2**31) + 1) for _ in range(3))
        self.service_user = self.user("svc")
        self.service_password = secrets.token_urlsafe(18)
        self._admin_password = secrets.token_urlsafe(18)
        self.port = 0
        self._base: Path | None = None
        self._conf: Path | None = None
        self.folder: Path | None = None
        self._proc: subprocess.Popen | None = None
        self._caches: dict[str, dict] = {"admin": {}, "svc": {}}

    # --- life ---------------------------------------------------------------------------------

    def start(self) -> "Samba":
        """Create the accounts and the folder, start smbd and wait until its port answers (20 s)."""
        if self._proc is not None:
            return self
        if os.geteuid() != 0 or not os.access(SMBD, os.X_OK):
            raise RuntimeError("the Samba test bed needs root and Debian's samba (smbd, pdbedit, net)")
        _reap_stale()
        self._base = Path(tempfile.mkdtemp(prefix=f"wbt{self._token}-smb-"))
        try:
            self._prepare()
            last = ""
            for _ in range(3):  # the free port may be taken between our probe and smbd's bind
                self.port = _free_port()
                last = self._launch()
                if not last:
                    return self
            raise RuntimeError(f"smbd did not start on 127.0.0.1:{self.port} (3 tries): {last}")
        except BaseException:
            self.stop()
            raise

    def _prepare(self) -> None:
        base = self._base
        os.chmod(base, 0o755)  # users other than root must traverse to the share
        for name in ("private", "lock", "state", "cache", "pid", "log", "ncalrpc", SHARE):
            (base / name).mkdir(mode=0o700 if name == "private" else 0o755)
        self.folder = base / SHARE
        self._conf = base / "smb.conf"
        self._conf.write_text(_conf(base, self.domain, self.user("admin"), self.service_user, self.server_smb_encrypt))
        _run([NET, "-s", str(self._conf), "setlocalsid", self._domain_sid])
        self._add_accounts()

    def _add_accounts(self) -> None:
        gecos = f"{MARK} {os.getpid()} {self._base}"
        for group in GROUPS:
            _run(["groupadd", self._name(group)])
            _run([NET, "-s", str(self._conf), "groupmap", "add", f"ntgroup={self._name(group)}",
                  f"unixgroup={self._name(group)}", "type=domain", f"rid={RIDS[group]}"])
        for short in (*USERS, "admin", "svc"):
            member_of = [self._name(g) for g, members in GROUPS.items() if short in members]
            primary = ["-g", self._name(PRIMARY_GROUP)] if short in GROUPS[PRIMARY_GROUP] else []
            _run(["useradd", "-M", "-N", *primary, *(["-G", ",".join(member_of)] if member_of else []),
                  "-s", "/usr/sbin/nologin", "-c", gecos, self._name(short)])
            password = self._password(short)
            _run([PDBEDIT, "-s", str(self._conf), "-a", "-t", "-u", self._name(short), "-U", str(RIDS[short])],
                 stdin=f"{password}\n{password}\n")

    def _launch(self) -> str:
        """Start smbd on self.port; '' once the port answers, else why not (its log's tail)."""
        log = self._base / "log" / "smbd.out"
        with open(log, "wb") as out:
            self._proc = subprocess.Popen([SMBD, "--foreground", "--debug-stdout", "-s", str(self._conf),
                                           "-p", str(self.port)], stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self._proc.poll() is None:
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
            except OSError:
                time.sleep(0.02)
                continue
            if os.getpgid(self._proc.pid) == self._proc.pid != os.getpgid(0):
                return ""
            break  # not in a group of its own: killing it could hit the tests (never happens)
        self._kill()
        return "smbd's log ends: " + _log_tail(log)

    def stop(self) -> None:
        """Kill smbd, delete the accounts and the temp folder (safe to call twice)."""
        self._close_sessions()
        self._kill()
        errors = _delete_accounts(f"wbt{self._token}-")
        if self._base is not None:
            shutil.rmtree(self._base, ignore_errors=True)
            self._base = self.folder = None
        if errors:
            raise RuntimeError("could not remove the test accounts: " + "; ".join(errors))

    def _close_sessions(self) -> None:
        if not any(self._caches.values()):
            return
        import smbclient

        for cache in self._caches.values():
            try:
                smbclient.reset_connection_cache(fail_on_error=False, connection_cache=cache)
            except Exception:  # the server may be gone already
                pass
            cache.clear()

    def _kill(self) -> None:
        """SIGKILL smbd's process group (smbd and its children). SIGTERM would take ~1.7 s, and the
        state is thrown away anyway."""
        proc, self._proc = self._proc, None
        if proc is not None:
            _kill_and_reap(proc)

    def __enter__(self) -> "Samba":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Samba(url={self.url()!r}, running={self._proc is not None and self._proc.poll() is None})"

    # --- what tests configure -----------------------------------------------------------------

    def url(self, rel: str = "") -> str:
        """``smb://127.0.0.1:PORT/docs/<rel>`` (no trailing slash for "")."""
        rel = rel.strip("/")
        return f"smb://{self.host}:{self.port}/{self.share}" + (f"/{rel}" if rel else "")

    def env(self) -> dict[str, str]:
        """The environment variable that `smb_settings` names, with the service account's password."""
        return {PASSWORD_ENV: self.service_password}

    def smb_settings(self, **overrides) -> dict:
        """The ``[smb]`` table of a workbench.toml for this server, as a dict."""
        return {"username": self.service_user, "domain": self.domain, "password_env": PASSWORD_ENV, **overrides}

    def user(self, short: str) -> str:
        """The unix and Samba name of test user ``short`` (alice, bob, carol; also admin, svc)."""
        if short not in RIDS or short in GROUPS:
            raise KeyError(f"no test user {short!r}")
        return self._name(short)

    def sid(self, short: str) -> str:
        """The SID of test user or group ``short`` (also admin, svc)."""
        return f"{self._domain_sid}-{RIDS[short]}"

    def _name(self, short: str) -> str:
        return f"wbt{self._token}-{short}"

    def _password(self, short: str) -> str:
        return {"admin": self._admin_password, "svc": self.service_password}.get(short, f"{short}-pass-1")

    # --- changes through SMB, as admin ----------------------------------------------------------

    def _kw(self, who: str) -> dict:
        return {"port": self.port, "username": self._name(who), "password": self._password(who),
                "connection_cache": self._caches[who], "connection_timeout": 10}

    def _unc(self, rel: str) -> str:
        parts = [p for p in rel.replace("\\", "/").split("/") if p]
        return "\\".join([f"\\\\{self.host}", self.share, *parts])

    def _is_dir(self, rel: str) -> bool:
        if self.folder is None:
            raise RuntimeError("the Samba test bed is not started")
        return (self.folder / rel.strip("/")).is_dir()

    def write(self, rel: str, data: bytes) -> None:
        """Create or overwrite file ``rel`` (and its missing folders) through SMB as admin."""
        import smbclient

        parent = rel.strip("/").rpartition("/")[0]
        if parent:
            self.mkdir(parent)
        with smbclient.open_file(self._unc(rel), mode="wb", **self._kw("admin")) as f:
            f.write(data)

    def mkdir(self, rel: str) -> None:
        """Make folder ``rel`` and its missing parents through SMB as admin (no error if it exists)."""
        import smbclient

        smbclient.makedirs(self._unc(rel), exist_ok=True, **self._kw("admin"))

    def set_acl(self, rel: str, aces: list[tuple[str, str, str, int]], protected: bool = False) -> None:
        """Replace the DACL of ``rel`` with ``aces`` in this order, then an allow of full control for
        admin (OI|CI on a folder). Each ace: ("allow"|"deny", a test user or group, "everyone" or a
        SID, flags like "OI|CI" or "", mask). The DACL carries SE_DACL_AUTO_INHERITED and
        SE_DACL_AUTO_INHERIT_REQ (and SE_DACL_PROTECTED if ``protected``): without them Samba gives
        new children the inheritable ACEs without the INHERITED flag."""
        is_dir = self._is_dir(rel)
        blobs = [_ace(kind, self._trustee(trustee), _flags(flags), mask) for kind, trustee, flags, mask in aces]
        blobs.append(_ace("allow", self.sid("admin"), _flags("OI|CI") if is_dir else 0, FULL))
        control = SE_DACL_AUTO_INHERITED | SE_DACL_AUTO_INHERIT_REQ | (SE_DACL_PROTECTED if protected else 0)
        _security_call(self._unc(rel), is_dir, self._kw("admin"), _dacl_sd(blobs, control))

    def _trustee(self, trustee: str) -> str:
        if trustee.upper().startswith("S-"):
            return trustee.upper()
        return EVERYONE if trustee.lower() == "everyone" else self.sid(trustee)

    def move(self, src: str, dst: str) -> None:
        """Rename ``src`` to ``dst`` (which must not exist) through SMB as admin; the ACL goes along."""
        import smbclient

        smbclient.rename(self._unc(src), self._unc(dst), **self._kw("admin"))

    def remove(self, rel: str) -> None:
        """Delete file ``rel``, or folder ``rel`` with all it holds, through SMB as admin."""
        import smbclient
        import smbclient.shutil

        if self._is_dir(rel):
            smbclient.shutil.rmtree(self._unc(rel), **self._kw("admin"))
        else:
            smbclient.remove(self._unc(rel), **self._kw("admin"))

    def read_sd(self, rel: str) -> bytes:
        """The self-relative security descriptor (owner, group, DACL) of ``rel`` ("" is the share's
        root) as the service account reads it through SMB."""
        return _security_call(self._unc(rel), self._is_dir(rel), self._kw("svc"), None)
