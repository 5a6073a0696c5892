//! Prices and cost in integer micro-USD.
//!
//! Prices are written in USD per million tokens, which is the same number as
//! micro-USD per token; they are held as pico-USD per token so that
//! fractional prices stay exact in integers.
//!
//! The embedded table (`pricing/default_prices.json`) holds list prices of
//! current Claude, Kimi, Qwen, GLM, DeepSeek, Gemini and OpenAI models. A
//! file in the same format (`AICARPOOL_PRICES`) overrides or adds models and
//! may give single accounts a multiplier or a table of their own:
//!
//! ```json
//! { "models":   { "my-model": {"input": 1.0, "output": 2.0} },
//!   "accounts": { "<accountId>": {"multiplier": 0.5, "models": {…}} } }
//! ```

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use crate::usage::Usage;

const DEFAULT_TABLE: &str = include_str!("pricing/default_prices.json");
const PICO_PER_MICRO: u128 = 1_000_000;
/// A multiplier is held in parts per million.
const PPM: u128 = 1_000_000;

/// Prices of one tier, in pico-USD per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rates {
    pub input: u64,
    pub output: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    pub cache_read: u64,
}

impl Rates {
    /// The highest price an input-side token can have (plain, cache write
    /// or cache read): what a reservation charges for estimated input.
    fn input_ceiling(&self) -> u64 {
        self.input
            .max(self.cache_write_5m)
            .max(self.cache_write_1h)
            .max(self.cache_read)
    }

    fn is_zero(&self) -> bool {
        [
            self.input,
            self.output,
            self.cache_write_5m,
            self.cache_write_1h,
            self.cache_read,
        ] == [0; 5]
    }
}

/// Prices of one model: a base tier and, for models that charge more for
/// long prompts, a long-context tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelPrice {
    pub base: Rates,
    /// (prompt tokens above which it applies, its rates).
    pub long_context: Option<(u64, Rates)>,
}

