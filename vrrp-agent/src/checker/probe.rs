//! One attempt of each checker type, against the real server's (or `connect_ip`'s) address.
//! Every attempt is bounded by `connect_timeout`; errors come back as a short reason for the
//! status output and the log.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use md5::{Digest as _, Md5};
use tokio::{
    io::{
        AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _,
        BufReader,
    },
    net::{TcpSocket, TcpStream, UdpSocket},
    time::timeout,
};

use crate::{
    config::{CheckKind, Checker, Url},
    exec::{self, Job, Outcome},
};

/// What one attempt found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// Healthy; `MISC_CHECK` with `misc_dynamic` may also set the weight.
    Up(Option<u32>),
    /// Not healthy, and why.
    Down(String),
}

/// Runs one attempt of `checker`.
pub async fn probe(checker: &Checker, default_user: Option<&(String, Option<String>)>) -> Probe {
    let limit = Duration::from_millis(u64::from(checker.connect_timeout_ms));
    let target = SocketAddr::new(checker.connect_ip, checker.connect_port);
    let result = match &checker.kind {
        CheckKind::Misc {
            script,
            timeout_ms,
            dynamic,
        } => return misc(script, *timeout_ms, *dynamic, default_user).await,
        CheckKind::Tcp => timeout(limit, connect(checker, target))
            .await
            .map(|r| r.map(|_| None)),
        CheckKind::Http {
            tls,
            sni,
            protocol,
            urls,
            virtualhost,
        } => {
            let http = Http {
                tls: *tls,
                sni: *sni,
                protocol,
                virtualhost: virtualhost.as_deref(),
            };
            timeout(limit, http.check(checker, target, urls)).await
        }
        CheckKind::Smtp { helo } => timeout(limit, smtp(checker, target, helo.as_deref())).await,
        CheckKind::Dns { qtype, name } => timeout(limit, dns(checker, target, *qtype, name)).await,
        CheckKind::Udp {
            payload,
            require_reply,
            reply_length,
        } => {
            return udp(
                checker,
                target,
                payload.as_deref(),
                require_reply.as_deref(),
                *reply_length,
                limit,
            )
            .await;
        }
        CheckKind::Ping => timeout(
            limit,
            super::ping::ping(checker.connect_ip, checker.bind_if.as_deref()),
        )
        .await
        .map(|r| r.map(|_| None)),
    };
    match result {
        Ok(Ok(weight)) => Probe::Up(weight),
        Ok(Err(reason)) => Probe::Down(reason),
        Err(_) => Probe::Down(format!("no answer within {limit:?}")),
    }
}

/// A socket bound as the checker says (`bindto`, `bind_port`, `bind_if`, `fwmark`).
fn socket(
    checker: &Checker,
    target: SocketAddr,
    kind: socket2::Type,
) -> Result<socket2::Socket, String> {
    let domain = socket2::Domain::for_address(target);
    let protocol = if kind == socket2::Type::STREAM {
        socket2::Protocol::TCP
    } else {
        socket2::Protocol::UDP
    };
    let s = socket2::Socket::new(domain, kind, Some(protocol)).map_err(|e| e.to_string())?;
    s.set_nonblocking(true).map_err(|e| e.to_string())?;
    if let Some(dev) = &checker.bind_if {
        s.bind_device(Some(dev.as_bytes()))
            .map_err(|e| format!("bind_if {dev}: {e}"))?;
    }
    if let Some(mark) = checker.fwmark {
        s.set_mark(mark)
            .map_err(|e| format!("fwmark {mark}: {e}"))?;
    }
    if checker.bindto.is_some() || checker.bind_port.is_some() {
        let ip = checker.bindto.unwrap_or(match target.ip() {
            IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        });
        let local = SocketAddr::new(ip, checker.bind_port.unwrap_or(0));
        s.bind(&local.into())
            .map_err(|e| format!("bindto {local}: {e}"))?;
    }
    Ok(s)
}

