"""A miniature of Tables 1-2: pre-train a small transformer, then adapt it with every method of the paper's tables.

Data (nothing downloaded): scikit-learn's bundled digits, 1797 images of 8x8 pixels (values 0..16, divided by 16),
cut into 16 patches of 2x2 pixels. Pre-training task A: digits 0-4 (all but a 20% hold-out, on which the backbone's
accuracy is reported). Adaptation task B: digits 5-9 (labels 0-4), split per seed into train / validation / test
(45% / 15% / 40%). The backbone (figures/transformer.py: d = 32, 4 heads, 2 blocks) is pre-trained on A with Adam;
each method then adapts it to B with a new head.

One optimiser and one budget for every method: Adam (optax.scale_by_adam, beta = (0.9, 0.999), eps = 1e-8), the
same number of steps of the same mini-batches, and the learning rate picked per method and seed from the same grid
by accuracy on the validation split (a single rate for all would measure the rate more than the method: prefix
and NTK parameters move the output far less per unit step than full fine-tuning does). Reported per method: test
accuracy of the picked run (mean and 95% Student-t interval over seeds), trainable parameters (the new head
included), and training time per run (compiled once per method, then timed without compilation; the machine is
shared, so times are medians and only their order of magnitude is meaningful).

What the miniature can tell about Tables 1-2: whether each method, implemented as the paper and the authors' code
describe it, can adapt a frozen pre-trained transformer at all, how it ranks against full fine-tuning, LoRA, prefix
tuning and a head-only floor at equal budget, and how many parameters each needs. What it cannot: the paper's
numbers (ViT-base on CIFAR-100 / Food-101, ChatGLM3-6B on BoolQ, math data; no weights and no downloads here), any
effect of scale (d = 32 against 768-4096, 2 blocks against 12-28, 400 training images), and anything about the
tasks themselves: digits are easy, so differences of a few points between strong methods are within what the
learning-rate grid and the seeds move.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from figures import transformer as tf
from verify import plotting
from verify.fitting import mean_interval

__all__ = ["Settings", "settings", "methods", "load_tasks", "measure", "plot", "summarise"]


@dataclasses.dataclass(frozen=True)
class Settings:
    config: tf.ModelConfig = tf.ModelConfig()
    seeds: int = 5
    pretrain_steps: int = 1500
    pretrain_learning_rate: float = 1e-3
    adapt_steps: int = 600
    batch: int = 32
    learning_rates: tuple[float, ...] = (3e-3, 1e-2, 3e-2)  # a quick run picked the top of (1e-3, 3e-3, 1e-2)
    prefix_lengths: tuple[int, ...] = (1, 4, 16, 64, 256, 1024)
    lora_ranks: tuple[int, ...] = (8, 2)  # r = 8, alpha = 16 as the paper's baseline; a smaller r with alpha = 2 r
    lowrank_ranks: tuple[int, ...] = (1, 4)
    taylor_degrees: tuple[int, ...] = (1, 2)
    split: tuple[float, float, float] = (0.45, 0.15, 0.40)  # task B train / validation / test
    accuracy_targets: tuple[float, ...] = (0.80, 0.85, 0.90)  # parameter efficiency: fixed before the run


def settings(quick: bool) -> Settings:
    if quick:
        return Settings(seeds=3, pretrain_steps=500, adapt_steps=200, learning_rates=(1e-2, 3e-2),
                        prefix_lengths=(1, 16, 256))
    return Settings()


def methods(s: Settings) -> list[tf.Method]:
    """Every method of the miniature, in the order of the table."""
    out = [tf.Method("full fine-tuning", "full"), tf.Method("head only", "head")]
    out += [tf.Method(f"LoRA r={r}", "lora", rank=r, alpha=2.0 * r) for r in s.lora_ranks]
    out += [tf.Method(f"prefix m={m}", "prefix", m=m) for m in s.prefix_lengths]
    out += [tf.Method("NTK ELU+1 abs(k) (authors)", "ntk_elu", abs_k=True),
            tf.Method("NTK ELU+1 (k free)", "ntk_elu", abs_k=False)]
    out += [tf.Method(f"NTK Taylor g={g}", "ntk_taylor", degree=g) for g in s.taylor_degrees]
    out += [tf.Method(f"NTK low-rank Z s={r}", "ntk_lowrank", rank=r) for r in s.lowrank_ranks]
    return out


def load_tasks(config: tf.ModelConfig) -> dict:
    """Task A (digits 0-4) and task B (digits 5-9, labels 0-4) as patches in [0, 1]."""
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    x = tf.patches(images.astype(np.float32) / 16.0, config)
    a, b = labels <= 4, labels >= 5
    return {"A": (x[a], labels[a].astype(np.int32)), "B": (x[b], (labels[b] - 5).astype(np.int32))}


def _split(n: int, fractions, rng) -> list[np.ndarray]:
    order = rng.permutation(n)
    cuts = np.cumsum([int(round(f * n)) for f in fractions[:-1]])
    return np.split(order, cuts)


def _loss(trainable, frozen, method, config, x, y):
    parts = {**frozen, **trainable}
    logits = jax.vmap(lambda xi: tf.forward(parts["backbone"], parts["head"], parts["adapter"], xi, method, config))(x)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))


def _trainer(method: tf.Method, config: tf.ModelConfig):
    """train(trainable, frozen, learning_rate, x, y, batches) -> (trainable, losses): Adam over lax.scan."""
    adam = optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8)

    def train(trainable, frozen, learning_rate, x, y, batches):
        def step(carry, index):
            params, state = carry
            value, grads = jax.value_and_grad(_loss)(params, frozen, method, config, x[index], y[index])
            updates, state = adam.update(grads, state, params)
            params = jax.tree_util.tree_map(lambda p, u: p - learning_rate * u, params, updates)
            return (params, state), value

        (params, _), losses = jax.lax.scan(step, (trainable, adam.init(trainable)), batches)
        return params, losses

    return jax.jit(train)


def _predictor(method: tf.Method, config: tf.ModelConfig):
    def predict(trainable, frozen, x):
        parts = {**frozen, **trainable}
        return jax.vmap(lambda xi: tf.forward(parts["backbone"], parts["head"], parts["adapter"], xi, method,
                                              config))(x).argmax(axis=-1)

    return jax.jit(predict)


def _batches(rng, n: int, steps: int, batch: int) -> jnp.ndarray:
    return jnp.asarray(np.stack([rng.choice(n, size=batch, replace=False) for _ in range(steps)]), jnp.int32)


def _accuracy(predict, trainable, frozen, x, y) -> float:
    return float(np.mean(np.asarray(predict(trainable, frozen, x)) == y))


def _pretrain(s: Settings, tasks: dict, seed: int) -> tuple[dict, float]:
    """The backbone pre-trained on task A (full training, its own head), and its accuracy on A's hold-out."""
    config, rng = s.config, np.random.default_rng(10_000 + seed)
    x, y = tasks["A"]
    train, test = _split(len(y), (0.8, 0.2), rng)
    key = jax.random.PRNGKey(seed)
    backbone, head = tf.init_backbone(jax.random.fold_in(key, 1), config), tf.init_head(jax.random.fold_in(key, 2), config)
    method = tf.Method("pre-training", "full")
    trainable = {"backbone": backbone, "head": head, "adapter": {}}
    params, _ = _trainer(method, config)(trainable, {}, s.pretrain_learning_rate, jnp.asarray(x[train]),
                                         jnp.asarray(y[train]), _batches(rng, len(train), s.pretrain_steps, s.batch))
    accuracy = _accuracy(_predictor(method, config), params, {}, jnp.asarray(x[test]), y[test])
    return params["backbone"], accuracy


