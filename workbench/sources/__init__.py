"""Where files come from: the `Source` protocol (`base.py`) and one module per kind of source.

- `workbench.sources.local`: a folder or file on this machine (`LocalFolder`); `posix.py` reads its
  files' POSIX permissions;
- `workbench.sources.smb`: a Windows file share, ``smb://server/share/path`` (`SmbShare`);
  `ntacl.py` reads its files' NT ACLs.

`source_for` is the one place a root becomes a source; `root_of` keeps a share's address a string
(a `Path` would fold its ``//``); `opener_for` opens an indexed file where it lives (the source
viewer and downloads). Leaves out: what changed since the last sync (`workbench.sync`), parsing
(`workbench.load`) and running the parsers (`workbench.executors`).
"""

from __future__ import annotations

import os
from pathlib import Path

from workbench.access import AccessRules
from workbench.sources.base import Source
from workbench.sources.local import LocalFolder
from workbench.sources.smb import SmbShare, is_share_url, normal_root, parse_url, share_url

__all__ = ["LocalFolder", "SmbShare", "Source", "is_share_url", "opener_for", "root_of", "source_for"]


def root_of(root: str | os.PathLike) -> str | Path:
    """A source root as given or stored: a share's URL as it is, a local path resolved."""
    if is_share_url(str(root)):
        return normal_root(str(root))
    return Path(root).expanduser().resolve()


def source_for(root: str | os.PathLike, collection: str, rules: AccessRules, config=None) -> Source:
    """The source that reads ``root`` for ``collection``: a share for smb://..., else a local folder or file."""
    if is_share_url(str(root)):
        if config is None:
            raise ValueError("an SMB source needs the config (its [smb] account)")
        return SmbShare(str(root), collection, config, rules.default)
    return LocalFolder(root, collection, rules)


def opener_for(path: str, config):
    """``open(path, content_hash) -> fd`` for an indexed file on a share; None for a local file."""
    if not is_share_url(path):
        return None
    host, port, share, _ = parse_url(path)
    return SmbShare(share_url(host, port, share), "", config).open
