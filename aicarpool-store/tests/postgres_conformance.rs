#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The storage conformance suite against PostgreSQL, alone and as several
//! instances sharing one database.
//!
//! Needs a server: set `AICARPOOL_TEST_POSTGRES_URL`, e.g.
//! `postgres://postgres@127.0.0.1:5432/test`. Without it, the tests that
//! need one print that they are skipped and pass. Each test works in a
//! schema of its own (a fresh random name), dropped when the test ends,
//! even when it fails.

use std::sync::Arc;

use aicarpool_core::account::AccountOwner;
use aicarpool_core::id::new_id;
use aicarpool_core::org::GroupRole;
use aicarpool_core::secret::Sealed;
use aicarpool_core::store::{
    AccountStore, CredentialStore, DynStore, GroupStore, KeyStore, StoreError, UsageStore,
    UserStore,
};
use aicarpool_core::testing;
use aicarpool_core::usage::{UsageQuery, UsageScope};
use aicarpool_store::{PostgresOpenError, PostgresStore};
use chrono::Duration;
use sqlx::{Connection, Executor};

const URL_VAR: &str = "AICARPOOL_TEST_POSTGRES_URL";

/// The versions of the migrations under `migrations/postgres`, in order:
/// each file's number prefix (numbers may skip, as work landing in
/// parallel takes its own).
fn migration_versions() -> Vec<i64> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres");
    let mut versions: Vec<i64> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension() == Some("sql".as_ref()))
        .map(|p| {
            let name = p.file_name().unwrap().to_str().unwrap().to_owned();
            name.split('_').next().unwrap().parse().unwrap()
        })
        .collect();
    versions.sort_unstable();
    versions
}

/// The server's URL, or `None` (after saying so) to skip the test.
fn server_url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            println!("skipped: {URL_VAR} is not set");
            None
        }
    }
}

/// A fresh schema name, dropped with everything in it when this goes out
/// of scope.
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    fn fresh(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            name: format!("aicarpool_test_{}", new_id().to_lowercase()),
        }
    }

    async fn open(&self) -> PostgresStore {
        PostgresStore::connect_in_schema(&self.url, &self.name)
            .await
            .unwrap()
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        // Drop runs outside async code (and maybe while panicking), so the
        // clean-up gets a thread and a small runtime of its own.
        let (url, name) = (self.url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&url).await?;
                conn.execute(format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE").as_str())
                    .await?;
                conn.close().await
            })
            .map_err(std::io::Error::other)
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test schema {}: {dropped:?}", self.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms_twice_on_one_schema() {
    let Some(url) = server_url() else { return };
    let schema = Schema::fresh(&url);
    let store = schema.open().await;
    testing::run_all(&store).await;
    // Fresh ids everywhere: a second run on the same data passes too.
    testing::run_all(&store).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms_behind_dyn_store() {
    let Some(url) = server_url() else { return };
    let schema = Schema::fresh(&url);
    let store: DynStore = Arc::new(schema.open().await);
    testing::run_all(store.as_ref()).await;
}

/// Two gateway instances on one database: each runs the whole suite while
/// the other writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_run_the_suite_concurrently() {
    let Some(url) = server_url() else { return };
    let schema = Schema::fresh(&url);
    let (first, second) = (schema.open().await, schema.open().await);
    tokio::join!(testing::run_all(&first), testing::run_all(&second));
    first.close().await;
    second.close().await;
}

