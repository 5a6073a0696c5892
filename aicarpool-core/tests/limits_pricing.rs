//! Worked pricing examples, one per cache kind, and the price file's
//! overrides (models, account multiplier, account table), checked on the
//! price table and on the usage records the gateway writes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod limits_support;

use aicarpool_core::pricing::Pricing;
use aicarpool_core::usage::Usage;
use aicarpool_testkit::MockUsage;
use limits_support::{body, team, Setup, MODEL};

fn usage(input: u64, output: u64, w5m: u64, w1h: u64, read: u64) -> Usage {
    Usage {
        input_tokens: input,
        output_tokens: output,
        cache_write_5m_tokens: w5m,
        cache_write_1h_tokens: w1h,
        cache_read_tokens: read,
    }
}

#[test]
fn worked_examples_for_each_cache_kind() {
    let p = Pricing::embedded();
    let sonnet = "claude-sonnet-4-5-20250929";
    // Sonnet 4.5: $3 in, $15 out per MTok = 3 and 15 µ$ a token.
    // Plain: 1,000 × 3 + 500 × 15 = 3,000 + 7,500.
    assert_eq!(
        p.cost_micro_usd(sonnet, &usage(1_000, 500, 0, 0, 0)),
        10_500
    );
    // 5-minute cache writes at 1.25 × input: 2,000 × 3.75 = 7,500.
    assert_eq!(p.cost_micro_usd(sonnet, &usage(0, 0, 2_000, 0, 0)), 7_500);
    // 1-hour cache writes at 2 × input: 2,000 × 6 = 12,000 — not the
    // 7,500 they would cost priced as 5-minute writes.
    assert_eq!(p.cost_micro_usd(sonnet, &usage(0, 0, 0, 2_000, 0)), 12_000);
    // Cache reads at 0.1 × input: 10,000 × 0.30 = 3,000.
    assert_eq!(p.cost_micro_usd(sonnet, &usage(0, 0, 0, 0, 10_000)), 3_000);
    // All together: 3,000 + 7,500 + 7,500 + 6,000 + 3,000.
    assert_eq!(
        p.cost_micro_usd(sonnet, &usage(1_000, 500, 2_000, 1_000, 10_000)),
        27_000
    );
    // Opus 4.5 ($5/$25): 1,000 in + 100 out + 1,000 1h-writes ($10) + 4,000
    // reads ($0.50) = 5,000 + 2,500 + 10,000 + 2,000.
    assert_eq!(
        p.cost_micro_usd(
            "claude-opus-4-5-20251101",
            &usage(1_000, 100, 0, 1_000, 4_000)
        ),
        19_500
    );
    // Haiku 4.5 ($1/$5): 5m writes $1.25, reads $0.10: 800 × 1.25 + 3,000 × 0.1
    // + 200 × 5 = 1,000 + 300 + 1,000.
    assert_eq!(
        p.cost_micro_usd("claude-haiku-4-5-20251001", &usage(0, 200, 800, 0, 3_000)),
        2_300
    );
    // Sub-micro costs round to the nearest micro-USD: 1 token at $3 is 3
    // µ$; 1 cache read at $0.30 is 0.3 µ$ → 0; 2 reads 0.6 → 1.
    assert_eq!(p.cost_micro_usd(sonnet, &usage(0, 0, 0, 0, 1)), 0);
    assert_eq!(p.cost_micro_usd(sonnet, &usage(0, 0, 0, 0, 2)), 1);
}

#[test]
fn long_context_prices_the_whole_request_higher() {
    let p = Pricing::embedded();
    // 150,000 in + 60,000 reads = 210,000 prompt tokens > 200,000: every
    // token at the long-context rates ($6 in, $22.50 out, reads $0.60).
    let long = usage(150_000, 1_000, 0, 0, 60_000);
    assert_eq!(
        p.cost_micro_usd("claude-sonnet-4-5", &long),
        900_000 + 22_500 + 36_000
    );
    // At exactly 200,000 the base rates still apply.
    let edge = usage(140_000, 1_000, 0, 0, 60_000);
    assert_eq!(
        p.cost_micro_usd("claude-sonnet-4-5", &edge),
        420_000 + 15_000 + 18_000
    );
}

