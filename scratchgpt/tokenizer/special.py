"""Special tokens shared by every tokenizer and by the chat template.

They are matched in text *before* pre-tokenization, and only when the caller allows it
(``encode(text, allowed_special=...)``): user text that happens to contain "<|end|>" must not
be able to end an assistant turn.
"""
ENDOFTEXT = "<|endoftext|>"
SYSTEM = "<|system|>"
USER = "<|user|>"
ASSISTANT = "<|assistant|>"
END = "<|end|>"
PAD = "<|pad|>"

# The default set a chat model is trained with, in id order after the 256 byte tokens + merges.
CHAT_SPECIAL_TOKENS = [ENDOFTEXT, SYSTEM, USER, ASSISTANT, END, PAD]
ROLE_TOKENS = {"system": SYSTEM, "user": USER, "assistant": ASSISTANT}
