//! The archive's connection: `--archive-url` (a libpq URL), the password from a file or `CREW_ARCHIVE_PASSWORD`
//! (never the command line), TLS when the URL asks for it (`sslmode=require`), and a small pool.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::path::PathBuf;
use tokio_postgres::config::SslMode;

/// Connections the archive keeps at most.
pub const POOL_SIZE: usize = 4;

/// What connecting needs (its `Debug` never shows the password).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ArchiveConnection {
    /// The URL (`postgres://user@host:5432/db?sslmode=require`).
    pub url: String,
    /// The password, read from its file or environment variable.
    pub password: Option<String>,
    /// PEM file of the CA that signs the database's certificate (default: the public web roots).
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for ArchiveConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = self
            .url
            .parse::<tokio_postgres::Config>()
            .map(|c| {
                format!(
                    "{:?}@{:?}/{:?}",
                    c.get_user(),
                    c.get_hosts(),
                    c.get_dbname()
                )
            })
            .unwrap_or_else(|_| "(unparsable)".into());
        f.debug_struct("ArchiveConnection")
            .field("url", &url)
            .field("password", &self.password.as_ref().map(|_| "(redacted)"))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// Why the archive cannot be configured (a start-up error).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL does not parse.
    #[error("--archive-url: {0}")]
    Url(tokio_postgres::Error),
    /// The CA file cannot be read.
    #[error("--archive-ca-file {0}: {1}")]
    Ca(PathBuf, String),
    /// The pool cannot be built.
    #[error("archive connection pool: {0}")]
    Pool(String),
}

/// A pool of [`POOL_SIZE`] for `connection` (connections are opened when first used: a database that is down does
/// not stop the operator).
pub fn pool(connection: &ArchiveConnection) -> Result<Pool, ConnectError> {
    pool_of(connection, POOL_SIZE)
}

/// A pool of at most `size` connections for `connection`.
pub fn pool_of(connection: &ArchiveConnection, size: usize) -> Result<Pool, ConnectError> {
    let mut config: tokio_postgres::Config = connection.url.parse().map_err(ConnectError::Url)?;
    if let Some(password) = &connection.password {
        config.password(password.as_bytes());
    }
    config.application_name("crew-operator");
    // The server ends any statement after 30 s too: a read or write given up by the operator's own timeout does not
    // keep its connection busy.
    config.options("-c statement_timeout=30000");
    config.connect_timeout(std::time::Duration::from_secs(10));
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = if config.get_ssl_mode() == SslMode::Disable {
        Manager::from_config(config, tokio_postgres::NoTls, manager_config)
    } else {
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(connection)?);
        Manager::from_config(config, tls, manager_config)
    };
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(std::time::Duration::from_secs(10)))
        .create_timeout(Some(std::time::Duration::from_secs(15)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| ConnectError::Pool(e.to_string()))
}

fn tls_config(connection: &ArchiveConnection) -> Result<rustls::ClientConfig, ConnectError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match &connection.ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| ConnectError::Ca(path.clone(), e.to_string()))?;
            for cert in certs {
                let cert = cert.map_err(|e| ConnectError::Ca(path.clone(), e.to_string()))?;
                roots
                    .add(cert)
                    .map_err(|e| ConnectError::Ca(path.clone(), e.to_string()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|builder| builder.with_root_certificates(roots).with_no_client_auth())
        .map_err(|e| ConnectError::Pool(e.to_string()))
}
