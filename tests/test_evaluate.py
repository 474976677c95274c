"""Evaluation: metrics on hand-computed rankings, the question-file format, `workbench eval`."""

from __future__ import annotations

import json
import math

import pytest

from conftest import ROOT, SAMPLE, run_cli
from workbench.errors import WorkbenchError
from workbench.evaluate import (LabelledQuestion, evaluate, evaluate_answers, evaluate_retrieval, judgments,
                                load_questions, ndcg_at_k, reciprocal_rank)

QUESTIONS = ROOT / "data" / "sample-questions.csv"


def test_metrics_on_a_hand_computed_ranking():
    gains = {"a": 1.0, "b": 1.0}
    assert ndcg_at_k(["x", "a", "b"], gains, 10) == pytest.approx((1 / math.log2(3) + 1 / 2) / (1 + 1 / math.log2(3)))
    assert reciprocal_rank(["x", "a"], gains) == 0.5
    m = evaluate({"q": ["x", "a", "y", "b"]}, {"q": gains}, k=2)
    assert m["R@2"] == 0.5
    assert m["R@100"] == 1.0
    assert m["MAP"] == pytest.approx((1 / 2 + 2 / 4) / 2)


def test_question_files_in_csv_and_jsonl(tmp_path):
    csv_qs = load_questions(QUESTIONS)
    assert len(csv_qs) == 16
    assert sum(q.covered for q in csv_qs) == 13
    assert csv_qs[5].relevant == ("hangar4-announcement.eml", "q3-operations-review.pptx")
    lines = [{"question": "Where is A?", "relevant": ["a.pdf", "b*.md"], "answer": "here"}, {"question": "Off topic?"}]
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines))
    assert [q.to_dict() for q in load_questions(path)] == [
        {"question": "Where is A?", "relevant": ["a.pdf", "b*.md"], "answer": "here"},
        {"question": "Off topic?", "relevant": [], "answer": ""}]
    bad = tmp_path / "bad.csv"
    bad.write_text("question,relevant\n,a.pdf\n")
    with pytest.raises(WorkbenchError, match="entry 1 has no 'question'"):
        load_questions(bad)
    with pytest.raises(WorkbenchError, match=r"question 1 .*no indexed document matches nope\.pdf"):
        judgments([LabelledQuestion("Q", ("nope.pdf",))], ["x.pdf"])


def test_retrieval_and_answer_statistics_on_the_sample(sample_wb):
    questions = load_questions(QUESTIONS)
    scores = evaluate_retrieval(sample_wb, questions, k=10)
    assert set(scores) == {"dense", "lexical", "hybrid"}
    assert all(s["queries"] == 13 and s["MRR"] > 0.8 and s["R@10"] > 0.9 for s in scores.values())
    stats = evaluate_answers(sample_wb, questions[-4:])  # one covered, three uncovered
    assert stats["questions"] == 4
    assert stats["covered"] == 1
    assert stats["refused_uncovered"] + stats["answered_uncovered"] == 3
    assert stats["refused_uncovered"] >= 2


def test_eval_command(tmp_path):
    idx = str(tmp_path / "idx")
    assert run_cli("ingest", str(SAMPLE), "--index", idx).returncode == 0
    done = run_cli("eval", str(QUESTIONS), "--index", idx, "--mode", "hybrid", "--mode", "lexical")
    assert done.returncode == 0, done.stderr
    assert "16 questions, 13 with relevant documents" in done.stdout
    assert [line.split()[0] for line in done.stdout.splitlines()[2:]] == ["hybrid", "lexical"]
    as_json = json.loads(run_cli("eval", str(QUESTIONS), "--index", idx, "--json").stdout)
    assert 0.8 < as_json["retrieval"]["hybrid"]["nDCG@10"] <= 1.0
    assert as_json["answers"] is None
    missing = run_cli("eval", str(tmp_path / "none.csv"), "--index", idx)
    assert missing.returncode == 2
    assert "no question file" in missing.stderr
