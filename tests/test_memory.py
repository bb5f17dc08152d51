"""Heap trimming: freed tensors that glibc keeps inside its heap go back to the OS."""

from __future__ import annotations

import subprocess
import sys

from core.models.registry import REPO_ROOT

# Freeing a 24 MB tensor raises glibc's mmap threshold, so the 16 MB tensors after it come from the heap;
# a small tensor allocated after each keeps its freed space from being trimmed off the heap's top on its own.
CODE = """
import torch
from core.memory import release_memory

def anon_mb():
    return int(next(l for l in open('/proc/self/status') if l.startswith('RssAnon')).split()[1]) / 1024

first = torch.ones(6 * 2**20)
del first
pairs = [(torch.ones(4 * 2**20), torch.ones(1024)) for _ in range(20)]
pins = [pin for _, pin in pairs]
del pairs
before = anon_mb()
release_memory()
print(before - anon_mb())
"""


def test_release_memory_hands_freed_tensors_back_to_the_os():
    done = subprocess.run([sys.executable, "-c", CODE], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert float(done.stdout) > 200  # of the 320 MB freed
