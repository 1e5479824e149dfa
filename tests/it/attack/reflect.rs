//! Issue 16, items 4 and 13: servers that echo the request. A Gitea that
//! puts the request (the `Authorization: token …` header, the path) in its
//! error message, and a Telegram that puts the `/bot<token>/` path there,
//! both as is, URL- and base64-encoded, behind escape sequences and a
//! forged log line: the pool's log (stderr) holds no token in any form, no
//! control character and no forged line, run after run; the servers' words
//! are still quoted.

use nexus_cell::RevivePolicy;
use nexus_e2e::Run;
use nexus_testkit::canary::TELEGRAM_TOKEN;
use nexus_testkit::gitea::{Fake, REPO, TOKEN};
use nexus_testkit::reflect::{assert_clean, telegram_error};
use nexus_testkit::{HttpResponse, HttpServer};

use crate::pool::Fleet;

#[tokio::test(flavor = "multi_thread")]
async fn the_pool_logs_no_token_and_no_forged_line_from_servers_that_echo_the_request() {
    let gitea = Fake::start().await;
    gitea.st().reflect = Some(401);
    let telegram = HttpServer::start_with_head(|_, _, head| {
        HttpResponse::json(401, &telegram_error(401, head))
    })
    .await;
    let f = Fleet::new();
    f.join("dead1", RevivePolicy::Never, false);
    f.join("asker", RevivePolicy::Ask, false);
    let cfg = f.config(&format!(
        "[incident]\nassignees = []\ntimeout = \"2s\"\n\
         [telegram]\nchat_id = -1001\napi_url = \"{}\"\nmax_flood_wait = \"0s\"\n",
        telegram.url("")
    ));
    let mut logged = String::new();
    for _ in 0..3 {
        let o = f
            .cmd(&cfg)
            .arg("--once")
            .env("GITEA_URL", gitea.url())
            .env("NEXUS_REPO", REPO)
            .env("GITEA_TOKEN", TOKEN)
            .env("TELEGRAM_BOT_TOKEN", TELEGRAM_TOKEN)
            .env("NEXUS_LOG", "info")
            .run()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "dead agents: exit 1");
        assert_clean("the pool's stdout", &String::from_utf8_lossy(&o.stdout));
        logged.push_str(&String::from_utf8_lossy(&o.stderr));
    }
    assert_clean("the pool's log", &logged);
    assert!(
        logged.contains("incident: gitea") && logged.contains("HTTP 401: request refused"),
        "{logged}"
    );
    assert!(
        logged.contains("telegram") && logged.matches("request refused").count() >= 6,
        "{logged}"
    );
    gitea.st().reflect = None;
}
