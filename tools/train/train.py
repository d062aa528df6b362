#!/usr/bin/env python3
"""Trains the embedded default model: DeepSeek V4's architecture at a tiny
size (HF transformers' DeepseekV4ForCausalLM), on fortunes in DeepSeek V4's
chat framing, so that a one-line request gets a fortune-like answer.

    train.py --config CONFIG_JSON --tokenizer TOKENIZER_JSON --corpus DIR
             --out DIR [--minutes M] [--seed S]

CONFIG_JSON is the release-style config.json (dsv4-mkmodel writes it);
every V4 feature is on: mHC (4 streams, Sinkhorn), SWA + CSA + HCA layers
with compressors and the indexer, hash-routed and learned-routed MoE,
shared experts.  Each sample is
  BOS <｜User｜>{request}<｜Assistant｜></think>{fortune} EOS
with the loss on the answer (after </think>) and EOS.  3 % of the fortunes
are held out (OUT/heldout.json) for the perplexity check.  Writes
OUT/hf_state.pt (FP32 weights of the epoch with the lowest held-out loss:
the corpus is about a million tokens, and later epochs overfit) and
OUT/train_log.json.
"""
import argparse
import json
import math
import os
import random
import time

import torch
from tokenizers import Tokenizer

REQUESTS = [
    "Tell me a fortune.", "Give me a fortune.", "Say something wise.", "Share a quote.",
    "Tell me something.", "What do you have for me today?", "Any words of wisdom?",
    "Cheer me up.", "Make me think.", "Tell me a saying.",
]
TOPIC = "Tell me something about {}."
TOPICS = {"computers": "computers", "science": "science", "love": "love", "food": "food",
          "law": "the law", "medicine": "medicine", "politics": "politics", "sports": "sports",
          "education": "education", "work": "work", "pets": "pets", "kids": "kids",
          "linux": "Linux", "wisdom": "wisdom", "literature": "books", "art": "art",
          "people": "people", "men-women": "men and women", "news": "the news",
          "riddles": "riddles", "songs-poems": "poems", "startrek": "Star Trek",
          "magic": "magic", "humorists": "humor", "platitudes": "life"}
SKIP = {"ascii-art", "art", "translate-me", "debian", "knghtbrd", "perl", "zippy", "disclaimer"}
MAX_ANSWER = 160


def samples(corpus, tok, rng):
    out = []
    for name in sorted(os.listdir(corpus)):
        if name in SKIP or "." in name:
            continue
        with open(os.path.join(corpus, name), encoding="utf-8", errors="replace") as f:
            chunks = f.read().split("\n%\n")
        for c in chunks:
            text = c.strip("\n")
            if not text.strip() or len(text) > 700:
                continue
            req = TOPIC.format(TOPICS[name]) if name in TOPICS and rng.random() < 0.5 \
                else rng.choice(REQUESTS)
            prompt = f"<｜begin▁of▁sentence｜><｜User｜>{req}<｜Assistant｜></think>"
            p_ids = tok.encode(prompt, add_special_tokens=False).ids
            a_ids = tok.encode(text, add_special_tokens=False).ids + [1]
            if len(a_ids) > MAX_ANSWER:
                continue
            out.append({"request": req, "answer": text, "prompt_ids": p_ids, "answer_ids": a_ids})
    return out


def hf_model(cfg_path, device):
    from transformers import DeepseekV4Config, DeepseekV4ForCausalLM

    cfg = json.load(open(cfg_path))
    hf = {k: v for k, v in cfg.items() if k not in ("quantization_config", "expert_dtype")}
    hf["num_nextn_predict_layers"] = 0
    hf["compress_ratios"] = cfg["compress_ratios"][: cfg["num_hidden_layers"]]
    config = DeepseekV4Config(**hf)
    config._attn_implementation = "eager"
    model = DeepseekV4ForCausalLM(config).to(device).float()
    return model, cfg


