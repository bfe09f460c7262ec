"""python -m figures NAME [--out DIR] [--quick] [--seed N];  python -m figures --list;  python -m figures --all."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

FIGURES = {
    "fig3": "Figure 3: run time against number of parameters, NTK-Attention and prefix attention",
    "sec3": "Section 3: kernel perturbation and convergence, loss against envelope, loss against compute",
    "sec4_4": "Section 4.4, faithful: learned ELU+1 NTK-Attention and the closed-form Taylor reduction vs a fixed prefix",
    "peft": "Tables 1-2 in miniature: digits 0-4 -> 5-9, every adaptation method, accuracy against trainable parameters",
    "params": "Parameter efficiency: break-even prefix length m* d = r d + r, and error of the reduction per parameter",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m figures", description="Regenerate the paper's figures.")
    parser.add_argument("name", nargs="?", help="figure name (see --list)")
    parser.add_argument("--list", action="store_true", help="list the figures")
    parser.add_argument("--all", action="store_true", help="regenerate every figure")
    parser.add_argument("--out", type=Path, default=Path("out/figures"), help="output directory (default out/figures)")
    parser.add_argument("--quick", action="store_true", help="smaller sweep")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from verify import jax_setup

    jax_setup.configure()  # float64 for the verification figures (fig3 casts to float32 itself); the PRNG stream
    if args.list:
        for name, what in FIGURES.items():
            print(f"{name:8s} {what}")
        return 0
    names = list(FIGURES) if args.all else [args.name]
    if names == [None] or any(n not in FIGURES for n in names):
        print(f"python -m figures: error: name one of {', '.join(FIGURES)}, or use --all / --list", file=sys.stderr)
        return 2
    for name in names:
        module = importlib.import_module(f"figures.{name}")
        data = module.measure(quick=args.quick, seed=args.seed)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
        for path in module.plot(data, args.out):
            print(f"{name}: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
