//! Who may use the dashboard. It acts with the user's kubeconfig credentials, so the port alone must grant
//! nothing:
//! - a **link token** (256 random bits) is in the link `kubectl crew dashboard` opens (through a private file, so it
//!   is never on a command line) or prints. It works **once**: that request gets a session cookie (another random
//!   value; `HttpOnly; SameSite=Strict`) and a redirect that drops the token from the address bar, so a link found
//!   later in a history, a scrollback or a log opens nothing. Every other request needs the cookie. Cookies are
//!   shared by every port of a host, so it is named by port.
//! - a **Host check** on a loopback address: a page whose name was rebound to 127.0.0.1 is refused.
//! - **Fetch metadata**: a request a browser marks as coming from another site or another port of this host
//!   (`Sec-Fetch-Site: same-site` or `cross-site`) is refused, even with the cookie.
//! - every **write** also needs the `X-Crew-Csrf` header (a third random value, only in the page the cookie
//!   opened) and, when the browser sends one, an `Origin` of this server.
//!
//! Tokens are compared by their SHA-256 digests, so the time a comparison takes says nothing about the token.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// The secrets of one dashboard process.
#[derive(Clone)]
pub struct Session {
    /// The link's token until it is redeemed (then `None`).
    token: Arc<Mutex<Option<String>>>,
    /// The link, kept to print it (the token inside works once).
    link: String,
    cookie: String,
    csrf: String,
    address: SocketAddr,
}

/// The header a write must carry.
pub const CSRF_HEADER: &str = "x-crew-csrf";

impl Session {
    /// New random secrets for a server at `address` (its real port, once bound).
    pub fn new(address: SocketAddr) -> std::io::Result<Session> {
        let token = random_hex()?;
        Ok(Session {
            link: format!("http://{address}/?token={token}"),
            token: Arc::new(Mutex::new(Some(token))),
            cookie: random_hex()?,
            csrf: random_hex()?,
            address,
        })
    }

    /// The link that opens a session (once).
    pub fn link(&self) -> &str {
        &self.link
    }

    /// Whether `given` is the link's token, not yet used; using it makes it spent.
    fn redeem(&self, given: &str) -> bool {
        let Ok(mut token) = self.token.lock() else {
            return false;
        };
        match token.as_deref() {
            Some(secret) if same(given, secret) => {
                *token = None;
                true
            }
            _ => false,
        }
    }

    #[cfg(test)]
    pub fn cookie_header(&self) -> String {
        format!("{}={}", self.cookie_name(), self.cookie)
    }

    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    fn cookie_name(&self) -> String {
        format!("crew_dashboard_{}", self.address.port())
    }

    /// Whether `host` (the request's Host header) names this server. On a loopback address only the loopback
    /// names are accepted; on any other address (the user chose to expose it) the token alone guards.
    fn host_allowed(&self, host: Option<&str>) -> bool {
        if !self.address.ip().is_loopback() {
            return true;
        }
        let port = self.address.port();
        let Some(host) = host else { return false };
        [
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
            self.address.to_string(),
        ]
        .iter()
        .any(|allowed| allowed.eq_ignore_ascii_case(host))
    }

    fn has_cookie(&self, headers: &HeaderMap) -> bool {
        cookies(headers).any(|(k, v)| k == self.cookie_name() && same(v, &self.cookie))
    }
}

/// The `name=value` pairs of a request's `Cookie` headers.
pub fn cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
}

fn same(given: &str, secret: &str) -> bool {
    Sha256::digest(given.as_bytes()) == Sha256::digest(secret.as_bytes())
}

fn random_hex() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The token in `?token=…`, if any.
fn token_in(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| v)
}

/// The middleware: refuses what the session does not allow, and adds the headers every answer carries.
pub async fn check(State(session): State<Session>, request: Request, next: Next) -> Response {
    let mut response = match verdict(&session, &request) {
        Verdict::Pass => next.run(request).await,
        Verdict::Open => open_session(&session),
        Verdict::Refuse(status, message) => refuse(status, message, request.uri().path()),
    };
    secure(&mut response);
    response
}

