//! Gemini generateContent, both sides of translation.
