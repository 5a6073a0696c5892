//! A standalone mock upstream for end-to-end scripts.
//!
//! `aicarpool-mock-upstream [LISTEN_ADDR] [API_KEY] [anthropic|gemini|openai]`
//! (defaults `127.0.0.1:0`, `sk-mock-upstream`, `anthropic`) prints
//! `listening on <url>` and answers until killed.

use aicarpool_testkit::{MockGemini, MockOpenAi, MockUpstream};

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
        other => anyhow::bail!("unknown protocol `{other}` (anthropic, gemini or openai)"),
    };
    println!("listening on {url}");
    tokio::signal::ctrl_c().await?;
    eprintln!("mock {protocol} upstream served {} requests", hits());
    Ok(())
}
