//! Public keys that verify JWTs: PEM files (service-account keys) and JWKS documents (JWT
//! issuers). Only asymmetric algorithms are ever accepted, so `alg: none` and HMAC with a
//! public key as the secret (algorithm confusion) can never verify.

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::collections::HashSet;

/// The kind of a key, deciding which `alg` values it may verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    /// EC, with the JWS algorithm its curve implies (ES256 for P-256, ES384 for P-384).
    Ec(Algorithm),
}

/// One verification key.
#[derive(Clone)]
pub struct VerifyKey {
    pub kid: Option<String>,
    pub kind: KeyKind,
    pub key: DecodingKey,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey").field("kid", &self.kid).field("kind", &self.kind).finish()
    }
}

impl VerifyKey {
    /// Whether this key may verify a token signed with `alg`.
    pub fn accepts(&self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self.kind {
            KeyKind::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            KeyKind::Ec(a) => a == alg,
        }
    }
}

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";

/// A key from a DER SubjectPublicKeyInfo.
pub fn from_spki(der: &[u8]) -> anyhow::Result<VerifyKey> {
    use x509_parser::prelude::FromDer;
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(der)
        .map_err(|e| anyhow::anyhow!("invalid public key: {e}"))?;
    let oid = spki.algorithm.algorithm.to_id_string();
    let kind = match oid.as_str() {
        OID_RSA => KeyKind::Rsa,
        OID_EC => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .unwrap_or_default();
            match curve.as_str() {
                OID_P256 => KeyKind::Ec(Algorithm::ES256),
                OID_P384 => KeyKind::Ec(Algorithm::ES384),
                c => anyhow::bail!("unsupported EC curve {c}"),
            }
        }
        o => anyhow::bail!("unsupported public key algorithm {o}"),
    };
    let key = match kind {
        // ring wants PKCS#1 RSAPublicKey, which is the SPKI's bit string
        KeyKind::Rsa => DecodingKey::from_rsa_der(&spki.subject_public_key.data),
        KeyKind::Ec(_) => DecodingKey::from_ec_der(&spki.subject_public_key.data),
    };
    Ok(VerifyKey { kid: Some(key_id(der)), kind, key })
}

/// kube's key ID for a service-account key: base64url(sha256(DER SPKI)).
pub fn key_id(spki_der: &[u8]) -> String {
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(spki_der))
}

/// Every public key in a PEM file: `PUBLIC KEY`, `RSA PUBLIC KEY` and `CERTIFICATE` blocks.
pub fn parse_pem_keys(data: &[u8]) -> anyhow::Result<Vec<VerifyKey>> {
    let mut out = Vec::new();
    for item in rustls_pemfile::read_all(&mut &data[..]) {
        match item.map_err(|e| anyhow::anyhow!("invalid PEM: {e}"))? {
            rustls_pemfile::Item::SubjectPublicKeyInfo(spki) => out.push(from_spki(spki.as_ref())?),
            rustls_pemfile::Item::X509Certificate(cert) => {
                let (_, c) = x509_parser::parse_x509_certificate(cert.as_ref())
                    .map_err(|e| anyhow::anyhow!("invalid certificate: {e}"))?;
                out.push(from_spki(c.tbs_certificate.subject_pki.raw)?);
            }
            _ => {}
        }
    }
    // `RSA PUBLIC KEY` (PKCS#1) is not an item rustls-pemfile knows
    if let Ok(blocks) = pem::parse_many(data) {
        for b in blocks.iter().filter(|b| b.tag() == "RSA PUBLIC KEY") {
            out.push(VerifyKey { kid: None, kind: KeyKind::Rsa, key: DecodingKey::from_rsa_der(b.contents()) });
        }
    }
    if out.is_empty() {
        anyhow::bail!("no public key found");
    }
    Ok(out)
}

/// The usable keys of a JWKS document. Symmetric (`oct`) keys are refused; keys of unknown
/// types or marked for encryption are skipped.
pub fn parse_jwks(data: &[u8]) -> anyhow::Result<Vec<VerifyKey>> {
    let doc: serde_json::Value = serde_json::from_slice(data).map_err(|e| anyhow::anyhow!("invalid JWKS: {e}"))?;
    let keys =
        doc.get("keys").and_then(|k| k.as_array()).ok_or_else(|| anyhow::anyhow!("invalid JWKS: no \"keys\" array"))?;
    let mut out = Vec::new();
    for k in keys {
        if k.get("use").and_then(|u| u.as_str()).is_some_and(|u| u != "sig") {
            continue;
        }
        let Ok(jwk) = serde_json::from_value::<jsonwebtoken::jwk::Jwk>(k.clone()) else {
            continue;
        };
        let kind = match &jwk.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => KeyKind::Rsa,
            jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(p) => match p.curve {
                jsonwebtoken::jwk::EllipticCurve::P256 => KeyKind::Ec(Algorithm::ES256),
                jsonwebtoken::jwk::EllipticCurve::P384 => KeyKind::Ec(Algorithm::ES384),
                _ => continue,
            },
            _ => continue,
        };
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        out.push(VerifyKey { kid: jwk.common.key_id.clone(), kind, key });
    }
    Ok(out)
}

