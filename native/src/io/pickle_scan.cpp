#include "io/pickle_scan.h"

#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <unordered_map>

namespace tg {

namespace {

struct Value;
using ValuePtr = std::shared_ptr<const Value>;

// Only what the scan needs: strings, integers, tuples (a storage's
// persistent id is one) and class names. Lists, dicts and built objects
// stay opaque.
struct Value {
  enum class Kind { kMark, kNone, kBool, kInt, kFloat, kString, kTuple, kGlobal, kOpaque };
  Kind kind = Kind::kOpaque;
  int64_t integer = 0;
  std::string text;             // a string, or "module.name" for a class
  std::vector<ValuePtr> items;  // a tuple's elements
};

ValuePtr Make(Value::Kind kind) {
  auto value = std::make_shared<Value>();
  value->kind = kind;
  return value;
}

ValuePtr MakeInt(int64_t integer) {
  auto value = std::make_shared<Value>();
  value->kind = Value::Kind::kInt;
  value->integer = integer;
  return value;
}

ValuePtr MakeText(Value::Kind kind, std::string text) {
  auto value = std::make_shared<Value>();
  value->kind = kind;
  value->text = std::move(text);
  return value;
}

class Scanner {
 public:
  Scanner(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  PickleScan Run() {
    for (;;) {
      const size_t at = at_;
      const uint8_t op = Byte();
      switch (op) {
        case 0x80: Bytes(1); break;                        // PROTO
        case 0x95: Bytes(8); break;                        // FRAME
        case '.': return std::move(result_);               // STOP
        case '(': Push(Make(Value::Kind::kMark)); break;   // MARK
        case '0': Pop(); break;                            // POP
        case '1': PopToMark(); break;                      // POP_MARK
        case '2': Push(Top()); break;                      // DUP
        case 'N': Push(Make(Value::Kind::kNone)); break;
        case 0x88: case 0x89: Push(Make(Value::Kind::kBool)); break;  // NEWTRUE, NEWFALSE
        case 'J': Push(MakeInt(static_cast<int32_t>(Le(4)))); break;  // BININT
        case 'K': Push(MakeInt(static_cast<int64_t>(Le(1)))); break;  // BININT1
        case 'M': Push(MakeInt(static_cast<int64_t>(Le(2)))); break;  // BININT2
        case 0x8a: Push(Long(Le(1))); break;                          // LONG1
        case 0x8b: Push(Long(Le(4))); break;                          // LONG4
        case 'G': Bytes(8); Push(Make(Value::Kind::kFloat)); break;   // BINFLOAT
        case 'X': Push(MakeText(Value::Kind::kString, Text(Le(4)))); break;     // BINUNICODE
        case 0x8c: Push(MakeText(Value::Kind::kString, Text(Le(1)))); break;    // SHORT_BINUNICODE
        case 0x8d: Push(MakeText(Value::Kind::kString, Text(Le(8)))); break;    // BINUNICODE8
        case 'T': Push(MakeText(Value::Kind::kString, Text(Le(4)))); break;     // BINSTRING
        case 'U': Push(MakeText(Value::Kind::kString, Text(Le(1)))); break;     // SHORT_BINSTRING
        case 'B': Bytes(Le(4)); Push(Make(Value::Kind::kOpaque)); break;        // BINBYTES
        case 'C': Bytes(Le(1)); Push(Make(Value::Kind::kOpaque)); break;        // SHORT_BINBYTES
        case 0x8e: Bytes(Le(8)); Push(Make(Value::Kind::kOpaque)); break;       // BINBYTES8
        case 'c': {                                                             // GLOBAL
          std::string module = Line();
          std::string name = Line();
          Global(module + "." + name);
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          ValuePtr name = Pop();
          ValuePtr module = Pop();
          if (name->kind != Value::Kind::kString || module->kind != Value::Kind::kString) Fail(at, "STACK_GLOBAL without names");
          Global(module->text + "." + name->text);
          break;
        }
        case ')': Push(Tuple({})); break;  // EMPTY_TUPLE
        case 't': Push(Tuple(PopToMark())); break;
        case 0x85: case 0x86: case 0x87: {  // TUPLE1..3
          std::vector<ValuePtr> items(op - 0x84);
          for (size_t i = items.size(); i > 0; --i) items[i - 1] = Pop();
          Push(Tuple(std::move(items)));
          break;
        }
        case ']': case '}': case 0x8f: Push(Make(Value::Kind::kOpaque)); break;  // EMPTY_LIST, EMPTY_DICT, EMPTY_SET
        case 'l': case 'd': case 0x91: PopToMark(); Push(Make(Value::Kind::kOpaque)); break;  // LIST, DICT, FROZENSET
        case 'a': Pop(); Top(); break;                      // APPEND: the list stays
        case 'e': case 'u': case 0x90: PopToMark(); Top(); break;  // APPENDS, SETITEMS, ADDITEMS
        case 's': Pop(); Pop(); Top(); break;               // SETITEM
        case 'q': Memo(Le(1)); break;                       // BINPUT
        case 'r': Memo(Le(4)); break;                       // LONG_BINPUT
        case 0x94: Memo(memo_.size()); break;               // MEMOIZE
        case 'p': Memo(Number(Line(), at)); break;          // PUT
        case 'h': Recall(Le(1), at); break;                 // BINGET
        case 'j': Recall(Le(4), at); break;                 // LONG_BINGET
        case 'g': Recall(Number(Line(), at), at); break;    // GET
        case 'R': Pop(); Pop(); Push(Make(Value::Kind::kOpaque)); break;  // REDUCE: callable(args)
        case 'b': Pop(); Top(); break;                      // BUILD: the object stays
        case 0x81: Pop(); Pop(); Push(Make(Value::Kind::kOpaque)); break;  // NEWOBJ
        case 0x92: Pop(); Pop(); Pop(); Push(Make(Value::Kind::kOpaque)); break;  // NEWOBJ_EX
        case 'Q': Persistent(Pop(), at); break;             // BINPERSID
        default: {
          char hex[8];
          std::snprintf(hex, sizeof(hex), "0x%02x", op);
          Fail(at, std::string("pickle opcode ") + hex + ", which TorchScript archives do not use");
        }
      }
    }
  }

 private:
  [[noreturn]] void Fail(size_t at, const std::string& why) const {
    throw std::runtime_error("pickle byte " + std::to_string(at) + ": " + why);
  }

  uint8_t Byte() {
    if (at_ >= size_) Fail(at_, "the pickle ends without STOP (truncated)");
    return data_[at_++];
  }

  const uint8_t* Bytes(uint64_t n) {
    if (n > size_ - at_) Fail(at_, "a value of " + std::to_string(n) + " bytes runs past the end of the pickle");
    const uint8_t* start = data_ + at_;
    at_ += n;
    return start;
  }

  uint64_t Le(size_t n) {
    const uint8_t* p = Bytes(n);
    uint64_t value = 0;
    for (size_t i = 0; i < n; ++i) value |= static_cast<uint64_t>(p[i]) << (8 * i);
    return value;
  }

  std::string Text(uint64_t n) {
    const uint8_t* p = Bytes(n);
    return std::string(reinterpret_cast<const char*>(p), n);
  }

  std::string Line() {
    const size_t start = at_;
    while (Byte() != '\n') {
    }
    return std::string(reinterpret_cast<const char*>(data_ + start), at_ - start - 1);
  }

  uint64_t Number(const std::string& text, size_t at) const {
    if (text.empty() || text.size() > 9 || text.find_first_not_of("0123456789") != std::string::npos) Fail(at, "a bad memo index");
    return std::stoull(text);
  }

  // A little-endian two's-complement integer of n bytes; wider than 64 bits stays opaque.
  ValuePtr Long(uint64_t n) {
    const uint8_t* p = Bytes(n);
    if (n > 8) return Make(Value::Kind::kOpaque);
    uint64_t value = 0;
    for (size_t i = 0; i < n; ++i) value |= static_cast<uint64_t>(p[i]) << (8 * i);
    if (n > 0 && n < 8 && (p[n - 1] & 0x80)) value |= ~uint64_t{0} << (8 * n);
    return MakeInt(static_cast<int64_t>(value));
  }

  static ValuePtr Tuple(std::vector<ValuePtr> items) {
    auto value = std::make_shared<Value>();
    value->kind = Value::Kind::kTuple;
    value->items = std::move(items);
    return value;
  }

  void Global(std::string name) {
    result_.globals.push_back(name);
    Push(MakeText(Value::Kind::kGlobal, std::move(name)));
  }

  void Push(ValuePtr value) { stack_.push_back(std::move(value)); }

  ValuePtr Pop() {
    if (stack_.empty() || stack_.back()->kind == Value::Kind::kMark) Fail(at_ - 1, "an opcode pops an empty stack");
    ValuePtr value = std::move(stack_.back());
    stack_.pop_back();
    return value;
  }

  const ValuePtr& Top() const {
    if (stack_.empty()) Fail(at_ - 1, "an opcode needs a value on an empty stack");
    return stack_.back();
  }

  std::vector<ValuePtr> PopToMark() {
    size_t mark = stack_.size();
    while (mark > 0 && stack_[mark - 1]->kind != Value::Kind::kMark) --mark;
    if (mark == 0) Fail(at_ - 1, "an opcode needs a MARK that is not there");
    std::vector<ValuePtr> items(std::make_move_iterator(stack_.begin() + mark), std::make_move_iterator(stack_.end()));
    stack_.resize(mark - 1);
    return items;
  }

  void Memo(uint64_t index) { memo_[index] = Top(); }

  void Recall(uint64_t index, size_t at) {
    auto found = memo_.find(index);
    if (found == memo_.end()) Fail(at, "a memo entry that was never stored");
    Push(found->second);
  }

  // ('storage', torch.<T>Storage, key, location, numel)
  void Persistent(const ValuePtr& id, size_t at) {
    const auto& items = id->items;
    if (id->kind != Value::Kind::kTuple || items.size() != 5 || items[0]->kind != Value::Kind::kString ||
        items[0]->text != "storage") {
      Fail(at, "a persistent id that is not a tensor storage");
    }
    const std::string& type = items[1]->text;
    const std::string prefix = "torch.";
    const std::string suffix = "Storage";
    if (items[1]->kind != Value::Kind::kGlobal || type.size() <= prefix.size() + suffix.size() ||
        type.compare(0, prefix.size(), prefix) != 0 || type.compare(type.size() - suffix.size(), suffix.size(), suffix) != 0 ||
        items[2]->kind != Value::Kind::kString || items[4]->kind != Value::Kind::kInt || items[4]->integer < 0) {
      Fail(at, "a tensor storage whose type, key or size is malformed");
    }
    result_.storages.push_back(
        {items[2]->text, type.substr(prefix.size(), type.size() - prefix.size() - suffix.size()), items[4]->integer});
    Push(Make(Value::Kind::kOpaque));
  }

  const uint8_t* data_;
  size_t size_;
  size_t at_ = 0;
  std::vector<ValuePtr> stack_;
  std::unordered_map<uint64_t, ValuePtr> memo_;
  PickleScan result_;
};

}  // namespace

PickleScan ScanPickle(const uint8_t* data, size_t size) { return Scanner(data, size).Run(); }

}  // namespace tg
