//! `--cipher-suites`: Go's cipher suite names (as etcd takes them) mapped onto rustls's suites.
//!
//! As with Go, the list restricts TLS 1.2 only: TLS 1.3's suites are always offered, and TLS 1.2
//! is the minimum. rustls implements only AEAD suites with ECDHE key exchange; a name Go knows
//! but rustls does not implement (CBC, static RSA, 3DES, RC4) is refused at start-up with the
//! reason, never silently dropped.

use rustls::crypto::ring::cipher_suite;
use rustls::crypto::CryptoProvider;
use rustls::SupportedCipherSuite;

/// Names Go accepts that rustls does not implement.
const GO_ONLY: &[&str] = &[
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

/// The suites rustls implements, TLS 1.3 first.
fn all() -> [SupportedCipherSuite; 9] {
    [
        cipher_suite::TLS13_AES_128_GCM_SHA256,
        cipher_suite::TLS13_AES_256_GCM_SHA384,
        cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ]
}

/// The IANA name of a suite, as Go spells it (TLS 1.3 suites without rustls's `TLS13_`).
fn go_name(suite: SupportedCipherSuite) -> String {
    let name = format!("{:?}", suite.suite());
    name.replacen("TLS13_", "TLS_", 1)
}

/// The crypto provider for `names` (empty: every suite rustls has). It is *ring*'s: rustls
/// 0.23.48 deprecates it for lacking post-quantum key exchange (which etcd 3.4's Go lacks too),
/// and the alternative, aws-lc, is a large C build for every CI run.
#[allow(deprecated)]
pub fn provider(names: &[String]) -> Result<CryptoProvider, String> {
    let mut provider = rustls::crypto::ring::default_provider();
    if names.is_empty() {
        return Ok(provider);
    }
    let mut chosen: Vec<SupportedCipherSuite> =
        all().into_iter().filter(|s| matches!(s, SupportedCipherSuite::Tls13(_))).collect();
    for name in names {
        // Go's short aliases for the ChaCha20 suites.
        let full = if name.ends_with("_CHACHA20_POLY1305") {
            format!("{name}_SHA256")
        } else {
            name.clone()
        };
        match all().into_iter().find(|s| go_name(*s) == full) {
            Some(suite) if matches!(suite, SupportedCipherSuite::Tls12(_)) => {
                if !chosen.contains(&suite) {
                    chosen.push(suite);
                }
            }
            Some(_) => {} // TLS 1.3: always on, as in Go.
            None if GO_ONLY.contains(&name.as_str()) => {
                return Err(format!(
                    "--cipher-suites: {name:?} is not supported (stead offers only AEAD suites \
                     with ECDHE key exchange)"
                ))
            }
            None => return Err(format!("unexpected TLS cipher suite {name:?}")),
        }
    }
    provider.cipher_suites = chosen;
    Ok(provider)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn go_names_choose_tls12_suites_and_tls13_stays() {
        let chosen = provider(&names(&[
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        ]))
        .unwrap();
        let chosen: Vec<String> = chosen.cipher_suites.iter().map(|s| go_name(*s)).collect();
        assert_eq!(
            chosen,
            [
                "TLS_AES_128_GCM_SHA256",
                "TLS_AES_256_GCM_SHA384",
                "TLS_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            ]
        );
        assert_eq!(provider(&[]).unwrap().cipher_suites.len(), 9);
    }

    #[test]
    fn unknown_and_unsupported_names_are_refused_with_the_reason() {
        let unknown = provider(&names(&["TLS_FANCY"])).unwrap_err();
        assert_eq!(unknown, "unexpected TLS cipher suite \"TLS_FANCY\"");
        let cbc = provider(&names(&["TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"])).unwrap_err();
        assert!(cbc.contains("not supported"), "{cbc}");
    }
}
