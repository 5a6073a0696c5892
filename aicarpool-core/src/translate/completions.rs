//! OpenAI Chat Completions, the account side of translation.
