"""Grounded answers: the real SmolLM2 through the transformers backend, refusal, citations,
follow-ups, the prompt budget, the CLI, and the LangChain adapters."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

import numpy as np
import pytest
from conftest import SAMPLE, run_cli

from workbench.cite import check_citations, markers
from workbench.config import LLMSettings
from workbench.errors import ModelNotFoundError
from workbench.generate import LLM, TransformersLLM
from workbench.prompt import build_messages, load_template
from workbench.cite import degenerate, unsupported_figures
from workbench.records import AnswerFlag, Refusal


class ScriptedLLM(LLM):
    """A fake LLM (subclassing the protocol): replies with a fixed script, records its prompts."""

    name = "scripted"
    context_window = 4096
    max_concurrency = 1

    def __init__(self, reply: str, condensed: str = "") -> None:
        self.reply, self.condensed, self.prompts = reply, condensed, []

    def count_tokens(self, messages: Sequence[dict]) -> int:
        return sum(len(m["content"].split()) for m in messages)

    def stream(self, messages: Sequence[dict], max_new_tokens: int) -> Iterator[str]:
        self.prompts.append(messages)
        text = self.condensed if "Stand-alone question" in messages[-1]["content"] else self.reply
        yield from (w + " " for w in text.split())


class ExplodingLLM(ScriptedLLM):
    def stream(self, messages, max_new_tokens):
        raise AssertionError("the model must not be called")


def test_transformers_backend_loads_gguf_and_streams(llm):
    assert llm.context_window >= 2048
    assert llm.dtype in ("bfloat16", "float32")
    messages = [{"role": "user", "content": "Say hello in one word."}]
    assert llm.count_tokens(messages) > 5
    pieces = list(llm.stream(messages, 12))
    assert len(pieces) >= 2
    assert "".join(pieces).strip()


def test_ask_answers_from_the_right_source_with_timings(sample_wb):
    streamed: list[str] = []
    answer = sample_wb.ask("How many days of paid annual leave do full-time employees accrue?", on_token=streamed.append)
    assert not answer.refused
    assert answer.text
    assert "".join(streamed).strip()
    first = answer.citations[0]
    assert first.path.endswith("employee-handbook.pdf")
    assert first.page == 2
    assert "25 days" in first.snippet
    assert answer.generation == 1
    assert answer.model == "SmolLM2-135M-Instruct"
    t = answer.timings
    assert t.prompt_tokens > 50
    assert t.time_to_first_token_s > 0
    assert t.retrieval_ms > 0
    assert set(markers(answer.text)) <= {c.number for c in answer.citations}
    assert "employee-handbook.pdf" in answer._repr_html_()


def test_unrelated_question_is_refused_without_calling_the_model(sample_wb):
    sample_wb = sample_wb.replace(llm=ExplodingLLM(""))
    answer = sample_wb.ask("What is the boiling point of tungsten in kelvin?")
    assert answer.refused
    assert answer.model == "(not called)"
    assert "answer.min_dense_score" in answer.refusal_reason
    assert answer.refusal.kind is Refusal.TOO_FAR
    assert answer.text == load_template("grounded").refusal


def test_invented_citations_are_dropped_and_uncited_sentences_flagged(sample_wb):
    fake = ScriptedLLM("Full-time staff accrue 25 days of leave [1]. Up to five days carry over [9]. "
                       "Managers can approve exceptions in writing.")
    answer = sample_wb.replace(llm=fake).ask("How many days of annual leave do full-time employees accrue?")
    assert "[9]" not in answer.text
    assert "[1]" in answer.text
    assert answer.invented_citations == (9,)
    assert answer.uncited_sentences == ("Up to five days carry over.", "Managers can approve exceptions in writing.")
    assert [c.number for c in answer.cited] == [1]
    prompt = fake.prompts[0]
    assert "ONLY the numbered sources" in prompt[0]["content"]
    assert "[1] " in prompt[1]["content"]


def test_figures_not_in_the_cited_sources_are_flagged(sample_wb):
    fake = ScriptedLLM("Full-time staff accrue 25 days of leave [1]. After five years they accrue 37 days [1].")
    answer = sample_wb.replace(llm=fake).ask("How many days of annual leave do full-time employees accrue?")
    assert "25" in answer.citations[0].chunk.text and "37" not in answer.citations[0].chunk.text
    assert answer.unsupported_figures == ("After five years they accrue 37 days [1].",)
    assert any(f.kind is AnswerFlag.UNSUPPORTED_FIGURES for f in answer.flags())
    assert answer.to_dict()["unsupported_figures"] == ["After five years they accrue 37 days [1]."]


def test_a_model_in_a_loop_is_stopped_and_shown_as_a_failed_answer(sample_wb):
    fake = ScriptedLLM("Full-time staff accrue " + "= 2.3% of gross margin " * 200)
    pieces = list(sample_wb.replace(llm=fake).ask_stream("How many days of annual leave do full-time employees accrue?"))
    answer = pieces[-1]
    assert answer.refusal.kind is Refusal.DEGENERATE and answer.refused
    assert "gross margin" not in answer.text
    assert len(pieces) - 1 < 60  # stopped within a few repeats, not at the end of the 1,000-word loop


def test_figure_check_and_loop_detector_units():
    passages = {1: "Net sales | Three Months Ended June 25, 2022: 82,959 | 2021: 81,434. Other income/(expense), net (10)",
                2: "Gross margin percentage 43.3"}
    ok = "Net sales were $82,959 million [1]. That is $83.0 billion [1]. The margin was 43.3% [2]. Other was -10 [1]."
    assert unsupported_figures(ok, passages) == (4, [])
    bad = "Net sales were $5,472 million [1]. In 2022 the margin was 43.3% [2]. Sales reached 82.9 billion [2]."
    assert unsupported_figures(bad, passages) == (3, ["Net sales were $5,472 million [1].",
                                                       "Sales reached 82.9 billion [2]."])  # [2] holds no sales
    assert unsupported_figures("Sales were 82,959 in 2022 with no marker.", passages) == (0, [])
    assert degenerate("Net income = 2.3% of gross margin" + " = 2.3% of gross margin" * 4)
    assert not degenerate("Net sales were 82,959 million in Q3 2022 [1], up from 81,434 million a year before [1].")
    assert not degenerate("Revenue rose, costs rose, margins rose, and staff rose.")


def test_check_citations_unit():
    text, valid, invented, uncited = check_citations("A is true [1, 4]. B holds [2][3]. C is unsupported here.", 3)
    assert text == "A is true [1]. B holds [2][3]. C is unsupported here."
    assert valid == [1, 2, 3]
    assert invented == [4]
    assert uncited == ["C is unsupported here."]


def test_follow_up_is_rewritten_before_retrieval(sample_wb):
    fake = ScriptedLLM("Hamburg has 145 people [1].", condensed="What is the headcount of the Hamburg office?")
    answer = sample_wb.replace(llm=fake).ask("And in Hamburg?", history=[("What is the headcount of the Toulouse office?",
                                                        "Toulouse has 310 people [1].")])
    assert answer.standalone_question == "What is the headcount of the Hamburg office?"
    assert answer.citations[0].path.endswith("offices.xlsx")
    assert "Hamburg" in answer.citations[0].snippet


def test_prompt_is_trimmed_to_the_models_context(sample_wb, llm):
    hits = sample_wb.search("leave travel security expenses offices", k=8)
    template = load_template("grounded")
    full, used_all = build_messages(template, "Q?", hits, llm.count_tokens, 100_000)
    budget = llm.count_tokens(full) // 2
    small, used = build_messages(template, "Q?", hits, llm.count_tokens, budget)
    assert llm.count_tokens(small) <= budget
    assert 0 < len(used) < len(used_all)
    assert f"[{len(used)}] " in small[1]["content"]
    assert f"[{len(used) + 1}] " not in small[1]["content"]


def test_missing_llm_weights_say_how_to_get_them():
    with pytest.raises(ModelNotFoundError, match="hf download meta-llama/Llama-3.1-8B-Instruct"):
        TransformersLLM(LLMSettings(model="meta-llama/Llama-3.1-8B-Instruct"))


def test_cli_ask_streams_the_answer_then_lists_sources(tmp_path):
    idx = str(tmp_path / "idx")
    assert run_cli("ingest", str(SAMPLE), "--index", idx).returncode == 0
    out = run_cli("ask", "Which phone extension do I call to report a lost laptop?", "--index", idx)
    assert out.returncode == 0, out.stderr
    assert "[1] " in out.stdout
    assert "employee-handbook.pdf" in out.stdout
    assert "page 5" in out.stdout
    data = json.loads(run_cli("ask", "Who is the site manager in Montreal?", "--index", idx, "--json").stdout)
    assert data["citations"][0]["path"].endswith("offices.xlsx")
    assert data["timings"]["prompt_tokens"] > 0
    refused = json.loads(run_cli("ask", "What is the airspeed velocity of an unladen swallow on Mars?", "--index",
                                 idx, "--json").stdout)
    assert refused["refused"]
    assert refused["model"] == "(not called)"
    assert refused["refusal_kind"] == Refusal.TOO_FAR.value and refused["flags"][0].startswith("refused: ")


def test_langchain_retriever_and_embeddings(sample_wb):
    from langchain_core.embeddings import Embeddings
    from langchain_core.retrievers import BaseRetriever

    retriever = sample_wb.as_retriever(k=2)
    assert isinstance(retriever, BaseRetriever)
    docs = retriever.invoke("per diem in Singapore")
    assert docs[0].metadata["source"].endswith("travel-policy.docx")
    assert "Singapore" in docs[0].page_content
    emb = sample_wb.as_embeddings()
    assert isinstance(emb, Embeddings)
    vec = emb.embed_query("hangar")
    assert len(vec) == 384
    assert np.allclose(vec, sample_wb.embedder.embed_query("hangar"), atol=1e-6)
    assert len(emb.embed_documents(["a", "b"])) == 2


def test_the_calibrated_gate_separates_covered_from_uncovered_questions(sample_wb):
    from calibration_questions import ANSWERABLE, UNANSWERABLE

    answering = sample_wb.replace(llm=ScriptedLLM("Answer [1]."))
    for question in ANSWERABLE:
        assert not answering.ask(question).refused, question
    refusing = sample_wb.replace(llm=ExplodingLLM(""))
    for question in UNANSWERABLE:
        assert refusing.ask(question).refused, question


@pytest.fixture
def llm_server():
    """A real `workbench llm-serve` process (OpenAI-compatible) on a free loopback port."""
    import re
    import subprocess
    import sys

    from conftest import ROOT

    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "llm-serve", "--port", "0"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)/v1", line)
    assert match, (line, proc.stderr.read() if proc.poll() is not None else "")
    yield f"http://127.0.0.1:{match.group(1)}/v1"
    proc.terminate()
    proc.wait(10)


def test_openai_backend_against_a_real_local_server(sample_wb, llm_server):
    from workbench.generate import load_llm

    settings = sample_wb.config.replace("llm", backend="openai", base_url=llm_server, model="SmolLM2-135M-Instruct",
                                        max_new_tokens=32).llm
    remote = load_llm(settings)
    pieces = list(remote.stream([{"role": "user", "content": "Name a colour."}], 16))
    assert len(pieces) >= 2
    assert "".join(pieces).strip()
    answer = sample_wb.replace(llm=remote).ask("When does the shuttle bus leave car park D?")
    assert not answer.refused
    assert answer.text
    assert answer.model == "SmolLM2-135M-Instruct"
    assert answer.citations[0].path.endswith("hangar4-announcement.eml")
    assert answer.citations[0].part == "shuttle-notice.txt"


def test_openai_backend_reports_an_unreachable_server():
    from workbench.errors import WorkbenchError
    from workbench.generate import load_llm

    remote = load_llm(LLMSettings(backend="openai", base_url="http://127.0.0.1:9/v1"))
    with pytest.raises(WorkbenchError, match="cannot reach the LLM server"):
        list(remote.stream([{"role": "user", "content": "hi"}], 4))


def test_llamacpp_backend_on_the_same_gguf(sample_wb):
    from workbench.generate import load_llm

    local = load_llm(LLMSettings(backend="llamacpp", max_new_tokens=32))
    messages = [{"role": "user", "content": "Name a colour."}]
    pieces = list(local.stream(messages, 16))
    assert len(pieces) >= 2
    assert "".join(pieces).strip()
    assert local.count_tokens(messages) > 3
    answer = sample_wb.replace(llm=local).ask("Who is the site manager in Montreal?")
    assert not answer.refused
    assert answer.text
    assert answer.citations[0].path.endswith("offices.xlsx")
    assert answer.timings.tokens_per_s > 0


def test_llm_max_concurrency_is_what_the_web_app_runs_at_once(tmp_path):
    from workbench.config import Config
    from workbench.generate import load_llm
    from workbench.pipeline import Workbench
    from workbench_web.pages import concurrency_for

    cfg = Config().with_index_dir(tmp_path / "index").replace(
        "llm", backend="openai", base_url="http://127.0.0.1:9/v1", max_concurrency=7)
    assert Workbench(cfg).llm_max_concurrency == 7 and concurrency_for(Workbench(cfg)) == 7
    assert load_llm(cfg.llm).max_concurrency == 7
    assert Workbench(cfg.replace("llm", max_concurrency=None)).llm_max_concurrency == 4  # the backend's guess
    assert concurrency_for(Workbench(cfg.replace("web", concurrency=2))) == 2  # [web] concurrency wins
    assert Workbench(Config().with_index_dir(tmp_path / "index")).llm_max_concurrency == 1  # in-process
