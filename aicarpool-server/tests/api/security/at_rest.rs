//! Files, proxy passwords and sessions at rest.

use std::os::unix::fs::PermissionsExt;

use aicarpool_server::ServeConfig;

use crate::support::{self, ADMIN_TOKEN};

#[tokio::test]
async fn the_database_files_are_readable_by_their_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("aicarpool.db");
    let mut config = ServeConfig::for_tests(ADMIN_TOKEN);
    config.database_url = format!("sqlite://{}", db.display());
    let s = support::spawn_with(config).await;
    // Writes bring the WAL and shared-memory files into being.
    s.register("at-rest@example.com").await;
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", db.display());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{path} is {mode:o}");
    }
}