async fn connect(checker: &Checker, target: SocketAddr) -> Result<TcpStream, String> {
    let s = socket(checker, target, socket2::Type::STREAM)?;
    let socket = TcpSocket::from_std_stream(std::net::TcpStream::from(s));
    socket
        .connect(target)
        .await
        .map_err(|e| format!("connect to {target}: {e}"))
}

/// `HTTP_GET` / `SSL_GET` settings for one check.
struct Http<'a> {
    tls: bool,
    sni: bool,
    protocol: &'a str,
    virtualhost: Option<&'a str>,
}

/// The largest body read (a digest of more is a misconfiguration, not a health check).
const MAX_BODY: usize = 16 << 20;

impl Http<'_> {
    /// Every URL must answer as configured.
    async fn check(
        &self,
        checker: &Checker,
        target: SocketAddr,
        urls: &[Url],
    ) -> Result<Option<u32>, String> {
        for url in urls {
            let host = url.virtualhost.as_deref().or(self.virtualhost);
            let stream = connect(checker, target).await?;
            let response = if self.tls {
                let name = match host.filter(|_| self.sni) {
                    Some(h) => rustls::pki_types::ServerName::try_from(h.to_string())
                        .map_err(|e| format!("virtualhost {h}: {e}"))?,
                    None => rustls::pki_types::ServerName::IpAddress(target.ip().into()),
                };
                let tls = tokio_rustls::TlsConnector::from(tls_config()?)
                    .connect(name, stream)
                    .await
                    .map_err(|e| format!("TLS handshake: {e}"))?;
                self.exchange(tls, target, url, host).await?
            } else {
                self.exchange(stream, target, url, host).await?
            };
            let (status, body) = parse_response(&response)?;
            if !url.status.iter().any(|(a, b)| (*a..=*b).contains(&status)) {
                return Err(format!("{} answered status {status}", url.path));
            }
            if let Some(want) = &url.digest {
                let got = hex(&Md5::digest(&body));
                if &got != want {
                    return Err(format!("{}: body MD5 {got}, expected {want}", url.path));
                }
            }
        }
        Ok(None)
    }

    /// Sends the request and reads the whole response (the server closes).
    async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut stream: S,
        target: SocketAddr,
        url: &Url,
        host: Option<&str>,
    ) -> Result<Vec<u8>, String> {
        let version = if self.protocol == "1.1" { "1.1" } else { "1.0" };
        let host = host.map_or_else(|| target.to_string(), str::to_string);
        let close = if self.protocol == "1.0" {
            ""
        } else {
            "Connection: close\r\n"
        };
        let request = format!(
            "GET {} HTTP/{version}\r\nUser-Agent: KeepAliveClient\r\nHost: {host}\r\n{close}\r\n",
            url.path
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("sending the request: {e}"))?;
        let mut response = Vec::new();
        let read = (&mut stream)
            .take(MAX_BODY as u64 + 65_536)
            .read_to_end(&mut response)
            .await;
        // A TLS peer that closes without close_notify still sent a whole response.
        if let Err(e) = read
            && response.is_empty()
        {
            return Err(format!("reading the response: {e}"));
        }
        Ok(response)
    }
}

/// The status code and the (de-chunked) body of an HTTP response.
pub fn parse_response(response: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no complete HTTP header in the response")?;
    let head = String::from_utf8_lossy(&response[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .filter(|_| status_line.starts_with("HTTP/"))
        .ok_or_else(|| format!("not an HTTP status line: {status_line:?}"))?;
    let chunked = lines.any(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("transfer-encoding:")
            .is_some_and(|v| v.trim() == "chunked")
    });
    let body = &response[end + 4..];
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok((status, body))
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunked body")?;
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size || out.len() + size > MAX_BODY {
            return Err("truncated chunked body".into());
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or_default();
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// keepalived's SSL_GET without an `SSL` block: any certificate is accepted (the check is
/// whether the service answers, not who it is).
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, String>> =
        std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map(|b| {
                    Arc::new(
                        b.dangerous()
                            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                            .with_no_client_auth(),
                    )
                })
                .map_err(|e| format!("TLS set-up: {e}"))
        })
        .clone()
}

