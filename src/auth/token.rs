//! Bearer JWTs: the claims orderflow reads, verifying them, and minting
//! them (for development mode, `orderflow token` and tests).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use schemas::CustomerId;
use serde::{Deserialize, Serialize};

use super::principal::{Principal, Role};
use crate::config::AuthConfig;

/// The shortest HS256 secret accepted: RFC 7518 asks for a key at least as
/// long as the hash (256 bits).
pub const MIN_SECRET_BYTES: usize = 32;

/// The longest admin subject accepted.
const MAX_ADMIN_SUBJECT: usize = 100;

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The customer id for customers; who it is for admins.
    pub sub: String,
    /// `customer` or `admin`.
    pub role: Role,
    /// Expiry, in seconds since the Unix epoch.
    pub exp: u64,
    /// The issuer, when the node checks one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// The audience, when the node checks one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

impl Claims {
    /// Claims for `sub` in `role`, valid for `ttl` from now, with the
    /// issuer and audience `config` checks.
    pub fn new(sub: impl Into<String>, role: Role, ttl: Duration, config: &AuthConfig) -> Self {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Self {
            sub: sub.into(),
            role,
            exp: (now + ttl).as_secs(),
            iss: Some(config.issuer.clone()).filter(|s| !s.is_empty()),
            aud: Some(config.audience.clone()).filter(|s| !s.is_empty()),
        }
    }
}

/// Why the authenticator could not be built; the node does not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// JWT mode without a key.
    #[error("auth.mode = \"jwt\" needs ORDERFLOW_AUTH__HS256_SECRET or auth.rs256_public_key_file")]
    NoKey,
    /// A secret too short to be safe.
    #[error("auth.hs256_secret must be at least {MIN_SECRET_BYTES} bytes")]
    ShortSecret,
    /// The public key file could not be read.
    #[error("reading auth.rs256_public_key_file {path}: {source}")]
    KeyFile {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The public key is not a PEM RSA key.
    #[error("auth.rs256_public_key_file is not a PEM RSA public key: {0}")]
    BadKey(jsonwebtoken::errors::Error),
    /// The system random source failed (dev mode).
    #[error("no random bytes for the development secret")]
    NoRandom,
    /// A token could not be signed.
    #[error("signing a token: {0}")]
    Sign(jsonwebtoken::errors::Error),
}

/// Why a request's credentials were refused (401).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("this request needs an Authorization: Bearer token")]
    Missing,
    /// An `Authorization` header that is not `Bearer <token>`.
    #[error("the Authorization header must be \"Bearer <token>\"")]
    NotBearer,
    /// The token has expired.
    #[error("the token has expired")]
    Expired,
    /// The token's `sub` does not fit its role.
    #[error("the token's sub is not a valid {0} id")]
    BadSubject(&'static str),
    /// A bad signature, algorithm, issuer, audience or shape.
    #[error("the token is not valid: {0}")]
    Invalid(String),
}

/// Verifies bearer tokens.
pub struct Authenticator {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of logs.
        f.debug_struct("Authenticator")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// JWT mode: RS256 when a public key file is set, else HS256.
    pub fn from_config(config: &AuthConfig) -> Result<Self, SetupError> {
        let file = &config.rs256_public_key_file;
        if !file.as_os_str().is_empty() {
            let pem = std::fs::read(file).map_err(|source| SetupError::KeyFile {
                path: file.display().to_string(),
                source,
            })?;
            let key = DecodingKey::from_rsa_pem(&pem).map_err(SetupError::BadKey)?;
            return Ok(Self::with_key(key, Algorithm::RS256, config));
        }
        if config.hs256_secret.is_empty() {
            return Err(SetupError::NoKey);
        }
        Self::hs256(config.hs256_secret.as_bytes(), config)
    }

    /// Verifies HS256 tokens signed with `secret`.
    pub fn hs256(secret: &[u8], config: &AuthConfig) -> Result<Self, SetupError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(SetupError::ShortSecret);
        }
        Ok(Self::with_key(
            DecodingKey::from_secret(secret),
            Algorithm::HS256,
            config,
        ))
    }

    fn with_key(key: DecodingKey, algorithm: Algorithm, config: &AuthConfig) -> Self {
        // One algorithm only: a token may not choose how it is checked.
        let mut validation = Validation::new(algorithm);
        validation.leeway = config.leeway.as_secs();
        // A configured issuer or audience must be present, not merely
        // match when present (jsonwebtoken checks only required claims' presence).
        let mut required = vec!["exp", "sub"];
        if !config.issuer.is_empty() {
            validation.set_issuer(&[&config.issuer]);
            required.push("iss");
        }
        if config.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&[&config.audience]);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        Self { key, validation }
    }

    /// The caller an `Authorization` header value names.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, AuthError> {
        let header = authorization.ok_or(AuthError::Missing)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::NotBearer)?;
        self.verify(token)
    }

    /// The caller a token names.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid(e.to_string()),
            })?
            .claims;
        match claims.role {
            Role::Customer => CustomerId::parse(&claims.sub)
                .map(Principal::Customer)
                .map_err(|_| AuthError::BadSubject("customer")),
            Role::Admin if !claims.sub.is_empty() && claims.sub.len() <= MAX_ADMIN_SUBJECT => {
                Ok(Principal::Admin { subject: claims.sub })
            }
            Role::Admin => Err(AuthError::BadSubject("admin")),
        }
    }
}

