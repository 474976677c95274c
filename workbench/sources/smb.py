"""A Windows file share as a source: ``smb://server[:port]/share/path``, read over SMB 2/3 directly.

`SmbShare` lists, hashes and opens the share's files with smbprotocol (pure Python: no kernel
mount, no root), as the account of ``[smb]`` (its password from the environment variable or file
named there: never from the command line, never in the index or the logs; a URL holding
credentials is refused). Signing is always required; encryption as ``[smb] encrypt`` says. Files
are listed by their directory entries (size and time; hidden and system files, dot-files and
reparse points are skipped like dot-files and links in a folder), so an unchanged file is not
read again; `open` reads a planned file into an anonymous in-memory file (a descriptor, as the
parser sandbox expects) only if its bytes still have the planned hash. Any failure to reach or
list the share raises `SourceUnreachableError`, so the sync deletes nothing.

Readers: with ``[access] from = "native"``, each file's NT security descriptor and its folders'
(`workbench.sources.ntacl`), mapped through ``[smb] sids``; otherwise the collection default
(access files are not read on shares). Leaves out: DFS referrals, Kerberos configuration (the
negotiate protocol picks it when the machine has tickets), alternate data streams.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from urllib.parse import quote, unquote, urlsplit

from workbench.errors import ConfigError, FileCheck, FileCheckError, SourceUnreachableError
from workbench.load import format_for, supported_suffixes
from workbench.records import FailureKind, FileFailure, FileInfo

HIDDEN, SYSTEM, REPARSE, DIRECTORY = 0x2, 0x4, 0x400, 0x10
LINK_TAGS = {0xA000000C, 0xA0000003}  # IO_REPARSE_TAG_SYMLINK, _MOUNT_POINT: not followed (dedup, tiering: read)
MAX_ENTRIES = 1_000_000  # a listing longer than this is a hostile or broken server: refused
BLOCK = 1 << 20
_HOST = re.compile(r"^[A-Za-z0-9.-]{1,253}$")


def normal_root(url: str) -> str:
    """A share address in the one form the catalog stores (host lower case, port, encoded names);
    ConfigError when it is not a usable share address."""
    return share_url(*parse_url(url))


def is_share_url(root) -> bool:
    """Whether ``root`` names an SMB share (``smb://...``) rather than a local path."""
    return isinstance(root, str) and root.lower().startswith("smb://")


@functools.lru_cache(maxsize=64)
def parse_url(url: str) -> tuple[str, int, str, str]:
    """(host, port, share, path inside the share with '/') of ``smb://host[:port]/share[/path]``."""
    parts = urlsplit(url)
    if parts.username or parts.password or "@" in parts.netloc:
        raise ConfigError("an smb:// address must not hold a user name or password: put the account in [smb] "
                          "username and its password in the variable [smb] password_env names")
    host = parts.hostname or ""
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if not _HOST.match(host) or not segments or parts.query or parts.fragment:
        raise ConfigError(f"{url!r} is not an SMB share address: write smb://server/share/folder "
                          "(smb://server:port/... for another port than 445)")
    if not all(usable_name(s) for s in segments):
        raise ConfigError(f"{url!r}: '.', '..', slashes, backslashes and control characters are not allowed in "
                          "the names of a share path")
    return host.lower(), parts.port or 445, segments[0], "/".join(segments[1:])


def usable_name(name: str) -> bool:
    """Whether ``name`` can be one file or folder name of a path (never '.', '..', a separator or NUL),
    so that the path the workbench records is the file the server opens."""
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\0") and name.isprintable()


def share_url(host: str, port: int, share: str, rel: str = "") -> str:
    """The URL of ``rel`` (names separated by '/') on the share; each name percent-encoded, so a name
    holding '%', '#' or '?' still names that one file."""
    names = [share, *(rel.split("/") if rel else [])]
    return f"smb://{host}:{port}/" + "/".join(quote(n, safe="") for n in names)


_CACHES: dict[tuple, dict] = {}  # (host, port, account, encrypt) -> that account's smbclient connections


def _close(cache: dict) -> None:
    for connection in list(cache.values()):
        try:
            connection.disconnect()
        except Exception:  # noqa: BLE001 - closing a broken connection
            pass


def _password(settings) -> str | None:
    if settings.password_env:
        value = os.environ.get(settings.password_env)
        if not value:
            raise ConfigError(f"[smb] password_env names {settings.password_env}, which is not set: export the share "
                              "account's password in it")
        return value
    if settings.password_file:
        try:
            if os.stat(settings.password_file).st_mode & 0o077:
                raise ConfigError(f"[smb] password_file {settings.password_file} may be read by other accounts: "
                                  f"chmod 600 {settings.password_file}")
            return settings.password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"[smb] password_file {settings.password_file} cannot be read ({exc.strerror})") from None
    return None


