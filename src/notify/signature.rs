//! Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Why a signing secret is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("no webhook secret configured (notifications.webhook.secret)")]
    Missing,
    #[error("the whsec_ secret is not valid base64")]
    NotBase64,
}

/// The key bytes of a secret: `whsec_<base64>` as Standard Webhooks
/// libraries issue them, or any other text taken as is.
pub fn secret_key(secret: &str) -> Result<Vec<u8>, SecretError> {
    match secret.strip_prefix("whsec_") {
        _ if secret.is_empty() => Err(SecretError::Missing),
        Some(encoded) => STANDARD.decode(encoded).map_err(|_| SecretError::NotBase64),
        None => Ok(secret.as_bytes().to_vec()),
    }
}

/// The `webhook-signature` header value for one delivery.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = sign(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_are_checked() {
        assert_eq!(secret_key(""), Err(SecretError::Missing));
        assert_eq!(secret_key("whsec_***"), Err(SecretError::NotBase64));
        assert_eq!(secret_key("plain").unwrap(), b"plain");
    }
}
