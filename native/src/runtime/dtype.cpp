#include "runtime/dtype.h"

#include "common/errors.h"

namespace tg {

namespace {

// Order matters for DtypeForArray: the first entry with a given TypedArray
// kind is that kind's default dtype.
const DtypeEntry kDtypes[] = {
    {"float32", at::kFloat, napi_float32_array},
    {"float64", at::kDouble, napi_float64_array},
    {"float16", at::kHalf, napi_uint16_array},
    {"bfloat16", at::kBFloat16, napi_uint16_array},
    {"int64", at::kLong, napi_bigint64_array},
    {"int32", at::kInt, napi_int32_array},
    {"int16", at::kShort, napi_int16_array},
    {"int8", at::kChar, napi_int8_array},
    {"uint8", at::kByte, napi_uint8_array},
    {"bool", at::kBool, napi_uint8_array},
};

}  // namespace

std::string DtypeNames() {
  std::string names;
  for (const DtypeEntry& entry : kDtypes) {
    if (!names.empty()) names += ", ";
    names += entry.name;
  }
  return names;
}

const DtypeEntry& DtypeByName(const std::string& name) {
  for (const DtypeEntry& entry : kDtypes) {
    if (name == entry.name) return entry;
  }
  throw Error(code::kUnknownDtype, "unknown dtype '" + name + "'. Use one of: " + DtypeNames() + ".");
}

const DtypeEntry& DtypeByScalarType(at::ScalarType type) {
  for (const DtypeEntry& entry : kDtypes) {
    if (type == entry.scalarType) return entry;
  }
  throw Error(code::kUnknownDtype, std::string("tensors of dtype ") + c10::toString(type) +
                                       " cannot cross to JavaScript. Convert with .to({ dtype: 'float32' }).");
}

const DtypeEntry& DtypeForArray(napi_typedarray_type type) {
  for (const DtypeEntry& entry : kDtypes) {
    if (type == entry.arrayType) return entry;
  }
  throw Error(code::kInvalidArgument,
              "unsupported TypedArray kind. Use Float32Array, Float64Array, Uint16Array (float16/bfloat16), "
              "BigInt64Array, Int32Array, Int16Array, Int8Array or Uint8Array (uint8/bool).");
}

}  // namespace tg
