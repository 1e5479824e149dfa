//! Nostr approvals through the real `resurrection-pool` binary, a real
//! relay (`nostr-relay-builder`'s `LocalRelay`) on loopback and, for the
//! race of two channels, the Bot API stand-in.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use nexus_cell::RevivePolicy;
use nexus_e2e::Run;
use nexus_nostr::Relays;
use nostr::nips::nip59::UnwrappedGift;
use nostr::{Event, EventBuilder, Filter, Keys, Kind, PublicKey, Timestamp, ToBech32};
use nostr_relay_builder::{LocalRelay, RelayBuilder};
use serde_json::{Value, json};

use crate::pool::{Daemon, Fleet, free_port, wait_for};

async fn relay() -> (LocalRelay, String) {
    relay_on(None).await
}

/// A relay on `port` (any free one when `None`).
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

/// The pool's key, the approver's, the relay and a client of it.
struct Nostr {
    _relay: LocalRelay,
    url: String,
    pool: Keys,
    approver: Keys,
    client: Relays,
}

impl Nostr {
    async fn start() -> Nostr {
        Nostr::with(relay().await)
    }

    fn with((relay, url): (LocalRelay, String)) -> Nostr {
        Nostr {
            client: Relays::new(std::slice::from_ref(&url), Duration::from_secs(5)),
            _relay: relay,
            url,
            pool: Keys::generate(),
            approver: Keys::generate(),
        }
    }

    fn section(&self) -> String {
        format!(
            "[nostr]\nrelay_url = \"{}\"\nrecipient_pubkey = \"{}\"\nok_timeout = \"5s\"\n",
            self.url,
            self.approver.public_key().to_bech32().unwrap()
        )
    }

    /// The DMs the approver received, opened with the approver's key
    /// (each wrap's signature verified): sender and text.
    async fn inbox(&mut self) -> Vec<(PublicKey, String)> {
        let f = [Filter::new()
            .kind(Kind::GiftWrap)
            .pubkey(self.approver.public_key())];
        let mut out = Vec::new();
        for e in self.client.fetch(&f).await.unwrap() {
            e.verify().unwrap();
            let g = UnwrappedGift::from_gift_wrap(&self.approver, &e)
                .await
                .unwrap();
            out.push((g.sender, g.rumor.content.clone()));
        }
        out.sort_by(|a, b| a.1.cmp(&b.1));
        out
    }

    /// Every event the relay holds.
    async fn all_events(&mut self) -> Vec<Event> {
        let f =
            [Filter::new().kinds([Kind::GiftWrap, Kind::EncryptedDirectMessage, Kind::TextNote])];
        self.client.fetch(&f).await.unwrap()
    }

    /// `from` sends the pool a NIP-17 DM.
    async fn reply(&mut self, from: &Keys, text: &str) {
        let to = self.pool.public_key();
        let rumor = EventBuilder::private_msg_rumor(to, text)
            .custom_created_at(Timestamp::now())
            .build(from.public_key());
        let wrap = EventBuilder::gift_wrap(from, &to, rumor, []).await.unwrap();
        let p = self
            .client
            .publish(std::slice::from_ref(&wrap))
            .await
            .unwrap();
        assert!(p.accepted.contains(&wrap.id), "{:?}", p.problems);
    }
}

