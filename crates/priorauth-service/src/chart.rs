//! Reads an EHR's FHIR server for what a CDS Hooks call's prefetch left out, with the bearer
//! token the EHR handed over (`fhirServer`, `fhirAuthorization`).
//!
//! The address comes from the caller, so every read is bounded: http or https only, no
//! redirects, a deadline, a size cap, and never an address of the link-local block (cloud
//! metadata services) or an unspecified one. `PRIORAUTH_FHIR_SERVERS` (comma-separated URL
//! prefixes) narrows it to the EHRs a payer has agreed with; a server outside it is refused.
//! Every failure reads the same to the caller, so the service cannot be used to map a network.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::Value;

/// How long one query may take; CRD answers within 5 s (90% of calls).
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// The most one answer may hold.
const ANSWER_LIMIT: usize = 4 * 1024 * 1024;

/// Why the records could not be read (kept for the server's log, never shown in detail).
#[derive(Debug)]
pub struct Unreadable(pub String);

#[derive(Debug, Clone)]
pub struct Chart {
    client: reqwest::Client,
    /// URL prefixes a `fhirServer` must start with; empty: any that passes the address checks.
    allowed: Vec<String>,
}

impl Chart {
    pub fn from_env() -> Chart {
        let allowed = std::env::var("PRIORAUTH_FHIR_SERVERS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        let client = reqwest::Client::builder()
            .timeout(QUERY_TIMEOUT)
            .connect_timeout(QUERY_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Chart { client, allowed }
    }

    /// Whether the service may query this server.
    pub fn may_read(&self, base: &str) -> bool {
        let Ok(url) = reqwest::Url::parse(base) else {
            return false;
        };
        if !matches!(url.scheme(), "http" | "https") || !url.username().is_empty() {
            return false;
        }
        let forbidden = match url.host_str() {
            Some(host) => match host.trim_start_matches('[').trim_end_matches(']').parse() {
                Ok(ip) => refused(ip),
                Err(_) => host.eq_ignore_ascii_case("metadata.google.internal"),
            },
            None => true,
        };
        !forbidden && (self.allowed.is_empty() || self.allowed.iter().any(|p| base.starts_with(p)))
    }

    /// Reads `query` (relative to `base`) as FHIR JSON.
    pub async fn read(&self, base: &str, token: &str, query: &str) -> Result<Value, Unreadable> {
        if !self.may_read(base) {
            return Err(Unreadable(
                "the server is not one the service may query".into(),
            ));
        }
        let url = format!("{}/{query}", base.trim_end_matches('/'));
        let response = self
            .client
            .get(&url)
            .bearer_auth(token)
            .header("accept", "application/fhir+json")
            .send()
            .await
            .map_err(|e| Unreadable(format!("request failed: {}", e.without_url())))?;
        if !response.status().is_success() {
            return Err(Unreadable(format!("answered {}", response.status())));
        }
        let mut body = Vec::new();
        let mut response = response;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| Unreadable(format!("read failed: {}", e.without_url())))?
        {
            if body.len() + chunk.len() > ANSWER_LIMIT {
                return Err(Unreadable("the answer is over the size limit".into()));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|_| Unreadable("the answer is not JSON".into()))
    }
}

/// Addresses never queried: link-local (cloud metadata services answer there), unspecified,
/// broadcast and multicast.
fn refused(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => {
            ip.is_link_local() || ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast()
        }
        IpAddr::V6(ip) => {
            ip.is_unspecified()
                || ip.is_multicast()
                || (ip.segments()[0] & 0xffc0) == 0xfe80
                || ip
                    .to_ipv4_mapped()
                    .is_some_and(|v4| refused(IpAddr::V4(v4)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_servers_outside_the_link_local_block_are_read() {
        let chart = Chart {
            client: reqwest::Client::new(),
            allowed: Vec::new(),
        };
        assert!(chart.may_read("http://127.0.0.1:8080/fhir"));
        assert!(chart.may_read("https://ehr.example.org/r4"));
        for refused in [
            "http://169.254.169.254/latest/meta-data",
            "http://[fe80::1]/fhir",
            "http://[::ffff:169.254.169.254]/",
            "http://0.0.0.0/",
            "file:///etc/passwd",
            "gopher://ehr/",
            "http://user:secret@ehr.example.org/",
            "http://metadata.google.internal/",
            "not a url",
        ] {
            assert!(!chart.may_read(refused), "{refused}");
        }
        let narrowed = Chart {
            client: reqwest::Client::new(),
            allowed: vec!["https://ehr.example.org/".into()],
        };
        assert!(narrowed.may_read("https://ehr.example.org/r4"));
        assert!(!narrowed.may_read("https://ehr.example.org.evil.test/r4"));
        assert!(!narrowed.may_read("http://127.0.0.1:8080/fhir"));
    }
}
