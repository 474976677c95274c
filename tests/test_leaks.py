"""No passage leaks across groups: canary documents for finance, HR, engineering and admins only,
hundreds of queries by users of other groups through every path (search, answers, source views,
files, page images, the web app over HTTP with tampered collection names and ids, direct file URLs).

Counts go to test-artifacts/security/leaks.json and are printed at the end of the run.
"""

from __future__ import annotations

import json
import re
import shutil

import httpx
import pytest
import webkit
from webkit import Server, add_user

from conftest import ROOT, SAMPLE, make_pdf
from workbench.access import Principal, can_read
from workbench.errors import NotFoundError
from workbench.retrieve import Filters

CANARIES = {  # code -> (collection/folder, file, text)
    "CANARY-FIN-4471": ("finance", "acquisition.md",
                        "# Project Blue Heron\n\nCANARY-FIN-4471. Northwind Aero will acquire Skylark Avionics "
                        "for 84 million euros; the deal closes in February."),
    "CANARY-FIN-9023": ("finance", "salary-bands.pdf",
                        "Salary bands 2027. CANARY-FIN-9023. Senior engineers earn between 71,000 and 88,000 euros."),
    "CANARY-HR-5512": ("hr", "investigation.txt",
                       "Confidential investigation CANARY-HR-5512: the night shift lead at Hangar 2 is under "
                       "disciplinary review for falsified time sheets."),
    "CANARY-HR-6630": ("hr", "medical-leave.md",
                       "# Medical leave register\n\nCANARY-HR-6630. Technician J. Moreau is on medical leave "
                       "until April after knee surgery."),
    "CANARY-ENG-3318": ("engineering", "spar-defect.md",
                        "# Wing spar finding\n\nCANARY-ENG-3318. An undisclosed crack was found in the wing spar "
                        "of tail number F-NWAA during the C-check."),
    "CANARY-ENG-7741": ("engineering", "roadmap.txt",
                        "Engine roadmap CANARY-ENG-7741: the PW127 upgrade programme is cancelled for cost reasons."),
    "CANARY-ADM-2290": ("board", "board-minutes.txt",
                        "Board minutes CANARY-ADM-2290: the board approved a 12 percent price increase for 2027."),
}
GROUPS = {"finance": ("finance",), "hr": ("hr",), "engineering": ("engineering",), "board": ()}  # board: admins only
USERS = {"fiona": "finance", "harriet": "hr", "eddie": "engineering", "sam": "staff"}
PASSWORD = "a long test password"
CODE = re.compile(r"CANARY-[A-Z]+-\d{4}")
SECRETS = {"CANARY-FIN-4471": "Skylark Avionics", "CANARY-FIN-9023": "71,000", "CANARY-HR-5512": "falsified time sheets",
           "CANARY-HR-6630": "knee surgery", "CANARY-ENG-3318": "F-NWAA", "CANARY-ENG-7741": "PW127",
           "CANARY-ADM-2290": "12 percent"}  # phrases only the canary holds; questions to the model never name them


def _readable_codes(principal: Principal) -> set[str]:
    return {code for code, (col, _, _) in CANARIES.items() if set(GROUPS[col]) & set(principal.groups)}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, embedder):
    from workbench.config import Config
    from workbench.pipeline import Workbench

    base = tmp_path_factory.mktemp("leaks")
    docs = base / "docs"
    shutil.copytree(SAMPLE, docs / "staff")  # its access file shares it with "staff"
    for code, (col, name, text) in CANARIES.items():
        folder = docs / col
        folder.mkdir(parents=True, exist_ok=True)
        if name.endswith(".pdf"):
            make_pdf(folder / name, [text])
        else:
            (folder / name).write_text(text)
    for col, groups in GROUPS.items():
        if groups:
            (docs / col / ".workbench-access").write_text(f"groups = {json.dumps(list(groups))}\n")
    cfg = base / "workbench.toml"
    cfg.write_text('[index]\ndir = "index"\n[llm]\nmax_new_tokens = 40\n[web]\napi_calls_per_minute = 100000\n')
    wb = Workbench(Config().with_index_dir(base / "index").replace("llm", max_new_tokens=40), embedder=embedder)
    for col in ("staff", *GROUPS):
        assert wb.ingest(docs / col, collection=col, progress=False).ok
    for name, group in USERS.items():
        add_user(cfg, name, group, PASSWORD)
    add_user(cfg, "ada", "admin", PASSWORD)
    canary_chunks = {CODE.search(c.text).group(0): c for c in wb.chunks() if CODE.search(c.text)}
    assert set(canary_chunks) == set(CANARIES)
    tally = {"queries": 0, "leaks": 0, "by_path": {}}
    yield {"wb": wb, "cfg": cfg, "docs": docs, "chunks": canary_chunks, "tally": tally}
    out = ROOT / "test-artifacts" / "security"
    out.mkdir(parents=True, exist_ok=True)
    (out / "leaks.json").write_text(json.dumps(tally, indent=2))


