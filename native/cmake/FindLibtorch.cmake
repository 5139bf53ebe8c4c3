# Finds libtorch for torch-guidance, in this order:
#   1. TORCH_GUIDANCE_LIBTORCH (environment or -D): a libtorch root (the zip's
#      folder, or any prefix with share/cmake/Torch).
#   2. An installed Python torch: `python -c "import torch;
#      print(torch.utils.cmake_prefix_path)"` for TORCH_GUIDANCE_PYTHON, then
#      python3 on PATH, then /usr/bin/python3. Only used when that folder has
#      a TorchConfig.cmake (Debian's python3-torch ships none: it reuses the
#      system package below).
#   3. The system package (Debian's libtorch-dev: /usr/lib/<triplet>/cmake/Torch).
# Sets TORCH_GUIDANCE_TORCH_SOURCE to env | python | system and fails with a
# message that lists what it tried and how to fix it.

set(_tg_tried "")

# A macro, not a function: find_package's variables (TORCH_LIBRARIES, ...)
# must land in the caller's scope.
macro(_tg_try_prefix prefix source)
  if(NOT Torch_FOUND)
    set(_tg_dir "")
    if(EXISTS "${prefix}/share/cmake/Torch/TorchConfig.cmake")
      set(_tg_dir "${prefix}/share/cmake/Torch")
    elseif(EXISTS "${prefix}/Torch/TorchConfig.cmake")
      set(_tg_dir "${prefix}/Torch")
    elseif(EXISTS "${prefix}/TorchConfig.cmake")
      set(_tg_dir "${prefix}")
    endif()
    if(NOT _tg_dir)
      string(APPEND _tg_tried "\n  - ${source}: ${prefix} (no TorchConfig.cmake there)")
    else()
      find_package(Torch CONFIG QUIET PATHS "${_tg_dir}" NO_DEFAULT_PATH)
      if(Torch_FOUND)
        set(TORCH_GUIDANCE_TORCH_SOURCE "${source}")
        set(TORCH_GUIDANCE_TORCH_CONFIG_DIR "${_tg_dir}")
      else()
        string(APPEND _tg_tried "\n  - ${source}: ${_tg_dir} (TorchConfig.cmake failed; rerun cmake with --log-level=DEBUG)")
      endif()
    endif()
  endif()
endmacro()

# 1. explicit root
set(_tg_root "$ENV{TORCH_GUIDANCE_LIBTORCH}")
if(DEFINED TORCH_GUIDANCE_LIBTORCH)
  set(_tg_root "${TORCH_GUIDANCE_LIBTORCH}")
endif()
if(_tg_root)
  _tg_try_prefix("${_tg_root}" "TORCH_GUIDANCE_LIBTORCH")
  if(NOT Torch_FOUND)
    message(FATAL_ERROR
      "torch-guidance: TORCH_GUIDANCE_LIBTORCH=${_tg_root} holds no usable libtorch.${_tg_tried}\n"
      "Fix: point it at the folder that contains share/cmake/Torch (the unzipped libtorch), or unset it.")
  endif()
endif()

# 2. Python torch
if(NOT Torch_FOUND)
  set(_tg_pythons "$ENV{TORCH_GUIDANCE_PYTHON}" python3 /usr/bin/python3)
  foreach(_py IN LISTS _tg_pythons)
    if(NOT _py OR Torch_FOUND)
      continue()
    endif()
    execute_process(
      COMMAND "${_py}" -c "import torch; print(torch.utils.cmake_prefix_path)"
      OUTPUT_VARIABLE _tg_py_prefix
      ERROR_QUIET
      RESULT_VARIABLE _tg_py_rc
      OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(_tg_py_rc EQUAL 0 AND _tg_py_prefix)
      _tg_try_prefix("${_tg_py_prefix}" "python (${_py})")
    else()
      string(APPEND _tg_tried "\n  - python (${_py}): no importable torch")
    endif()
  endforeach()
endif()

# 3. system package
if(NOT Torch_FOUND)
  find_package(Torch CONFIG QUIET)
  if(Torch_FOUND)
    set(TORCH_GUIDANCE_TORCH_SOURCE "system")
    set(TORCH_GUIDANCE_TORCH_CONFIG_DIR "${Torch_DIR}")
  else()
    string(APPEND _tg_tried "\n  - system: find_package(Torch) in CMAKE_PREFIX_PATH and the default prefixes")
  endif()
endif()

if(NOT Torch_FOUND)
  message(FATAL_ERROR
    "torch-guidance: no libtorch found. Looked in:${_tg_tried}\n"
    "Fix, any one of:\n"
    "  - Debian/Ubuntu (CPU): apt-get install libtorch-dev\n"
    "  - a CUDA or CPU libtorch zip: export TORCH_GUIDANCE_LIBTORCH=/path/to/libtorch\n"
    "  - a pip torch: pip install torch (the build asks python3 for torch.utils.cmake_prefix_path)\n"
    "then run: npm run build:native")
endif()
