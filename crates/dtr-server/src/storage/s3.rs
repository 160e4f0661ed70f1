//! Just enough of S3 to try a configuration and to look objects up the way distribution's s3
//! driver stores them: list, put, get, head and delete objects, signed with AWS signature
//! version 4 (or version 2 when `v4auth` is false; unsigned without credentials). Path-style
//! addressing with `regionendpoint` (as the driver does), virtual-host style on AWS.

use std::time::SystemTime;

use data_encoding::HEXLOWER;
use ring::hmac;
use sha2::{Digest, Sha256};

use super::StorageConfig;

/// Why a request to the store failed, in the terms a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum S3Error {
    #[error("the endpoint {endpoint} is not reachable: {reason}")]
    Unreachable { endpoint: String, reason: String },
    #[error(
        "the certificate of {endpoint} is not trusted ({reason}): {}",
        super::NOT_TRUSTED_HINT
    )]
    NotTrusted { endpoint: String, reason: String },
    #[error("the bucket {bucket} does not exist ({code})")]
    NoBucket { bucket: String, code: String },
    #[error("the store refused the credentials ({code}: {message})")]
    Credentials { code: String, message: String },
    #[error("{operation} answered {status} {code}: {message}")]
    Refused {
        operation: String,
        status: u16,
        code: String,
        message: String,
    },
}

pub struct S3 {
    http: reqwest::Client,
    /// `scheme://host[:port]` of the endpoint.
    endpoint: String,
    /// Virtual-host style on AWS (the bucket is in the host name), path style otherwise.
    virtual_host: bool,
    bucket: String,
    region: String,
    access_key: Option<String>,
    secret_key: Option<String>,
    session_token: Option<String>,
    v4: bool,
    encrypt: bool,
    key_id: Option<String>,
    storage_class: Option<String>,
}

fn text(c: &StorageConfig, k: &str) -> Option<String> {
    c.params
        .get(k)
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn flag(c: &StorageConfig, k: &str, default: bool) -> bool {
    c.params.get(k).and_then(|v| v.as_bool()).unwrap_or(default)
}

/// RFC 3986 percent-encoding of one path segment or query component (AWS's `UriEncode`).
pub(crate) fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn sha256_hex(data: &[u8]) -> String {
    HEXLOWER.encode(&Sha256::digest(data))
}

fn hmac_sha256(key: &[u8], data: &str) -> Vec<u8> {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::sign(&k, data.as_bytes()).as_ref().to_vec()
}

/// `(amz date, date)`: `20261201T120000Z`, `20261201`.
fn amz_dates(now: SystemTime) -> (String, String) {
    let t = time::OffsetDateTime::from(now);
    let date = format!("{:04}{:02}{:02}", t.year(), u8::from(t.month()), t.day());
    (
        format!("{date}T{:02}{:02}{:02}Z", t.hour(), t.minute(), t.second()),
        date,
    )
}

/// An XML element's text (S3's error documents and listings are small and flat enough).
pub fn xml_value(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].to_string())
}

