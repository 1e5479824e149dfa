//! Against a real relay (`nostr-relay-builder`'s `LocalRelay`) on loopback.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use nostr::{EventBuilder, Keys, Kind, Tag, Timestamp};
use nostr_relay_builder::{LocalRelay, RelayBuilder};

use super::*;

async fn relay_on(port: Option<u16>) -> (LocalRelay, String) {
    let mut b = RelayBuilder::default().addr(IpAddr::V4(Ipv4Addr::LOCALHOST));
    if let Some(p) = port {
        b = b.port(p);
    }
    let r = LocalRelay::new(b);
    r.run().await.unwrap();
    let url = r.url().await.to_string();
    (r, url.trim_end_matches('/').to_string())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Setup {
    _tmp: tempfile::TempDir,
    pool: Keys,
    approver: Keys,
    settings: NostrSettings,
    state: PathBuf,
}

fn setup(relays: Vec<String>, dm: Dm) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let (pool, approver) = (Keys::generate(), Keys::generate());
    let settings = NostrSettings {
        relays,
        recipient_pubkey: approver.public_key().to_bech32().unwrap(),
        token_env: "NEXUS_NOSTR_TEST_UNSET_VAR".into(),
        secret_key: Some(pool.secret_key().to_secret_hex().into()),
        dm,
        ok_timeout: Duration::from_secs(3),
        backoff_initial: Duration::from_millis(300),
        backoff_max: Duration::from_secs(1),
        ..NostrSettings::default()
    };
    let state = tmp.path().join("nostr-approvals.json");
    Setup {
        _tmp: tmp,
        pool,
        approver,
        settings,
        state,
    }
}

impl Setup {
    fn approvals(&self) -> NostrApprovals {
        NostrApprovals::new(&self.settings, self.state.clone())
            .unwrap()
            .unwrap()
    }

    fn client(&self) -> Relays {
        Relays::new(&self.settings.relay_urls(), Duration::from_secs(3))
    }
}

/// What `keys` received: each DM's sender and text (gift wraps opened).
async fn inbox(relays: &mut Relays, keys: &Keys) -> Vec<(PublicKey, String, Event)> {
    let f = [Filter::new()
        .kinds([Kind::GiftWrap, Kind::EncryptedDirectMessage])
        .pubkey(keys.public_key())];
    let mut out = Vec::new();
    for e in relays.fetch(&f).await.unwrap() {
        // Independent of the code under test: the crate's own checks.
        e.verify().expect("a valid id and BIP-340 signature");
        if e.kind == Kind::GiftWrap {
            let g = UnwrappedGift::from_gift_wrap(keys, &e).await.unwrap();
            out.push((g.sender, g.rumor.content.clone(), e));
        } else {
            let t = nip04::decrypt(keys.secret_key(), &e.pubkey, &e.content).unwrap();
            out.push((e.pubkey, t, e));
        }
    }
    out
}

/// A NIP-17 DM from `from` to `to`, dated `at`, replying to `reply_to`.
async fn dm(from: &Keys, to: PublicKey, text: &str, at: Timestamp, reply_to: &[String]) -> Event {
    let tags = reply_to
        .iter()
        .map(|id| Tag::event(EventId::from_hex(id).unwrap()));
    let rumor = EventBuilder::private_msg_rumor(to, text)
        .tags(tags)
        .custom_created_at(at)
        .build(from.public_key());
    EventBuilder::gift_wrap(from, &to, rumor, []).await.unwrap()
}

async fn publish(relays: &mut Relays, e: Event) {
    let p = relays.publish(std::slice::from_ref(&e)).await.unwrap();
    assert!(p.accepted.contains(&e.id), "{:?}", p.problems);
}

