"""Who staff are, as the organization's directory says: LDAP/Active Directory and OpenID Connect.

`directory_for(config)` gives the configured LDAP/AD directory (or None); `workbench.identity.oidc`
signs people in through an OpenID provider. Both report a `DirectoryUser` whose groups are already
mapped through ``[auth] groups``. Leaves out: local accounts (`workbench.stores.users`) and deciding
between sources (`workbench.services.accounts`).
"""

from __future__ import annotations

from workbench.identity.base import LDAP, LOCAL, OIDC, Directory, DirectoryUser, map_groups

__all__ = ["LDAP", "LOCAL", "OIDC", "Directory", "DirectoryUser", "directory_for", "map_groups"]


def directory_for(config) -> Directory | None:
    """The LDAP/AD directory of ``config`` ([auth.ldap] url set), or None. Checks the settings
    (ConfigError on a plain-text bind not explicitly allowed) but does not connect yet."""
    if not config.auth.ldap.url:
        return None
    from workbench.identity.ldap import LdapDirectory

    return LdapDirectory(config.auth.ldap, config.auth.groups)
