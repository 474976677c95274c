"""What a sentence-transformers model folder says about itself, read without loading weights.

`ModelCard` gives the tokenizer, the embedding size, the sequence limit, the pooling and the
prompts, and whether the ONNX path can reproduce the model; `count_tokens` counts with the
model's own tokenizer (the chunker's budget). Leaves out: running the model (the runtimes beside
this module) and exporting it (`workbench.embed.export`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from workbench.errors import not_on_disk


class ModelCard:
    """What a model folder says about itself, read without loading weights: the tokenizer,
    embedding size, sequence limit, pooling and prompts. ``onnx_ok`` is False (with
    ``onnx_reason``) when the ONNX path cannot reproduce the model."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        folder = self.path
        if not folder.is_dir():
            raise not_on_disk("the embedding model", path, "[embedding] model")
        read = lambda name: json.loads((folder / name).read_text()) if (folder / name).exists() else None  # noqa: E731
        modules = read("modules.json") or []
        kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
        pooling = next((read(f"{m['path']}/config.json") for m in modules if m.get("type", "").endswith("Pooling")), None)
        config = read("config.json") or {}
        sbert = read("sentence_bert_config.json") or {}
        self.max_seq_length = int(sbert.get("max_seq_length") or config.get("max_position_embeddings") or 512)
        dense = [read(f"{m['path']}/config.json") or {} for m in modules if m.get("type", "").endswith("Dense")]
        self.dim = int((dense[-1].get("out_features") if dense else None)
                       or (pooling or {}).get("word_embedding_dimension") or config.get("hidden_size") or 0)
        st = read("config_sentence_transformers.json") or {}
        self.prompts = st.get("prompts") or {}
        self.default_prompt = st.get("default_prompt_name") or ""
        self.pooling = ("cls" if (pooling or {}).get("pooling_mode_cls_token") else
                        "mean" if (pooling or {}).get("pooling_mode_mean_tokens") else None)
        self.tokenizer_file = folder / "tokenizer.json"
        reasons = []
        if not self.tokenizer_file.exists():
            reasons.append("no tokenizer.json")
        if kinds[:2] != ["Transformer", "Pooling"] or any(k not in ("Normalize",) for k in kinds[2:]):
            reasons.append(f"modules {kinds or 'unknown'} (only Transformer, Pooling, Normalize are exported)")
        if self.pooling is None:
            reasons.append("pooling other than mean or CLS")
        if config.get("auto_map"):
            reasons.append("custom model code")
        if sbert.get("do_lower_case") or (pooling or {}).get("include_prompt") is False:
            reasons.append("lower-casing or prompt-excluding pooling")
        self.onnx_reason = "; ".join(reasons)
        self.onnx_ok = not reasons and self.dim > 0

    def tokenizer(self, truncate: bool = True):
        """A `tokenizers.Tokenizer`, unpadded, that truncates like the model (special tokens included)
        or, with ``truncate=False``, not at all (for counting)."""
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(self.tokenizer_file))
        tok.no_padding()
        if truncate:
            tok.enable_truncation(self.max_seq_length)
        else:
            tok.no_truncation()
        return tok

    def prompt(self, kind: str) -> str:
        """The text sentence-transformers' ``encode_query`` / ``encode_document`` put before a text:
        the 'query' prompt, or the first of 'document', 'passage', 'corpus'; else the default one."""
        names = ("query",) if kind == "query" else ("document", "passage", "corpus")
        name = next((n for n in names if n in self.prompts), self.default_prompt)
        return self.prompts.get(name, "")

    def key(self) -> str:
        """Names the export folder: changes when the weights or configs (any module's) change."""
        import hashlib

        h = hashlib.sha256(str(self.path.resolve()).encode())
        for f in sorted(self.path.rglob("*.json")) + sorted(self.path.glob("*.safetensors")):
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
        return h.hexdigest()[:12]


def count_tokens(tokenizer, texts: Sequence[str]) -> list[int]:
    """Token counts without special tokens (the chunker's budget); ``tokenizer`` must not truncate."""
    if not texts:
        return []
    return [len(e.ids) for e in tokenizer.encode_batch(list(texts), add_special_tokens=False)]
