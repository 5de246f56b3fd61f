"""Run ZigZag on an export (``sqnxtc export --to zigzag``): needs ``sqnxtc[interop]``.

Three evaluations of every exported layer (docs/interop.md, "Running ZigZag"):

* ``pinned``: ZigZag's cost model on sqnxtc's mapping with sqnxtc's memory-level split:
  ZigZag's own stages parse the three files and convert the spatial unrolling; the temporal
  mapping is the exported ordering with the tile's loops in the global buffer and the
  tile loops in DRAM (``tile_loops_from`` of the manifest), each operand's register level
  receiving what ZigZag itself merges down into it;
* ``allocated``: ZigZag as its API runs mapping.yaml: the same ordering, but ZigZag's
  memory allocator decides which loops the global buffer holds (it may keep more than one
  tile when it fits);
* ``search``: ZigZag's own search (mapping_search.yaml: spatial mappings generated, LOMA
  over the temporal orderings, default settings), minimal latency.

Each gives, per layer: cycles (``latency_total2``), DRAM words (the words that cross
between DRAM and the global buffer, at each one's precision, in ``word_bits`` words),
energy (ZigZag's total, in the target's normalized units) and the CPU seconds it took.

``python -m sqnxt_compiler.interop.zigzag_eval DIR [--search]`` prints them as a table.
"""
from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from typing import Any

from .yamltext import load as load_yaml


def _quiet() -> None:
    logging.getLogger().setLevel(logging.ERROR)
    for name in ("zigzag",):
        logging.getLogger(name).setLevel(logging.ERROR)


def manifest(directory: str) -> dict:
    with open(os.path.join(directory, "manifest.yaml"), encoding="utf-8") as fh:
        return load_yaml(fh.read())


def dram_words(cme, word_bits: int) -> int:
    """Words that cross between DRAM (each operand's top level) and the level below it."""
    from zigzag.hardware.architecture.memory_port import DataDirection
    from zigzag.mapping.data_movement import DataMoveAttr

    bits = 0
    for op, levels in cme.mapping.unit_mem_data_movement.items():
        top = levels[-1]
        count = top.get_attribute(DataMoveAttr.DATA_ELEM_MOVE_COUNT)
        prec = top.get_attribute(DataMoveAttr.DATA_PRECISION)
        for d in (DataDirection.RD_OUT_TO_LOW, DataDirection.WR_IN_BY_LOW):
            bits += count.get(d) * prec.get(d)
    return round(bits / word_bits)


def _pinned_stage():
    from zigzag.mapping.temporal_mapping import TemporalMapping, TemporalMappingType
    from zigzag.opt.loma.engine import LomaEngine
    from zigzag.stages.stage import Stage

    class PinnedTemporalMappingStage(Stage):
        """The exported ordering, split at ``tile_loops_from``: the tile's loops at the
        global buffer, the tile loops at DRAM, for every operand."""

        def __init__(self, list_of_callables, *, accelerator, layer, spatial_mapping, boundaries, **kwargs):
            super().__init__(list_of_callables, **kwargs)
            self.accelerator, self.layer, self.spatial_mapping = accelerator, layer, spatial_mapping
            self.boundaries = boundaries
            self.kw = kwargs

        def run(self):
            ordering = self.layer.temporal_ordering
            engine = LomaEngine(accelerator=self.accelerator, layer=self.layer,
                                spatial_mapping=self.spatial_mapping,
                                mapping_type=TemporalMappingType.UNEVEN)
            if not ordering.is_complete(engine.get_temporal_loops()):
                raise ValueError(f"layer {self.layer.name}: the exported ordering {ordering.data} does not "
                                 f"cover ZigZag's temporal loops {engine.get_temporal_loops()}")
            loops = ordering.to_legacy_format()
            cut = self.boundaries[self.layer.name]
            inner, outer = loops[:cut], loops[cut:]
            tmd = {}
            links = self.layer.memory_operand_links
            for layer_op in self.layer.layer_operands:
                mem_op = links.layer_to_mem_op(layer_op)
                n = len(self.accelerator.memory_hierarchy.get_memory_levels(mem_op))
                levels = [[] for _ in range(n)]
                levels[-2] = list(inner)
                levels[-1] = list(outer)
                tmd[layer_op] = levels
            tm = TemporalMapping(tmd, self.layer, TemporalMappingType.UNEVEN)
            kwargs = dict(self.kw, accelerator=self.accelerator, layer=self.layer,
                          spatial_mapping=self.spatial_mapping, temporal_mapping=tm)
            sub = self.list_of_callables[0](self.list_of_callables[1:], **kwargs)
            for cme, extra in sub.run():
                yield cme, (tm, extra)

    return PinnedTemporalMappingStage


def _run(stages, **kw) -> list:
    from zigzag.stages.main import MainStage

    return MainStage(stages, **kw).run()


