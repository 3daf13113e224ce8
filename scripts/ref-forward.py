#!/usr/bin/env python3
"""ref-forward.py - an independent float64 reference of the Qwen3-Next forward pass, for golden data.

Developer tool, not used by `make check` and not needed to build or test qnext (it needs numpy:
`apt-get install python3-numpy`).  It shares no code with qnext: it reads the safetensors shards
itself, dequantizes AutoRound/GPTQ matrices from their definition (W[o][i] = scale[g][o] *
(q[i][o] - zero[g][o]), zero = stored + 1 for auto_round:auto_gptq, stored for auto_round), and
runs the model in float64 straight from the formulas: zero-centred RMSNorm, gated attention with
partial NeoX rotary, the gated delta rule token by token, softmax-then-top-k MoE with the shared
expert.  It writes golden.safetensors (input_ids, logits, hidden, greedy_ids, greedy_logits) and
golden.json (logit_abs_max, min_greedy_top2_gap), the format `qnext verify --golden` reads, so a
model qnext's own mkmodel made at real widths can be checked against something that is not qnext.

    scripts/ref-forward.py MODEL_DIR OUT_DIR [--tokens 40] [--greedy 8] [--seed 7]
"""
import argparse
import json
import os
import struct

import numpy as np

DT = {"BF16": np.uint16, "F16": np.float16, "F32": np.float32, "I32": np.int32, "F64": np.float64}