/// The headers every answer carries.
pub fn secure(response: &mut Response) {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; style-src 'self'; connect-src 'self'; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            http::HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// Why a request the browser marks as coming from another site, or another port of this host, is refused (fetch
/// metadata: only this page itself, or the user typing or following a link from outside a page, may ask).
fn foreign_reason(headers: &HeaderMap) -> Option<&'static str> {
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    fetch_site
        .is_some_and(|site| !matches!(site, "same-origin" | "none"))
        .then_some("requests from other sites (or other ports of this host) are refused")
}

pub fn foreign(headers: &HeaderMap) -> Option<super::failure::Failure> {
    foreign_reason(headers).map(|m| super::failure::Failure::new(StatusCode::FORBIDDEN, m))
}

/// Why a write (anything but GET and HEAD) is refused: it needs the page's CSRF token in [`CSRF_HEADER`] and, when
/// the browser sends one, an `Origin` of this server (plain or behind TLS).
fn write_reason(request: &Request, csrf: &str) -> Option<&'static str> {
    if request.method() == Method::GET || request.method() == Method::HEAD {
        return None;
    }
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let csrf_ok = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| same(v, csrf));
    let origin_ok = match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(origin) => origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|o| host.is_some_and(|h| h.eq_ignore_ascii_case(o))),
    };
    (!csrf_ok || !origin_ok)
        .then_some("a write needs the page's CSRF token and this server's origin")
}

pub fn unsafe_write(request: &Request, csrf: &str) -> Option<super::failure::Failure> {
    write_reason(request, csrf).map(|m| super::failure::Failure::new(StatusCode::FORBIDDEN, m))
}

#[derive(Debug, PartialEq)]
enum Verdict {
    Pass,
    /// The link with the right token: set the cookie, redirect.
    Open,
    Refuse(StatusCode, &'static str),
}

fn verdict(session: &Session, request: &Request) -> Verdict {
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if !session.host_allowed(host) {
        return Verdict::Refuse(
            StatusCode::FORBIDDEN,
            "this dashboard answers only to its own address (127.0.0.1 or localhost)",
        );
    }
    if let Some(why) = foreign_reason(headers) {
        return Verdict::Refuse(StatusCode::FORBIDDEN, why);
    }
    if request.uri().path() == "/"
        && token_in(request.uri().query()).is_some_and(|t| session.redeem(t))
    {
        return Verdict::Open;
    }
    if !session.has_cookie(headers) {
        return Verdict::Refuse(
            StatusCode::UNAUTHORIZED,
            "no dashboard session: open the link of a running `kubectl crew dashboard` (each link works once)",
        );
    }
    if let Some(why) = write_reason(request, &session.csrf) {
        return Verdict::Refuse(StatusCode::FORBIDDEN, why);
    }
    Verdict::Pass
}

fn open_session(session: &Session) -> Response {
    let cookie = format!(
        "{}={}; Path=/; HttpOnly; SameSite=Strict",
        session.cookie_name(),
        session.cookie
    );
    let mut response = (StatusCode::SEE_OTHER, "").into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        headers.insert(header::SET_COOKIE, value);
    }
    headers.insert(header::LOCATION, HeaderValue::from_static("/"));
    response
}

