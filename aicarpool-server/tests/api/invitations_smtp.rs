//! Invitation mail through a real SMTP exchange: an in-process sink speaks
//! just enough SMTP to take one message; the test reads the link out of the
//! mail, opens it, and accepts the invitation.

use aicarpool_server::ServeConfig;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::support::{self, ADMIN_TOKEN};

/// One message as received: the envelope and the DATA text.
#[derive(Debug)]
struct Received {
    mail_from: String,
    rcpt_to: Vec<String>,
    data: String,
}

/// Listens on a free port; every message a client hands over is sent on
/// the channel. Returns the `smtp://` URL to configure.
async fn smtp_sink() -> (String, mpsc::UnboundedReceiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("smtp://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (read, mut write) = sock.into_split();
                let mut lines = BufReader::new(read).lines();
                write
                    .write_all(b"220 sink.test ESMTP ready\r\n")
                    .await
                    .unwrap();
                let mut msg = Received {
                    mail_from: String::new(),
                    rcpt_to: Vec::new(),
                    data: String::new(),
                };
                while let Ok(Some(line)) = lines.next_line().await {
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                        b"250-sink.test\r\n250 8BITMIME\r\n"
                    } else if upper.starts_with("MAIL FROM:") {
                        msg.mail_from = line[10..].trim().to_owned();
                        b"250 OK\r\n"
                    } else if upper.starts_with("RCPT TO:") {
                        msg.rcpt_to.push(line[8..].trim().to_owned());
                        b"250 OK\r\n"
                    } else if upper == "DATA" {
                        write.write_all(b"354 end with .\r\n").await.unwrap();
                        while let Ok(Some(l)) = lines.next_line().await {
                            if l == "." {
                                break;
                            }
                            // Dot-stuffing: a leading ".." stands for ".".
                            let l = l
                                .strip_prefix('.')
                                .filter(|r| r.starts_with('.'))
                                .unwrap_or(&l);
                            msg.data.push_str(l);
                            msg.data.push('\n');
                        }
                        let done = std::mem::replace(
                            &mut msg,
                            Received {
                                mail_from: String::new(),
                                rcpt_to: Vec::new(),
                                data: String::new(),
                            },
                        );
                        let _ = tx.send(done);
                        b"250 queued\r\n"
                    } else if upper == "QUIT" {
                        write.write_all(b"221 bye\r\n").await.unwrap();
                        break;
                    } else if upper.starts_with("RSET") || upper.starts_with("NOOP") {
                        b"250 OK\r\n"
                    } else {
                        b"502 not implemented\r\n"
                    };
                    write.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (url, rx)
}

/// The body of a text mail, with quoted-printable soft breaks and `=3D`
/// undone (the link may be wrapped).
fn body_text(data: &str) -> String {
    let body = data.split_once("\n\n").map_or(data, |(_, b)| b);
    body.replace("=\n", "").replace("=3D", "=")
}

#[tokio::test]
async fn invitation_mail_carries_a_link_that_leads_to_membership() {
    let (smtp_url, mut inbox) = smtp_sink().await;
    // Bind first so the public URL (and so the mailed link) is this server.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public = format!("http://{}", listener.local_addr().unwrap());
    let mut config = ServeConfig::for_tests(ADMIN_TOKEN);
    config.public_url = Some(public.clone());
    config.smtp_url = Some(smtp_url);
    config.mail_from = "Carpool Bot <bot@carpool.test>".into();
    let s = support::spawn_on(config, listener).await;

    let (_, owner) = s.register("mailing-owner@example.com").await;
    let (st, g) = s
        .post("/api/groups", &owner, json!({"name": "Mailed <team>"}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{g}");
    let gid = g["id"].as_str().unwrap();
    let (st, inv) = s
        .post(
            &format!("/api/groups/{gid}/invitations"),
            &owner,
            json!({"email": "New.Person@Example.com", "maxUses": 1}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{inv}");
    assert_eq!(inv["emailSent"], true, "{inv}");

    let mail = tokio::time::timeout(std::time::Duration::from_secs(10), inbox.recv())
        .await
        .expect("a mail within 10 s")
        .unwrap();
    assert_eq!(mail.mail_from, "<bot@carpool.test>");
    assert_eq!(mail.rcpt_to, vec!["<new.person@example.com>".to_owned()]);
    assert!(
        mail.data
            .contains("Subject: Invitation to Mailed <team> on AiCarpool"),
        "{}",
        mail.data
    );
    let text = body_text(&mail.data);
    let link = text
        .split_whitespace()
        .find(|w| w.starts_with(&format!("{public}/invite/")))
        .unwrap_or_else(|| panic!("no link in {text}"))
        .to_owned();
    assert_eq!(
        link,
        inv["url"].as_str().unwrap(),
        "the mail carries the API's link"
    );
    assert!(!mail.data.contains("sk-"), "no secret in the mail");

    // Follow the link: the page names the group.
    let page = s.http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(html.contains("Mailed &lt;team&gt;"), "{html}");

    // Accept by registering with the invited address.
    let token = link.rsplit('/').next().unwrap();
    let (st, preview) = s
        .call(
            Method::GET,
            &format!("/api/invitations/{token}"),
            None,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(preview["groupName"], "Mailed <team>");
    let (st, joined) = s
        .call(
            Method::POST,
            &format!("/api/invitations/{token}/accept"),
            None,
            Some(json!({"email": "new.person@example.com", "password": "correct horse battery", "name": "New"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{joined}");
    assert_eq!(joined["groupId"], gid);
    let (st, members) = s.get(&format!("/api/groups/{gid}/members"), &owner).await;
    assert_eq!(st, StatusCode::OK);
    let emails: Vec<&str> = members
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["email"].as_str())
        .collect();
    assert!(emails.contains(&"new.person@example.com"), "{members}");

    // The join is in the audit log, with no secret in it.
    let (st, log) = s.get(&format!("/api/audit?groupId={gid}"), &owner).await;
    assert_eq!(st, StatusCode::OK, "{log}");
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"member.added") && actions.contains(&"invitation.created"),
        "{actions:?}"
    );
    assert!(!log.to_string().contains(token));
}

#[tokio::test]
async fn without_smtp_the_link_is_returned_to_share_by_hand() {
    let s = support::spawn().await;
    let (_, owner) = s.register("nomail@example.com").await;
    let (_, g) = s.post("/api/groups", &owner, json!({"name": "g"})).await;
    let gid = g["id"].as_str().unwrap();
    let (st, inv): (StatusCode, Value) = s
        .post(
            &format!("/api/groups/{gid}/invitations"),
            &owner,
            json!({"email": "x@example.com"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    assert_eq!(inv["emailSent"], false);
    assert!(inv["url"].as_str().unwrap().contains("/invite/"));
}

#[tokio::test]
async fn an_unreachable_smtp_server_still_answers_with_the_link() {
    // A port that was just free: nothing accepts there.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = ServeConfig::for_tests(ADMIN_TOKEN);
    config.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
    let s = support::spawn_with(config).await;
    let (_, owner) = s.register("down@example.com").await;
    let (_, g) = s.post("/api/groups", &owner, json!({"name": "g"})).await;
    let gid = g["id"].as_str().unwrap();
    let (st, inv) = s
        .post(
            &format!("/api/groups/{gid}/invitations"),
            &owner,
            json!({"email": "x@example.com", "maxUses": 10001}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{inv}");
    assert!(inv["error"]["message"]
        .as_str()
        .unwrap()
        .contains("maxUses"));
    let (st, inv) = s
        .post(
            &format!("/api/groups/{gid}/invitations"),
            &owner,
            json!({"email": "x@example.com"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{inv}");
    assert_eq!(inv["emailSent"], false);
    assert!(inv["url"].is_string());
}

#[tokio::test]
async fn an_alert_with_a_mailto_target_is_mailed() {
    let (smtp_url, mut inbox) = smtp_sink().await;
    let mut config = ServeConfig::for_tests(ADMIN_TOKEN);
    config.smtp_url = Some(smtp_url);
    config.mail_from = "Carpool Bot <bot@carpool.test>".into();
    let s = support::spawn_with(config).await;
    let (_, owner) = s.register("alert-mail-owner@example.com").await;
    let (_, g) = s
        .post("/api/groups", &owner, json!({"name": "mailed alerts"}))
        .await;
    let gid = g["id"].as_str().unwrap();
    s.post(
        &format!("/api/groups/{gid}/keys"),
        &owner,
        json!({"name": "expiring", "expiresAt": chrono::Utc::now() + chrono::Duration::hours(5)}),
    )
    .await;
    let (st, r) = s
        .post(
            &format!("/api/groups/{gid}/alerts"),
            &owner,
            json!({"kind": "key-expiry", "target": "mailto:ops@carpool.test"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{r}");
    let done = aicarpool_server::alerts::Alerts::new(s.state.clone())
        .unwrap()
        .run_once(chrono::Utc::now())
        .await;
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0].error, None, "{done:?}");
    let mail = tokio::time::timeout(std::time::Duration::from_secs(10), inbox.recv())
        .await
        .expect("a mail within 10 s")
        .unwrap();
    assert_eq!(mail.rcpt_to, vec!["<ops@carpool.test>"]);
    assert!(
        mail.data.contains("[AiCarpool] key \"expiring\" expires"),
        "{}",
        mail.data
    );
    assert!(
        body_text(&mail.data).contains("key-expiry"),
        "{}",
        mail.data
    );
}
