"""Running the staff app: `serve(workbench)` with uvicorn, and `main()`, its command line.

`serve` builds the server (`workbench_web.server.create_server`), says what an operator should
fix (no users yet; a public URL behind a proxy that is not trusted), loads the models in the
background so that pages and sign-in never wait for them, and runs uvicorn without a Server
header, reading X-Forwarded-For/-Proto only from ``[web] trusted_proxies``. `main` is
`python -m apps.web` (the same as `workbench serve`, which finds `serve` by entry point).

Leaves out: everything the server answers (`server`, `signin`, `viewer`, `pages`, `handlers`,
`guard`, `gate` in this package).
"""

import argparse
import threading

from workbench import Workbench, WorkbenchError
from workbench.net import is_loopback
from workbench_web.server import create_server


def serve(wb: Workbench, host: str | None = None, port: int | None = None) -> None:
    """Run the staff app until interrupted (loads the models in the background first)."""
    import uvicorn

    web = wb.config.web
    host, port = host or web.host, port if port is not None else web.port
    app = create_server(wb, host, port)
    if not wb.users.list() and web.trusted_user_header is None:
        print("workbench: no users yet; create one with `workbench users add NAME --groups admin`")
    if web.public_url and not web.trusted_proxies and is_loopback(host):
        print("workbench: [web] public_url is set but trusted_proxies is empty: behind a reverse proxy every client "
              "looks like the proxy, so failed sign-ins of one delay all; set trusted_proxies = [\"127.0.0.1\", "
              "\"::1\"] if the proxy runs here")

    def warm() -> None:  # each model has its own lock: pages, sign-in and status never wait for this
        try:
            wb.embedder
            wb.llm
        except WorkbenchError as exc:
            print(f"workbench: the model could not be loaded: {exc}")

    threading.Thread(target=warm, daemon=True).start()
    print(f"workbench: staff app on http://{host}:{port}/ (index {wb.index_dir}); Ctrl+C stops it")
    # X-Forwarded-For/-Proto are read only from the proxies the operator named (none by default)
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False,
                proxy_headers=bool(web.trusted_proxies), forwarded_allow_ips=list(web.trusted_proxies) or None)


def main(argv=None) -> int:
    """`python -m apps.web [--config F] [--index D] [--host H] [--port P]` (same as `workbench serve`)."""
    p = argparse.ArgumentParser(prog="workbench-web", description="Start the staff web app.")
    p.add_argument("--config")
    p.add_argument("--index")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    args = p.parse_args(argv)
    serve(Workbench.open(args.config, index_dir=args.index), args.host, args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
