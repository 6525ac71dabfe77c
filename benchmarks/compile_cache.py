"""Cold versus warm `symgrad.compile`, each in a fresh process.

    python benchmarks/compile_cache.py [--repeats 5] [--json results.json]

Cold: an empty cache folder, so the formula is derived and the module generated.
Warm: the same folder again, so the cached module is imported and nothing derived.
Also: importing a generated module, against importing NumPy alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMPILE = (
    "import symgrad; "
    "symgrad.compile(symgrad.parse('x*tanh(softplus(x))', name='Mish2'))"
)


def timed(code: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import os

    cold, warm, numpy_only, layers = [], [], [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "SYMGRAD_CACHE": cache}
            cold.append(timed(COMPILE, env))
            warm.append(timed(COMPILE, env))
            module = Path(cache) / "layers.py"
            subprocess.run(
                [sys.executable, "-m", "symgrad", "generate", "relu", "gelu", "mish",
                 "-o", str(module)], check=True, env=env, capture_output=True,
            )  # fmt: skip
            numpy_only.append(timed("import numpy", env))
            layers.append(
                timed(f"import sys; sys.path.insert(0, {cache!r}); import layers", env)
            )
    rows = {
        "compile, cold (derive + generate + import)": statistics.median(cold),
        "compile, warm (cached module)": statistics.median(warm),
        "python -c 'import numpy'": statistics.median(numpy_only),
        "python -c 'import layers' (generated)": statistics.median(layers),
    }
    for label, seconds in rows.items():
        print(f"{label:45s} {seconds * 1000:8.1f} ms")
    print(
        f"{'warm / cold':45s} {rows['compile, warm (cached module)'] / rows['compile, cold (derive + generate + import)']:8.2f}"
    )
    extra = (
        rows["python -c 'import layers' (generated)"] - rows["python -c 'import numpy'"]
    )
    print(f"{'import layers - import numpy':45s} {extra * 1000:8.1f} ms")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