/// One `--once` sweep with the pool's key in the environment (or none).
fn sweep(f: &Fleet, cfg: &Path, key: Option<&Keys>, telegram: bool) -> Output {
    let mut c = f.cmd(cfg);
    c.args(["--once", "--json"]).env_remove("NOSTR_SECRET_KEY");
    if let Some(k) = key {
        c.env("NOSTR_SECRET_KEY", k.secret_key().to_secret_hex());
    }
    if telegram {
        c.env("TELEGRAM_BOT_TOKEN", "123456:test-token");
    }
    let o = c.run().unwrap();
    assert!(
        o.status.code().is_some(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The pool's secret key never reaches its output, in either form.
    if let Some(k) = key {
        let all = [o.stdout.as_slice(), o.stderr.as_slice()].concat();
        let all = String::from_utf8_lossy(&all);
        let nsec = k.secret_key().to_bech32().unwrap();
        assert!(
            !all.contains(&k.secret_key().to_secret_hex()) && !all.contains(&nsec),
            "the secret key in the output"
        );
    }
    o
}

/// `ask` with Nostr alone: the approver receives a signed, encrypted
/// request; another key's `revive` does nothing; the approver's revives.
#[tokio::test(flavor = "multi_thread")]
async fn a_nostr_approval_from_the_approver_key_revives_and_another_key_is_ignored() {
    let mut n = Nostr::start().await;
    let f = Fleet::new();
    f.join("asker", RevivePolicy::Ask, true);
    let cfg = f.config(&format!("approval_timeout = 3600\n\n{}", n.section()));
    sweep(&f, &cfg, Some(&n.pool), false);
    assert_eq!(f.launches("asker"), 0, "asked, not revived");
    let inbox = n.inbox().await;
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert_eq!(inbox[0].0, n.pool.public_key(), "sealed by the pool's key");
    assert!(inbox[0].1.contains("revive asker"), "{}", inbox[0].1);
    // Asked once per episode: the next sweep sends nothing new.
    sweep(&f, &cfg, Some(&n.pool), false);
    assert_eq!(n.inbox().await.len(), 1);
    let stranger = Keys::generate();
    n.reply(&stranger, "revive asker").await;
    sweep(&f, &cfg, Some(&n.pool), false);
    assert_eq!(f.launches("asker"), 0, "another key cannot approve");
    let approver = n.approver.clone();
    n.reply(&approver, "revive asker").await;
    sweep(&f, &cfg, Some(&n.pool), false);
    assert_eq!(f.launches("asker"), 1, "approved by the approver's key");
    let state = f.pool_state();
    assert!(
        state["requests"].as_object().is_none_or(|r| r.is_empty()),
        "{state}"
    );
}

/// The daemon: the approver's answer is read at the next poll and the
/// agent is relaunched; `/metrics` shows the Nostr channel up.
#[tokio::test(flavor = "multi_thread")]
async fn a_running_pool_revives_on_the_approvers_nostr_answer() {
    let mut n = Nostr::start().await;
    let f = Fleet::new();
    f.join("asker", RevivePolicy::Ask, true);
    let cfg = f.config(&format!("approval_timeout = 3600\n\n{}", n.section()));
    let port = free_port();
    let _d = Daemon(
        f.cmd(&cfg)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("NOSTR_SECRET_KEY", n.pool.secret_key().to_secret_hex())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while n.inbox().await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no request on the relay"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = crate::pool::get(&format!("http://127.0.0.1:{port}/metrics"));
    assert!(
        metrics.contains("nexus_pool_channel_up{channel=\"nostr\"} 1"),
        "{metrics}"
    );
    assert_eq!(f.launches_now("asker"), 0);
    let approver = n.approver.clone();
    n.reply(&approver, "revive asker").await;
    wait_for("the approved launch", || f.launches_now("asker") == 1);
    assert_eq!(n.inbox().await.len(), 1, "asked once");
}

/// The only relay is down: the request is not sent (and not counted);
/// with the relay up on the same port, the next sweep sends it, and the
/// answer works.
#[tokio::test(flavor = "multi_thread")]
async fn a_relay_down_then_up_gets_the_request_once_it_is_back() {
    let port = free_port();
    let keys = (Keys::generate(), Keys::generate());
    let f = Fleet::new();
    f.join("asker", RevivePolicy::Ask, true);
    let section = |url: &str| {
        format!(
            "[nostr]\nrelay_url = \"{url}\"\nrecipient_pubkey = \"{}\"\nok_timeout = \"2s\"\n",
            keys.1.public_key().to_hex()
        )
    };
    let url = format!("ws://127.0.0.1:{port}");
    let cfg = f.config(&format!("approval_timeout = 3600\n\n{}", section(&url)));
    let o = sweep(&f, &cfg, Some(&keys.0), false);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("Nostr approval request failed"), "{err}");
    assert!(
        f.pool_state()["requests"]
            .as_object()
            .is_none_or(|r| r.is_empty())
    );
    let mut n = Nostr::with(relay_on(Some(port)).await);
    (n.pool, n.approver) = keys.clone();
    assert!(n.inbox().await.is_empty());
    sweep(&f, &cfg, Some(&n.pool), false);
    assert_eq!(n.inbox().await.len(), 1, "sent once the relay is back");
    let approver = n.approver.clone();
    n.reply(&approver, "revive asker").await;
    sweep(&f, &cfg, Some(&n.pool), false);
    assert_eq!(f.launches("asker"), 1);
}

/// No secret key: a clear warning, nothing on the relay (never an
/// unsigned event), and `ask` has no channel (`ask_without_channel`).
#[tokio::test(flavor = "multi_thread")]
async fn without_a_secret_key_nostr_is_disabled_with_a_warning_and_sends_nothing() {
    let mut n = Nostr::start().await;
    let f = Fleet::new();
    f.join("asker", RevivePolicy::Ask, true);
    let cfg = f.config_with(
        &format!(
            "approval_timeout = 3600\n\n{}",
            n.section()
                .replace("[nostr]", "[nostr]\ntoken_env = \"NEXUS_E2E_NO_SUCH_KEY\"")
        ),
        &[("[pool]\n", "[pool]\nask_without_channel = \"never\"\n")],
    );
    let o = sweep(&f, &cfg, None, false);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("Nostr approvals are disabled") && err.contains("NEXUS_E2E_NO_SUCH_KEY"),
        "{err}"
    );
    assert_eq!(f.launches("asker"), 0, "ask_without_channel = never");
    assert_eq!(n.all_events().await.len(), 0, "nothing sent");
    // A malformed key refuses to start, naming the key's source, not the key.
    let mut c = f.cmd(&cfg);
    let bad = "ab".repeat(31);
    c.args(["--once"]).env("NEXUS_E2E_NO_SUCH_KEY", &bad);
    let o = c.run().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("secret_key") && !err.contains(&bad), "{err}");
}

