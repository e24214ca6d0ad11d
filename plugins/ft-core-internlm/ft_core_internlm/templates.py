"""The ``intern2`` chat template: internlm/internlm2-chat-7b's published ``chat_template``, verbatim."""

#: internlm/internlm2-chat-7b ``tokenizer_config.json`` ``chat_template``.
INTERN2 = (
    "{{ bos_token }}{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

#: The system prompt InternLM2-Chat's own ``model.chat()`` uses (``meta_instruction``); the Jinja adds none.
INTERNLM2_META_INSTRUCTION = (
    "You are an AI assistant whose name is InternLM (书生·浦语).\n"
    "- InternLM (书生·浦语) is a conversational language model that is developed by Shanghai AI Laboratory "
    "(上海人工智能实验室). It is designed to be helpful, honest, and harmless.\n"
    "- InternLM (书生·浦语) can understand and communicate fluently in the language chosen by the user such as "
    "English and 中文."
)
