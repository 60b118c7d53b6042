// SmolLM2-Instruct's Jinja template (quoted in tests/golden/tokenizer/chat_template.json),
// written out by hand: we do not run a Jinja interpreter.
#include "data/chat_template.h"

namespace smol {

std::string render_chatml(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                          const std::string& default_system) {
  std::string out;
  // The template emits the default system turn inside the loop, on the first message only,
  // so an empty conversation gets none.
  if (!messages.empty() && messages.front().role != "system") {
    out += "<|im_start|>system\n" + default_system + "<|im_end|>\n";
  }
  for (const ChatMessage& m : messages) {
    out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
  }
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

bool is_chatml_template(const std::string& jinja_template) {
  return jinja_template.find("<|im_start|>") != std::string::npos &&
         jinja_template.find("<|im_end|>") != std::string::npos;
}

}  // namespace smol
