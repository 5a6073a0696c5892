//! OpenAI Responses, the client side of translation.
