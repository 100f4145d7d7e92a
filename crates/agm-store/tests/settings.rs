//! Settings changed from two processes at once (the CLI beside a running server) lose
//! no update: `Store::update_setting` reads and writes in one transaction.

use agm_store::{KeyStore, Store};
use serde_json::{Value, json};

fn increment(value: Option<Value>) -> Result<Option<Value>, agm_store::StoreError> {
    let n = value.and_then(|v| v.as_u64()).unwrap_or(0);
    Ok(Some(json!(n + 1)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_updates_from_two_connections_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Two stores on one file: two SQLite connections, as two processes have.
    let server = Store::open_sqlite_with(dir.path(), KeyStore::File)
        .await
        .unwrap();
    let cli = Store::open_sqlite_with(dir.path(), KeyStore::File)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = if i % 2 == 0 {
            server.clone()
        } else {
            cli.clone()
        };
        tasks.push(tokio::spawn(async move {
            store.update_setting("counter", increment).await.unwrap()
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        server.get_setting("counter").await.unwrap(),
        Some(json!(40))
    );
}
