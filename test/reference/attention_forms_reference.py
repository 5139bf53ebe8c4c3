#!/usr/bin/env python3
"""Builds the attention-forms fixtures and an eager reference for every hook action on them.

Usage: /usr/bin/python3 test/reference/attention_forms_reference.py SPEC.json OUT_DIR
SPEC.json: {"seed": s, "batch": B, "start": i, "length": n,
            "cases": {form: [{"site": path, "skip": path, "self": bool}]}}

For each form of models/fixtures/attention_forms.py: saves it scripted and
traced into OUT_DIR, draws inputs x [B,4,6,8], t [B], label [B] from the seed,
and for each listed site and each action computes the eager model's output with
that site's attention perturbed *explicitly* for the samples [i, i+n): the
attention module's forward is replaced by one written out here per module
class (softmax(q kᵀ·scale) v from the module's own projections, no hook ops),
where
  identity   sets the slice's probabilities to the identity (PAG);
  blur       blurs the slice's *queries* over the query grid (SEG's kernel,
             reflect padding; sigma "inf": the mean query);
  capture    records the slice's head-averaged probabilities;
  skip       makes the module at `skip` return its input for the slice.
Identity and blur run on self-attention sites only. Writes OUT_DIR/<form>.*.bin
(little-endian float32 / int64) and prints a JSON manifest on stdout.
"""
import json
import math
import os
import sys
import types
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "models", "fixtures"))
sys.path.insert(0, HERE)
import attention_forms as forms  # noqa: E402
from attention_hooks import blur_grid  # noqa: E402


class Action:
    def __init__(self, action, start, length, sigma=None, grid=None):
        self.action, self.start, self.length, self.sigma, self.grid = action, start, length, sigma, grid
        self.rows = slice(start, start + length)
        self.captures = []


def blur_queries(q, grid, sigma):
    """q [n, H, N, d]: every (sample, head)'s queries blurred over the grid (inf: their mean)."""
    if math.isinf(sigma):
        return q.mean(2, keepdim=True).expand_as(q)
    n, h, tokens, d = q.shape
    images = q.reshape(n * h, tokens, d).transpose(1, 2).reshape(n * h, d, grid[0], grid[1])
    return blur_grid(images, sigma).reshape(n * h, d, tokens).transpose(1, 2).reshape(n, h, tokens, d)


def attend(q, k, v, scale, act, mask_after=None):
    """softmax(q kᵀ·scale) v for q [B,H,Nq,d], k [B,H,Nk,d], v [B,H,Nk,dv], the slice perturbed."""
    rows = act.rows
    if act.action == "blur":
        q = q.clone()
        q[rows] = blur_queries(q[rows], act.grid, act.sigma)
    probs = torch.softmax(q @ k.transpose(-2, -1) * scale, dim=-1)
    if act.action == "identity":
        probs = probs.clone()
        probs[rows] = torch.eye(probs.shape[-1])
    if act.action == "capture":
        act.captures.append(probs[rows].mean(1))
    if mask_after is not None:
        probs = probs * mask_after
    return probs @ v