impl ModelPrice {
    /// The tier a request with `prompt_tokens` (input + cache writes + cache
    /// reads) is billed at.
    pub fn rates(&self, prompt_tokens: u64) -> &Rates {
        match &self.long_context {
            Some((above, rates)) if prompt_tokens > *above => rates,
            _ => &self.base,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RatesEntry {
    input: f64,
    output: f64,
    cache_write_5m: Option<f64>,
    cache_write_1h: Option<f64>,
    cache_read: Option<f64>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LongContextEntry {
    above_input_tokens: u64,
    #[serde(flatten)]
    rates: RatesEntry,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PriceEntry {
    #[serde(flatten)]
    rates: RatesEntry,
    long_context: Option<LongContextEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccountEntry {
    #[serde(default)]
    multiplier: Option<f64>,
    #[serde(default)]
    models: HashMap<String, PriceEntry>,
}

#[derive(Debug, Deserialize)]
struct PriceFile {
    #[serde(default)]
    models: HashMap<String, PriceEntry>,
    #[serde(default)]
    accounts: HashMap<String, AccountEntry>,
}

/// Errors loading a price table.
#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    #[error("price table is not valid JSON: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("price of `{0}` is negative or not a number")]
    BadPrice(String),
    #[error("multiplier of account `{0}` must be a number between 0 and 1000")]
    BadMultiplier(String),
    #[error("reading price file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// An account's own pricing: its table first, then the global one; the
/// result times its multiplier.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AccountPricing {
    multiplier_ppm: u64,
    models: HashMap<String, ModelPrice>,
}

/// A price table. Lookups try the exact model, then the longest known
/// prefix (so `claude-sonnet-4-5-20250929` finds `claude-sonnet-4-5`).
#[derive(Debug, Clone, Default)]
pub struct Pricing {
    models: HashMap<String, ModelPrice>,
    accounts: HashMap<String, AccountPricing>,
}

fn per_mtok_to_pico(usd_per_mtok: f64) -> u64 {
    (usd_per_mtok * 1_000_000.0).round() as u64
}

fn rates(name: &str, e: &RatesEntry) -> Result<Rates, PricingError> {
    let all = [
        Some(e.input),
        Some(e.output),
        e.cache_write_5m,
        e.cache_write_1h,
        e.cache_read,
    ];
    if all.iter().flatten().any(|p| !p.is_finite() || *p < 0.0) {
        return Err(PricingError::BadPrice(name.to_owned()));
    }
    Ok(Rates {
        input: per_mtok_to_pico(e.input),
        output: per_mtok_to_pico(e.output),
        cache_write_5m: per_mtok_to_pico(e.cache_write_5m.unwrap_or(e.input * 1.25)),
        cache_write_1h: per_mtok_to_pico(e.cache_write_1h.unwrap_or(e.input * 2.0)),
        cache_read: per_mtok_to_pico(e.cache_read.unwrap_or(e.input * 0.1)),
    })
}

fn model_table(
    entries: HashMap<String, PriceEntry>,
) -> Result<HashMap<String, ModelPrice>, PricingError> {
    let mut models = HashMap::with_capacity(entries.len());
    for (name, e) in entries {
        let long_context = match &e.long_context {
            Some(l) => Some((l.above_input_tokens, rates(&name, &l.rates)?)),
            None => None,
        };
        let price = ModelPrice {
            base: rates(&name, &e.rates)?,
            long_context,
        };
        models.insert(name, price);
    }
    Ok(models)
}

/// Exact name, else the longest key that prefixes `model`.
fn lookup<'a>(models: &'a HashMap<String, ModelPrice>, model: &str) -> Option<&'a ModelPrice> {
    if let Some(p) = models.get(model) {
        return Some(p);
    }
    models
        .iter()
        .filter(|(k, _)| model.starts_with(k.as_str()))
        .max_by_key(|(k, _)| k.len())
        .map(|(_, p)| p)
}

fn pico_to_micro_rounded(pico: u128) -> i64 {
    i64::try_from((pico + PICO_PER_MICRO / 2) / PICO_PER_MICRO).unwrap_or(i64::MAX)
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
        let mut p = Self::default();
        p.merge_json(json)?;
        Ok(p)
    }

    /// The embedded table with `path` laid over it (`AICARPOOL_PRICES`).
    pub fn embedded_with_file(path: &Path) -> Result<Self, PricingError> {
        let json = std::fs::read_to_string(path).map_err(|source| PricingError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let mut p = Self::embedded();
        p.merge_json(&json)?;
        Ok(p)
    }

    /// Adds or replaces the models and accounts of `json`. Nothing changes
    /// when it is invalid.
    pub fn merge_json(&mut self, json: &str) -> Result<(), PricingError> {
        let file: PriceFile = serde_json::from_str(json)?;
        let models = model_table(file.models)?;
        let mut accounts = HashMap::with_capacity(file.accounts.len());
        for (id, a) in file.accounts {
            let m = a.multiplier.unwrap_or(1.0);
            if !m.is_finite() || !(0.0..=1000.0).contains(&m) {
                return Err(PricingError::BadMultiplier(id));
            }
            let pricing = AccountPricing {
                multiplier_ppm: (m * 1_000_000.0).round() as u64,
                models: model_table(a.models)?,
            };
            accounts.insert(id, pricing);
        }
        self.models.extend(models);
        self.accounts.extend(accounts);
        Ok(())
    }

    /// The names of the priced models (`GET /api/ai-proxy/v1/models`
    /// draws on them for accounts that serve any model).
    pub fn model_names(&self) -> impl Iterator<Item = &str> {
        self.models.keys().map(String::as_str)
    }

    /// The price of `model`, if known.
    pub fn price(&self, model: &str) -> Option<&ModelPrice> {
        lookup(&self.models, model)
    }

    /// Whether `model` is priced at zero on purpose (a free model), as
    /// opposed to not priced at all.
    pub fn is_free(&self, model: &str) -> bool {
        self.price(model)
            .is_some_and(|p| p.base.is_zero() && p.long_context.is_none_or(|(_, r)| r.is_zero()))
    }

    /// Cost of `usage` on `model` in micro-USD (rounded to nearest); 0 for an
    /// unknown model.
    pub fn cost_micro_usd(&self, model: &str, usage: &Usage) -> i64 {
        self.price(model)
            .map_or(0, |p| pico_to_micro_rounded(cost_pico(p, usage)))
    }

    /// Cost of `usage` on `model` served by `account_id`: the account's own
    /// table or multiplier when the price file gives one.
    pub fn cost_for_account(&self, account_id: Option<&str>, model: &str, usage: &Usage) -> i64 {
        let Some(a) = account_id.and_then(|id| self.accounts.get(id)) else {
            return self.cost_micro_usd(model, usage);
        };
        let Some(p) = lookup(&a.models, model).or_else(|| self.price(model)) else {
            return 0;
        };
        let pico = cost_pico(p, usage) * u128::from(a.multiplier_ppm) / PPM;
        pico_to_micro_rounded(pico)
    }

    /// An upper bound of a request's cost before it is sent: `input_tokens`
    /// (estimated) at the dearest input-side price — a prompt may be
    /// written to the 1-hour cache at twice the input price — plus
    /// `max_output_tokens` at the output price, rounded up. Accounts with a
    /// multiplier above 1 are not known yet at admission; their excess is
    /// corrected at settlement.
    pub fn reservation_micro_usd(
        &self,
        model: &str,
        input_tokens: u64,
        max_output_tokens: u64,
    ) -> i64 {
        let Some(p) = self.price(model) else {
            return 0;
        };
        let r = p.rates(input_tokens);
        let pico = u128::from(input_tokens) * u128::from(r.input_ceiling())
            + u128::from(max_output_tokens) * u128::from(r.output);
        i64::try_from(pico.div_ceil(PICO_PER_MICRO)).unwrap_or(i64::MAX)
    }
}

/// Exact cost in pico-USD; every cache kind at its own price.
fn cost_pico(p: &ModelPrice, u: &Usage) -> u128 {
    let prompt = u
        .input_tokens
        .saturating_add(u.cache_write_tokens())
        .saturating_add(u.cache_read_tokens);
    let r = p.rates(prompt);
    u128::from(u.input_tokens) * u128::from(r.input)
        + u128::from(u.output_tokens) * u128::from(r.output)
        + u128::from(u.cache_write_5m_tokens) * u128::from(r.cache_write_5m)
        + u128::from(u.cache_write_1h_tokens) * u128::from(r.cache_write_1h)
        + u128::from(u.cache_read_tokens) * u128::from(r.cache_read)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn embedded_table_parses() {
        let p = Pricing::from_json(DEFAULT_TABLE).unwrap();
        for m in [
            "claude-sonnet-4-5",
            "claude-opus-4-5-20251101",
            "kimi-k2-0905-preview",
            "qwen3-coder-plus",
            "glm-4.6",
            "deepseek-chat",
            "gemini-2.5-pro",
            "gpt-5-mini-2025-08-07",
        ] {
            assert!(p.price(m).is_some(), "{m}");
        }
        assert!(p.is_free("glm-4.5-flash"));
        assert!(!p.is_free("glm-4.5"));
        assert!(!p.is_free("no-such-model"));
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

    #[test]
    fn invalid_override_changes_nothing() {
        let mut p = Pricing::embedded();
        let before = *p.price("claude-sonnet-4-5").unwrap();
        let bad = r#"{"models":{"claude-sonnet-4-5":{"input":1,"output":1},"x":{"input":-1,"output":1}}}"#;
        assert!(matches!(p.merge_json(bad), Err(PricingError::BadPrice(m)) if m == "x"));
        assert_eq!(*p.price("claude-sonnet-4-5").unwrap(), before);
        let bad = r#"{"accounts":{"a":{"multiplier":-2}}}"#;
        assert!(matches!(
            p.merge_json(bad),
            Err(PricingError::BadMultiplier(_))
        ));
    }
}
