"""What the web app keeps beside the index, apart from the pipeline: small SQLite stores.
Nothing here is a pipeline stage, and no stage imports this package (only
`Workbench` wires the stores in, and the web app uses them).

- `users`: staff accounts (argon2id hashes, groups) in ``<index>/users.sqlite``;
- `audit`: who asked, viewed, uploaded or signed in, in ``<index>/audit.sqlite``;
- `feedback`: ratings of answers in ``<index>/feedback.sqlite``;
- `uploads`: safe names and placement of uploaded files under ``<index>/uploads/``;
- `sidecar`: how these SQLite files are opened (private, one transaction, always closed).

Leaves out: the web server itself and its in-memory sign-in sessions (`workbench_web`).
"""

from __future__ import annotations

from workbench.stores.audit import AuditEntry, AuditLog, printable
from workbench.stores.feedback import Feedback, FeedbackStore
from workbench.stores.uploads import safe_filename, upload_outcomes
from workbench.access import parse_groups
from workbench.stores.users import User, UserStore

__all__ = ["AuditEntry", "AuditLog", "Feedback", "FeedbackStore", "User", "UserStore", "parse_groups", "printable",
           "safe_filename", "upload_outcomes"]