/// Signs `claims` with an HS256 `secret`.
pub fn mint_hs256(secret: &[u8], claims: &Claims) -> Result<String, SetupError> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(SetupError::Sign)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn config() -> AuthConfig {
        AuthConfig {
            leeway: Duration::ZERO,
            ..AuthConfig::default()
        }
    }

    fn token(sub: &str, role: Role, config: &AuthConfig) -> String {
        mint_hs256(SECRET, &Claims::new(sub, role, Duration::from_secs(60), config)).unwrap()
    }

    #[test]
    fn a_valid_token_names_its_principal() {
        let auth = Authenticator::hs256(SECRET, &config()).unwrap();
        let bearer = format!("Bearer {}", token("alice", Role::Customer, &config()));
        assert_eq!(
            auth.authenticate(Some(&bearer)),
            Ok(Principal::Customer(CustomerId::parse("alice").unwrap()))
        );
        let admin = token("ops", Role::Admin, &config());
        assert_eq!(auth.verify(&admin), Ok(Principal::Admin { subject: "ops".into() }));
    }

    #[test]
    fn bad_credentials_are_refused_with_a_reason() {
        let auth = Authenticator::hs256(SECRET, &config()).unwrap();
        assert_eq!(auth.authenticate(None), Err(AuthError::Missing));
        assert_eq!(auth.authenticate(Some("Basic abc")), Err(AuthError::NotBearer));
        let mut expired = Claims::new("alice", Role::Customer, Duration::ZERO, &config());
        expired.exp -= 10;
        assert_eq!(
            auth.verify(&mint_hs256(SECRET, &expired).unwrap()),
            Err(AuthError::Expired)
        );
        let forged = mint_hs256(
            b"another secret of at least 32 bytes!",
            &Claims::new("alice", Role::Customer, Duration::from_secs(60), &config()),
        )
        .unwrap();
        assert!(matches!(auth.verify(&forged), Err(AuthError::Invalid(_))));
        assert!(matches!(auth.verify("not.a.jwt"), Err(AuthError::Invalid(_))));
        let bad_sub = token("alice smith", Role::Customer, &config());
        assert_eq!(auth.verify(&bad_sub), Err(AuthError::BadSubject("customer")));
    }

    #[test]
    fn issuer_and_audience_are_checked_when_configured() {
        let strict = AuthConfig {
            issuer: "https://id.example".into(),
            audience: "orderflow".into(),
            ..config()
        };
        let auth = Authenticator::hs256(SECRET, &strict).unwrap();
        assert!(auth.verify(&token("alice", Role::Customer, &strict)).is_ok());
        let other = AuthConfig {
            audience: "another-api".into(),
            ..strict.clone()
        };
        assert!(matches!(
            auth.verify(&token("alice", Role::Customer, &other)),
            Err(AuthError::Invalid(_))
        ));
        assert!(matches!(
            auth.verify(&token("alice", Role::Customer, &config())),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn an_rs256_key_file_must_exist_and_be_a_pem_rsa_key() {
        let dir = std::env::temp_dir().join(format!("orderflow-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut rs256 = AuthConfig {
            rs256_public_key_file: dir.join("missing.pem"),
            hs256_secret: String::from_utf8(SECRET.to_vec()).unwrap(),
            ..config()
        };
        assert!(matches!(
            Authenticator::from_config(&rs256),
            Err(SetupError::KeyFile { .. })
        ));
        rs256.rs256_public_key_file = dir.join("not-a-key.pem");
        std::fs::write(
            &rs256.rs256_public_key_file,
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        )
        .unwrap();
        assert!(matches!(Authenticator::from_config(&rs256), Err(SetupError::BadKey(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn jwt_mode_needs_a_long_enough_key() {
        let mut jwt = config();
        assert!(matches!(Authenticator::from_config(&jwt), Err(SetupError::NoKey)));
        jwt.hs256_secret = "short".into();
        assert!(matches!(Authenticator::from_config(&jwt), Err(SetupError::ShortSecret)));
    }
}