/// What several instances race for, raced from two instances at once:
/// invitation uses, seats in a group, a credential compare-and-swap and a
/// refresh lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_race_fairly_for_shared_rows() {
    let Some(url) = server_url() else { return };
    let schema = Schema::fresh(&url);
    let instances = [schema.open().await, schema.open().await];
    let instance = |i: usize| instances[i % 2].clone();
    let (owner, group) = testing::setup_group(&instances[0]).await;
    let now = testing::now_ms();

    let inv = testing::invitation(&group.id, &owner.id, Some(7));
    instances[0].create_invitation(&inv).await.unwrap();
    let uses = race(30, |i| {
        let (store, id) = (instance(i), inv.id.clone());
        async move { store.use_invitation(&id, now).await.unwrap() }
    })
    .await;
    assert_eq!(uses.iter().filter(|(_, won)| *won).count(), 7);

    // Six seats, the owner's among them.
    let mut joiners = Vec::new();
    for _ in 0..20 {
        let u = testing::user();
        instances[0].create_user(&u).await.unwrap();
        joiners.push(u);
    }
    let joins = race(joiners.len(), |i| {
        let store = instance(i);
        let m = testing::membership(&group.id, &joiners[i].id, GroupRole::Member);
        async move { store.add_member(&m, Some(6)).await }
    })
    .await;
    for (_, r) in &joins {
        assert!(
            matches!(r, Ok(()) | Err(StoreError::LimitReached(_))),
            "{r:?}"
        );
    }
    assert_eq!(joins.iter().filter(|(_, r)| r.is_ok()).count(), 5);
    assert_eq!(instances[1].members(&group.id).await.unwrap().len(), 6);

    let account = testing::account(AccountOwner::Group(group.id.clone()));
    instances[1].create_account(&account).await.unwrap();
    let blob = |i: usize| Sealed(vec![u8::try_from(i).unwrap(); 40]);
    let swaps = race(20, |i| {
        let (store, id, old) = (instance(i), account.id.clone(), account.credentials.clone());
        async move {
            store
                .update_credentials_if(&id, &old, &blob(i), now)
                .await
                .unwrap()
        }
    })
    .await;
    let winners: Vec<usize> = swaps
        .iter()
        .filter(|(_, won)| *won)
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one compare-and-swap wins");
    assert_eq!(
        instances[0].sealed_credentials(&account.id).await.unwrap(),
        Some(blob(winners[0]))
    );

    let until = now + Duration::seconds(30);
    let leases = race(20, |i| {
        let (store, id) = (instance(i), account.id.clone());
        async move {
            store
                .try_lock_credentials(&id, &format!("instance-{i}"), now, until)
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(leases.iter().filter(|(_, won)| *won).count(), 1);
    for store in instances {
        store.close().await;
    }
}

/// Runs `n` tasks made by `task` at once on the runtime's workers;
/// returns each one's index with its output.
async fn race<T, F>(n: usize, task: impl Fn(usize) -> F) -> Vec<(usize, T)>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let f = task(i);
        set.spawn(async move { (i, f.await) });
    }
    let mut out = Vec::with_capacity(n);
    while let Some(done) = set.join_next().await {
        out.push(done.unwrap());
    }
    out
}

/// A batch is one statement; a record whose id comes again later in the
/// same batch is kept as first given, as SQLite's row-by-row insert does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_usage_batch_naming_one_id_twice_keeps_the_first() {
    let Some(url) = server_url() else { return };
    let schema = Schema::fresh(&url);
    let store = schema.open().await;
    let (group, user, key) = (new_id(), new_id(), new_id());
    let first = testing::usage_record(&group, &user, &key, None, testing::now_ms());
    let mut again = first.clone();
    again.usage.input_tokens = 1;
    again.cost_micro_usd = 1;
    let other = testing::usage_record(&group, &user, &key, None, testing::now_ms());
    store
        .insert_usage(&[first.clone(), again, other.clone()])
        .await
        .unwrap();
    let q = UsageQuery {
        scope: UsageScope::Key(key),
        from: None,
        to: None,
        group_by: None,
    };
    assert_eq!(
        store.usage_report(&q).await.unwrap(),
        q.aggregate([&first, &other])
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_keeps_data_and_skips_applied_migrations() {
    let Some(url) = server_url() else { return };
    let schema = Schema::fresh(&url);
    let store = schema.open().await;
    let (owner, group) = testing::setup_group(&store).await;
    let key = testing::key(&group.id, &owner.id);
    store.create_key(&key).await.unwrap();
    let applied = migrations(&store).await;
    assert_eq!(
        applied.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        migration_versions()
    );
    store.close().await;
    drop(store);

    let store = schema.open().await;
    assert_eq!(
        migrations(&store).await,
        applied,
        "applied migrations are neither run nor recorded again"
    );
    assert_eq!(store.user(&owner.id).await.unwrap(), Some(owner.clone()));
    assert_eq!(store.group(&group.id).await.unwrap(), Some(group.clone()));
    assert_eq!(
        store.key_by_hash(&key.key_hash.unwrap()).await.unwrap(),
        Some(key)
    );
    testing::run_all(&store).await;
    store.close().await;
}

/// `(version, installed_on)` of every applied migration, in this store's
/// schema.
async fn migrations(store: &PostgresStore) -> Vec<(i64, String)> {
    sqlx::query_as(
        "SELECT version, installed_on::text FROM _sqlx_migrations WHERE success ORDER BY version",
    )
    .fetch_all(store.pool())
    .await
    .unwrap()
}

/// Instances starting together on a schema that does not exist yet all
/// open it: one creates it, and the migrations run once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_opening_a_fresh_schema_together_all_succeed() {
    let Some(url) = server_url() else { return };
    let schema = Schema::fresh(&url);
    let (a, b, c) = tokio::join!(
        PostgresStore::connect_in_schema(&url, &schema.name),
        PostgresStore::connect_in_schema(&url, &schema.name),
        PostgresStore::connect_in_schema(&url, &schema.name),
    );
    let stores = [a.unwrap(), b.unwrap(), c.unwrap()];
    for store in &stores {
        testing::ping(store).await;
        assert_eq!(migrations(store).await.len(), migration_versions().len());
    }
    // They share the schema: what one writes the others read.
    let (owner, group) = testing::setup_group(&stores[0]).await;
    assert_eq!(stores[2].group(&group.id).await.unwrap(), Some(group));
    assert_eq!(stores[1].user(&owner.id).await.unwrap(), Some(owner));
    for store in stores {
        store.close().await;
    }
}