#[tokio::test]
async fn a_request_is_signed_and_only_the_approver_can_read_it() {
    for dm in [Dm::Nip17, Dm::Nip04] {
        let (_relay, url) = relay_on(None).await;
        let s = setup(vec![url], dm);
        let mut a = s.approvals();
        a.request("r1", "alpha", "revive alpha?", Duration::from_secs(60))
            .await
            .unwrap();
        assert!(a.is_pending("r1").unwrap());
        let mut c = s.client();
        let got = inbox(&mut c, &s.approver).await;
        assert_eq!(got.len(), 1, "{dm:?}");
        let (from, text, ev) = &got[0];
        assert_eq!(
            (*from, text.as_str()),
            (s.pool.public_key(), "revive alpha?")
        );
        assert!(!ev.content.contains("alpha"), "encrypted");
        let kind = if dm == Dm::Nip17 {
            // The wrap is signed by a throw-away key, the seal by ours.
            assert_ne!(ev.pubkey, s.pool.public_key());
            Kind::GiftWrap
        } else {
            assert_eq!(ev.pubkey, s.pool.public_key());
            Kind::EncryptedDirectMessage
        };
        assert_eq!(ev.kind, kind);
        // A third key cannot read it.
        let other = Keys::generate();
        if dm == Dm::Nip17 {
            assert!(UnwrappedGift::from_gift_wrap(&other, ev).await.is_err());
        } else {
            let t = nip04::decrypt(other.secret_key(), &ev.pubkey, &ev.content);
            assert!(t.is_err() || t.is_ok_and(|t| !t.contains("alpha")));
        }
        // Asking again for a pending id sends nothing.
        a.request("r1", "alpha", "revive alpha?", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(inbox(&mut c, &s.approver).await.len(), 1);
    }
}

#[tokio::test]
async fn only_the_approvers_answer_after_the_request_counts() {
    let (_relay, url) = relay_on(None).await;
    let s = setup(vec![url], Dm::Nip17);
    let mut a = s.approvals();
    a.request("r1", "alpha", "revive alpha?", Duration::from_secs(600))
        .await
        .unwrap();
    a.request("r2", "beta", "revive beta?", Duration::from_secs(600))
        .await
        .unwrap();
    let sent = a_sent(&s.state, "r1");
    let me = s.pool.public_key();
    let mut c = s.client();
    let stranger = Keys::generate();
    publish(
        &mut c,
        dm(&stranger, me, "revive alpha", Timestamp::now(), &[]).await,
    )
    .await;
    // Before the request: an old answer is not this one's.
    let old = Timestamp::from(sent - 10);
    publish(&mut c, dm(&s.approver, me, "revive alpha", old, &[]).await).await;
    // `+1` that replies to nothing does nothing.
    publish(
        &mut c,
        dm(&s.approver, me, "+1", Timestamp::now(), &[]).await,
    )
    .await;
    assert_eq!(a.poll(sent).await.unwrap(), []);
    assert!(a.is_pending("r1").unwrap());
    // The approver's answers: text for one, `+1` as a reply for the other.
    publish(
        &mut c,
        dm(&s.approver, me, "Revive Alpha ", Timestamp::now(), &[]).await,
    )
    .await;
    let refs = pending(&s.state, "r2").refs;
    publish(
        &mut c,
        dm(&s.approver, me, "+1", Timestamp::now(), &refs).await,
    )
    .await;
    let mut got = a.poll(sent).await.unwrap();
    got.sort_by(|x, y| x.request_id.cmp(&y.request_id));
    assert_eq!(
        verdicts(&got),
        [
            ("r1", Some(Approval::Approved)),
            ("r2", Some(Approval::Approved))
        ]
    );
    assert!(got[0].by.as_deref().unwrap().starts_with("npub1"));
    // Answered: a second poll finds nothing (the relay still has the DMs).
    assert_eq!(a.poll(sent).await.unwrap(), []);
}

#[tokio::test]
async fn skip_denies_nip04_replies_count_and_expiry_is_reported_once() {
    let (_relay, url) = relay_on(None).await;
    let s = setup(vec![url], Dm::Nip04);
    let mut a = s.approvals();
    a.request("r1", "alpha", "q", Duration::from_secs(600))
        .await
        .unwrap();
    a.request("r2", "beta", "q", Duration::from_secs(5))
        .await
        .unwrap();
    let sent = a_sent(&s.state, "r1");
    let me = s.pool.public_key();
    let content = nip04::encrypt(s.approver.secret_key(), &me, "skip alpha").unwrap();
    let reply = EventBuilder::new(Kind::EncryptedDirectMessage, content)
        .tag(Tag::public_key(me))
        .sign_with_keys(&s.approver)
        .unwrap();
    publish(&mut s.client(), reply).await;
    let got = a.poll(sent + 60).await.unwrap();
    assert_eq!(
        verdicts(&got),
        [("r1", Some(Approval::Denied)), ("r2", None)]
    );
    assert_eq!(a.poll(sent + 60).await.unwrap(), []);
}

#[tokio::test]
async fn a_withdrawn_request_tells_the_approver_and_ignores_a_later_answer() {
    let (_relay, url) = relay_on(None).await;
    let s = setup(vec![url], Dm::Nip17);
    let mut a = s.approvals();
    a.request("r1", "alpha", "q", Duration::from_secs(600))
        .await
        .unwrap();
    let sent = a_sent(&s.state, "r1");
    assert!(a.withdraw("r1", "answered via Telegram").await.unwrap());
    assert!(!a.withdraw("r1", "again").await.unwrap(), "said once");
    let mut c = s.client();
    let texts: Vec<String> = inbox(&mut c, &s.approver)
        .await
        .into_iter()
        .map(|(_, t, _)| t)
        .collect();
    assert!(
        texts.contains(&"answered via Telegram".to_string()),
        "{texts:?}"
    );
    let me = s.pool.public_key();
    publish(
        &mut c,
        dm(&s.approver, me, "revive alpha", Timestamp::now(), &[]).await,
    )
    .await;
    assert_eq!(a.poll(sent).await.unwrap(), []);
}

#[tokio::test]
async fn one_ok_is_enough_and_a_relay_down_is_retried_with_backoff() {
    let port = free_port();
    let dead = format!("ws://127.0.0.1:{port}");
    // One relay up, one down: the request counts.
    let (_up, url) = relay_on(None).await;
    let s = setup(vec![dead.clone(), url], Dm::Nip17);
    s.approvals()
        .request("r0", "alpha", "q", Duration::from_secs(60))
        .await
        .unwrap();
    // The down relay alone: not sent, not pending; then backing off.
    let s = setup(vec![dead], Dm::Nip17);
    let mut a = s.approvals();
    let e = a
        .request("r1", "alpha", "q", Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Down { .. }), "{e}");
    assert!(!a.is_pending("r1").unwrap());
    let (_relay, _) = relay_on(Some(port)).await;
    let e = a
        .request("r1", "alpha", "q", Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("backing off"), "{e}");
    // Up again: once the back-off has passed, the request goes out.
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match a.request("r1", "alpha", "q", Duration::from_secs(60)).await {
            Ok(()) => break,
            Err(e) => assert!(tokio::time::Instant::now() < until, "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(a.is_pending("r1").unwrap());
    assert_eq!(inbox(&mut s.client(), &s.approver).await.len(), 1);
}

#[tokio::test]
async fn without_a_key_there_is_no_channel() {
    let mut s = setup(vec!["ws://127.0.0.1:1".into()], Dm::Nip17);
    s.settings.secret_key = None;
    assert!(
        NostrApprovals::new(&s.settings, s.state.clone())
            .unwrap()
            .is_none()
    );
}

fn verdicts(got: &[Decision]) -> Vec<(&str, Option<Approval>)> {
    got.iter()
        .map(|d| (d.request_id.as_str(), d.verdict))
        .collect()
}

fn pending(state: &Path, id: &str) -> Pending {
    load(state).unwrap().pending[id].clone()
}

fn a_sent(state: &Path, id: &str) -> u64 {
    pending(state, id).sent_at
}

/// `wss://` goes through TLS (rustls, aws-lc-rs): against a relay that
/// speaks plain WebSocket the handshake fails cleanly, never a panic
/// about the crypto provider and never a fall-back to plain text.
#[tokio::test]
async fn a_wss_relay_is_spoken_to_over_tls() {
    let (_relay, url) = relay_on(None).await;
    let s = setup(vec![url.replace("ws://", "wss://")], Dm::Nip17);
    let mut a = s.approvals();
    let e = a
        .request("r1", "alpha", "q", Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Down { .. }), "{e}");
    assert!(
        e.to_string().contains("tls") || e.to_string().contains("TLS"),
        "{e}"
    );
    assert!(!a.is_pending("r1").unwrap());
    let mut plain = Relays::new(&[url], Duration::from_secs(3));
    assert!(
        inbox(&mut plain, &s.approver).await.is_empty(),
        "nothing in clear"
    );
}
