#include "hbmalloc/stacks.hpp"

namespace hbmalloc {
namespace {
thread_local const StackToken* current_token = nullptr;
}  // namespace

StackScope::StackScope(const StackToken& token) noexcept : saved_(current_token) { current_token = &token; }
StackScope::~StackScope() { current_token = saved_; }
const StackToken* StackScope::current() noexcept { return current_token; }

}  // namespace hbmalloc