class SmbShare:
    """One smb:// source (see module)."""

    def __init__(self, root: str, collection: str, config, default_groups=()) -> None:
        self.host, self.port, self.share, self.base = parse_url(root)
        self.root = share_url(self.host, self.port, self.share, self.base)
        self.collection = collection
        self.settings = config.smb
        self.native = config.access.permissions_from in ("native", "posix")
        self.default_groups = tuple(default_groups)
        default = ", ".join(self.default_groups) or "admins only"
        self.permissions = (f"NT ACLs of the share ({len(self.settings.sids)} SIDs mapped in [smb] sids)" if self.native
                            else f"the collection default (access files are not read on shares): {default}")
        self.max_bytes = int(config.ingest.max_file_mb * 2**20)
        self._session: dict | None = None  # smbclient keywords once the session is registered
        self._folder_sds: dict[str, object] = {}
        self.failures: list[FileFailure] = []

    def __repr__(self) -> str:  # never the password
        return f"SmbShare({self.root!r}, collection={self.collection!r})"

    # ---- the connection ---------------------------------------------------------------------------
    def _kw(self) -> dict:
        """smbclient's keyword arguments for this share's session (registered on first use): the port,
        the account, its encryption choice and a connection cache of this account's own, so that no
        other session of the process (or a half-made one) is ever used, and a reconnection keeps the
        same encryption."""
        if self._session is None:
            import smbclient

            smbclient.ClientConfig(skip_dfs=True)  # never follow a server's referral to another host
            user = self.settings.username
            if user and self.settings.domain:
                user = f"{self.settings.domain}\\{user}"
            password = _password(self.settings)
            tries = {"always": [True], "never": [False], "auto": [True, False]}[self.settings.encrypt]
            for i, encrypt in enumerate(tries):  # auto: encrypted when the server offers it, else signed only
                key = (self.host, self.port, user, encrypt)
                cache = _CACHES.setdefault(key, {})
                kw = {"port": self.port, "username": user, "password": password, "encrypt": encrypt,
                      "connection_timeout": self.settings.timeout_s, "connection_cache": cache}
                try:
                    smbclient.register_session(self.host, require_signing=True, **kw)
                    break
                except Exception as exc:  # noqa: BLE001 - network, authentication, protocol: all "unreachable"
                    _CACHES.pop(key, None)  # never reuse a session that failed half-way
                    _close(cache)
                    if i == len(tries) - 1 or "encrypt" not in str(exc).lower():
                        raise self._unreachable(exc) from None
            self._session = kw
        return self._session

    def _unreachable(self, exc: BaseException) -> SourceUnreachableError:
        kind = type(exc).__name__
        return SourceUnreachableError(f"the share {self.root} cannot be reached or read ({kind}): check the server, "
                                      "the share name, [smb] username and its password; nothing was deleted")

    def unc(self, path: str) -> str:
        """The UNC path (\\\\host\\share\\a\\b) of a file URL or of a path inside the share."""
        if is_share_url(path):
            host, port, share, rel = parse_url(path)
            if (host, port, share) != (self.host, self.port, self.share):
                raise FileCheckError(FileCheck.MISSING, f"{path} is not on {self.root}")
        else:
            rel = path
        return "\\\\" + self.host + "\\" + self.share + ("\\" + rel.replace("/", "\\") if rel else "")

    # ---- the Source protocol -----------------------------------------------------------------------
    def exists(self) -> bool:
        import smbclient.path

        kw = self._kw() if self._session is not None else None
        try:
            kw = kw or self._kw()
        except SourceUnreachableError:
            return False  # unreachable is "missing": its documents are kept (a ConfigError is raised)
        try:
            return smbclient.path.isdir(self.unc(self.base), **kw)
        except Exception:  # noqa: BLE001
            return False

    def scan(self, include_hidden: bool = False) -> tuple[list[FileInfo], list[FileFailure]]:
        import smbclient

        files: list[FileInfo] = []
        skipped: list[FileFailure] = []
        todo = [self.base]
        seen = 0
        try:
            kw = self._kw()
            while todo:
                folder = todo.pop()
                for entry in sorted(smbclient.scandir(self.unc(folder), **kw), key=lambda e: e.name):
                    seen += 1
                    if seen > MAX_ENTRIES:
                        raise SourceUnreachableError(f"the share {self.root} lists more than {MAX_ENTRIES:,} entries: "
                                                     "ingest a smaller folder of it")
                    info = entry.smb_info
                    if not usable_name(entry.name):
                        skipped.append(FileFailure(f"{self.root} ({entry.name!r})", "a name that cannot be one file "
                                                   "name (a separator, '.', '..' or a control character)",
                                                   kind=FailureKind.UNREADABLE))
                        continue
                    rel = f"{folder}/{entry.name}" if folder else entry.name
                    url = share_url(self.host, self.port, self.share, rel)
                    hidden = entry.name.startswith(".") or info.file_attributes & (HIDDEN | SYSTEM)
                    if hidden and not include_hidden:
                        continue
                    if info.file_attributes & REPARSE and info.ea_size in LINK_TAGS:  # EaSize holds the tag
                        skipped.append(FileFailure(url, "link or mount point (not followed)", kind=FailureKind.SYMLINK))
                    elif info.file_attributes & DIRECTORY:
                        if not info.file_attributes & REPARSE:
                            todo.append(rel)
                    elif format_for(entry.name) is None:
                        skipped.append(FileFailure(url, f"unsupported file type (supported: {supported_suffixes()})",
                                                   kind=FailureKind.UNSUPPORTED))
                    else:
                        files.append(FileInfo(url, int(info.end_of_file), info.last_write_time.timestamp()))
        except SourceUnreachableError:
            raise
        except Exception as exc:  # noqa: BLE001 - a share that fails mid-listing: keep everything as it is
            raise self._unreachable(exc) from None
        return sorted(files, key=lambda f: f.path), skipped

    def _read(self, path: str):
        import smbclient

        return smbclient.open_file(self.unc(path), mode="rb", share_access="r", **self._kw())

    def _blocks(self, path: str):
        """The bytes of ``path`` in blocks, at most ``max_bytes`` (more is refused: the server lied
        about the size, or the file grew past ``[ingest] max_file_mb``)."""
        total = 0
        with self._read(path) as f:
            while block := f.read(BLOCK):
                total += len(block)
                if total > self.max_bytes:
                    raise FileCheckError(FileCheck.CHANGED, f"it is larger than {self.max_bytes // 2**20} MB "
                                         "([ingest] max_file_mb) on the share")
                yield block

    def content_hash(self, path: str) -> str:
        h = hashlib.blake2b(digest_size=16)
        try:
            for block in self._blocks(path):
                h.update(block)
        except Exception as exc:  # noqa: BLE001 - the sync reports OSError as "cannot read"
            raise OSError(f"cannot read {path} from the share: {exc if isinstance(exc, FileCheckError) else type(exc).__name__}") \
                from None
        return h.hexdigest()

    def open(self, path: str, content_hash: str | None = None) -> int:
        fd = os.memfd_create("workbench-smb", os.MFD_CLOEXEC)
        try:
            h = hashlib.blake2b(digest_size=16)
            try:
                for block in self._blocks(path):
                    h.update(block)
                    view = memoryview(block)
                    while view:
                        view = view[os.write(fd, view):]
            except FileCheckError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise FileCheckError(FileCheck.UNREADABLE, f"cannot read it from the share ({type(exc).__name__})") \
                    from None
            if content_hash is not None and h.hexdigest() != content_hash:
                raise FileCheckError(FileCheck.CHANGED, "it changed on the share since it was listed")
            os.lseek(fd, 0, os.SEEK_SET)
            return fd
        except BaseException:
            os.close(fd)
            raise

    def groups_for(self, path: str) -> tuple[str, ...]:
        if not self.native:
            return self.default_groups
        return self.decide(path)[0]

    # ---- NT ACLs ----------------------------------------------------------------------------------
    def security_descriptor(self, path: str, folder: bool = False):
        """The parsed NT security descriptor of a file URL or a path inside the share."""
        from workbench.sources.ntacl import parse_sd

        return parse_sd(query_sd(self.unc(path), folder, self._kw()))

    def _folder_sd(self, rel: str):
        if rel not in self._folder_sds:
            self._folder_sds[rel] = self.security_descriptor(rel, folder=True)
        return self._folder_sds[rel]

    def decide(self, path: str) -> tuple[tuple[str, ...], list[str]]:
        """The reader entries of ``path`` from its NT ACLs, and the steps that decided them, in words."""
        from workbench.sources.ntacl import effective_aces, reader_entries, stored_and_inherited

        _, _, _, rel = parse_url(path)
        parts = rel.split("/")
        chain = ["/".join(parts[:i]) for i in range(len(parts))]  # the share's root down to the file's folder
        try:
            file_sd = self.security_descriptor(path)
            folders = [self._folder_sd(f) for f in chain]
        except Exception as exc:  # noqa: BLE001 - permissions that cannot be read: closed
            self.failures.append(FileFailure(path, f"permissions not readable from the share, so admins only "
                                             f"({type(exc).__name__})", self.collection, FailureKind.ACCESS_FILE))
            return (), [f"{path}: its security descriptor could not be read: admins only"]
        aces = effective_aces(file_sd, folders)
        allowed, denied = stored_and_inherited(file_sd, aces)
        entries = reader_entries(allowed, denied, self.settings.sids)
        steps = [f"{path}: {len(file_sd.dacl or ())} ACEs on the file"
                 f"{' (protected: nothing inherited)' if file_sd.protected else ''}, "
                 f"{len(aces) if aces is not None else 'no DACL: everyone'} in effect with its folders'"]
        steps += [f"  {'allow' if a.type == 0 else 'deny' if a.type == 1 else f'type {a.type}'} {a.sid} "
                  f"mask 0x{a.mask:08x}{' (inherited)' if a.flags & 0x10 else ''}" for a in aces or ()]
        steps.append(f"readers: allowed {', '.join(sorted(allowed)) or 'none'}; denied {', '.join(sorted(denied)) or 'none'}"
                     f" → workbench: {', '.join(entries) or 'admins only'}")
        return entries, steps


