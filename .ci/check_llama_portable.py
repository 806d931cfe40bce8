"""CI: fail unless the installed llama.cpp is the portable build (see .ci/run).

llama.cpp's system info lists the instruction sets it was compiled for (``AVX2 = 1``, ...),
not the ones this CPU has. The portable x86-64 build has none beyond SSE4.2, so no AMX code (the
path that faults on some cloud CPUs) is in it; objdump, when present, confirms that no AMX tile
instruction is in the CPU backend's library.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import llama_cpp

info = llama_cpp.llama_print_system_info().decode()
print(f"ci: llama.cpp system info: {info.strip()}")
if platform.machine().lower() in ("x86_64", "amd64"):
    native = [
        f
        for f in ("AVX", "AVX2", "FMA", "F16C", "BMI2", "AVX512", "AMX_INT8")
        if re.search(rf"\b{f} = 1", info)
    ]
    if native:
        sys.exit(f"ci: llama-cpp-python is not the portable build: it uses {', '.join(native)}")
    objdump = shutil.which("objdump")
    libs = sorted(
        {p.resolve() for p in (Path(llama_cpp.__file__).parent / "lib").glob("libggml-cpu*.so*")}
    )
    if objdump and libs:
        for lib in libs:
            code = subprocess.run([objdump, "-d", str(lib)], capture_output=True, text=True).stdout
            if re.search(r"\b(ldtilecfg|tileloadd|tdpb[a-z]*|tilestored)\b", code):
                sys.exit(f"ci: {lib.name} holds AMX instructions: not the portable build")
        print(f"ci: no AMX instruction in {', '.join(lib.name for lib in libs)}")
