"""`sqnxtc check zoo:NAME` passes for every zoo preset: the compiled IR (default pipeline)
computes what onnxruntime computes on the exported model. VGG-19 (143M weights, 20 GMACs)
runs one sample to keep the suite fast; the others run two.  Each model is built once per
session (the ``cached_zoo_build`` fixture) and shared with the other zoo sweeps."""
import pytest

from sqnxt_compiler.zoo import list_models

NAMES = [m.name for m in list_models()]

pytestmark = pytest.mark.slow  # the whole zoo; VGG-19 alone takes ~20 s


@pytest.mark.parametrize("name", NAMES)
def test_check_zoo_model(cli, cached_zoo_build, name):
    samples = 1 if name == "VGG-19" else 2
    r = cli("check", f"zoo:{name}", "--samples", samples)
    assert r.exit_code == 0, r.output
    assert "PASS" in r.stdout