/// A token's parts, decoded without verification (to route it to its issuer).
pub struct Unverified {
    pub header: jsonwebtoken::Header,
    pub claims: serde_json::Value,
    /// The header names extensions a verifier must understand (`crit`); none is supported,
    /// so such a token never verifies (go-jose refuses it).
    pub critical: bool,
}

/// Splits and decodes a compact JWS without verifying it; `None` when it is not a JWT.
pub fn peek(token: &str) -> Option<Unverified> {
    let mut parts = token.split('.');
    let (h, p, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let json = |part: &str| {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).ok()?;
        serde_json::from_slice::<serde_json::Value>(&bytes).ok()
    };
    // the header read once: jsonwebtoken's Header from its JSON (as decode_header reads it:
    // unpadded), which has no `crit`, so that is read from the JSON too
    let header = json(h)?;
    let critical = header.get("crit").is_some();
    let header: jsonwebtoken::Header = serde_json::from_value(header).ok()?;
    let claims = json(p.trim_end_matches('='))?;
    claims.is_object().then_some(Unverified { header, claims, critical })
}

/// Why a signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    UnsupportedAlgorithm(String),
    UnknownKid(String),
    UnsupportedCritical,
    BadSignature,
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyError::UnsupportedAlgorithm(a) => write!(f, "unsupported signing algorithm {a}"),
            VerifyError::UnknownKid(k) => write!(f, "no key with kid {k:?}"),
            VerifyError::UnsupportedCritical => f.write_str("unsupported crit header"),
            VerifyError::BadSignature => f.write_str("failed to verify signature"),
        }
    }
}

/// The JWS algorithms a token may be signed with (asymmetric only).
pub fn allowed_algorithm(alg: Algorithm) -> bool {
    use Algorithm::*;
    matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512 | ES256 | ES384)
}

/// Verifies the signature with the key named by `kid` (or every key of the right kind when
/// the token has no kid, or `try_all` is set). Claims are checked by the caller.
pub fn verify_signature(token: &str, t: &Unverified, keys: &[VerifyKey], try_all: bool) -> Result<(), VerifyError> {
    let header = &t.header;
    if !allowed_algorithm(header.alg) {
        return Err(VerifyError::UnsupportedAlgorithm(format!("{:?}", header.alg)));
    }
    if t.critical {
        return Err(VerifyError::UnsupportedCritical);
    }
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    let by_kid = |k: &&VerifyKey| try_all || header.kid.is_none() || k.kid == header.kid;
    let candidates: Vec<&VerifyKey> = keys.iter().filter(by_kid).filter(|k| k.accepts(header.alg)).collect();
    if candidates.is_empty() {
        if let Some(kid) = &header.kid {
            if !try_all {
                return Err(VerifyError::UnknownKid(kid.clone()));
            }
        }
        return Err(VerifyError::BadSignature);
    }
    for k in candidates {
        if jsonwebtoken::decode::<serde_json::Value>(token, &k.key, &validation).is_ok() {
            return Ok(());
        }
    }
    Err(VerifyError::BadSignature)
}

/// `aud` as a list (a JWT may carry a single string); None when it is neither a string nor a
/// list of strings, which go-oidc and go-jose fail to read, so the token fails.
pub fn audiences(claims: &serde_json::Value) -> Option<Vec<String>> {
    match claims.get("aud") {
        Some(serde_json::Value::String(s)) => Some(vec![s.clone()]),
        Some(serde_json::Value::Array(a)) => a.iter().map(|v| v.as_str().map(str::to_string)).collect(),
        None | Some(serde_json::Value::Null) => Some(Vec::new()),
        Some(_) => None,
    }
}

/// The error for an `aud` that [`audiences`] cannot read.
pub const MALFORMED_AUDIENCE: &str = "aud claim is neither a string nor an array of strings";

/// A numeric date claim (`exp`, `nbf`, `iat`), in seconds.
pub fn numeric_date(claims: &serde_json::Value, name: &str) -> Option<i64> {
    claims.get(name).and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