fn refuse(status: StatusCode, message: &'static str, path: &str) -> Response {
    if path.starts_with("/api/") {
        super::failure::Failure::new(status, message).into_response()
    } else {
        (status, format!("{message}\n")).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn session() -> Session {
        Session::new("127.0.0.1:8765".parse().unwrap()).unwrap()
    }

    fn link_path(s: &Session) -> String {
        s.link()
            .trim_start_matches("http://127.0.0.1:8765")
            .to_string()
    }

    fn request(method: Method, uri: &str, headers: &[(&str, &str)]) -> Request {
        let mut builder = axum::http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(Body::empty()).unwrap()
    }

    #[test]
    fn the_link_opens_a_session_once_and_nothing_else_does() {
        let s = session();
        let host = ("host", "127.0.0.1:8765");
        let wrong = request(Method::GET, "/?token=00", &[host]);
        assert!(matches!(
            verdict(&s, &wrong),
            Verdict::Refuse(StatusCode::UNAUTHORIZED, _)
        ));
        assert_eq!(
            verdict(&s, &request(Method::GET, &link_path(&s), &[host])),
            Verdict::Open
        );
        // Spent: the same link found later in a history or a log opens nothing.
        let again = request(Method::GET, &link_path(&s), &[host]);
        assert!(matches!(
            verdict(&s, &again),
            Verdict::Refuse(StatusCode::UNAUTHORIZED, _)
        ));
        let api = request(Method::GET, "/api/runs", &[host]);
        assert!(matches!(
            verdict(&s, &api),
            Verdict::Refuse(StatusCode::UNAUTHORIZED, _)
        ));
        let cookie = format!("other=1; {}", s.cookie_header());
        let with = request(Method::GET, "/api/runs", &[host, ("cookie", &cookie)]);
        assert_eq!(verdict(&s, &with), Verdict::Pass);
        // The link's token is not the cookie, and another port's cookie is not this one's.
        let token = s.link().split("token=").nth(1).unwrap().to_string();
        let as_cookie = format!("crew_dashboard_8765={token}");
        let forged = request(Method::GET, "/api/runs", &[host, ("cookie", &as_cookie)]);
        assert!(matches!(
            verdict(&s, &forged),
            Verdict::Refuse(StatusCode::UNAUTHORIZED, _)
        ));
        let other_port = s.cookie_header().replace("8765", "9999");
        let other = request(Method::GET, "/api/runs", &[host, ("cookie", &other_port)]);
        assert!(matches!(
            verdict(&s, &other),
            Verdict::Refuse(StatusCode::UNAUTHORIZED, _)
        ));
    }

    #[test]
    fn a_rebound_host_name_is_refused_even_with_the_token() {
        let s = session();
        let rebound = request(
            Method::GET,
            &link_path(&s),
            &[("host", "evil.example:8765")],
        );
        assert!(matches!(
            verdict(&s, &rebound),
            Verdict::Refuse(StatusCode::FORBIDDEN, _)
        ));
        let bare = request(Method::GET, &link_path(&s), &[]);
        assert!(matches!(
            verdict(&s, &bare),
            Verdict::Refuse(StatusCode::FORBIDDEN, _)
        ));
        let localhost = request(Method::GET, &link_path(&s), &[("host", "localhost:8765")]);
        assert_eq!(verdict(&s, &localhost), Verdict::Open);
    }

    #[test]
    fn requests_from_another_site_or_port_are_refused_even_with_the_cookie() {
        let s = session();
        let cookie = s.cookie_header();
        for (site, allowed) in [
            ("same-origin", true),
            ("none", true),
            ("same-site", false),
            ("cross-site", false),
        ] {
            let r = request(
                Method::GET,
                "/api/runs",
                &[
                    ("host", "127.0.0.1:8765"),
                    ("cookie", &cookie),
                    ("sec-fetch-site", site),
                ],
            );
            assert_eq!(verdict(&s, &r) == Verdict::Pass, allowed, "{site}");
        }
    }

    #[test]
    fn a_write_needs_the_csrf_header_and_its_own_origin() {
        let s = session();
        let cookie = s.cookie_header();
        let base = [("host", "127.0.0.1:8765"), ("cookie", cookie.as_str())];
        let path = "/api/runs/a/b/cancel";
        let bare = request(Method::POST, path, &base);
        assert!(matches!(
            verdict(&s, &bare),
            Verdict::Refuse(StatusCode::FORBIDDEN, _)
        ));
        let mut good = base.to_vec();
        good.push((CSRF_HEADER, s.csrf.as_str()));
        assert_eq!(
            verdict(&s, &request(Method::POST, path, &good)),
            Verdict::Pass
        );
        let mut same_origin = good.clone();
        same_origin.push(("origin", "http://127.0.0.1:8765"));
        assert_eq!(
            verdict(&s, &request(Method::POST, path, &same_origin)),
            Verdict::Pass
        );
        let mut cross = good.clone();
        cross.push(("origin", "http://evil.example"));
        assert!(matches!(
            verdict(&s, &request(Method::POST, path, &cross)),
            Verdict::Refuse(StatusCode::FORBIDDEN, _)
        ));
    }

    #[test]
    fn sessions_are_random() {
        let (a, b) = (session(), session());
        assert_ne!(a.link(), b.link());
        assert_ne!(a.cookie, b.cookie);
        assert_ne!(a.csrf, b.csrf);
        assert_eq!(a.cookie.len(), 64);
    }
}