/// The tables live in the schema asked for, not in `public`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_live_in_their_schema() {
    let Some(url) = server_url() else { return };
    let schema = Schema::fresh(&url);
    let store = schema.open().await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = $1 ORDER BY table_name",
    )
    .bind(&schema.name)
    .fetch_all(store.pool())
    .await
    .unwrap();
    for table in [
        "member_keys",
        "usage_records",
        "credential_leases",
        "_sqlx_migrations",
    ] {
        assert!(tables.iter().any(|t| t == table), "{table} in {tables:?}");
    }
    let current: String = sqlx::query_scalar("SELECT current_schema()::text")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(current, schema.name);
    store.close().await;
}

/// The store's `Debug` output (logged by some callers) leaves the
/// password out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_output_hides_the_password() {
    let Some(url) = server_url() else { return };
    // A server that does not ask for passwords (trust) ignores this one;
    // one that does would refuse it, and then there is nothing to print.
    let Some(with_password) = with_password(&url, "not-the-real-pw-4711") else {
        println!("skipped: the test URL already has a password");
        return;
    };
    let schema = Schema::fresh(&url);
    let Ok(store) = PostgresStore::connect_in_schema(&with_password, &schema.name).await else {
        println!("skipped: the server wants a real password");
        return;
    };
    let shown = format!("{store:?} {:?}", store.pool());
    assert!(!shown.contains("4711"), "{shown}");
    store.close().await;
}

/// `url` with `password` added to its user, when it names a user but no
/// password.
fn with_password(url: &str, password: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let (user, host) = rest.split_once('@')?;
    if user.contains(':') || user.contains('/') {
        return None;
    }
    Some(format!("{scheme}://{user}:{password}@{host}"))
}

/// Open errors: a bad URL, a refused connection, another database's URL,
/// a bad schema name. None needs a server; none shows the password.
#[tokio::test]
async fn open_errors_hide_the_password() {
    const SECRET: &str = "s3cr3t-hunter2";
    let shown = |err: &PostgresOpenError| {
        let mut text = format!("{err} {err:?}");
        let mut source = std::error::Error::source(err);
        while let Some(s) = source {
            text.push_str(&format!(" {s} {s:?}"));
            source = s.source();
        }
        text
    };

    let err = PostgresStore::connect(&format!("postgres://u:{SECRET}@localhost:notaport/db"))
        .await
        .unwrap_err();
    assert!(matches!(err, PostgresOpenError::Url(_)), "{err:?}");
    assert!(!shown(&err).contains(SECRET), "{}", shown(&err));

    // Port 1 on this machine: nothing listens there.
    let refused = format!("postgres://aicarpool:{SECRET}@127.0.0.1:1/aicarpool");
    for err in [
        PostgresStore::connect(&refused).await.unwrap_err(),
        PostgresStore::connect_in_schema(&refused, "aicarpool")
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(err, PostgresOpenError::Connect(_)), "{err:?}");
        assert!(!shown(&err).contains(SECRET), "{}", shown(&err));
    }

    let err = PostgresStore::connect(&format!("mysql://root:{SECRET}@db/aicarpool"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PostgresOpenError::Scheme(ref s) if s == "mysql"),
        "{err:?}"
    );
    assert!(!shown(&err).contains(SECRET));

    let err = PostgresStore::connect_in_schema(&refused, "Robert'); DROP TABLE users;--")
        .await
        .unwrap_err();
    assert!(matches!(err, PostgresOpenError::Schema(_)), "{err:?}");
    assert!(!shown(&err).contains(SECRET));
}

/// A server that accepts the connection and never answers fails the start
/// after the connect timeout instead of hanging it. Needs no database.
#[tokio::test]
async fn a_silent_server_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepted sockets are held open, unanswered, for the test's life.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let url = format!("postgres://aicarpool:pw@127.0.0.1:{port}/aicarpool");
    let started = std::time::Instant::now();
    let err = PostgresStore::connect(&url).await.unwrap_err();
    assert!(matches!(err, PostgresOpenError::Timeout(_)), "{err:?}");
    assert!(
        err.to_string().contains("did not answer within 10 s"),
        "{err}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    silent.abort();
}
