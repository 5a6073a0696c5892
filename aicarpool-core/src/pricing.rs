//! Prices and cost in integer micro-USD.
//!
//! Prices are written in USD per million tokens, which is the same number as
//! micro-USD per token; they are held as pico-USD per token so that
//! fractional prices stay exact in integers.

use std::collections::HashMap;

use serde::Deserialize;

use crate::usage::Usage;

const DEFAULT_TABLE: &str = include_str!("pricing/default_prices.json");
const PICO_PER_MICRO: u128 = 1_000_000;

/// Prices of one model, in pico-USD per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelPrice {
    pub input: u64,
    pub output: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    pub cache_read: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PriceEntry {
    input: f64,
    output: f64,
    cache_write_5m: Option<f64>,
    cache_write_1h: Option<f64>,
    cache_read: Option<f64>,
}

#[derive(Deserialize)]
struct PriceFile {
    models: HashMap<String, PriceEntry>,
}

/// Errors loading a price table.
#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    #[error("price table is not valid JSON: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("price of `{0}` is negative or not a number")]
    BadPrice(String),
}

/// A price table. Lookups try the exact model, then the longest known
/// prefix (so `claude-sonnet-4-5-20250929` finds `claude-sonnet-4-5`).
#[derive(Debug, Clone, Default)]
pub struct Pricing {
    models: HashMap<String, ModelPrice>,
}

fn per_mtok_to_pico(usd_per_mtok: f64) -> u64 {
    (usd_per_mtok * 1_000_000.0).round() as u64
}

impl Pricing {
    /// The table embedded in the binary.
    pub fn embedded() -> Self {
        // The embedded table is checked by a unit test; an empty table (all
        // free) is the safe fallback.
        Self::from_json(DEFAULT_TABLE).unwrap_or_default()
    }

    /// Parses a table in the embedded file's format.
    pub fn from_json(json: &str) -> Result<Self, PricingError> {
        let file: PriceFile = serde_json::from_str(json)?;
        let mut models = HashMap::with_capacity(file.models.len());
        for (name, e) in file.models {
            let all = [
                Some(e.input),
                Some(e.output),
                e.cache_write_5m,
                e.cache_write_1h,
                e.cache_read,
            ];
            if all.iter().flatten().any(|p| !p.is_finite() || *p < 0.0) {
                return Err(PricingError::BadPrice(name));
            }
            let price = ModelPrice {
                input: per_mtok_to_pico(e.input),
                output: per_mtok_to_pico(e.output),
                cache_write_5m: per_mtok_to_pico(e.cache_write_5m.unwrap_or(e.input * 1.25)),
                cache_write_1h: per_mtok_to_pico(e.cache_write_1h.unwrap_or(e.input * 2.0)),
                cache_read: per_mtok_to_pico(e.cache_read.unwrap_or(e.input * 0.1)),
            };
            models.insert(name, price);
        }
        Ok(Self { models })
    }

    /// The price of `model`, if known.
    pub fn price(&self, model: &str) -> Option<&ModelPrice> {
        if let Some(p) = self.models.get(model) {
            return Some(p);
        }
        self.models
            .iter()
            .filter(|(k, _)| model.starts_with(k.as_str()))
            .max_by_key(|(k, _)| k.len())
            .map(|(_, p)| p)
    }

    /// Cost of `usage` on `model` in micro-USD (rounded to nearest); 0 for an
    /// unknown model.
    pub fn cost_micro_usd(&self, model: &str, usage: &Usage) -> i64 {
        let Some(p) = self.price(model) else {
            return 0;
        };
        let pico = u128::from(usage.input_tokens) * u128::from(p.input)
            + u128::from(usage.output_tokens) * u128::from(p.output)
            + u128::from(usage.cache_write_5m_tokens) * u128::from(p.cache_write_5m)
            + u128::from(usage.cache_write_1h_tokens) * u128::from(p.cache_write_1h)
            + u128::from(usage.cache_read_tokens) * u128::from(p.cache_read);
        i64::try_from((pico + PICO_PER_MICRO / 2) / PICO_PER_MICRO).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_table_parses() {
        let p = Pricing::from_json(DEFAULT_TABLE).unwrap();
        assert!(p.price("claude-sonnet-4-5").is_some());
    }

    #[test]
    fn worked_example_sonnet() {
        let p = Pricing::embedded();
        // 1,000 in × $3 + 500 out × $15 + 2,000 5m-writes × $3.75
        // + 1,000 1h-writes × $6 + 10,000 reads × $0.30, per MTok:
        // 3,000 + 7,500 + 7,500 + 6,000 + 3,000 = 27,000 micro-USD.
        let u = Usage {
            input_tokens: 1_000,
            output_tokens: 500,
            cache_write_5m_tokens: 2_000,
            cache_write_1h_tokens: 1_000,
            cache_read_tokens: 10_000,
        };
        assert_eq!(p.cost_micro_usd("claude-sonnet-4-5-20250929", &u), 27_000);
        assert_eq!(p.cost_micro_usd("unknown-model", &u), 0);
    }
}