def measure(*, quick: bool = False, seed: int = 0, overrides: dict | None = None) -> dict:
    """Pre-train and adapt for every seed and method; ``overrides`` replaces Settings fields (tests use it)."""
    s = dataclasses.replace(settings(quick), **(overrides or {}))
    tasks = load_tasks(s.config)
    xb, yb = tasks["B"]
    all_methods = methods(s)
    compiled = {m: (_trainer(m, s.config), _predictor(m, s.config)) for m in all_methods}
    rows, pretrain = [], []
    for run in range(s.seeds):
        run_seed = seed * 1000 + run
        backbone, accuracy_a = _pretrain(s, tasks, run_seed)
        pretrain.append({"seed": run_seed, "task_A_accuracy": accuracy_a})
        rng = np.random.default_rng(run_seed)
        train, val, test = _split(len(yb), s.split, rng)
        data = {name: (jnp.asarray(xb[idx]), yb[idx]) for name, idx in (("train", train), ("val", val), ("test", test))}
        batches = _batches(rng, len(train), s.adapt_steps, s.batch)
        key = jax.random.PRNGKey(run_seed)
        head0 = tf.init_head(jax.random.fold_in(key, 3), s.config)
        for index, method in enumerate(all_methods):
            adapter = tf.init_adapter(jax.random.fold_in(key, 100 + index), method, backbone, s.config)
            trainable, frozen = tf.split_parameters(method, backbone, head0, adapter)
            train_fn, predict = compiled[method]
            runs = []
            for lr in s.learning_rates:
                args = (trainable, frozen, lr, data["train"][0], jnp.asarray(data["train"][1]), batches)
                if not runs and run == 0:
                    jax.block_until_ready(train_fn(*args))  # compile (and warm up) once per method
                started = time.perf_counter()
                params, losses = jax.block_until_ready(train_fn(*args))
                seconds = time.perf_counter() - started
                finite = bool(np.all(np.isfinite(np.asarray(losses))))
                runs.append({"learning_rate": lr, "seconds": seconds, "finite": finite,
                             "final_loss": float(losses[-1]), "first_loss": float(losses[0]),
                             "val": _accuracy(predict, params, frozen, *data["val"]) if finite else 0.0,
                             "test": _accuracy(predict, params, frozen, *data["test"]) if finite else 0.0,
                             "trained": params})
            best = max(runs, key=lambda r: (r["val"], -r["learning_rate"]))
            extra = _adapter_report(method, trainable, best.pop("trained"))
            for r in runs:
                r.pop("trained", None)
            rows.append({"seed": run_seed, "method": method.name, "kind": method.kind, "m": method.m,
                         "rank": method.rank, "degree": method.degree, "abs_k": method.abs_k,
                         "trainable_parameters": tf.count_parameters(trainable),
                         "test_accuracy": best["test"], "val_accuracy": best["val"],
                         "learning_rate": best["learning_rate"], "seconds": best["seconds"], "finite": best["finite"],
                         "all_finite": all(r["finite"] for r in runs), "runs": runs, **extra})
    summary = summarise(rows)
    return {"settings": _settings_dict(s), "seed": seed, "pretrain": pretrain, "rows": rows, "summary": summary,
            "parameters_to_reach": parameters_to_reach(summary, s.accuracy_targets),
            "sizes": {"train": int(len(train)), "val": int(len(val)), "test": int(len(test))}}