/// Telegram and Nostr both ask; the first answer decides and the other
/// channel's request is withdrawn there, with a word saying so.
#[tokio::test(flavor = "multi_thread")]
async fn with_telegram_and_nostr_the_first_answer_wins_and_the_other_request_is_withdrawn() {
    const CHAT: i64 = -1001;
    let mut n = Nostr::start().await;
    let bot = nexus_testkit::telegram::Bot::start().await;
    let f = Fleet::new();
    f.join("one", RevivePolicy::Ask, true);
    f.join("two", RevivePolicy::Ask, true);
    let cfg = f.config(&format!(
        "approval_timeout = 3600\n\n[telegram]\nchat_id = {CHAT}\napi_url = \"{}\"\n\n{}",
        bot.url(),
        n.section()
    ));
    sweep(&f, &cfg, Some(&n.pool), true);
    assert_eq!((f.launches("one"), f.launches("two")), (0, 0));
    // Both channels asked for both agents.
    let inbox = n.inbox().await;
    assert_eq!(inbox.len(), 2, "{inbox:?}");
    let requests: Vec<(i64, String, String)> = bot
        .st()
        .sent
        .iter()
        .enumerate()
        .filter_map(|(i, b)| {
            let data = b["reply_markup"]["inline_keyboard"][0][0]["callback_data"].as_str()?;
            Some((
                i as i64 + 1,
                b["text"].as_str()?.to_string(),
                data.to_string(),
            ))
        })
        .collect();
    assert_eq!(requests.len(), 2, "{requests:?}");
    let (tg_two, data_two) = requests
        .iter()
        .find(|r| r.1.contains("two"))
        .map(|r| (r.0, r.2.clone()))
        .unwrap();
    let (tg_one, data_one) = requests
        .iter()
        .find(|r| r.1.contains("one"))
        .map(|r| (r.0, r.2.clone()))
        .unwrap();
    // `one` is answered on Nostr, `two` on Telegram.
    let approver = n.approver.clone();
    n.reply(&approver, "revive one").await;
    let press = |update: i64, message: i64, data: &str| {
        let u = json!({"update_id": update, "callback_query": {
            "id": format!("cb{update}"), "chat_instance": "1",
            "from": {"id": 42, "is_bot": false, "first_name": "Op", "username": "op"},
            "message": {"message_id": message, "date": 0, "chat": {"id": CHAT, "type": "group"}},
            "data": data}});
        // What the stand-in returns is a real `Update` (the Bot API contract).
        let wrong = nexus_testkit::botapi::check_type("Update", &u);
        assert!(wrong.is_empty(), "{wrong:?}");
        u
    };
    bot.st().updates.push(press(1, tg_two, &data_two));
    sweep(&f, &cfg, Some(&n.pool), true);
    assert_eq!((f.launches("one"), f.launches("two")), (1, 1));
    // `one`'s Telegram request is withdrawn: its buttons removed, and said.
    let edited: Vec<i64> = bot
        .st()
        .calls
        .iter()
        .filter(|(m, _)| m == "editMessageReplyMarkup")
        .filter_map(|(_, b)| b["message_id"].as_i64())
        .collect();
    assert!(edited.contains(&tg_one), "{edited:?}");
    let said = bot.read();
    assert!(
        said.iter()
            .any(|t| t.contains("Answered via Nostr") && t.contains("one")),
        "{said:?}"
    );
    // `two`'s Nostr request is withdrawn: the approver is told.
    let inbox = n.inbox().await;
    assert!(
        inbox
            .iter()
            .any(|(_, t)| t.contains("Answered via Telegram by @op") && t.contains("two")),
        "{inbox:?}"
    );
    // Later answers on the other channels change nothing: no second
    // launch, no error, nothing pending.
    n.reply(&approver, "skip two").await;
    bot.st()
        .updates
        .push(press(2, tg_one, &data_one.replace("approve", "deny")));
    sweep(&f, &cfg, Some(&n.pool), true);
    assert_eq!((f.launches("one"), f.launches("two")), (1, 1));
    let state: Value = f.pool_state();
    assert!(
        state["answers"].as_object().is_none_or(|a| a.is_empty()),
        "{state}"
    );
    bot.assert_contract();
}

/// Nobody answers on Nostr: at the end of `approval_timeout` the
/// request expires to `ask_default` (here `revive`), as on Telegram.
#[tokio::test(flavor = "multi_thread")]
async fn an_unanswered_nostr_request_expires_to_ask_default() {
    let mut n = Nostr::start().await;
    let f = Fleet::new();
    f.join("asker", RevivePolicy::Ask, true);
    let cfg = f.config(&format!(
        "approval_timeout = 2\nask_default = \"revive\"\n\n{}",
        n.section()
    ));
    sweep(&f, &cfg, Some(&n.pool), false);
    assert_eq!(n.inbox().await.len(), 1);
    assert_eq!(f.launches("asker"), 0, "asked, not revived");
    // Polled: a sweep every 100 ms, at most 200 of them and 20 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    for _ in 0..200 {
        if f.launches_now("asker") > 0 || std::time::Instant::now() > deadline {
            break;
        }
        sweep(&f, &cfg, Some(&n.pool), false);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(f.launches("asker"), 1);
    assert_eq!(n.inbox().await.len(), 1, "asked once");
}
