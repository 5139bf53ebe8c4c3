// Checked conversions from JS values to C++ values. Each throws
// tg::Error(ERR_INVALID_ARGUMENT) naming the argument and what it should be.
#pragma once

#include <napi.h>

#include <c10/util/ArrayRef.h>

#include <cstdint>
#include <string>
#include <vector>

namespace tg {

// Non-negative safe integers; with allowInferred, one entry may be -1.
std::vector<int64_t> ToShape(const Napi::Value& value, const char* what, bool allowInferred = false);
int64_t ToInt64(const Napi::Value& value, const char* what);
double ToDouble(const Napi::Value& value, const char* what);
// A non-negative safe-integer Number or a BigInt in [0, 2^64).
uint64_t ToSeed(const Napi::Value& value, const char* what);
std::string ToString(const Napi::Value& value, const char* what);
// options[key] as a string, or `fallback` when absent/undefined.
std::string OptionalString(const Napi::Value& options, const char* key, const std::string& fallback);

Napi::Array FromShape(Napi::Env env, c10::IntArrayRef shape);

}  // namespace tg