def _adapter_report(method: tf.Method, initial: dict, trained: dict) -> dict:
    """For NTK methods: whether k moved from its initial value, and the largest |k|, |Z| after training."""
    if not method.kind.startswith("ntk"):
        return {}
    k0 = np.concatenate([np.ravel(layer["k"]) for layer in initial["adapter"]["layers"]])
    k1 = np.concatenate([np.ravel(layer["k"]) for layer in trained["adapter"]["layers"]])
    return {"k_max_change": float(np.max(np.abs(k1 - k0))), "k_max_abs": float(np.max(np.abs(k1)))}


def _settings_dict(s: Settings) -> dict:
    out = dataclasses.asdict(s)
    out["config"] = dataclasses.asdict(s.config)
    return out


def summarise(rows: list[dict]) -> list[dict]:
    """Per method: test accuracy mean and 95% t-interval over seeds, the paired gain over the head-only baseline (same
    seeds, same backbone and split) with its interval, parameters, median training seconds."""
    out = []
    head = {r["seed"]: r["test_accuracy"] for r in rows if r["kind"] == "head"}
    for name in dict.fromkeys(r["method"] for r in rows):
        sel = [r for r in rows if r["method"] == name]
        acc = mean_interval([r["test_accuracy"] for r in sel])
        gain = mean_interval([r["test_accuracy"] - head[r["seed"]] for r in sel]) if head else None
        out.append({"method": name, "kind": sel[0]["kind"], "m": sel[0]["m"], "rank": sel[0]["rank"],
                    "degree": sel[0]["degree"], "trainable_parameters": sel[0]["trainable_parameters"],
                    "accuracy_mean": acc["mean"], "accuracy_low": acc["low"], "accuracy_high": acc["high"],
                    "gain_over_head_mean": gain["mean"] if gain else None,
                    "gain_over_head_low": gain["low"] if gain else None,
                    "gain_over_head_high": gain["high"] if gain else None,
                    "seeds": len(sel), "seconds_median": float(np.median([r["seconds"] for r in sel])),
                    "diverged_runs": sum(not r["all_finite"] for r in sel),
                    "learning_rates": sorted({r["learning_rate"] for r in sel}),
                    "k_moved_in_any_seed": (any(r["k_max_change"] > 0 for r in sel) if "k_max_change" in sel[0]
                                            else None)})
    return out


