#include "napi/ivalue_convert.h"

#include <ATen/core/Dict.h>
#include <ATen/core/List.h>

#include <cmath>
#include <string>

#include "common/errors.h"
#include "napi/js_convert.h"
#include "napi/tensor.h"

namespace tg {

namespace {

const char* JsTypeName(Napi::Env env, const Napi::Value& value) {
  if (value.IsUndefined()) return "undefined";
  if (value.IsNull()) return "null";
  if (value.IsBoolean()) return "a boolean";
  if (value.IsNumber()) return "a number";
  if (value.IsBigInt()) return "a BigInt";
  if (value.IsString()) return "a string";
  if (value.IsArray()) return "an array";
  if (TensorWrap::IsTensor(env, value)) return "a Tensor";
  return "an object";
}

std::string Describe(const c10::Argument& argument, size_t index) {
  return "input " + std::to_string(index) + " (" + argument.name() + ": " + argument.type()->annotation_str() + ")";
}

c10::IValue Convert(Napi::Env env, const Napi::Value& value, const c10::TypePtr& type, const std::string& where) {
  auto mismatch = [&]() {
    return Error(code::kInputType, where + " must be " + type->annotation_str() + ", got " + JsTypeName(env, value) + ".");
  };
  switch (type->kind()) {
    case c10::TypeKind::TensorType:
      if (!TensorWrap::IsTensor(env, value)) throw mismatch();
      return TensorWrap::TensorOf(env, value, where.c_str());
    case c10::TypeKind::FloatType:
      if (!value.IsNumber()) throw mismatch();
      return value.As<Napi::Number>().DoubleValue();
    case c10::TypeKind::IntType:
      if (!value.IsNumber() && !value.IsBigInt()) throw mismatch();
      return ToInt64(value, where.c_str());
    case c10::TypeKind::NumberType:
      if (!value.IsNumber()) throw mismatch();
      return value.As<Napi::Number>().DoubleValue();
    case c10::TypeKind::BoolType:
      if (!value.IsBoolean()) throw mismatch();
      return value.As<Napi::Boolean>().Value();
    case c10::TypeKind::StringType:
      if (!value.IsString()) throw mismatch();
      return value.As<Napi::String>().Utf8Value();
    case c10::TypeKind::OptionalType:
      if (value.IsNull() || value.IsUndefined()) return c10::IValue();
      return Convert(env, value, type->expectRef<c10::OptionalType>().getElementType(), where);
    case c10::TypeKind::ListType: {
      if (!value.IsArray()) throw mismatch();
      Napi::Array array = value.As<Napi::Array>();
      const c10::TypePtr& element = type->expectRef<c10::ListType>().getElementType();
      c10::impl::GenericList list(element);
      for (uint32_t i = 0; i < array.Length(); ++i) {
        list.push_back(Convert(env, array.Get(i), element, where + "[" + std::to_string(i) + "]"));
      }
      return list;
    }
    case c10::TypeKind::TupleType: {
      const auto& elements = type->expectRef<c10::TupleType>().elements();
      if (!value.IsArray() || value.As<Napi::Array>().Length() != elements.size()) throw mismatch();
      Napi::Array array = value.As<Napi::Array>();
      std::vector<c10::IValue> items;
      for (uint32_t i = 0; i < elements.size(); ++i) {
        items.push_back(Convert(env, array.Get(i), elements[i], where + "[" + std::to_string(i) + "]"));
      }
      return c10::ivalue::Tuple::create(std::move(items));
    }
    default:
      throw Error(code::kInputType, where + " has type " + type->annotation_str() +
                                        ", which cannot be passed from JavaScript.");
  }
}

}  // namespace

std::string SignatureOf(const c10::FunctionSchema& schema) {
  std::string text = schema.name() + "(";
  const auto& args = schema.arguments();
  for (size_t i = 1; i < args.size(); ++i) {  // 0 is self
    if (i > 1) text += ", ";
    text += args[i].name() + ": " + args[i].type()->annotation_str();
    if (args[i].default_value()) text += " = ...";
  }
  text += ") -> ";
  const auto& returns = schema.returns();
  text += returns.size() == 1 ? returns[0].type()->annotation_str() : std::string("(...)");
  return text;
}

std::vector<c10::IValue> InputsFromJs(Napi::Env env, const c10::FunctionSchema& schema, const Napi::Array& inputs) {
  const auto& args = schema.arguments();
  size_t total = args.size() - 1;
  size_t required = 0;
  for (size_t i = 1; i < args.size(); ++i) {
    if (!args[i].default_value()) required = i;
  }
  size_t given = inputs.Length();
  if (given < required || given > total) {
    std::string expected = required == total ? std::to_string(total)
                                             : std::to_string(required) + " to " + std::to_string(total);
    throw Error(code::kInputCount, schema.name() + " takes " + expected + " input(s), got " + std::to_string(given) +
                                       ". Signature: " + SignatureOf(schema) + ".");
  }
  std::vector<c10::IValue> stack;
  stack.reserve(total);
  for (size_t i = 1; i < args.size(); ++i) {
    if (i - 1 < given) {
      stack.push_back(Convert(env, inputs.Get(static_cast<uint32_t>(i - 1)), args[i].type(), Describe(args[i], i - 1)));
    } else {
      stack.push_back(*args[i].default_value());
    }
  }
  return stack;
}

Napi::Value OutputToJs(Napi::Env env, const c10::IValue& value) {
  if (value.isTensor()) return TensorWrap::Wrap(env, value.toTensor());
  if (value.isNone()) return env.Null();
  if (value.isBool()) return Napi::Boolean::New(env, value.toBool());
  if (value.isDouble()) return Napi::Number::New(env, value.toDouble());
  if (value.isInt()) {
    int64_t number = value.toInt();
    if (std::llabs(number) <= 9007199254740991LL) return Napi::Number::New(env, static_cast<double>(number));
    return Napi::BigInt::New(env, number);
  }
  if (value.isString()) return Napi::String::New(env, value.toStringRef());
  if (value.isTuple() || value.isList()) {
    std::vector<c10::IValue> items =
        value.isTuple() ? value.toTupleRef().elements().vec() : value.toList().vec();
    Napi::Array array = Napi::Array::New(env, items.size());
    for (size_t i = 0; i < items.size(); ++i) array.Set(static_cast<uint32_t>(i), OutputToJs(env, items[i]));
    return array;
  }
  if (value.isGenericDict()) {
    Napi::Object object = Napi::Object::New(env);
    for (const auto& entry : value.toGenericDict()) {
      if (!entry.key().isString()) {
        throw Error(code::kOutputType, "the model returned a dict with non-string keys, which has no JS form.");
      }
      object.Set(entry.key().toStringRef(), OutputToJs(env, entry.value()));
    }
    return object;
  }
  throw Error(code::kOutputType, "the model returned a " + value.tagKind() + ", which has no JS form.");
}

}  // namespace tg
