// Conversions between JS values and TorchScript IValues, checked against a
// method's schema so a wrong input fails with a typed error before any work
// is queued.
#pragma once

#include <ATen/core/function_schema.h>
#include <ATen/core/ivalue.h>
#include <napi.h>

#include <vector>

namespace tg {

// Builds the argument stack (without `self`) for `schema` from a JS array.
// Throws ERR_INPUT_COUNT / ERR_INPUT_TYPE naming the argument.
std::vector<c10::IValue> InputsFromJs(Napi::Env env, const c10::FunctionSchema& schema, const Napi::Array& inputs);

// Tensor -> Tensor handle, tuple/list -> array, dict -> object, scalars ->
// numbers/booleans/strings, None -> null. Throws ERR_OUTPUT_TYPE otherwise.
Napi::Value OutputToJs(Napi::Env env, const c10::IValue& value);

// "forward(x: Tensor, t: Tensor, label: Tensor) -> Tensor"
std::string SignatureOf(const c10::FunctionSchema& schema);

}  // namespace tg
