//! A standalone mock upstream for end-to-end scripts.
//!
//! `aicarpool-mock-upstream [LISTEN_ADDR] [API_KEY] [anthropic|gemini|openai|subscription]`
//! (defaults `127.0.0.1:0`, `sk-mock-upstream`, `anthropic`) prints
//! `listening on <url>` and answers until killed. `subscription` is a
//! Claude subscription whose 5-hour window holds `AICARPOOL_MOCK_WINDOW_USD`
//! (default 2) of list-price use, on port 0.
//!
//! `AICARPOOL_MOCK_FAULT` makes an Anthropic mock fail every request the
//! same way: `stall` (reads the request, never answers), `stall-after-headers`
//! or `gzip` (answers compressed whatever was asked).

use aicarpool_testkit::subscription::{SubscriptionMock, SubscriptionPlan};
use aicarpool_testkit::{Behavior, Encoding, MockGemini, MockOpenAi, MockUpstream};

/// Requests a faulty mock fails: more than any script sends.
const FAULTY_ANSWERS: usize = 100_000;

fn fault() -> anyhow::Result<Option<Behavior>> {
    let Ok(name) = std::env::var("AICARPOOL_MOCK_FAULT") else {
        return Ok(None);
    };
    Ok(Some(match name.as_str() {
        "stall" => Behavior::StallBeforeHeaders,
        "stall-after-headers" => Behavior::StallAfterHeaders,
        "gzip" => Behavior::Compressed(Encoding::Gzip),
        other => anyhow::bail!(
            "unknown AICARPOOL_MOCK_FAULT `{other}` (stall, stall-after-headers, gzip)"
        ),
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()?;
    let key = args.next().unwrap_or_else(|| "sk-mock-upstream".into());
    let protocol = args.next().unwrap_or_else(|| "anthropic".into());
    let (url, hits): (String, Box<dyn Fn() -> usize>) = match protocol.as_str() {
        "anthropic" => {
            let m = MockUpstream::start_on(addr, &key).await?;
            if let Some(fault) = fault()? {
                m.push(std::iter::repeat_n(fault, FAULTY_ANSWERS));
            }
            (m.url.clone(), Box::new(move || m.hits()))
        }
        "gemini" => {
            let m = MockGemini::start_on(addr, &key).await?;
            (m.url.clone(), Box::new(move || m.hits()))
        }
        "openai" => {
            let m = MockOpenAi::start_on(addr, &key).await?;
            (m.url.clone(), Box::new(move || m.hits()))
        }
        "subscription" => {
            let usd: f64 =
                std::env::var("AICARPOOL_MOCK_WINDOW_USD").map_or(Ok(2.0), |v| v.parse())?;
            let plan = SubscriptionPlan {
                five_hour_micro_usd: (usd * 1e6) as i64,
                seven_day_micro_usd: (usd * 1e6) as i64 * 20,
                input_per_mtok: 3_000_000,
                output_per_mtok: 15_000_000,
            };
            let now = std::sync::Arc::new(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            });
            let m = SubscriptionMock::start(&key, plan, now).await?;
            (m.url.clone(), Box::new(move || m.counts().0))
        }
        other => {
            anyhow::bail!("unknown protocol `{other}` (anthropic, gemini, openai or subscription)")
        }
    };
    println!("listening on {url}");
    tokio::signal::ctrl_c().await?;
    eprintln!("mock {protocol} upstream served {} requests", hits());
    Ok(())
}