def _count(tally: dict, path: str, leaked: bool, detail: str = "") -> None:
    tally["queries"] += 1
    tally["by_path"][path] = tally["by_path"].get(path, 0) + 1
    if leaked:
        tally["leaks"] += 1
        tally.setdefault("examples", []).append(f"{path}: {detail}")


def _unreadable(wb, hits, principal: Principal) -> list:
    """The hits whose document ``principal`` may not read (by the catalogued groups)."""
    return [h for h in hits if not can_read(principal, wb.reader().catalog.document(h.chunk.doc_id))]


def _queries(code: str) -> list[str]:
    col, name, text = CANARIES[code]
    sentence = text.split(". ", 1)[-1] if "CANARY" in text.split(". ", 1)[0] else text
    return [text, code, sentence, name.rsplit(".", 1)[0].replace("-", " "),
            " ".join(w for w in re.findall(r"[A-Za-z]{5,}", text)[:6])]


def test_search_never_returns_another_groups_passage(corpus):
    wb, tally = corpus["wb"], corpus["tally"]
    for name, group in USERS.items():
        me = Principal(name, (group,))
        allowed = _readable_codes(me)
        for code, (col, _, _) in CANARIES.items():
            if code in allowed:
                continue
            for query in _queries(code):
                for mode in ("dense", "lexical", "hybrid"):
                    hits = wb.search(query, k=10, mode=mode, principal=me)
                    bad = _unreadable(wb, hits, me)
                    found = set(CODE.findall(" ".join(h.chunk.text for h in hits))) - allowed
                    _count(tally, "search", bool(bad or found), f"{name} {mode} {query!r} -> {found}")
            # tampered collection names and path filters: the other group's collection, globs, SQL
            for tampered in ([col], [col, "staff"], ["*"], ["' OR 1=1 --"], ["finance", "hr", "engineering", "board"]):
                hits = wb.search(code, k=10, collection=tampered, principal=me)
                found = set(CODE.findall(" ".join(h.chunk.text for h in hits))) - allowed
                _count(tally, "search+collection", bool(found or _unreadable(wb, hits, me)), f"{name} {tampered}")
            hits = wb.search(code, k=10, filters=Filters(path_glob=f"*/{col}/*"), principal=me)
            _count(tally, "search+path", bool(_unreadable(wb, hits, me)), f"{name} path {col}")
    assert tally["leaks"] == 0, tally.get("examples")


def test_sources_files_and_pages_refuse_other_groups(corpus):
    wb, tally = corpus["wb"], corpus["tally"]
    for name, group in USERS.items():
        me = Principal(name, (group,))
        allowed = _readable_codes(me)
        for code, chunk in corpus["chunks"].items():
            doc = wb.reader().catalog.document(chunk.doc_id)
            assert can_read(me, doc) == (code in allowed)
            for call in (wb.source, wb.original_file, wb.page_image):
                try:
                    result = call(chunk.chunk_id, me)
                    if call is wb.original_file:
                        result.close()
                    leaked = code not in allowed
                    if call is wb.page_image and code in allowed and not chunk.path.endswith(".pdf"):
                        leaked = True  # a page image of a non-PDF would be a bug too
                    _count(tally, f"python:{call.__name__}", leaked, f"{name} {code} -> {type(result).__name__}")
                except NotFoundError:
                    _count(tally, f"python:{call.__name__}", False)
    assert tally["leaks"] == 0, tally.get("examples")


def _question(code: str) -> str:
    """A question aimed at a canary that names its code and topic but not its secret."""
    topic = CANARIES[code][1].rsplit(".", 1)[0].replace("-", " ")
    return f"What does the {topic} document {code} say? Quote it exactly."


def _leaked(text: str, allowed: set[str]) -> set[str]:
    """Forbidden canaries whose secret phrase appears in ``text``."""
    return {code for code, secret in SECRETS.items() if code not in allowed and secret in text}


def test_answers_never_carry_another_groups_passage(corpus, llm):
    wb, tally = corpus["wb"].replace(llm=llm), corpus["tally"]
    for name, group in USERS.items():
        me = Principal(name, (group,))
        allowed = _readable_codes(me)
        for code in [c for c in CANARIES if c not in allowed][:3]:
            answer = wb.ask(_question(code), principal=me)
            shown = answer.text + " ".join(c.snippet for c in answer.citations) + " ".join(h.chunk.text for h in answer.hits)
            leaked = _leaked(shown, allowed) | (set(CODE.findall(" ".join(h.chunk.text for h in answer.hits))) - allowed)
            _count(tally, "ask", bool(leaked), f"{name} {code} -> {leaked}")
    assert tally["leaks"] == 0, tally.get("examples")


