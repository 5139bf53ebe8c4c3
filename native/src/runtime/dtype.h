// The one table that maps dtype names, at::ScalarType and JS TypedArrays.
#pragma once

#include <ATen/ATen.h>
#include <napi.h>

#include <string>

namespace tg {

struct DtypeEntry {
  const char* name;                 // the public name: "float32", "int64", ...
  at::ScalarType scalarType;
  napi_typedarray_type arrayType;   // the TypedArray that holds its bytes
};

// Throws tg::Error(ERR_UNKNOWN_DTYPE) naming the accepted names.
const DtypeEntry& DtypeByName(const std::string& name);
// Throws for dtypes that have no JS representation (complex, quantized).
const DtypeEntry& DtypeByScalarType(at::ScalarType type);
// The default dtype for a TypedArray kind (Uint16Array -> float16, Uint8Array -> uint8).
const DtypeEntry& DtypeForArray(napi_typedarray_type type);
// "float32, float16, ..." for error messages.
std::string DtypeNames();

}  // namespace tg
