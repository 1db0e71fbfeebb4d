//! The archive's schema, as numbered migrations applied at start (under an advisory lock, so replicas starting
//! together apply each once). A database whose schema is newer than this operator knows is refused, not written.

use tokio_postgres::Client;

/// The migrations, in order: (version, name, SQL).
pub const MIGRATIONS: &[(i32, &str, &str)] =
    &[(1, "archive", include_str!("migrations/0001_archive.sql"))];

/// Why the schema could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// The database said no.
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    /// The database was migrated by a newer operator.
    #[error(
        "the archive's schema is at version {found}, newer than this operator's {known}: upgrade the operator"
    )]
    Newer {
        /// The newest version applied.
        found: i32,
        /// The newest this operator knows.
        known: i32,
    },
}

/// Applies the migrations `client`'s database lacks; returns how many it applied.
pub async fn migrate(client: &mut Client) -> Result<usize, MigrationError> {
    let tx = client.transaction().await?;
    // One key for every crew-operator: concurrent starts wait for each other here.
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(7265720000001);
         CREATE TABLE IF NOT EXISTS crew_schema_migrations (
             version    integer     PRIMARY KEY,
             name       text        NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         );",
    )
    .await?;
    let applied: Vec<i32> = tx
        .query("SELECT version FROM crew_schema_migrations", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if let Some(found) = applied.iter().copied().max().filter(|v| *v > known) {
        return Err(MigrationError::Newer { found, known });
    }
    let mut count = 0;
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO crew_schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await?;
        count += 1;
    }
    tx.commit().await?;
    Ok(count)
}
