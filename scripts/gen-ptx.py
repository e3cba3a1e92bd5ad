#!/usr/bin/env python3
"""Compiles tessera's CUDA C kernels (ptx/kernels/*.cu) to the PTX the engine embeds
(ptx/src/ptx/*.ptx), with NVRTC from the pinned PyPI wheel (scripts/cuda-tools.sh).

The build of tessera never runs this: the PTX is committed. CI runs it with --check to make
sure the committed PTX is what the sources give.

    python3 scripts/gen-ptx.py            # regenerate
    python3 scripts/gen-ptx.py --check    # exit 1 if any committed .ptx differs
    python3 scripts/gen-ptx.py matmul index # only these modules (while editing them)
"""
import ctypes
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SRC = ROOT / "ptx" / "kernels"
OUT = ROOT / "ptx" / "src" / "ptx"
# sm_80 PTX: the driver JITs it for Ampere and Hopper alike.
OPTIONS = [b"--gpu-architecture=compute_80", b"--std=c++17", b"--fmad=true"]


def nvrtc():
    tools = subprocess.check_output(["bash", str(ROOT / "scripts" / "cuda-tools.sh")], text=True).strip()
    lib = pathlib.Path(tools) / "nvidia" / "cuda_nvrtc" / "lib" / "libnvrtc.so.12"
    return ctypes.CDLL(str(lib))


def compile_one(lib, path):
    prog = ctypes.c_void_p()
    src = path.read_bytes()
    # Our own headers (ptx/kernels/*.cuh) are handed to NVRTC by name, so no include path
    # (and no absolute path) reaches the PTX.
    headers = sorted(SRC.glob("*.cuh"))
    bodies = (ctypes.c_char_p * len(headers))(*[h.read_bytes() for h in headers])
    names = (ctypes.c_char_p * len(headers))(*[h.name.encode() for h in headers])
    check(lib, lib.nvrtcCreateProgram(ctypes.byref(prog), src, path.name.encode(), len(headers), bodies, names), path)
    opts = (ctypes.c_char_p * len(OPTIONS))(*OPTIONS)
    rc = lib.nvrtcCompileProgram(prog, len(OPTIONS), opts)
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    if rc != 0:
        sys.exit(f"{path.name}: NVRTC failed\n{log.value.decode()}")
    lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
    ptx = ctypes.create_string_buffer(size.value)
    check(lib, lib.nvrtcGetPTX(prog, ptx), path)
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    return ptx.value.decode()


def check(lib, rc, path):
    if rc != 0:
        lib.nvrtcGetErrorString.restype = ctypes.c_char_p
        sys.exit(f"{path.name}: {lib.nvrtcGetErrorString(rc).decode()}")


def main():
    check_only = "--check" in sys.argv[1:]
    only = {a for a in sys.argv[1:] if not a.startswith("--")}
    lib = nvrtc()
    OUT.mkdir(parents=True, exist_ok=True)
    stale = []
    sources = sorted(SRC.glob("*.cu"))
    unknown = only - {p.stem for p in sources}
    if unknown:
        sys.exit(f"no such module in ptx/kernels: {', '.join(sorted(unknown))}")
    if only:
        sources = [p for p in sources if p.stem in only]
    for path in sources:
        ptx = compile_one(lib, path)
        dest = OUT / (path.stem + ".ptx")
        if check_only:
            if not dest.exists() or dest.read_text() != ptx:
                stale.append(dest.relative_to(ROOT))
        else:
            dest.write_text(ptx)
    names = {p.stem for p in SRC.glob("*.cu")}
    orphans = [p.relative_to(ROOT) for p in OUT.glob("*.ptx") if p.stem not in names]
    if check_only and (stale or orphans):
        for s in stale:
            print(f"stale: {s} differs from what ptx/kernels gives; run python3 scripts/gen-ptx.py")
        for o in orphans:
            print(f"orphan: {o} has no source in ptx/kernels")
        sys.exit(1)
    print(f"{len(sources)} PTX modules {'match their sources' if check_only else 'written'}")


if __name__ == "__main__":
    main()
