"""Entry point kept where the design card puts apps: `python -m apps.web [--config F] [--port P]`.

The staff web app itself ships inside the workbench distribution as `workbench_web` (see its
docstring); this file only starts it, exactly like `workbench serve`.
"""

from workbench_web import build_app, create_server, main, serve

__all__ = ["build_app", "create_server", "main", "serve"]

if __name__ == "__main__":
    raise SystemExit(main())
