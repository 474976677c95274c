"""Chunking: exact spans, token budget, structure boundaries, overlap, stable ids."""

from __future__ import annotations

from workbench.chunk import chunk_document
from workbench.records import Block, ParsedDocument


def words(texts):
    return [len(t.split()) for t in texts]


def doc(*blocks: Block, fmt: str = "pdf") -> ParsedDocument:
    return ParsedDocument(format=fmt, title="t", blocks=tuple(blocks))


def sentences(n: int, prefix: str) -> str:
    return " ".join(f"{prefix} sentence number {i} has six words." for i in range(n))


def test_spans_index_the_extracted_text_exactly():
    d = doc(Block("Intro heading", page=1, kind="heading"), Block(sentences(30, "A"), page=1),
            Block(sentences(5, "B"), page=2))
    chunks = chunk_document(d, "doc1", "h1", words, max_tokens=40, overlap_tokens=8)
    assert len(chunks) > 3
    for c in chunks:
        assert d.text[c.start:c.end] == c.text


def test_budget_is_respected_with_the_real_tokenizer(embedder):
    long_block = Block(sentences(200, "Turbine"), page=1)
    chunks = chunk_document(doc(long_block), "d", "h", embedder.count_tokens, max_tokens=64, overlap_tokens=16)
    sizes = embedder.count_tokens([c.text for c in chunks])
    assert max(sizes) <= 64 + 2  # joining pieces may add a token at the seam
    assert len(chunks) >= 200 * 8 // 64


def test_chunks_never_cross_pages_or_sheets():
    d = doc(*[Block(sentences(3, f"P{p}"), page=p) for p in (1, 2, 3)])
    chunks = chunk_document(d, "d", "h", words, max_tokens=500)
    assert [c.page for c in chunks] == [1, 2, 3]
    rows = doc(Block("a | b", sheet="S1", kind="heading"), Block("Row 2: a: 1", sheet="S1", kind="row"),
               Block("x | y", sheet="S2", kind="heading"), Block("Row 2: x: 2", sheet="S2", kind="row"), fmt="xlsx")
    assert [c.sheet for c in chunk_document(rows, "d", "h", words)] == ["S1", "S2"]


def test_consecutive_chunks_overlap_within_a_section():
    chunks = chunk_document(doc(Block(sentences(20, "X"), page=1)), "d", "h", words, max_tokens=30, overlap_tokens=8)
    assert len(chunks) > 2
    for a, b in zip(chunks, chunks[1:]):
        assert b.start < a.end, "the next chunk starts inside the previous one"


def test_a_lone_heading_is_carried_into_the_next_section():
    d = doc(Block("Chapter", headings=("Chapter",), kind="heading", page=1),
            Block("Section", headings=("Chapter", "Section"), kind="heading", page=1),
            Block("Body of the section.", headings=("Chapter", "Section"), page=1))
    [c] = chunk_document(d, "d", "h", words)
    assert c.text.startswith("Chapter")
    assert c.text.endswith("Body of the section.")
    assert c.headings == ("Chapter", "Section")


def test_ids_are_stable_and_change_with_content():
    d = doc(Block(sentences(10, "S"), page=1))
    a = chunk_document(d, "doc", "hash1", words, max_tokens=20)
    b = chunk_document(d, "doc", "hash1", words, max_tokens=20)
    c = chunk_document(d, "doc", "hash2", words, max_tokens=20)
    assert [x.chunk_id for x in a] == [x.chunk_id for x in b]
    assert not {x.chunk_id for x in a} & {x.chunk_id for x in c}
    assert all(0 < x.chunk_id < 2**63 for x in a)


def test_a_sentence_longer_than_the_budget_is_split_into_windows():
    d = doc(Block(" ".join(f"w{i}" for i in range(500)), page=1))
    chunks = chunk_document(d, "d", "h", words, max_tokens=50, overlap_tokens=0)
    assert all(len(c.text.split()) <= 50 for c in chunks)
    assert " ".join(c.text for c in chunks).split() == d.text.split()


def test_a_filings_identity_names_its_company_and_period():
    from workbench.chunk import document_identity
    from workbench.records import Block, ParsedDocument

    cover = ("UNITED STATES\nSECURITIES AND EXCHANGE COMMISSION\nFORM 10-Q\nFor the Quarterly Period Ended September 30, 2022\n"
             "Commission File Number 001-37845\nMICROSOFT CORPORATION\nWASHINGTON 91-1144442\n")
    doc = ParsedDocument(format="pdf", title="Form 10-Q filed 10/24/2022", blocks=(Block(text=cover, page=1),))
    assert document_identity(doc, "/filings/msft-q1.pdf") == ("Form 10-Q filed 10/24/2022 · msft q1 · MICROSOFT CORPORATION · "
                                                             "Quarterly Period Ended September 30, 2022")
    other = ParsedDocument(format="pdf", title="0000320193-23-000077", blocks=(Block(
        text="FORM 10-Q\nFor the quarterly period ended July 1, 2023\nApple Inc.\n(Exact name of Registrant as specified "
             "in its charter)\n", page=1),))
    assert "Apple Inc. · quarterly period ended July 1, 2023" in document_identity(other, "2023 Q3 AAPL.pdf")
    plain = ParsedDocument(format="pdf", title="Annual report 2021", blocks=(Block(text="For the year ended June 30, 2021", page=1),))
    assert document_identity(plain, "report.pdf") == "Annual report 2021"  # not a filing: as before (its year is there)