def parameters_to_reach(summary: list[dict], targets) -> list[dict]:
    """Per family and target accuracy: the fewest trainable parameters among its configurations whose mean test
    accuracy reaches the target, and whether the lower end of its 95% interval does too (None: no configuration
    reaches it)."""
    out = []
    for kind in dict.fromkeys(r["kind"] for r in summary):
        sel = sorted([r for r in summary if r["kind"] == kind], key=lambda r: r["trainable_parameters"])
        for target in targets:
            hit = next((r for r in sel if r["accuracy_mean"] >= target), None)
            out.append({"family": kind, "target": target,
                        "parameters": None if hit is None else hit["trainable_parameters"],
                        "method": None if hit is None else hit["method"],
                        "interval_low_reaches": None if hit is None else bool(hit["accuracy_low"] >= target)})
    return out


FAMILY_STYLE = {"full": ("full fine-tuning", "*"), "head": ("head only", "x"), "lora": ("LoRA", "D"),
                "prefix": ("prefix tuning", "o"), "ntk_elu": ("NTK ELU+1", "s"), "ntk_taylor": ("NTK Taylor", "^"),
                "ntk_lowrank": ("NTK low-rank Z", "v")}


def plot(data: dict, out_dir: Path) -> list[Path]:
    """Test accuracy (mean, 95% interval) and the paired gain over head only, against trainable parameters, one
    colour per family. Methods with equal parameter counts are drawn side by side (x offset by a few per cent)."""
    fig, (ax, ax_g) = plotting.new_figure(ncols=2, width=6.2, height=4.6)
    summary = data["summary"]
    seen: dict[int, int] = {}
    for color, (kind, (label, marker)) in zip(plotting.COLORS, FAMILY_STYLE.items()):
        sel = sorted([r for r in summary if r["kind"] == kind], key=lambda r: r["trainable_parameters"])
        if not sel:
            continue
        x = []
        for r in sel:
            n = seen.get(r["trainable_parameters"], 0)
            seen[r["trainable_parameters"]] = n + 1
            x.append(r["trainable_parameters"] * 1.12**n)
        for axis, key in ((ax, "accuracy"), (ax_g, "gain_over_head")):
            y = [r[f"{key}_mean"] for r in sel]
            err = [[r[f"{key}_mean"] - r[f"{key}_low"] for r in sel], [r[f"{key}_high"] - r[f"{key}_mean"] for r in sel]]
            axis.errorbar(x, y, yerr=err, fmt=marker + ("-" if kind == "prefix" else ""), color=color, ms=5, capsize=2,
                          lw=1, label=label)
            for xi, r in zip(x, sel):
                text = {"prefix": f"m={r['m']}", "lora": f"r={r['rank']}", "ntk_lowrank": f"s={r['rank']}",
                        "ntk_taylor": f"g={r['degree']}",
                        "ntk_elu": "abs(k)" if "abs" in r["method"] else "k free"}.get(kind)
                if text:
                    axis.annotate(text, (xi, r[f"{key}_mean"]), fontsize=6, xytext=(3, 3), textcoords="offset points")
    s = data["settings"]
    ax.set(xscale="log", xlabel="trainable parameters (new head included)", ylabel="test accuracy, digits 5-9",
           title="accuracy (mean over seeds, 95% t-interval)")
    ax_g.axhline(0.0, color="grey", lw=0.8)
    ax_g.set(xscale="log", xlabel="trainable parameters (new head included)",
             ylabel="test accuracy minus head only's (same seed)", title="paired gain over the head-only baseline")
    ax.legend(loc="lower right")
    fig.suptitle(f"Tables 1-2 in miniature: pre-trained on digits 0-4, adapted to 5-9; d={s['config']['d']}, "
                 f"{s['config']['heads']} heads, {s['config']['layers']} blocks\n{s['seeds']} seeds; Adam, "
                 f"{s['adapt_steps']} steps, learning rate from {tuple(s['learning_rates'])} by validation")
    return plotting.save(fig, out_dir, "peft")
