"""keep_freed_memory: freed arrays give their pages to the next ones instead of the system."""

import subprocess
import sys

import pytest

from npnet.fast.memory import keep_freed_memory

# Three 2 MiB arrays made, touched and freed, over and over: the allocation pattern of a
# training step at batch 512, in miniature. Prints the page faults per repetition.
PATTERN = """
import resource, sys
import numpy as np
if sys.argv[1] == "keep":
    from npnet.fast.memory import keep_freed_memory
    assert keep_freed_memory()
def step():
    arrays = [np.ones(2**19, dtype=np.float32) for _ in range(3)]
    del arrays
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


def faults_per_step(mode: str) -> float:
    # A fresh process each: allocator settings are process-wide and history-dependent.
    done = subprocess.run(
        [sys.executable, "-c", PATTERN, mode], capture_output=True, text=True, check=True
    )
    return float(done.stdout)


def test_kept_memory_is_reused_without_page_faults():
    if not keep_freed_memory():
        pytest.skip("not glibc: keep_freed_memory leaves the allocator alone")
    default = faults_per_step("default")
    if default < 100:
        pytest.skip(f"this glibc keeps the memory anyway ({default:.0f} faults per step)")
    # Each step touches 6 MiB = 1536 pages; returned to the system, they fault again.
    assert faults_per_step("keep") < 0.05 * default
