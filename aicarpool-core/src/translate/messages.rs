//! Anthropic Messages, both sides of translation.