class Tensors:
    """Every tensor of the model's shards, mapped read-only."""

    def __init__(self, d):
        idx = os.path.join(d, "model.safetensors.index.json")
        files = sorted(set(json.load(open(idx))["weight_map"].values())) if os.path.exists(idx) \
            else ["model.safetensors"]
        self.t = {}
        for f in files:
            path = os.path.join(d, f)
            with open(path, "rb") as fh:
                n = struct.unpack("<Q", fh.read(8))[0]
                hdr = json.loads(fh.read(n))
            mm = np.memmap(path, dtype=np.uint8, mode="r")
            for name, v in hdr.items():
                if name == "__metadata__":
                    continue
                a, b = v["data_offsets"]
                raw = mm[8 + n + a:8 + n + b].view(DT[v["dtype"]]).reshape(v["shape"])
                self.t[name] = (v["dtype"], raw)

    def has(self, name):
        return name in self.t

    def f64(self, name):
        dt, raw = self.t[name]
        if dt == "BF16":
            return (raw.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        return raw.astype(np.float64)


def dequant(T, mod, zero_add):
    """The module's weight as float64 [in, out] (so that y = x @ W)."""
    if not T.has(mod + ".qweight"):
        return T.f64(mod + ".weight").T
    qw = T.t[mod + ".qweight"][1].view(np.uint32)
    qz = T.t[mod + ".qzeros"][1].view(np.uint32)
    sc = T.f64(mod + ".scales")
    groups, n_out = sc.shape
    bits = 32 * qz.shape[1] // n_out
    per, mask = 32 // bits, (1 << bits) - 1
    shifts = (bits * np.arange(per, dtype=np.uint32))
    q = ((qw[:, None, :] >> shifts[None, :, None]) & mask).reshape(-1, n_out)      # [in, out]
    z = ((qz[:, :, None] >> shifts[None, None, :]) & mask).reshape(groups, -1)[:, :n_out]
    z = z.astype(np.float64) + zero_add
    gs = q.shape[0] // groups
    g = np.arange(q.shape[0]) // gs
    return (q.astype(np.float64) - z[g]) * sc[g]


def rms_zc(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * (1.0 + w)


def silu(x):
    return x / (1.0 + np.exp(-x))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softplus(x):
    return np.where(x > 20, x, np.log1p(np.exp(np.minimum(x, 20))))


class Model:
    def __init__(self, d):
        c = json.load(open(os.path.join(d, "config.json")))
        self.c = c
        q = c.get("quantization_config", {})
        self.zero_add = 0.0 if q.get("packing_format") == "auto_round" else 1.0
        self.T = Tensors(d)
        self.eps = c["rms_norm_eps"]
        L = c["num_hidden_layers"]
        types = c.get("layer_types")
        interval = c.get("full_attention_interval", 4)
        self.full = [t == "full_attention" for t in types] if types else \
            [(i + 1) % interval == 0 for i in range(L)]
        rp = c.get("rope_parameters") or {}
        self.theta = rp.get("rope_theta", c.get("rope_theta", 10000.0))
        self.prf = rp.get("partial_rotary_factor", c.get("partial_rotary_factor", 0.25))
        self.W = {}

    def w(self, mod):
        if mod not in self.W:
            self.W[mod] = dequant(self.T, mod, self.zero_add)
        return self.W[mod]

    def v(self, name):
        return self.T.f64(name)


def attention(M, i, h, st, pos):
    c, p = M.c, "model.layers.%d.self_attn." % i
    nh, nkv, hd = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
    qg = (h @ M.w(p + "q_proj")).reshape(nh, 2 * hd)
    q, gate = qg[:, :hd], qg[:, hd:].reshape(-1)
    k = (h @ M.w(p + "k_proj")).reshape(nkv, hd)
    v = (h @ M.w(p + "v_proj")).reshape(nkv, hd)
    q = rms_zc(q, M.v(p + "q_norm.weight"), M.eps)
    k = rms_zc(k, M.v(p + "k_norm.weight"), M.eps)
    rd = int(hd * M.prf)
    half = rd // 2
    f = M.theta ** (-2.0 * np.arange(half) / rd)
    cos, sin = np.cos(pos * f), np.sin(pos * f)

    def rope(x):
        x = x.copy()
        a, b = x[:, :half].copy(), x[:, half:rd].copy()
        x[:, :half] = a * cos - b * sin
        x[:, half:rd] = b * cos + a * sin
        return x

    q, k = rope(q), rope(k)
    st.setdefault("k", []).append(k)
    st.setdefault("v", []).append(v)
    K, V = np.stack(st["k"]), np.stack(st["v"])          # [t, nkv, hd]
    o = np.empty((nh, hd))
    for hh in range(nh):
        j = hh // (nh // nkv)
        s = K[:, j, :] @ q[hh] / np.sqrt(hd)
        s = np.exp(s - s.max())
        o[hh] = (s / s.sum()) @ V[:, j, :]
    o = o.reshape(-1) * sigmoid(gate)
    return o @ M.w(p + "o_proj")


def deltanet(M, i, h, st):
    c, p = M.c, "model.layers.%d.linear_attn." % i
    hk, hv = c["linear_num_key_heads"], c["linear_num_value_heads"]
    dk, dv, kc = c["linear_key_head_dim"], c["linear_value_head_dim"], c["linear_conv_kernel_dim"]
    r = hv // hk
    P = (h @ M.w(p + "in_proj_qkvz")).reshape(hk, 2 * dk + 2 * r * dv)
    q = P[:, :dk]
    k = P[:, dk:2 * dk]
    v = P[:, 2 * dk:2 * dk + r * dv].reshape(hv, dv)
    z = P[:, 2 * dk + r * dv:].reshape(hv, dv)
    BA = (h @ M.w(p + "in_proj_ba")).reshape(hk, 2 * r)
    b, a = BA[:, :r].reshape(-1), BA[:, r:].reshape(-1)
    u = np.concatenate([q.reshape(-1), k.reshape(-1), v.reshape(-1)])
    hist = st.setdefault("conv", [np.zeros_like(u)] * (kc - 1))
    window = np.stack(hist[-(kc - 1):] + [u])             # [kc, channels], oldest first
    st["conv"] = hist[-(kc - 2):] + [u] if kc > 2 else [u]
    W = M.v(p + "conv1d.weight").reshape(-1, kc)
    y = silu(np.sum(W.T * window, axis=0))
    Q = y[:hk * dk].reshape(hk, dk)
    K = y[hk * dk:2 * hk * dk].reshape(hk, dk)
    Vv = y[2 * hk * dk:].reshape(hv, dv)
    Q = Q / np.sqrt(np.sum(Q * Q, axis=-1, keepdims=True) + 1e-6) / np.sqrt(dk)
    K = K / np.sqrt(np.sum(K * K, axis=-1, keepdims=True) + 1e-6)
    beta = sigmoid(b)
    g = -np.exp(M.v(p + "A_log")) * softplus(a + M.v(p + "dt_bias"))
    S = st.setdefault("S", np.zeros((hv, dk, dv)))
    o = np.empty((hv, dv))
    for hh in range(hv):
        kh = hh // r
        S[hh] *= np.exp(g[hh])
        m = S[hh].T @ K[kh]
        delta = beta[hh] * (Vv[hh] - m)
        S[hh] += np.outer(K[kh], delta)
        o[hh] = S[hh].T @ Q[kh]
    n = o / np.sqrt(np.mean(o * o, axis=-1, keepdims=True) + M.eps) * M.v(p + "norm.weight") * silu(z)
    return n.reshape(-1) @ M.w(p + "out_proj")


def moe(M, i, h):
    c, p = M.c, "model.layers.%d.mlp." % i
    logits = h @ M.w(p + "gate")
    pr = np.exp(logits - logits.max())
    pr /= pr.sum()
    top = np.argsort(-pr, kind="stable")[:c["num_experts_per_tok"]]
    w = pr[top] / pr[top].sum() if c.get("norm_topk_prob", True) else pr[top]
    y = np.zeros_like(h)
    for e, we in zip(top, w):
        x = "%sexperts.%d." % (p, e)
        y += we * ((silu(h @ M.w(x + "gate_proj")) * (h @ M.w(x + "up_proj"))) @ M.w(x + "down_proj"))
    if M.T.has(p + "shared_expert.down_proj.weight") or M.T.has(p + "shared_expert.down_proj.qweight"):
        x = p + "shared_expert."
        s = (silu(h @ M.w(x + "gate_proj")) * (h @ M.w(x + "up_proj"))) @ M.w(x + "down_proj")
        y += sigmoid(h @ M.w(p + "shared_expert_gate"))[0] * s
    gap = np.sort(np.log(pr))[::-1]
    margin = gap[c["num_experts_per_tok"] - 1] - gap[c["num_experts_per_tok"]]
    return y, margin


def step(M, tok, states, pos, hidden_out):
    c = M.c
    x = M.w("model.embed_tokens")[:, tok].copy()          # [dim, vocab] as a Linear's [in, out]
    hidden_out.append(x.copy())
    margin = np.inf
    for i in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % i
        h = rms_zc(x, M.v(p + "input_layernorm.weight"), M.eps)
        x = x + (attention(M, i, h, states[i], pos) if M.full[i] else deltanet(M, i, h, states[i]))
        h = rms_zc(x, M.v(p + "post_attention_layernorm.weight"), M.eps)
        y, mg = moe(M, i, h)
        margin = min(margin, mg)
        x = x + y
        hidden_out.append(x.copy())
    x = rms_zc(x, M.v("model.norm.weight"), M.eps)
    head = "lm_head" if M.T.has("lm_head.weight") or M.T.has("lm_head.qweight") \
        else "model.embed_tokens"
    return x @ M.w(head), margin


def write_st(path, tensors):
    hdr, off, blobs = {}, 0, []
    for name, a in tensors.items():
        dt = {np.dtype(np.int32): "I32", np.dtype(np.float32): "F32"}[a.dtype]
        b = np.ascontiguousarray(a).tobytes()
        hdr[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--tokens", type=int, default=40)
    ap.add_argument("--greedy", type=int, default=8)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--compare", help="a golden.safetensors: feed its input_ids and print the largest "
                    "logit and hidden differences from it (checks this reference)")
    o = ap.parse_args()
    M = Model(o.model)
    vocab = M.c["vocab_size"]
    ids = np.random.default_rng(o.seed).integers(0, min(vocab, 151643), o.tokens).astype(np.int32)
    if o.compare:
        G = Tensors.__new__(Tensors)
        G.t = {}
        with open(o.compare, "rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
            hdr = json.loads(fh.read(n))
        mm = np.memmap(o.compare, dtype=np.uint8, mode="r")
        for name, v in hdr.items():
            if name != "__metadata__":
                a, b = v["data_offsets"]
                G.t[name] = (v["dtype"], mm[8 + n + a:8 + n + b].view(DT[v["dtype"]]).reshape(v["shape"]))
        ids = G.t["input_ids"][1].astype(np.int32)
        o.tokens = len(ids)
    states = [dict() for _ in range(M.c["num_hidden_layers"])]
    logits, hid, margin = [], [], np.inf
    for t, tok in enumerate(ids):
        h = []
        lg, mg = step(M, int(tok), states, t, h)
        logits.append(lg)
        hid.append(h)
        margin = min(margin, mg)
    if o.compare:
        L = np.array(logits)
        ref = G.f64("logits")
        print("logits: max |diff| %.3e, logit_abs_max %.4f, relative %.3e" % (
            np.abs(L - ref).max(), np.abs(ref).max(), np.abs(L - ref).max() / np.abs(ref).max()))
        if G.has("hidden"):
            H = np.array(hid).transpose(1, 0, 2)
            print("hidden: max |diff| %.3e" % np.abs(H - G.f64("hidden")).max())
        return
    greedy, glogits, gaps = [], [], []
    last = logits[-1]
    for n in range(o.greedy):
        s = np.sort(last)
        gaps.append(s[-1] - s[-2])
        nxt = int(np.argmax(last))
        greedy.append(nxt)
        last, mg = step(M, nxt, states, o.tokens + n, [])
        glogits.append(last)
    os.makedirs(o.out, exist_ok=True)
    L = np.array(logits)
    write_st(os.path.join(o.out, "golden.safetensors"), {
        "input_ids": ids,
        "logits": L.astype(np.float32),
        "hidden": np.array(hid).transpose(1, 0, 2).astype(np.float32),
        "greedy_ids": np.array(greedy, dtype=np.int32),
        "greedy_logits": np.array(glogits).astype(np.float32),
    })
    info = {"made_by": "scripts/ref-forward.py (numpy float64)", "model": os.path.abspath(o.model),
            "tokens": o.tokens, "greedy": o.greedy, "seed": o.seed,
            "logit_abs_max": float(max(np.abs(L).max(), np.abs(np.array(glogits)).max())),
            "min_greedy_top2_gap": float(min(gaps)), "min_router_margin": float(margin)}
    json.dump(info, open(os.path.join(o.out, "golden.json"), "w"), indent=1)
    print(json.dumps(info))


if __name__ == "__main__":
    main()