def _per_layer(answers, word_bits: int, seconds: dict) -> dict[str, dict]:
    out = {}
    for cme, extra in answers:
        layer = extra[0]
        out[layer.name] = {"cycles": float(cme.latency_total2), "dram_words": dram_words(cme, word_bits),
                           "energy": float(cme.energy_total), "cpu_s": seconds.get(layer.name, 0.0),
                           "temporal_mapping": str(cme.temporal_mapping)}
    return out


def _timed_stage(seconds: dict):
    from zigzag.stages.stage import Stage

    class TimedStage(Stage):
        """Records the CPU time of everything below it, per layer, in ``seconds``."""

        def __init__(self, list_of_callables, *, layer, **kwargs):
            super().__init__(list_of_callables, **kwargs)
            self.layer, self.kw = layer, kwargs

        def run(self):
            t0 = time.process_time()
            sub = self.list_of_callables[0](self.list_of_callables[1:], layer=self.layer, **self.kw)
            results = list(sub.run())
            seconds[self.layer.name] = seconds.get(self.layer.name, 0.0) + time.process_time() - t0
            yield from results

    return TimedStage


def subset_workload(directory: str, names: list[str], out_dir: str) -> str:
    """A workload file of the layers ``names`` only (each its own input), in ``out_dir``."""
    import yaml

    with open(os.path.join(directory, "workload.yaml"), encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    keep = [dict(e) for e in data if e["name"] in set(names)]
    for j, e in enumerate(keep):
        e["id"] = j
        e["operand_source"] = {k: j for k in e["operand_source"]}
    path = os.path.join(out_dir, "workload.yaml")
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(keep, fh, sort_keys=False)
    return path


def evaluate(directory: str, how: str = "pinned", names: list[str] | None = None) -> dict[str, dict]:
    """ZigZag's figures per layer (module doc) for ``how`` in pinned, allocated, search;
    ``names``: only these layers (default: every exported layer)."""
    from zigzag.mapping.temporal_mapping import TemporalMappingType
    from zigzag.stages.evaluation.cost_model_evaluation import CostModelStage
    from zigzag.stages.mapping.spatial_mapping_generation import SpatialMappingGeneratorStage
    from zigzag.stages.mapping.temporal_mapping_generator_stage import TemporalMappingGeneratorStage
    from zigzag.stages.parser.accelerator_parser import AcceleratorParserStage
    from zigzag.stages.parser.workload_parser import WorkloadParserStage
    from zigzag.stages.results.reduce_stages import MinimalLatencyStage
    from zigzag.stages.workload_iterator import WorkloadStage

    _quiet()
    man = manifest(directory)
    word_bits = int(load_yaml(open(os.path.join(directory, "workload.yaml"), encoding="utf-8").read())[0]
                    ["operand_precision"]["I"])
    names = names or [layer["name"] for layer in man["layers"]]
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="sqnxtc-zz-") as tmp:
        work = subset_workload(directory, names, tmp)
        mapping = os.path.join(directory, "mapping_search.yaml" if how == "search" else "mapping.yaml")
        common = dict(workload=work, accelerator=os.path.join(directory, "accelerator.yaml"), mapping=mapping,
                      dump_folder=tmp, loma_lpf_limit=6, loma_show_progress_bar=False,
                      nb_mappings_generated=3, enable_mix_spatial_mapping_generation=False,
                      access_same_data_considered_as_no_access=True,
                      temporal_mapping_type=TemporalMappingType.UNEVEN)
        if how == "pinned":
            boundaries = {layer["name"]: int(layer["tile_loops_from"]) for layer in man["layers"]}
            stages = [WorkloadParserStage, AcceleratorParserStage, WorkloadStage, _timed_stage(seconds),
                      SpatialMappingGeneratorStage, MinimalLatencyStage, _pinned_stage(), CostModelStage]
            answers = _run(stages, boundaries=boundaries, **common)
        elif how in ("allocated", "search"):
            stages = [WorkloadParserStage, AcceleratorParserStage, WorkloadStage, _timed_stage(seconds),
                      MinimalLatencyStage, SpatialMappingGeneratorStage, MinimalLatencyStage,
                      TemporalMappingGeneratorStage, CostModelStage]
            answers = _run(stages, **common)
        else:
            raise ValueError(f"unknown evaluation {how!r}")
    return _per_layer(answers, word_bits, seconds)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print("usage: python -m sqnxt_compiler.interop.zigzag_eval DIR [pinned|allocated|search ...]",
              file=sys.stderr)
        return 2
    directory, hows = argv[0], argv[1:] or ["pinned"]
    man = manifest(directory)
    results = {h: evaluate(directory, h) for h in hows}
    cols = ["layer", "sqnxtc cycles", "sqnxtc words"] + [f"{h} {c}" for h in hows for c in ("cycles", "words")]
    print("\t".join(cols))
    for layer in man["layers"]:
        n = layer["name"]
        row: list[Any] = [n, layer["sqnxtc"]["total_cycles"], layer["sqnxtc"]["compared_words"]]
        for h in hows:
            r = results[h].get(n)
            row += [round(r["cycles"]), r["dram_words"]] if r else ["-", "-"]
        print("\t".join(str(x) for x in row))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