#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `SMTP_CHECK`: a 220 greeting, then 250 to HELO (and a polite QUIT).
async fn smtp(
    checker: &Checker,
    target: SocketAddr,
    helo: Option<&str>,
) -> Result<Option<u32>, String> {
    let stream = connect(checker, target).await?;
    let mut stream = BufReader::new(stream);
    let greeting = smtp_reply(&mut stream).await?;
    if greeting != 220 {
        return Err(format!("SMTP greeting {greeting}, expected 220"));
    }
    let name = helo.map_or_else(crate::daemon::host_name, str::to_string);
    stream
        .get_mut()
        .write_all(format!("HELO {name}\r\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let answer = smtp_reply(&mut stream).await?;
    let _ = stream.get_mut().write_all(b"QUIT\r\n").await;
    if answer != 250 {
        return Err(format!("SMTP HELO answered {answer}, expected 250"));
    }
    Ok(None)
}

/// Reads one (possibly multi-line) SMTP reply; returns its code.
async fn smtp_reply<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> Result<u16, String> {
    loop {
        let mut line = String::new();
        let n = r.read_line(&mut line).await.map_err(|e| e.to_string())?;
        if n == 0 || line.len() > 4096 {
            return Err("the SMTP server closed the connection".into());
        }
        let (code, more) = smtp_line(&line)?;
        if !more {
            return Ok(code);
        }
    }
}

/// One line of an SMTP reply: its code, and whether more lines follow (`250-...`).
pub fn smtp_line(line: &str) -> Result<(u16, bool), String> {
    let code = line
        .get(..3)
        .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an SMTP reply: {line:?}"))?;
    Ok((code, line.as_bytes().get(3) == Some(&b'-')))
}

/// `DNS_CHECK`: a query over UDP must be answered (same id, a response, RCODE NOERROR, at
/// least one answer).
async fn dns(
    checker: &Checker,
    target: SocketAddr,
    qtype: u16,
    name: &str,
) -> Result<Option<u32>, String> {
    let socket = udp_socket(checker, target).await?;
    let id: u16 = rand_u16();
    let query = dns_query(id, qtype, name);
    socket
        .send(&query)
        .await
        .map_err(|e| format!("sending the query: {e}"))?;
    let mut buf = [0u8; 4096];
    loop {
        let n = socket
            .recv(&mut buf)
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        if let Some(verdict) = dns_verdict(&buf[..n], id, name) {
            return verdict.map(|()| None);
        }
    }
}

/// What a datagram says about query `id`: `None` when it is not the reply to it (another
/// id, too short), else whether it answers (a response, NOERROR, at least one answer).
pub fn dns_verdict(reply: &[u8], id: u16, name: &str) -> Option<Result<(), String>> {
    if reply.len() < 12 || u16::from_be_bytes([reply[0], reply[1]]) != id {
        return None;
    }
    Some(if reply[2] & 0x80 == 0 {
        Err("the reply is not a DNS response".into())
    } else if reply[3] & 0x0f != 0 {
        Err(format!("DNS RCODE {}", reply[3] & 0x0f))
    } else if u16::from_be_bytes([reply[6], reply[7]]) == 0 {
        Err(format!("no answer for {name}"))
    } else {
        Ok(())
    })
}

/// A DNS query with recursion desired.
pub fn dns_query(id: u16, qtype: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let label = &label.as_bytes()[..label.len().min(63)];
        q.push(label.len() as u8);
        q.extend_from_slice(label);
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

fn rand_u16() -> u16 {
    let mut b = [0u8; 2];
    // SAFETY: getrandom writes at most the buffer's length.
    unsafe { libc::getrandom(b.as_mut_ptr().cast(), 2, 0) };
    u16::from_ne_bytes(b)
}

async fn udp_socket(checker: &Checker, target: SocketAddr) -> Result<UdpSocket, String> {
    let s = socket(checker, target, socket2::Type::DGRAM)?;
    let socket = UdpSocket::from_std(std::net::UdpSocket::from(s)).map_err(|e| e.to_string())?;
    socket.connect(target).await.map_err(|e| e.to_string())?;
    Ok(socket)
}

/// `UDP_CHECK`: without `require_reply`, healthy unless an ICMP error comes back within the
/// timeout; with it, a reply of the right length matching the pattern must come.
async fn udp(
    checker: &Checker,
    target: SocketAddr,
    payload: Option<&[u8]>,
    require: Option<&[Option<u8>]>,
    (min, max): (u32, u32),
    limit: Duration,
) -> Probe {
    let run = async {
        let socket = udp_socket(checker, target).await?;
        let random;
        let payload = match payload {
            Some(p) => p,
            None => {
                random = rand_u16().to_be_bytes();
                &random[..]
            }
        };
        socket
            .send(payload)
            .await
            .map_err(|e| format!("sending: {e}"))?;
        let mut buf = [0u8; 65_536];
        match timeout(limit, socket.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                let reply = &buf[..n];
                if let Some(pattern) = require {
                    if (n as u32) < min || (n as u32) > max {
                        return Err(format!("reply of {n} bytes, expected {min}-{max}"));
                    }
                    let matches = pattern
                        .iter()
                        .zip(reply)
                        .all(|(p, b)| p.is_none_or(|p| p == *b));
                    if !matches {
                        return Err("the reply does not match require_reply".into());
                    }
                }
                Ok(())
            }
            Ok(Err(e)) => Err(format!("{target}: {e}")),
            Err(_) if require.is_some() => Err(format!("no reply within {limit:?}")),
            Err(_) => Ok(()),
        }
    };
    match run.await {
        Ok(()) => Probe::Up(None),
        Err(e) => Probe::Down(e),
    }
}

/// `MISC_CHECK`: exit 0 healthy, 1 not; with `misc_dynamic` 2-255 healthy with weight
/// code - 2. A run past `misc_timeout` is killed (with its process group) and fails.
async fn misc(
    script: &crate::config::Script,
    timeout_ms: u32,
    dynamic: bool,
    default_user: Option<&(String, Option<String>)>,
) -> Probe {
    let ids = match exec::script_ids(
        script.user.as_deref(),
        script.group.as_deref(),
        default_user,
    ) {
        Ok(ids) => ids,
        Err(user) => return Probe::Down(format!("no such user or group {user}")),
    };
    let job = Job {
        argv: script.argv(),
        ids,
    };
    match exec::run(&job, Duration::from_millis(u64::from(timeout_ms))).await {
        Outcome::Exited(0) => Probe::Up(None),
        Outcome::Exited(code @ 2..=255) if dynamic => Probe::Up(Some(code as u32 - 2)),
        Outcome::Exited(code) => Probe::Down(format!("exit status {code}")),
        Outcome::TimedOut => Probe::Down(format!("killed after misc_timeout {timeout_ms} ms")),
        Outcome::NotStarted => Probe::Down("the script did not start".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_parse_with_and_without_chunks() {
        let plain = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello";
        assert_eq!(parse_response(plain), Ok((200, b"hello".to_vec())));
        let chunked = b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked), Ok((500, b"hello world".to_vec())));
        assert!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.0 200 OK\r\n").is_err());
    }

    #[test]
    fn dns_queries_are_well_formed() {
        let q = dns_query(0x1234, 1, "example.com.");
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[12..25], b"\x07example\x03com\x00");
        assert_eq!(&q[25..], &[0, 1, 0, 1]);
        assert_eq!(&dns_query(1, 6, ".")[12..], &[0, 0, 6, 0, 1]);
    }
}