impl S3 {
    pub fn new(c: &StorageConfig, http: reqwest::Client) -> S3 {
        let region = text(c, "region").unwrap_or_else(|| "us-east-1".into());
        let bucket = text(c, "bucket").unwrap_or_default();
        let (endpoint, virtual_host) = match text(c, "regionendpoint") {
            Some(e) => {
                let e = if e.contains("://") {
                    e
                } else if flag(c, "secure", true) {
                    format!("https://{e}")
                } else {
                    format!("http://{e}")
                };
                (e.trim_end_matches('/').to_string(), false)
            }
            None => {
                let scheme = if flag(c, "secure", true) {
                    "https"
                } else {
                    "http"
                };
                (format!("{scheme}://s3.{region}.amazonaws.com"), true)
            }
        };
        S3 {
            http,
            endpoint,
            virtual_host,
            bucket,
            region,
            access_key: text(c, "accesskey"),
            secret_key: text(c, "secretkey"),
            session_token: text(c, "sessiontoken"),
            v4: flag(c, "v4auth", true),
            encrypt: flag(c, "encrypt", false),
            key_id: text(c, "keyid"),
            storage_class: text(c, "storageclass"),
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// `(url, host header, canonical path)` of `key` (empty: the bucket itself).
    fn location(&self, key: &str) -> (String, String, String) {
        let path = if self.virtual_host {
            format!("/{}", uri_encode(key, true))
        } else if key.is_empty() {
            format!("/{}/", uri_encode(&self.bucket, false))
        } else {
            format!(
                "/{}/{}",
                uri_encode(&self.bucket, false),
                uri_encode(key, true)
            )
        };
        let base = if self.virtual_host {
            self.endpoint
                .replacen("://", &format!("://{}.", self.bucket), 1)
        } else {
            self.endpoint.clone()
        };
        let host = base.split("://").nth(1).unwrap_or_default().to_string();
        (format!("{base}{path}"), host, path)
    }

    /// Sends one signed request: `(status, headers, body)`.
    async fn send(
        &self,
        method: reqwest::Method,
        key: &str,
        query: &[(&str, String)],
        body: Vec<u8>,
        extra: &[(&str, String)],
    ) -> Result<(u16, reqwest::header::HeaderMap, Vec<u8>), S3Error> {
        let (url, host, path) = self.location(key);
        let mut q: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
            .collect();
        q.sort();
        let query_string = q
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let url = if query_string.is_empty() {
            url
        } else {
            format!("{url}?{query_string}")
        };
        let mut headers: Vec<(String, String)> = extra
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        if let Some(t) = &self.session_token {
            headers.push(("x-amz-security-token".into(), t.clone()));
        }
        let now = SystemTime::now();
        let mut request = self.http.request(method.clone(), &url);
        match (&self.access_key, &self.secret_key) {
            (Some(access), Some(secret)) if self.v4 => {
                let (amz_date, date) = amz_dates(now);
                let payload = sha256_hex(&body);
                headers.push(("host".into(), host));
                headers.push(("x-amz-content-sha256".into(), payload.clone()));
                headers.push(("x-amz-date".into(), amz_date.clone()));
                headers.sort();
                let canonical_headers: String = headers
                    .iter()
                    .map(|(k, v)| format!("{k}:{}\n", v.trim()))
                    .collect();
                let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
                let signed = signed.join(";");
                let canonical = format!(
                    "{method}\n{path}\n{query_string}\n{canonical_headers}\n{signed}\n{payload}"
                );
                let scope = format!("{date}/{}/s3/aws4_request", self.region);
                let to_sign = format!(
                    "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
                    sha256_hex(canonical.as_bytes())
                );
                let k = hmac_sha256(format!("AWS4{secret}").as_bytes(), &date);
                let k = hmac_sha256(&k, &self.region);
                let k = hmac_sha256(&k, "s3");
                let k = hmac_sha256(&k, "aws4_request");
                let signature = HEXLOWER.encode(&hmac_sha256(&k, &to_sign));
                headers.push((
                    "authorization".into(),
                    format!("AWS4-HMAC-SHA256 Credential={access}/{scope}, SignedHeaders={signed}, Signature={signature}"),
                ));
            }
            (Some(access), Some(secret)) => {
                // signature version 2: for stores that predate version 4
                let date = httpdate(now);
                let amz: Vec<String> = {
                    let mut a: Vec<String> = headers
                        .iter()
                        .filter(|(k, _)| k.starts_with("x-amz-"))
                        .map(|(k, v)| format!("{k}:{}\n", v.trim()))
                        .collect();
                    a.sort();
                    a
                };
                let resource = if self.virtual_host {
                    format!("/{}{path}", self.bucket)
                } else {
                    path.clone()
                };
                let to_sign = format!("{method}\n\n\n{date}\n{}{resource}", amz.concat());
                let k = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
                let signature =
                    data_encoding::BASE64.encode(hmac::sign(&k, to_sign.as_bytes()).as_ref());
                headers.push(("date".into(), date));
                headers.push(("authorization".into(), format!("AWS {access}:{signature}")));
            }
            _ => {}
        }
        for (k, v) in &headers {
            if k != "host" {
                request = request.header(k.as_str(), v.as_str());
            }
        }
        // an empty body goes without Content-Length unless it is said: stores refuse such a PUT
        let response = request
            .header(reqwest::header::CONTENT_LENGTH, body.len())
            .body(body)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.unreachable(&e))?
            .to_vec();
        Ok((status, headers, body))
    }

    fn unreachable(&self, e: &reqwest::Error) -> S3Error {
        let (endpoint, reason) = (self.endpoint.clone(), error_chain(e));
        if super::is_certificate_failure(&reason) {
            S3Error::NotTrusted { endpoint, reason }
        } else {
            S3Error::Unreachable { endpoint, reason }
        }
    }

    fn failure(&self, operation: &str, status: u16, body: &[u8]) -> S3Error {
        let xml = String::from_utf8_lossy(body);
        let code = xml_value(&xml, "Code").unwrap_or_else(|| format!("HTTP {status}"));
        let message = xml_value(&xml, "Message").unwrap_or_default();
        match code.as_str() {
            "NoSuchBucket" => S3Error::NoBucket {
                bucket: self.bucket.clone(),
                code,
            },
            "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "AccessDenied"
            | "InvalidSecurity"
            | "AuthorizationHeaderMalformed" => S3Error::Credentials { code, message },
            _ => S3Error::Refused {
                operation: operation.to_string(),
                status,
                code,
                message,
            },
        }
    }

    /// The keys under `prefix`, at most `max`.
    pub async fn list(&self, prefix: &str, max: usize) -> Result<Vec<String>, S3Error> {
        let (status, _, body) = self
            .send(
                reqwest::Method::GET,
                "",
                &[
                    ("list-type", "2".into()),
                    ("max-keys", max.to_string()),
                    ("prefix", prefix.to_string()),
                ],
                Vec::new(),
                &[],
            )
            .await?;
        if status != 200 {
            return Err(self.failure(&format!("listing bucket {}", self.bucket), status, &body));
        }
        let xml = String::from_utf8_lossy(&body);
        Ok(xml
            .split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_string)
            .collect())
    }

