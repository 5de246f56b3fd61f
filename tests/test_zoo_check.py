"""`sqnxtc check zoo:NAME` passes for every zoo preset: the compiled IR (default pipeline)
computes what onnxruntime computes on the exported model. VGG-19 (143M weights, 20 GMACs)
runs one sample to keep the suite fast; the others run two."""
import pytest

from sqnxt_compiler.zoo import list_models

NAMES = [m.name for m in list_models()]


@pytest.mark.parametrize("name", NAMES)
def test_check_zoo_model(cli, name):
    samples = 1 if name == "VGG-19" else 2
    r = cli("check", f"zoo:{name}", "--samples", samples)
    assert r.exit_code == 0, r.output
    assert "PASS" in r.stdout