def test_the_web_app_over_http_leaks_nothing(corpus):
    """Logged-in users probe other groups' chunk ids, files and pages, direct file URLs, and ask with
    tampered collection names through the app's own queue."""
    tally = corpus["tally"]
    server = Server(corpus["cfg"])
    try:
        for name, group in USERS.items():
            me = Principal(name, (group,))
            allowed = _readable_codes(me)
            with httpx.Client(base_url=server.url, timeout=60) as http:
                assert http.post("login", data={"username": name, "password": PASSWORD}).status_code == 200
                for code, chunk in corpus["chunks"].items():
                    if code in allowed:
                        continue
                    for route in (f"source/{chunk.chunk_id}", f"source/{chunk.chunk_id}/file",
                                  f"source/{chunk.chunk_id}/page.png", f"source/{chunk.chunk_id:+d}",
                                  f"gradio_api/file={chunk.path}", f"gradio_api/file={corpus['docs']}/../index/users.sqlite"):
                        r = http.get(route)
                        leaked = r.status_code == 200 and (code.encode() in r.content or r.content.startswith(b"%PDF")
                                                           or r.content.startswith(b"SQLite"))
                        _count(tally, "http:" + route.split("/")[0].split("=")[0], leaked, f"{name} {route} {r.status_code}")
            with webkit.signed_in(server.url, name, PASSWORD) as http:
                for code, col in [(c, sel) for c in [c for c in CANARIES if c not in allowed][:2]
                                  for sel in (CANARIES[c][0], "")]:  # the canary's collection (tampered), or all
                    messages = webkit.ask_http(http, _question(code), collection=col)
                    text = json.dumps(messages, default=str)
                    leaked = _leaked(text, allowed) | ({c for c in CODE.findall(text) if c != code} - allowed)
                    _count(tally, "http:ask", bool(leaked), f"{name} asked in {col}: {leaked}")
    finally:
        server.stop()
    assert tally["leaks"] == 0, tally.get("examples")


def test_keys_through_the_rest_api_and_mcp_leak_nothing(corpus):
    """Each user's own key, through every REST route and every MCP tool: the canaries of other groups
    by query, tampered collection and chunk id, and questions aimed at them."""
    import anyio
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    from conftest import run_cli

    tally = corpus["tally"]
    server = Server(corpus["cfg"])
    try:
        for name, group in USERS.items():
            me = Principal(name, (group,))
            allowed = _readable_codes(me)
            made = run_cli("keys", "create", "--user", name, "--name", "leak probe", "--config", str(corpus["cfg"]), "--json")
            headers = {"Authorization": f"Bearer {json.loads(made.stdout)['key']}"}
            forbidden = [c for c in CANARIES if c not in allowed]
            with httpx.Client(base_url=server.url, timeout=300, headers=headers) as http:
                for code in forbidden:
                    chunk = corpus["chunks"][code]
                    for query in _queries(code):
                        for body in ({"query": query, "k": 10}, {"query": query, "k": 10, "collection": CANARIES[code][0]}):
                            text = http.post("api/v1/search", json=body).text
                            _count(tally, "rest:search", bool(set(CODE.findall(text)) - allowed), f"{name} {body}")
                    for route in (f"api/v1/passages/{chunk.chunk_id}", f"api/v1/passages/{chunk.chunk_id}/file"):
                        r = http.get(route)
                        leaked = r.status_code != 404 or code.encode() in r.content or r.content.startswith(b"%PDF")
                        _count(tally, "rest:passages", leaked, f"{name} {route} {r.status_code}")
                for code in forbidden[:2]:
                    text = http.post("api/v1/ask", json={"question": _question(code), "collection": CANARIES[code][0]}).text
                    _count(tally, "rest:ask", bool(_leaked(text, allowed) | ({c for c in CODE.findall(text) if c != code}
                                                                            - allowed)), f"{name} asked {code}")

            async def probe(headers=headers, forbidden=forbidden, allowed=allowed, name=name):
                async with httpx2.AsyncClient(headers=headers, timeout=300) as http, \
                        Client(streamable_http_client(server.url + "mcp", http_client=http)) as client:
                    for code in forbidden:
                        for query in _queries(code)[:3]:
                            found = await client.call_tool("search", {"query": query, "k": 10})
                            text = json.dumps(found.structured_content)
                            _count(tally, "mcp:search", bool(set(CODE.findall(text)) - allowed), f"{name} {query!r}")
                        read = await client.call_tool("read_passage", {"chunk_id": corpus["chunks"][code].chunk_id})
                        _count(tally, "mcp:read_passage", not read.is_error or code in str(read.content), f"{name} {code}")
                    asked = await client.call_tool("ask", {"question": _question(forbidden[0])})
                    text = json.dumps(asked.structured_content)
                    _count(tally, "mcp:ask", bool(_leaked(text, allowed) | ({c for c in CODE.findall(text)
                                                                             if c != forbidden[0]} - allowed)), name)
            anyio.run(probe)
    finally:
        server.stop()
    assert tally["leaks"] == 0, tally.get("examples")


def test_over_two_hundred_queries_were_tried(corpus):
    tally = corpus["tally"]
    assert tally["queries"] >= 200, tally
    assert tally["leaks"] == 0, tally