def query_sd(unc: str, folder: bool, kw: dict) -> bytes:
    """The raw security descriptor (owner, group, DACL) of ``unc``: an SMB2 QUERY_INFO (security) on a
    handle opened with READ_CONTROL (smbprotocol has no public call for it)."""
    import smbclient
    from smbprotocol.file_info import InfoType
    from smbprotocol.open import FilePipePrinterAccessMask, SMB2QueryInfoRequest, SMB2QueryInfoResponse

    access = FilePipePrinterAccessMask.READ_CONTROL | FilePipePrinterAccessMask.FILE_READ_ATTRIBUTES
    with smbclient.open_file(unc, mode="rb", buffering=0, file_type="dir" if folder else "file", share_access="rwd",
                             desired_access=access, **kw) as raw:
        handle = raw.fd
        request = SMB2QueryInfoRequest()
        request["info_type"] = InfoType.SMB2_0_INFO_SECURITY
        request["file_info_class"] = 0
        request["additional_information"] = 0x1 | 0x2 | 0x4  # owner, group, DACL
        request["output_buffer_length"] = 65536
        request["file_id"] = handle.file_id
        sent = handle.connection.send(request, sid=handle.tree_connect.session.session_id,
                                      tid=handle.tree_connect.tree_connect_id)
        response = SMB2QueryInfoResponse()
        response.unpack(handle.connection.receive(sent)["data"].get_value())
        return response["buffer"].get_value()