def set_hash_routes(model, cfg, seed):
    """tid2eid: each token's distinct experts, fixed at random (as a release's are)."""
    g = torch.Generator().manual_seed(seed)
    k, e, v = cfg["num_experts_per_tok"], cfg["n_routed_experts"], cfg["vocab_size"]
    table = torch.stack([torch.randperm(e, generator=g)[:k] for _ in range(v)]).to(torch.int32)
    n = 0
    for name, buf in model.named_buffers():
        if name.endswith("tid2eid"):
            buf.copy_(table.to(buf.device, buf.dtype))
            n += 1
    return n


def batches(data, bs, rng):
    order = list(range(len(data)))
    rng.shuffle(order)
    for i in range(0, len(order) - bs + 1, bs):
        yield [data[j] for j in order[i:i + bs]]


def collate(batch, device):
    seqs = [b["prompt_ids"] + b["answer_ids"] for b in batch]
    T = max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), T, dtype=torch.long)
    labels = torch.full((len(seqs), T), -100, dtype=torch.long)
    for i, (b, s) in enumerate(zip(batch, seqs)):
        ids[i, :len(s)] = torch.tensor(s)
        p = len(b["prompt_ids"])
        # position t predicts token t+1: answer tokens (and EOS) are targets
        labels[i, p - 1:len(s) - 1] = torch.tensor(s[p:])
    return ids.to(device), labels.to(device)


def loss_of(model, ids, labels):
    logits = model(ids).logits.float()
    return torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), labels.view(-1),
                                             ignore_index=-100, reduction="sum"), (labels != -100).sum()


@torch.no_grad()
def evaluate(model, data, device, bs=32):
    model.eval()
    tot, n = 0.0, 0
    for i in range(0, len(data), bs):
        ids, labels = collate(data[i:i + bs], device)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            l, k = loss_of(model, ids, labels)
        tot += l.item()
        n += k.item()
    model.train()
    return tot / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    rng = random.Random(a.seed)
    device = "cuda"
    tok = Tokenizer.from_file(a.tokenizer)
    data = samples(a.corpus, tok, rng)
    rng.shuffle(data)
    n_val = max(64, len(data) * 3 // 100)
    val, train = data[:n_val], data[n_val:]
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "heldout.json"), "w") as f:
        json.dump([{"request": d["request"], "answer": d["answer"],
                    "ids": d["prompt_ids"] + d["answer_ids"], "prompt_len": len(d["prompt_ids"])}
                   for d in val], f, ensure_ascii=False)
    model, cfg = hf_model(a.config, device)
    n_hash = set_hash_routes(model, cfg, a.seed)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{len(train)} training samples, {len(val)} held out; {n_params / 1e6:.2f} M parameters; "
          f"{n_hash} hash-routed layers", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.95), weight_decay=0.1)
    budget = a.minutes * 60
    t0 = time.time()
    step, epoch, log = 0, 0, []
    best, best_state = float("inf"), None
    done = False
    while not done:
        epoch += 1
        for batch in batches(train, a.batch, rng):
            frac = min(1.0, (time.time() - t0) / budget)
            lr = a.lr * min(1.0, step / 200) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
            for g in opt.param_groups:
                g["lr"] = lr
            ids, labels = collate(batch, device)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                l, k = loss_of(model, ids, labels)
            (l / k).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            if step % 100 == 0:
                print(f"step {step} epoch {epoch} loss {(l / k).item():.3f} lr {lr:.2e} "
                      f"{time.time() - t0:.0f}s", flush=True)
            if time.time() - t0 > budget:
                done = True
                break
        v = evaluate(model, val, device)
        log.append({"epoch": epoch, "step": step, "seconds": time.time() - t0, "val_loss": v,
                    "val_ppl": math.exp(v)})
        print(f"epoch {epoch}: held-out loss {v:.3f} ppl {math.exp(v):.2f}", flush=True)
        if v < best:	# keep the epoch that generalizes best (the corpus is small)
            best = v
            best_state = {k: t.detach().cpu().clone() for k, t in model.state_dict().items()}
            log[-1]["kept"] = True
    torch.save(best_state, os.path.join(a.out, "hf_state.pt"))
    with open(os.path.join(a.out, "train_log.json"), "w") as f:
        json.dump({"steps": step, "epochs": epoch, "samples": len(train), "heldout": len(val),
                   "params": n_params, "log": log, "torch": torch.__version__}, f, indent=1)


if __name__ == "__main__":
    main()
