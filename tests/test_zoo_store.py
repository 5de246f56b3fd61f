"""Built zoo models kept on disk (zoo/store.py): built once, then read back as the same
bytes; a damaged or mismatched entry is rebuilt; no cache, no file."""
from __future__ import annotations

import onnx

from sqnxt_compiler import zoo
from sqnxt_compiler.frontend.load import load_onnx
from sqnxt_compiler.zoo import store

NAME = "1.0-SqNxt-23"


class Counting:
    """zoo.build (the real one, whatever ``zoo.build`` is patched to), counting its calls."""

    def __init__(self):
        self.calls = 0
        self.real = zoo.build

    def __call__(self, name, **kw):
        self.calls += 1
        return self.real(name, **kw)


def _cache(monkeypatch, tmp_path):
    monkeypatch.delenv("SQNXTC_NO_CACHE", raising=False)
    monkeypatch.setenv("SQNXTC_CACHE_DIR", str(tmp_path / "root"))
    return tmp_path / "root" / "zoo"


def test_built_once_then_read_as_the_same_bytes(monkeypatch, tmp_path):
    d = _cache(monkeypatch, tmp_path)
    build = Counting()
    first = store.load(NAME, build)
    (entry,) = list(d.iterdir())
    assert build.calls == 1 and entry.name.startswith(NAME + "-") and entry.suffix == ".onnx"
    again = store.load(NAME, build)
    assert build.calls == 1
    assert again.SerializeToString() == first.SerializeToString() == zoo.build(NAME).SerializeToString()


def test_the_frontend_reads_zoo_models_through_the_store(monkeypatch, tmp_path):
    d = _cache(monkeypatch, tmp_path)
    build = Counting()
    monkeypatch.setattr(zoo, "build", build)
    m1, src = load_onnx("zoo:" + NAME.lower())           # any case, as zoo: names are
    m2, _ = load_onnx("zoo:" + NAME)
    assert src == "zoo:" + NAME.lower() and build.calls == 1
    assert m1.SerializeToString() == m2.SerializeToString() and len(list(d.iterdir())) == 1


def test_a_damaged_or_foreign_entry_is_rebuilt(monkeypatch, tmp_path):
    d = _cache(monkeypatch, tmp_path)
    build = Counting()
    good = store.load(NAME, build).SerializeToString()
    (entry,) = list(d.iterdir())
    entry.write_bytes(entry.read_bytes()[:1000])              # truncated
    assert store.load(NAME, build).SerializeToString() == good and build.calls == 2
    assert entry.read_bytes() == good                          # overwritten
    other = zoo.build(NAME, seed=1)                            # a valid model, not the one asked
    onnx.save(other, str(entry))
    assert store.load(NAME, build).SerializeToString() == good and build.calls == 3


def test_no_cache_builds_every_time_and_writes_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("SQNXTC_CACHE_DIR", str(tmp_path / "root"))
    monkeypatch.setenv("SQNXTC_NO_CACHE", "1")
    build = Counting()
    store.load(NAME, build)
    store.load(NAME, build)
    assert build.calls == 2 and not (tmp_path / "root").exists()


def test_a_model_over_the_entry_limit_is_not_stored(monkeypatch, tmp_path):
    d = _cache(monkeypatch, tmp_path)
    monkeypatch.setattr(store, "MAX_ENTRY_MB", 1)               # 1.0-SqNxt-23 is about 3 MB
    build = Counting()
    store.load(NAME, build)
    store.load(NAME, build)
    assert build.calls == 2 and not (d.exists() and list(d.iterdir()))


def test_the_key_covers_seed_sparsity_and_the_zoo_code():
    k = store.key(NAME, 0, 0.0)
    assert k != store.key(NAME, 1, 0.0) != store.key(NAME, 0, 0.5)
    assert len({k, store.key(NAME, 1, 0.0), store.key(NAME, 0, 0.5), store.key("SqueezeNet-1.1", 0, 0.0)}) == 4
    from sqnxt_compiler.cachedir import PACKAGE, source_fingerprint
    assert store.code_fingerprint() == source_fingerprint(PACKAGE, ("zoo",))
