//! One delivery: a notification encoded as a CloudEvent (`crew_core::notify::cloudevent`), signed and
//! authenticated as its sink says, POSTed with the sink's timeout. A 2xx is an acknowledgement; anything else (an
//! error status, a refused connection, a timeout) is a failure the sink's retry policy handles.

use crew_api::sink::CrewSinkSpec;
use crew_core::notify::cloudevent::encode;
use crew_core::notify::events::Notification;
use hmac::{KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// The header carrying the body's HMAC-SHA256 (`sha256=<hex>`), when the sink signs.
pub const SIGNATURE_HEADER: &str = "x-crew-signature";
/// Longest part of a failing receiver's answer kept in the sink's status.
const MAX_ERROR_CHARS: usize = 256;

/// The HTTP client of every delivery (http and https, the system's trusted roots).
pub type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client for deliveries: https verified against the system's trust store, or Mozilla's roots where the system
/// has none (a distroless image).
pub fn http_client() -> HttpClient {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .unwrap_or_else(|error| {
            tracing::info!(%error, "no system trust store: verifying https sinks against Mozilla's roots");
            hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots()
        })
        .https_or_http()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(https)
}

/// The credentials a delivery uses, read from opted-in Secrets.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    /// `Authorization: Bearer` token.
    pub bearer_token: Option<String>,
    /// HMAC-SHA256 key.
    pub signing_key: Option<Vec<u8>>,
}

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The receiver answered, but not 2xx.
    #[error("the receiver answered {status}: {body}")]
    Refused {
        /// Its status code.
        status: u16,
        /// The start of its body.
        body: String,
    },
    /// No answer within the sink's timeout.
    #[error("no answer within {0} s")]
    Timeout(u32),
    /// The request could not be made (connection refused, TLS, DNS).
    #[error("cannot reach the receiver: {0}")]
    Transport(String),
    /// The notification or the request could not be built.
    #[error("cannot build the request: {0}")]
    Build(String),
}

/// The hex HMAC-SHA256 of `body` under `key`.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; kept total.
        Err(_) => return String::new(),
    };
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Delivers `notification` to the sink `spec` with `credentials`.
pub async fn deliver(
    http: &HttpClient,
    spec: &CrewSinkSpec,
    credentials: &Credentials,
    notification: &Notification,
) -> Result<(), DeliveryError> {
    let encoded =
        encode(notification, spec.mode).map_err(|e| DeliveryError::Build(e.to_string()))?;
    let mut request = http::Request::post(&spec.url);
    for (name, value) in &encoded.headers {
        request = request.header(name, value);
    }
    if let Some(token) = &credentials.bearer_token {
        request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if let Some(key) = &credentials.signing_key {
        request = request.header(
            SIGNATURE_HEADER,
            format!("sha256={}", signature(key, &encoded.body)),
        );
    }
    let request = request
        .header(
            http::header::USER_AGENT,
            concat!("crew-operator/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(Bytes::from(encoded.body)))
        .map_err(|e| DeliveryError::Build(e.to_string()))?;
    let timeout = Duration::from_secs(u64::from(spec.timeout_seconds.max(1)));
    let exchange = async {
        let response = http
            .request(request)
            .await
            .map_err(|e| DeliveryError::Transport(e.to_string()))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if status.is_success() {
            Ok(())
        } else {
            let text: String = String::from_utf8_lossy(&body)
                .chars()
                .take(MAX_ERROR_CHARS)
                .collect();
            Err(DeliveryError::Refused {
                status: status.as_u16(),
                body: text,
            })
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| DeliveryError::Timeout(spec.timeout_seconds))?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test case 2.
    #[test]
    fn signatures_are_hmac_sha256() {
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
