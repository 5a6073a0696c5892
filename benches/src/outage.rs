//! A loopback TCP relay in front of a service (PostgreSQL, Redis) that can
//! cut it off: every open connection is closed and new ones are closed at
//! once until the outage ends. To the gateway this is the service going
//! down and coming back, without touching the service other programs on
//! the machine use.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A relay to one service; see the module docs.
#[derive(Debug, Clone)]
pub struct OutageRelay {
    /// Where clients connect instead of the service.
    pub addr: SocketAddr,
    down: Arc<AtomicBool>,
    /// Bumped at each cut: connections opened before it end.
    generation: watch::Sender<u64>,
}

impl OutageRelay {
    /// Relays 127.0.0.1:<free port> to `target`.
    pub async fn start(target: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let relay = Self {
            addr: listener.local_addr()?,
            down: Arc::default(),
            generation: watch::Sender::new(0),
        };
        let (down, generation) = (relay.down.clone(), relay.generation.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if down.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut cut = generation.subscribe();
                tokio::spawn(async move {
                    let Ok(mut service) = TcpStream::connect(target).await else {
                        return;
                    };
                    let mut client = client;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut service) => {}
                        // Both ends close: the service is gone.
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Ok(relay)
    }

    /// Cuts the service off for `length`, then lets connections through
    /// again.
    pub async fn outage(&self, length: Duration) {
        self.down.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
        tokio::time::sleep(length).await;
        self.down.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn an_outage_ends_open_connections_and_refuses_new_ones_until_it_ends() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = echo.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n @ 1..) = s.read(&mut buf).await {
                        let _ = s.write_all(&buf[..n]).await;
                    }
                });
            }
        });
        let relay = OutageRelay::start(target).await.unwrap();
        let mut open = TcpStream::connect(relay.addr).await.unwrap();
        open.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        open.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");

        let cut = tokio::spawn({
            let relay = relay.clone();
            async move { relay.outage(Duration::from_millis(300)).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut rest = Vec::new();
        let ended = open.read_to_end(&mut rest).await;
        assert!(
            ended.is_err() || rest.is_empty(),
            "the open connection ended"
        );
        let mut during = TcpStream::connect(relay.addr).await.unwrap();
        let _ = during.write_all(b"ping").await;
        let n = during.read(&mut buf).await.unwrap_or(0);
        assert_eq!(n, 0, "no service during the outage");

        cut.await.unwrap();
        let mut after = TcpStream::connect(relay.addr).await.unwrap();
        after.write_all(b"pong").await.unwrap();
        after.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong", "back after the outage");
    }
}
