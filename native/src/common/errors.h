// The addon's errors: a tg::Error carries one of the stable codes below, and
// every failure, ours or libtorch's, is classified into a code and a message
// (DescribeException) before it crosses to JS as a TorchGuidanceError
// (runtime/js_errors.h). No Node-API here: every layer throws these.
#pragma once

#include <exception>
#include <stdexcept>
#include <string>

namespace tg {

// Stable error codes. The TypeScript side documents them (src/errors.ts).
namespace code {
constexpr const char* kInvalidArgument = "ERR_INVALID_ARGUMENT";
constexpr const char* kModelNotFound = "ERR_MODEL_NOT_FOUND";
constexpr const char* kNotTorchScript = "ERR_NOT_TORCHSCRIPT";
constexpr const char* kMethodNotFound = "ERR_METHOD_NOT_FOUND";
constexpr const char* kInputCount = "ERR_INPUT_COUNT";
constexpr const char* kInputType = "ERR_INPUT_TYPE";
constexpr const char* kInputShape = "ERR_INPUT_SHAPE";
constexpr const char* kForwardFailed = "ERR_FORWARD_FAILED";
constexpr const char* kOutputType = "ERR_OUTPUT_TYPE";
constexpr const char* kUnknownDevice = "ERR_UNKNOWN_DEVICE";
constexpr const char* kCudaUnavailable = "ERR_CUDA_UNAVAILABLE";
constexpr const char* kUnknownDtype = "ERR_UNKNOWN_DTYPE";
constexpr const char* kDisposed = "ERR_DISPOSED";
constexpr const char* kOutOfMemory = "ERR_OUT_OF_MEMORY";
constexpr const char* kTooLarge = "ERR_TOO_LARGE";
constexpr const char* kModelCard = "ERR_MODEL_CARD";
constexpr const char* kUntrustedModel = "ERR_UNTRUSTED_MODEL";
constexpr const char* kAborted = "ERR_ABORTED";
constexpr const char* kThreadsStuck = "ERR_THREADS_STUCK";
constexpr const char* kIo = "ERR_IO";
constexpr const char* kTorch = "ERR_TORCH";
constexpr const char* kNative = "ERR_NATIVE";
}  // namespace code

// A failure with a code, thrown anywhere in the addon (worker threads too).
class Error : public std::runtime_error {
 public:
  Error(std::string code, const std::string& message)
      : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const noexcept { return code_; }

 private:
  std::string code_;
};

// What crosses from a worker thread to the main thread.
struct ErrorInfo {
  std::string code;
  std::string message;
};

// Classifies the exception in flight: our own Error keeps its code, libtorch's
// out-of-memory and std::bad_alloc become ERR_OUT_OF_MEMORY, other c10::Error
// ERR_TORCH (message without the C++ backtrace), the rest ERR_NATIVE.
ErrorInfo DescribeException(std::exception_ptr error);

// True when a libtorch message reads as a size/shape mismatch of an input.
bool LooksLikeShapeError(const std::string& message);

// What went wrong, from a TorchScript error: the interpreter's messages carry
// a traceback, and its last "SomethingError: ..." line is the cause.
std::string ErrorSummary(const std::string& message);

}  // namespace tg
