//! A standalone mock Anthropic upstream for end-to-end scripts.
//!
//! `aicarpool-mock-upstream [LISTEN_ADDR] [API_KEY]` (defaults
//! `127.0.0.1:0`, `sk-mock-upstream`) prints `listening on <url>` and
//! answers until killed.

use aicarpool_testkit::MockUpstream;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()?;
    let key = args.next().unwrap_or_else(|| "sk-mock-upstream".into());
    let mock = MockUpstream::start_on(addr, &key).await?;
    println!("listening on {}", mock.url);
    tokio::signal::ctrl_c().await?;
    eprintln!("mock upstream served {} requests", mock.hits());
    Ok(())
}
