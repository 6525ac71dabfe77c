"""Write tests/data/torch_reference.json from PyTorch (run where torch is installed).

    python tests/data/make_torch_reference.py

The table lets CI check symgrad's layers against PyTorch's values, kinks included,
without installing PyTorch.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402

from tests.torch_functions import POINTS, torch_functions, torch_values  # noqa: E402


def main() -> None:
    table = {"torch": torch.__version__, "points": POINTS, "activations": {}}
    for name in torch_functions():
        out, grad, params = torch_values(name)
        table["activations"][name] = {"out": out, "grad": grad, "param_grads": params}
    path = Path(__file__).with_name("torch_reference.json")
    path.write_text(json.dumps(table, indent=1) + "\n")
    print(f"wrote {path} ({len(table['activations'])} activations)")


if __name__ == "__main__":
    main()