    /// Every key and size under `prefix` (all pages).
    pub async fn list_all(&self, prefix: &str) -> Result<Vec<(String, u64)>, S3Error> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![
                ("list-type", "2".to_string()),
                ("prefix", prefix.to_string()),
            ];
            if let Some(t) = &token {
                query.push(("continuation-token", t.clone()));
            }
            let (status, _, body) = self
                .send(reqwest::Method::GET, "", &query, Vec::new(), &[])
                .await?;
            if status != 200 {
                return Err(self.failure(
                    &format!("listing bucket {}", self.bucket),
                    status,
                    &body,
                ));
            }
            let xml = String::from_utf8_lossy(&body);
            for item in xml.split("<Contents>").skip(1) {
                let key = xml_value(item, "Key").unwrap_or_default();
                let size = xml_value(item, "Size")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                out.push((key, size));
            }
            token = xml_value(&xml, "NextContinuationToken");
            if xml_value(&xml, "IsTruncated").as_deref() != Some("true") || token.is_none() {
                return Ok(out);
            }
        }
    }

    pub async fn put(&self, key: &str, data: Vec<u8>) -> Result<(), S3Error> {
        let mut extra = vec![("content-type", "application/octet-stream".to_string())];
        if self.encrypt {
            match &self.key_id {
                Some(id) => {
                    extra.push(("x-amz-server-side-encryption", "aws:kms".into()));
                    extra.push(("x-amz-server-side-encryption-aws-kms-key-id", id.clone()));
                }
                None => extra.push(("x-amz-server-side-encryption", "AES256".into())),
            }
        }
        if let Some(class) = &self.storage_class {
            if class != "NONE" {
                extra.push(("x-amz-storage-class", class.clone()));
            }
        }
        let (status, _, body) = self
            .send(reqwest::Method::PUT, key, &[], data, &extra)
            .await?;
        if status != 200 {
            return Err(self.failure(&format!("writing {key}"), status, &body));
        }
        Ok(())
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, S3Error> {
        let (status, _, body) = self
            .send(reqwest::Method::GET, key, &[], Vec::new(), &[])
            .await?;
        match status {
            200 => Ok(Some(body)),
            404 if !String::from_utf8_lossy(&body).contains("NoSuchBucket") => Ok(None),
            _ => Err(self.failure(&format!("reading {key}"), status, &body)),
        }
    }

    pub async fn exists(&self, key: &str) -> Result<bool, S3Error> {
        let (status, _, body) = self
            .send(reqwest::Method::HEAD, key, &[], Vec::new(), &[])
            .await?;
        match status {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.failure(&format!("looking up {key}"), status, &body)),
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), S3Error> {
        let (status, _, body) = self
            .send(reqwest::Method::DELETE, key, &[], Vec::new(), &[])
            .await?;
        if status != 204 && status != 200 {
            return Err(self.failure(&format!("deleting {key}"), status, &body));
        }
        Ok(())
    }

    /// Creates the bucket (for tests and set-up scripts; DTR itself never creates buckets).
    pub async fn create_bucket(&self) -> Result<(), S3Error> {
        let (status, _, body) = self
            .send(reqwest::Method::PUT, "", &[], Vec::new(), &[])
            .await?;
        if status != 200 && !String::from_utf8_lossy(&body).contains("BucketAlreadyOwnedByYou") {
            return Err(self.failure(&format!("creating bucket {}", self.bucket), status, &body));
        }
        Ok(())
    }
}

/// The error and its causes, one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = inner.source();
    }
    s
}

/// RFC 7231 date (`Tue, 01 Dec 2026 12:00:00 GMT`), for signature version 2.
fn httpdate(now: SystemTime) -> String {
    let t = time::OffsetDateTime::from(now);
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[t.weekday().number_days_from_monday() as usize],
        t.day(),
        MONTHS[u8::from(t.month()) as usize - 1],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_encoding_follows_aws() {
        assert_eq!(uri_encode("a b/c~d", true), "a%20b/c~d");
        assert_eq!(uri_encode("a/b", false), "a%2Fb");
        assert_eq!(uri_encode("é", false), "%C3%A9");
    }

    #[test]
    fn the_signing_key_chain_matches_awss_example() {
        // the example of AWS's "Signature Version 4 signing process" documentation
        let k = hmac_sha256(b"AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830");
        let k = hmac_sha256(&k, "us-east-1");
        let k = hmac_sha256(&k, "iam");
        let k = hmac_sha256(&k, "aws4_request");
        assert_eq!(
            HEXLOWER.encode(&k),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
    }

    #[test]
    fn dates_are_utc_compact() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_764_590_400);
        assert_eq!(amz_dates(t), ("20251201T120000Z".into(), "20251201".into()));
        assert_eq!(httpdate(t), "Mon, 01 Dec 2025 12:00:00 GMT");
    }

    #[test]
    fn xml_values_of_errors_and_listings() {
        let e = "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>";
        assert_eq!(xml_value(e, "Code").as_deref(), Some("NoSuchBucket"));
        assert_eq!(xml_value(e, "Missing"), None);
    }
}
