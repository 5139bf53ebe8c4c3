#include <ATen/ATen.h>

#include "napi/js_convert.h"

#include <cmath>

#include "common/errors.h"

namespace tg {

namespace {

constexpr double kMaxSafeInteger = 9007199254740991.0;

[[noreturn]] void Invalid(const char* what, const std::string& expected) {
  throw Error(code::kInvalidArgument, std::string(what) + " must be " + expected + ".");
}

}  // namespace

int64_t ToInt64(const Napi::Value& value, const char* what) {
  if (value.IsBigInt()) {
    bool lossless = false;
    int64_t result = value.As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) Invalid(what, "a BigInt within int64");
    return result;
  }
  if (!value.IsNumber()) Invalid(what, "an integer");
  double number = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(number) || std::floor(number) != number || std::fabs(number) > kMaxSafeInteger) {
    Invalid(what, "a safe integer");
  }
  return static_cast<int64_t>(number);
}

double ToDouble(const Napi::Value& value, const char* what) {
  if (!value.IsNumber()) Invalid(what, "a number");
  return value.As<Napi::Number>().DoubleValue();
}

uint64_t ToSeed(const Napi::Value& value, const char* what) {
  if (value.IsBigInt()) {
    bool lossless = false;
    uint64_t result = value.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) Invalid(what, "a BigInt in [0, 2^64)");
    return result;
  }
  int64_t seed = ToInt64(value, what);
  if (seed < 0) Invalid(what, "a non-negative integer");
  return static_cast<uint64_t>(seed);
}

std::string ToString(const Napi::Value& value, const char* what) {
  if (!value.IsString()) Invalid(what, "a string");
  return value.As<Napi::String>().Utf8Value();
}

std::string OptionalString(const Napi::Value& options, const char* key, const std::string& fallback) {
  if (!options.IsObject()) return fallback;
  Napi::Value field = options.As<Napi::Object>().Get(key);
  if (field.IsUndefined()) return fallback;
  return ToString(field, key);
}

std::vector<int64_t> ToShape(const Napi::Value& value, const char* what, bool allowInferred) {
  if (!value.IsArray()) Invalid(what, "an array of non-negative integers");
  Napi::Array array = value.As<Napi::Array>();
  std::vector<int64_t> shape;
  shape.reserve(array.Length());
  bool inferred = false;
  for (uint32_t i = 0; i < array.Length(); ++i) {
    int64_t size = ToInt64(array.Get(i), what);
    if (size == -1 && allowInferred && !inferred) {
      inferred = true;
    } else if (size < 0) {
      Invalid(what, allowInferred ? "an array of non-negative integers, with at most one -1"
                                  : "an array of non-negative integers");
    }
    shape.push_back(size);
  }
  return shape;
}

Napi::Array FromShape(Napi::Env env, c10::IntArrayRef shape) {
  Napi::Array array = Napi::Array::New(env, shape.size());
  for (size_t i = 0; i < shape.size(); ++i) array.Set(i, Napi::Number::New(env, static_cast<double>(shape[i])));
  return array;
}

}  // namespace tg