def heads(x, h):
    """[B, N, C] -> [B, h, N, C/h]"""
    b, n, c = x.shape
    return x.reshape(b, n, h, c // h).transpose(1, 2)


def merge(x):
    """[B, h, N, d] -> [B, N, h*d]"""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


def explicit(module, act):
    """The module's forward written out with the action applied (bound as a method)."""
    if isinstance(module, forms.HeadsApart):
        mask = module.window if isinstance(module, forms.MaskAfterSoftmax) else None

        def forward(self, x, context):
            source = context if self.cross else x
            q, k, v = (heads(f(s), self.heads) for f, s in ((self.to_q, x), (self.to_k, source), (self.to_v, source)))
            return self.to_out(merge(attend(q, k, v, self.scale, act, mask)))
    elif isinstance(module, forms.TimmAttention):
        def forward(self, x, context):
            q, k, v = self.qkv(x).chunk(3, dim=-1)
            h = self.num_heads
            return self.proj(merge(attend(heads(q, h), heads(k, h), heads(v, h), self.scale, act)))
    elif isinstance(module, forms.DiffusersAttention):
        def forward(self, hidden, context):
            source = context if self.cross else hidden
            q, k, v = (heads(f(s), self.heads) for f, s in ((self.to_q, hidden), (self.to_k, source), (self.to_v, source)))
            return self.to_out[0](merge(attend(q, k, v, self.scale, act)))
    elif isinstance(module, nn.MultiheadAttention):
        def forward(self, query, key, value, need_weights=True, **kwargs):
            if not self.batch_first:
                query, key, value = (t.transpose(0, 1) for t in (query, key, value))
            wq, wk, wv = self.in_proj_weight.chunk(3)
            bq, bk, bv = self.in_proj_bias.chunk(3)
            h = self.num_heads
            q, k, v = heads(F.linear(query, wq, bq), h), heads(F.linear(key, wk, bk), h), heads(F.linear(value, wv, bv), h)
            out = self.out_proj(merge(attend(q, k, v, 1 / math.sqrt(q.shape[-1]), act)))
            return (out if self.batch_first else out.transpose(0, 1)), None
    elif isinstance(module, forms.QKVAttentionLegacy):
        def forward(self, qkv):
            bs, width, length = qkv.shape
            ch = width // (3 * self.n_heads)
            q, k, v = (t.reshape(bs, self.n_heads, ch, length).transpose(2, 3)
                       for t in qkv.reshape(bs * self.n_heads, ch * 3, length).split(ch, dim=1))
            a = attend(q, k, v, 1 / math.sqrt(ch), act)  # [bs, H, T, ch]
            return a.transpose(2, 3).reshape(bs, -1, length)
    elif isinstance(module, forms.Edm2Attention):
        def forward(self, x, context):
            b, c, hh, ww = x.shape
            q, k, v = (t.transpose(2, 3) for t in self.qkv(x).reshape(b, self.heads, c // self.heads, 3, hh * ww).unbind(3))
            y = attend(q, k, v, 1 / math.sqrt(q.shape[-1]), act)  # [b, H, N, d]
            return x + self.out(y.transpose(2, 3).reshape(b, c, hh, ww))
    elif isinstance(module, forms.SaganAttention):
        def forward(self, x, context):
            b, c, hh, ww = x.shape
            tokens = [conv(x).view(b, c, hh * ww).permute(0, 2, 1)[:, None] for conv in
                      (self.query_conv, self.key_conv, self.value_conv)]
            out = attend(*tokens, 1.0, act)[:, 0].permute(0, 2, 1)
            return self.gamma * out.reshape(b, c, hh, ww) + x
    else:
        raise TypeError(f"no explicit reference for {type(module).__name__}")
    return types.MethodType(forward, module)


def skipping(module, act):
    """The module's forward returning its input (the first argument) for the slice."""
    original = module.forward

    def forward(self, *args, **kwargs):
        out = original(*args, **kwargs)
        if isinstance(self, nn.MultiheadAttention):
            tensor, weights = out
            axis = 0 if self.batch_first else 1
            rows = [slice(None)] * tensor.dim()
            rows[axis] = act.rows
            tensor = tensor.clone()
            tensor[tuple(rows)] = args[0][tuple(rows)]
            return tensor, weights
        out = out.clone()
        out[act.rows] = args[0][act.rows]
        return out
    return types.MethodType(forward, module)


def write(path, tensor, dtype):
    tensor.detach().contiguous().numpy().astype(dtype).tofile(path)


def main() -> None:
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    spec = json.load(open(sys.argv[1]))
    out_dir = sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    b, start, length = spec["batch"], spec["start"], spec["length"]
    generator = torch.Generator().manual_seed(spec["seed"])
    manifest = {}
    for name, sites in spec["cases"].items():
        files = {e["export"]: e["path"] for e in forms.save(name, out_dir)}
        x = torch.randn(b, *forms.SAMPLE_SHAPE, generator=generator)
        t = torch.rand(b, generator=generator) * 999
        label = torch.randint(0, forms.NUM_CLASSES + 1, (b,), generator=generator)
        prefix = os.path.join(out_dir, name)
        write(prefix + ".x.bin", x, "<f4")
        write(prefix + ".t.bin", t, "<f4")
        write(prefix + ".label.bin", label, "<i8")
        entry = {"files": files, "x": prefix + ".x.bin", "t": prefix + ".t.bin", "label": prefix + ".label.bin", "cases": []}
        grid_of = {1: [forms.HEIGHT, forms.WIDTH], 2: [forms.HEIGHT // 2, forms.WIDTH // 2]}
        for site in sites:
            actions = [("capture", None), ("skip", None)]
            if site["self"]:
                actions = [("identity", None), ("blur", 1.0), ("blur", math.inf)] + actions
            for action, sigma in actions:
                model = forms.build(name)
                patch = getattr(model, "patch", 1)
                act = Action(action, start, length, sigma, grid_of[patch])
                target = model.get_submodule(site["skip"] if action == "skip" else site["site"])
                target.forward = (skipping if action == "skip" else explicit)(target, act)
                with torch.no_grad():
                    out = model(x, t, label)
                stem = f"{prefix}.{site['site']}.{action}{'' if sigma is None else '-' + str(sigma)}"
                write(stem + ".out.bin", out, "<f4")
                case = {"site": site["site"], "action": action, "output": stem + ".out.bin"}
                if sigma is not None:
                    case["sigma"] = "inf" if math.isinf(sigma) else sigma
                if act.captures:
                    write(stem + ".capture.bin", act.captures[0], "<f4")
                    case["capture"] = stem + ".capture.bin"
                entry["cases"].append(case)
        manifest[name] = entry
    print(json.dumps(manifest))


if __name__ == "__main__":
    main()
