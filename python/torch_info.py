"""Prints what CMake needs to build the libtorch extension against the torch
that `python` imports, as CMake list assignments; exits 1 without torch."""
import sys

try:
    import torch
    from torch.utils import cpp_extension
except Exception as e:  # torch is optional at install time
    print(f"torch not importable: {e}", file=sys.stderr)
    sys.exit(1)

major, minor = (int(x) for x in torch.__version__.split("+")[0].split(".")[:2])
print(f"HBMT_TORCH_VERSION={major * 100 + minor}")
print(f"HBMT_TORCH_VERSION_TEXT={torch.__version__}")
print(f"HBMT_TORCH_CUDA={torch.version.cuda or ''}")
print("HBMT_TORCH_INCLUDES=" + "|".join(cpp_extension.include_paths()))
print("HBMT_TORCH_LIBDIR=" + cpp_extension.library_paths()[0])
print(f"HBMT_TORCH_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}")
