"""A stand-in for the parts of Hugging Face `transformers` that llama.cpp's
convert_hf_to_gguf.py uses on a Qwen3-Next checkpoint, for machines where
`pip install transformers` cannot reach PyPI (Debian 12 packages neither it
nor `tokenizers`).  With the real package installed, do not use this.

    PYTHONPATH=LLAMA_CPP/gguf-py:scripts/hf-standin QNEXT_BIN=./qnext \
        python3 LLAMA_CPP/convert_hf_to_gguf.py --outtype q8_0 --no-mtp DIR

The converter runs unmodified; only its imports resolve here:

  AutoConfig     always fails, and the converter reads config.json itself
                 (its own fallback).
  AutoTokenizer  the vocabulary and added tokens from tokenizer.json; text is
                 encoded by `qnext tokenize` (the byte-level BPE qnext runs),
                 so the converter's pre-tokenizer check hashes real token ids
                 and names the pre-tokenizer itself ("qwen2").  Merges and
                 special ids are read by gguf-py's SpecialVocab as usual.
  torch          Debian 12's torch 1.13 lacks the float8 dtypes the
                 converter names in its tables (never used for this model);
                 they are aliased to uint8 when missing.
"""
import json
import os
import shutil
import subprocess

try:
    import torch

    for _name in ("float8_e4m3fn", "float8_e5m2"):
        if not hasattr(torch, _name):
            setattr(torch, _name, torch.uint8)
except ImportError:
    pass


def _qnext():
    q = os.environ.get("QNEXT_BIN") or shutil.which("qnext")
    if not q:
        raise RuntimeError("hf-standin: set QNEXT_BIN to the qnext binary (used to encode text)")
    return q


def _byte_decoder():
    """GPT-2's byte-level alphabet, reversed: printable stand-in char -> byte."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


class _AddedToken:
    def __init__(self, d):
        self.content = d["content"]
        self.special = bool(d.get("special", False))
        self.normalized = bool(d.get("normalized", False))


class _Tokenizer:
    def __init__(self, model_dir):
        self.dir = str(model_dir)
        with open(os.path.join(self.dir, "tokenizer.json"), encoding="utf-8") as f:
            j = json.load(f)
        added = j.get("added_tokens", [])
        self._added = {a["content"]: a["id"] for a in added}
        self.added_tokens_decoder = {a["id"]: _AddedToken(a) for a in added}
        self.vocab = dict(j["model"]["vocab"])
        self.vocab.update(self._added)
        self._by_id = {i: t for t, i in self.vocab.items()}
        self._bytes = _byte_decoder()

    def get_vocab(self):
        return dict(self.vocab)

    def get_added_vocab(self):
        return dict(self._added)

    def encode(self, text, add_special_tokens=True):
        # Qwen's tokenizer adds no BOS/EOS, so add_special_tokens changes nothing.
        r = subprocess.run([_qnext(), "tokenize", "-m", self.dir], input=text.encode("utf-8"),
                           capture_output=True, check=True)
        return json.loads(r.stdout)

    def decode(self, ids, **kwargs):
        out, run = [], bytearray()
        for i in ids:
            t = self._by_id[i]
            if t in self._added:
                out.append(run.decode("utf-8", errors="replace"))
                run = bytearray()
                out.append(t)
            else:
                run.extend(self._bytes[c] for c in t)
        out.append(run.decode("utf-8", errors="replace"))
        return "".join(out)


class AutoTokenizer:
    @staticmethod
    def from_pretrained(model_dir, *args, **kwargs):
        return _Tokenizer(model_dir)


class AutoConfig:
    @staticmethod
    def from_pretrained(*args, **kwargs):
        raise OSError("hf-standin: no transformers; the converter reads config.json instead")
