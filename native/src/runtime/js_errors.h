// Failures as JS sees them: every error becomes a TorchGuidanceError (the
// class the TypeScript side registers at init) with its stable `code`.
// Nothing thrown by libtorch may escape a Node-API callback: node-addon-api
// only catches Napi::Error, anything else would terminate the process.
#pragma once

#include <napi.h>

#include "common/errors.h"

namespace tg {

// Registers the JS error class (called once per environment at init).
void SetErrorClass(Napi::Env env, Napi::Function ctor);

// Builds `new TorchGuidanceError(code, message)`; falls back to a plain Error
// with a `code` property before init.
Napi::Error MakeError(Napi::Env env, const ErrorInfo& info);

// Runs `body` and turns any non-JS exception into a thrown TorchGuidanceError.
template <typename Body>
auto Guarded(Napi::Env env, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    throw MakeError(env, DescribeException(std::current_exception()));
  }
}

}  // namespace tg
