//! The zoo's HTTP client (feature `hub`): one GET into a temporary file, hashed on the way (sha256
//! and MD5), retried after server errors, failed connections and bodies cut short, with a progress
//! bar. Used for weights from the hub, third-party checkpoints ([`crate::weights`]) and the data
//! set archives ([`crate::data_fetch`]); each caller checks the hashes before anything is renamed
//! into place.

use std::path::Path;

use md5::Md5;
use sha2::{Digest, Sha256};

use crate::error::ZooError;

/// Attempts per download: the first and two retries, after a server error (5xx, 429), a failed
/// connection or a body cut short; other answers (404, 403, …) are final.
pub const DOWNLOAD_ATTEMPTS: usize = 3;

/// What [`http_download`] fetched: a temporary file (removed when dropped) and its hashes.
pub(crate) struct Downloaded {
    pub file: tempfile::NamedTempFile,
    /// Hex sha256 of the body.
    pub sha256: String,
    /// Hex MD5 of the body (what MNIST's and CIFAR-10's publishers list).
    pub md5: String,
    pub size: u64,
    /// The `x-repo-commit` header of a hub answer.
    pub commit: Option<String>,
}

/// One GET: where from, into which directory, and how to word a 404.
pub(crate) struct Get<'a> {
    pub url: &'a str,
    /// The temporary file is made here (beside where the result will be renamed to).
    pub dir: &'a Path,
    /// A bearer token (`HF_TOKEN`), for the hub only.
    pub token: Option<&'a str>,
    /// Show a progress bar (bytes, rate, ETA) on stderr.
    pub progress: bool,
    /// What a 404 means here and what to do about it.
    pub not_found_hint: &'a str,
    /// What the caller kept (nothing) and what to do, after the last attempt failed.
    pub gave_up_hint: &'a str,
}

/// GETs `get.url` into a temporary file in `get.dir`, hashing it on the way; retries as
/// [`DOWNLOAD_ATTEMPTS`] says, waiting 0.2 s, then 0.4 s.
pub(crate) fn http_download(get: &Get) -> Result<Downloaded, ZooError> {
    let url = get.url;
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(std::time::Duration::from_secs(15))
        .timeout_read(std::time::Duration::from_secs(60))
        .user_agent(concat!("pixel-zoo/", env!("CARGO_PKG_VERSION")))
        .build();
    let mut last = String::new();
    for attempt in 1..=DOWNLOAD_ATTEMPTS {
        if attempt > 1 {
            tracing::warn!(%url, attempt, "{last}; retrying");
            std::thread::sleep(std::time::Duration::from_millis(200 << (attempt - 2)));
        }
        tracing::info!(%url, attempt, "downloading");
        let mut request = agent.get(url);
        if let Some(t) = get.token {
            request = request.set("authorization", &format!("Bearer {t}"));
        }
        let response = match request.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                let what = format!("HTTP {code} {}", r.status_text());
                if code >= 500 || code == 429 {
                    last = format!("the server answered {what}");
                    continue;
                }
                let hint = match code {
                    404 => get.not_found_hint,
                    401 | 403 => "access denied: the file may be private or gated (for the hub, set HF_TOKEN)",
                    _ => "check the URL",
                };
                return Err(ZooError::Download {
                    url: url.to_string(),
                    msg: format!("the server answered {what}: {hint}"),
                });
            }
            Err(e) => {
                last = format!("no answer ({e})");
                continue;
            }
        };
        let commit = response.header("x-repo-commit").map(str::to_string);
        let expected: Option<u64> = response.header("content-length").and_then(|v| v.parse().ok());
        let mut file = tempfile::Builder::new()
            .prefix(".download-")
            .tempfile_in(get.dir)
            .map_err(|source| ZooError::Io { path: get.dir.to_path_buf(), source })?;
        let bar = progress_bar(get.progress, url, expected);
        let (mut sha, mut md5) = (Sha256::new(), Md5::new());
        let mut reader = response.into_reader();
        let mut buf = vec![0u8; 1 << 16];
        let mut size = 0u64;
        let body = loop {
            match std::io::Read::read(&mut reader, &mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    sha.update(&buf[..n]);
                    md5.update(&buf[..n]);
                    size += n as u64;
                    bar.inc(n as u64);
                    if let Err(source) = std::io::Write::write_all(&mut file, &buf[..n]) {
                        bar.abandon();
                        return Err(ZooError::Io { path: file.path().to_path_buf(), source });
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        bar.finish_and_clear();
        match (body, expected) {
            (Err(e), _) => {
                let of = expected.map_or(String::new(), |n| format!(" of {n}"));
                last = format!("the connection broke after {size}{of} bytes ({e})");
                continue;
            }
            (Ok(()), Some(n)) if n != size => {
                last = format!("the body ended after {size} of {n} bytes");
                continue;
            }
            (Ok(()), _) => {}
        }
        file.as_file().sync_all().map_err(|source| ZooError::Io { path: file.path().to_path_buf(), source })?;
        return Ok(Downloaded {
            file,
            sha256: hex::encode(sha.finalize()),
            md5: hex::encode(md5.finalize()),
            size,
            commit,
        });
    }
    Err(ZooError::Download {
        url: url.to_string(),
        msg: format!("{last} ({DOWNLOAD_ATTEMPTS} attempts); {}", get.gave_up_hint),
    })
}

/// A byte progress bar on stderr when `show`, hidden otherwise.
fn progress_bar(show: bool, url: &str, len: Option<u64>) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let name = url.rsplit('/').next().unwrap_or(url).to_string();
    let bar = match len {
        Some(n) => indicatif::ProgressBar::new(n).with_style(
            indicatif::ProgressStyle::with_template(
                "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} [{elapsed_precise}<{eta_precise}]",
            )
            .expect("valid template"),
        ),
        None => indicatif::ProgressBar::new_spinner().with_style(
            indicatif::ProgressStyle::with_template("{msg} {spinner} {bytes} {bytes_per_sec}").expect("valid template"),
        ),
    };
    bar.set_message(format!("downloading {name}"));
    bar
}
