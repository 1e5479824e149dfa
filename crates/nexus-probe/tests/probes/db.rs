//! Real Redis and PostgreSQL servers (started here, on loopback, in temp dirs).

use std::time::Duration;

use nexus_probe::{
    BudgetQuery, BudgetSpec, ConnString, PostgresSpec, ProbeKind, RedisSpec, Status,
};
use nexus_testkit::{PostgresServer, RedisServer, tcp};

use super::{expect, run, run_with};

#[tokio::test]
async fn redis_ping_memory_thresholds_and_auth() {
    let srv = RedisServer::start(64 << 20, None);
    let v = run(ProbeKind::Redis(RedisSpec::new(srv.url(None)))).await;
    expect(&v, Status::Ok, "Redis connected");
    let pct = v.details["usage_pct"].as_f64().unwrap();
    assert!(pct > 0.0 && pct < 50.0, "{v:?}");
    assert_eq!(v.details["ping"], "PONG");

    let mut spec = RedisSpec::new(srv.url(None));
    spec.mem_warn_pct = pct / 2.0;
    expect(
        &run(ProbeKind::Redis(spec.clone())).await,
        Status::Warning,
        "Redis memory high",
    );
    spec.mem_crit_pct = pct / 2.0;
    expect(
        &run(ProbeKind::Redis(spec)).await,
        Status::Critical,
        "Redis memory high",
    );

    // A password-protected server: the wrong password fails, and is never shown.
    let locked = RedisServer::start(0, Some("right-pw"));
    let v = run(ProbeKind::Redis(RedisSpec::new(
        locked.url(Some("wr0ng-pw")),
    )))
    .await;
    expect(&v, Status::Critical, "Redis connection failed");
    assert!(
        !format!("{v:?} {}", serde_json::to_string(&v).unwrap()).contains("wr0ng-pw"),
        "{v}"
    );
    let v = run(ProbeKind::Redis(RedisSpec::new(
        locked.url(Some("right-pw")),
    )))
    .await;
    expect(&v, Status::Ok, "no maxmemory");

    let port = srv.port;
    drop(srv);
    let v = run(ProbeKind::Redis(RedisSpec::new(format!(
        "redis://127.0.0.1:{port}/0"
    ))))
    .await;
    expect(&v, Status::Critical, "Redis connection failed");
    let v = run(ProbeKind::Redis(RedisSpec::new("not a url"))).await;
    expect(&v, Status::Unknown, "invalid Redis URL");

    // Accepts and never answers: the timeout ends it.
    let silent = tcp::silent().await;
    let v = run_with(
        ProbeKind::Redis(RedisSpec::new(format!("redis://{}/0", silent.addr))),
        Duration::from_millis(500),
    )
    .await;
    expect(&v, Status::Critical, "timed out after 500ms");
}

const STUCK: &str = "SELECT COUNT(*) FROM work_orders \
     WHERE status = 'in_progress' AND updated_at < NOW() - make_interval(secs => $1)";

#[tokio::test]
async fn postgres_select_one_stuck_work_orders_and_budget() {
    let pg = PostgresServer::start();
    pg.psql(
        "CREATE TABLE work_orders (id serial, status text, updated_at timestamptz);
         INSERT INTO work_orders (status, updated_at) VALUES
           ('in_progress', NOW() - interval '10 minutes'),
           ('in_progress', NOW() - interval '20 minutes'),
           ('in_progress', NOW()),
           ('done', NOW() - interval '1 day');
         CREATE TABLE agent_metrics (prompt_tokens bigint, completion_tokens bigint, created_at timestamptz DEFAULT NOW());
         INSERT INTO agent_metrics (prompt_tokens, completion_tokens) VALUES (400000, 450000);",
    );
    let url = pg.conninfo();
    let v = run(ProbeKind::Postgres(PostgresSpec::new(&url))).await;
    expect(&v, Status::Ok, "PostgreSQL connected (postgres@127.0.0.1");

    // The seed's stuck-agents query, with the interval bound as a parameter (defect H1).
    let stuck = |secs: i64| PostgresSpec {
        query: Some(STUCK.into()),
        params: vec![secs.into()],
        warn_at: Some(1.0),
        crit_at: Some(5.0),
        label: Some("stuck work orders".into()),
        ..PostgresSpec::new(&url)
    };
    let v = run(ProbeKind::Postgres(stuck(300))).await;
    expect(
        &v,
        Status::Warning,
        "stuck work orders = 2 (warning at ≥ 1)",
    );
    assert_eq!(v.details["value"], 2.0);
    expect(
        &run(ProbeKind::Postgres(stuck(3600))).await,
        Status::Ok,
        "stuck work orders = 0",
    );
    let mut crit = stuck(0);
    crit.crit_at = Some(2.0);
    expect(
        &run(ProbeKind::Postgres(crit)).await,
        Status::Critical,
        "critical at ≥ 2",
    );

    // Hostile parameter text is bound, not spliced.
    let mut inj = stuck(300);
    inj.query = Some("SELECT COUNT(*) FROM work_orders WHERE status = $1".into());
    inj.params = vec!["x'; DROP TABLE work_orders; --".into()];
    expect(&run(ProbeKind::Postgres(inj)).await, Status::Ok, "= 0");
    expect(
        &run(ProbeKind::Postgres(stuck(300))).await,
        Status::Warning,
        "= 2",
    );

    let mut bad = stuck(300);
    bad.query = Some("SELECT COUNT(*) FROM no_such_table".into());
    bad.params.clear();
    expect(
        &run(ProbeKind::Postgres(bad)).await,
        Status::Critical,
        "connected (postgres@127.0.0.1",
    );
    let mut wrong_params = stuck(300);
    wrong_params.params.clear();
    expect(
        &run(ProbeKind::Postgres(wrong_params)).await,
        Status::Critical,
        "1 parameter(s), 0 given",
    );

    // Budget from the seed's default query (SUM over bigint is numeric: cast works).
    let budget = BudgetSpec {
        file: None,
        postgres: Some(BudgetQuery {
            url: ConnString::new(&url),
            query: nexus_probe::DEFAULT_BUDGET_QUERY.into(),
            params: vec![],
        }),
        ..BudgetSpec::from_file(1_000_000.0, "/unused")
    };
    let v = run(ProbeKind::Budget(budget)).await;
    expect(&v, Status::Warning, "Token budget nearly exhausted: 85.0 %");

    // Wrong password over trust auth still connects; a wrong database fails, without the password.
    let v = run(ProbeKind::Postgres(PostgresSpec::new(format!(
        "host=127.0.0.1 port={} user=postgres password=t0psecret dbname=nope",
        pg.port
    ))))
    .await;
    expect(&v, Status::Critical, "PostgreSQL connection failed");
    assert!(
        !serde_json::to_string(&v).unwrap().contains("t0psecret"),
        "{v}"
    );

    let closed = tcp::closed();
    let v = run(ProbeKind::Postgres(PostgresSpec::new(format!(
        "host=127.0.0.1 port={} user=postgres",
        closed.port()
    ))))
    .await;
    expect(&v, Status::Critical, "PostgreSQL connection failed");
}
