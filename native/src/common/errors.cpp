#include "common/errors.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cctype>
#include <new>

namespace tg {

namespace {

bool Contains(const std::string& haystack, const char* needle) {
  return haystack.find(needle) != std::string::npos;
}

bool LooksLikeOutOfMemory(const std::string& message) {
  return Contains(message, "out of memory") || Contains(message, "can't allocate memory") ||
         Contains(message, "Tried to allocate");
}

}  // namespace

ErrorInfo DescribeException(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const Error& e) {
    return {e.code(), e.what()};
  } catch (const c10::OutOfMemoryError& e) {
    return {code::kOutOfMemory, std::string("out of memory: ") + e.what_without_backtrace() +
                                    " Fix: use a smaller batchSize, or free tensors with dispose()."};
  } catch (const c10::Error& e) {
    std::string message = e.what_without_backtrace();
    if (LooksLikeOutOfMemory(message)) {
      return {code::kOutOfMemory,
              "out of memory: " + message + " Fix: use a smaller batchSize, or free tensors with dispose()."};
    }
    return {code::kTorch, message};
  } catch (const std::bad_alloc&) {
    return {code::kOutOfMemory, "out of memory (std::bad_alloc). Fix: use a smaller batchSize."};
  } catch (const std::exception& e) {
    return {code::kNative, e.what()};
  } catch (...) {
    return {code::kNative, "unknown native exception"};
  }
}

bool LooksLikeShapeError(const std::string& message) {
  // libtorch has no exception type for shape mismatches; these are the
  // phrases its kernels use (conv, linear, matmul, cat, view, broadcasting).
  static const char* const kPhrases[] = {
      "size mismatch",  "shape",           "to have",        "must match the size",
      "cannot be multiplied", "Expected size", "Sizes of tensors", "dimension",
      "Expected 3D",    "Expected 4D",     "is invalid for input of size", "expected input",
  };
  return std::any_of(std::begin(kPhrases), std::end(kPhrases),
                     [&](const char* phrase) { return Contains(message, phrase); });
}

std::string ErrorSummary(const std::string& message) {
  std::string summary;
  size_t start = 0;
  while (start < message.size()) {
    size_t end = message.find('\n', start);
    if (end == std::string::npos) end = message.size();
    std::string line = message.substr(start, end - start);
    size_t colon = line.find("Error: ");
    if (colon != std::string::npos && colon < 40 && line.find(' ') > colon) summary = line.substr(colon + 7);
    start = end + 1;
  }
  if (summary.empty()) summary = message.substr(0, message.find('\n'));
  return summary;
}

}  // namespace tg
