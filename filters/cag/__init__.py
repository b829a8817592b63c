"""Caption-Augmented Generation (spec 5.2): three model steps per T2I image, each a versioned prompt.

- `settings`: the recipe's `cag:` section (backend, model, prompts, decoding, resources, per-step caps);
- `rules`: what a reply must be to be used (prefix, `<think>` block, generative verbs, location words);
  a reply that breaks a rule is a rejected row with the reason, never a fallback to the original caption;
- `client`: the same chat request through transformers (Gemma3, loaded once per actor) or an
  OpenAI-compatible server (the captioner's plumbing, filters/alignment/captioner.py);
- `steps`: describe -> fuse -> plan over records, with outputs cached by content (a rebuild never
  regenerates) and the prompt version recorded in each row's `meta["cag"]`.
"""