#[test]
fn relays_and_other_providers() {
    let p = Pricing::embedded();
    // Kimi K2 ($0.60 in, $2.50 out, cache hits $0.15, no write surcharge).
    assert_eq!(
        p.cost_micro_usd(
            "kimi-k2-0905-preview",
            &usage(10_000, 1_000, 2_000, 0, 20_000)
        ),
        6_000 + 2_500 + 1_200 + 3_000
    );
    // DeepSeek ($0.28 miss, $0.028 hit, $0.42 out).
    assert_eq!(
        p.cost_micro_usd("deepseek-chat", &usage(100_000, 10_000, 0, 0, 100_000)),
        28_000 + 4_200 + 2_800
    );
    // GLM 4.6 and Gemini 2.5 Pro and GPT-5 are priced; a free model is
    // known as free, an unknown one costs 0 and is not.
    for m in [
        "glm-4.6",
        "gemini-2.5-pro",
        "gpt-5-2025-08-07",
        "qwen3-coder-plus",
    ] {
        assert!(
            p.cost_micro_usd(m, &usage(1_000, 1_000, 0, 0, 0)) > 0,
            "{m}"
        );
    }
    assert!(p.is_free("glm-4.5-flash"));
    assert_eq!(
        p.cost_micro_usd("my-own-model", &usage(1_000, 1_000, 0, 0, 0)),
        0
    );
    assert!(!p.is_free("my-own-model"));
}

#[test]
fn price_file_overrides_models_and_accounts() {
    let path = std::env::temp_dir().join(format!(
        "aicarpool-prices-{}.json",
        aicarpool_core::id::new_id()
    ));
    std::fs::write(
        &path,
        r#"{
          "models": {
            "my-own-model": {"input": 1.0, "output": 2.0},
            "claude-sonnet-4-5": {"input": 2.0, "output": 10.0}
          },
          "accounts": {
            "acc-half": {"multiplier": 0.5},
            "acc-own": {"models": {"claude-sonnet-4-5": {"input": 1.0, "output": 1.0, "cacheRead": 0.0}}}
          }
        }"#,
    )
    .unwrap();
    let p = Pricing::embedded_with_file(&path).unwrap();
    std::fs::remove_file(&path).ok();
    let u = usage(1_000, 1_000, 0, 0, 0);
    assert_eq!(p.cost_micro_usd("my-own-model", &u), 3_000);
    assert_eq!(p.cost_micro_usd("claude-sonnet-4-5", &u), 12_000);
    // Untouched models keep the embedded prices.
    assert_eq!(p.cost_micro_usd("claude-opus-4-5", &u), 30_000);
    assert_eq!(
        p.cost_for_account(Some("acc-half"), "claude-sonnet-4-5", &u),
        6_000
    );
    assert_eq!(
        p.cost_for_account(Some("acc-own"), "claude-sonnet-4-5", &u),
        2_000
    );
    // The account's own table falls back to the global one.
    assert_eq!(
        p.cost_for_account(Some("acc-own"), "my-own-model", &u),
        3_000
    );
    assert_eq!(p.cost_for_account(Some("other"), "my-own-model", &u), 3_000);
    assert!(Pricing::embedded_with_file(std::path::Path::new("/no/such/file.json")).is_err());
}

#[tokio::test]
async fn records_carry_each_cache_kind_at_its_own_price() {
    // Only 1-hour cache writes: a record priced as 5-minute writes would
    // show 3,750 instead of 6,000.
    let t = team(Setup {
        usage: MockUsage {
            input_tokens: 0,
            output_tokens: 0,
            cache_write_5m_tokens: 0,
            cache_write_1h_tokens: 1_000,
            cache_read_tokens: 0,
        },
        ..Default::default()
    })
    .await;
    assert_eq!(t.send(0, &body(16, true, 10)).await.status, 200);
    assert_eq!(t.send(0, &body(16, false, 10)).await.status, 200);
    let records = t.records().await;
    assert_eq!(records.len(), 2);
    for r in &records {
        assert_eq!(r.model, MODEL);
        assert_eq!(r.usage.cache_write_1h_tokens, 1_000);
        assert_eq!(r.cost_micro_usd, 6_000, "{r:?}");
    }
}

#[tokio::test]
async fn account_multiplier_applies_to_records() {
    let t = team(Setup {
        account_multiplier: Some(0.5),
        ..Default::default()
    })
    .await;
    assert_eq!(t.send(0, &body(16, false, 10)).await.status, 200);
    let records = t.records().await;
    // The mock's usage costs 1,845 µ$ on Sonnet; half of it, rounded to
    // the nearest micro-USD, is 923.
    assert_eq!(records[0].cost_micro_usd, 923);
    assert_eq!(
        records[0].account_id.as_deref(),
        Some(t.account_id.as_str())
    );
}
