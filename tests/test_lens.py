"""Constructed weights load into TransformerLens' HookedTransformer and compute the same thing.

Skipped (visibly) unless the optional extra is installed: pip install 'rnngap[lens]'.
"""

import importlib
import importlib.util

import pytest
import torch

CONSTRUCTIONS = ["index", "ar", "cgram", "counting"]


def _lens_available() -> bool:
    try:
        from transformer_lens import HookedTransformer  # noqa: F401
    except Exception:  # noqa: BLE001  (ImportError, or a broken install of its dependencies)
        return False
    return True


pytestmark = pytest.mark.skipif(not _lens_available(),
                                reason="TransformerLens 2.x (extra 'lens') not installed")


@pytest.mark.parametrize("name", CONSTRUCTIONS)
def test_round_trip(name):
    if importlib.util.find_spec(f"rnngap.constructions.retrieval.{name}") is None:
        pytest.skip(f"{name} construction not built")
    from rnngap.models.lens import to_hooked_transformer
    from rnngap.tasks.registry import make_task

    task = make_task(name, n=32)
    c = importlib.import_module(f"rnngap.constructions.retrieval.{name}").build(task)
    model = c.model()
    tl = to_hooked_transformer(model)
    x, _ = task.sample(64, 3)
    x = torch.from_numpy(x)
    with torch.no_grad():
        ours, theirs = model(x), tl(x)
    assert torch.equal(ours.argmax(-1)[:, -1], theirs.argmax(-1)[:, -1])
    assert torch.allclose(ours[:, -1], theirs[:, -1], rtol=1e-9, atol=1e-6)
