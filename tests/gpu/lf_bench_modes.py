"""LLaMA-Factory 0.9.5 on the reference workload, in the modes of ``bench_sft.py`` (the shared ``lf_bench.py`` plus
``lora_liger``: LLaMA-Factory's own ``enable_liger_kernel``).

Usage: python tests/gpu/lf_bench_modes.py LF_BENCH_PY WORK MODE [steps]   (MODE: lora | lora_liger | qlora4)
"""

from __future__ import annotations

import runpy
import sys

lf_bench, work, mode = sys.argv[1], sys.argv[2], sys.argv[3]
steps = sys.argv[4] if len(sys.argv) > 4 else "30"
if mode == "lora_liger":
    import llamafactory.train.tuner as tuner

    original = tuner.run_exp

    def with_liger(args=None, callbacks=None):
        return original({**args, "enable_liger_kernel": True}, callbacks)

    tuner.run_exp = with_liger
    mode = "lora"
sys.argv = [lf_bench, work, mode, steps]
runpy.run_path(lf_bench, run_name="__main__")
