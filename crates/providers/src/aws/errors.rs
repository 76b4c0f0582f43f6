//! The one place EC2 answers become [`ProviderError`]s ([`classify`], [`map_sdk_error`]), and
//! the idempotency token of a request.

use super::*;

/// EC2's idempotency token for a request id: the id itself when it fits EC2's 64 ASCII
/// characters, else a stable digest of it (FNV-1a, so it is the same in every process).
pub fn client_token(request_id: &str) -> String {
    if request_id.len() <= 64 && request_id.is_ascii() {
        return request_id.to_string();
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in request_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let head: String = request_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(40)
        .collect();
    format!("{head}-{hash:016x}")
}

/// The failover vocabulary for an EC2 error: its `code`, the HTTP `status`, and a message that
/// names the region and the call. The one place that decides what each EC2 error means.
///
/// ```
/// use skyplan_providers::{ProviderError, Scope};
/// use skyplan_providers::aws::classify;
/// let capacity = classify(Some("InsufficientInstanceCapacity"), Some(500), "no g6.xlarge".into());
/// assert!(matches!(capacity, ProviderError::InsufficientCapacity { scope: Scope::InstanceType, .. }));
/// let quota = classify(Some("VcpuLimitExceeded"), Some(400), "vCPU limit".into());
/// assert!(matches!(quota, ProviderError::QuotaExceeded { scope: Scope::Region, .. }));
/// let throttled = classify(Some("RequestLimitExceeded"), Some(503), "slow down".into());
/// assert!(matches!(throttled, ProviderError::Transient { .. }));
/// ```
pub fn classify(code: Option<&str>, status: Option<u16>, message: String) -> ProviderError {
    match code.unwrap_or_default() {
        // This instance type, in this zone and market, has no capacity now.
        "InsufficientInstanceCapacity"
        | "InsufficientHostCapacity"
        | "InsufficientReservedInstanceCapacity"
        | "InsufficientCapacity"
        | "SpotMaxPriceTooLow"
        | "MaxSpotInstanceCountExceeded"
        | "Unsupported"
        | "InsufficientFreeAddressesInSubnet" => ProviderError::InsufficientCapacity {
            scope: Scope::InstanceType,
            message,
        },
        "VcpuLimitExceeded" | "InstanceLimitExceeded" | "MaxSpotFleetRequestCountExceeded" => {
            ProviderError::QuotaExceeded {
                scope: Scope::Region,
                message,
            }
        }
        // The account cannot use this region at all.
        "OptInRequired" | "PendingVerification" => ProviderError::QuotaExceeded {
            scope: Scope::Region,
            message,
        },
        "AuthFailure"
        | "UnauthorizedOperation"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "ExpiredToken"
        | "RequestExpired"
        | "MissingAuthenticationToken"
        | "Blocked" => ProviderError::Auth { message },
        "RequestLimitExceeded"
        | "Throttling"
        | "ThrottlingException"
        | "InternalError"
        | "InternalFailure"
        | "ServiceUnavailable"
        | "Unavailable"
        | "RequestTimeout" => ProviderError::Transient { message },
        code if code.ends_with(".NotFound") => ProviderError::NotFound { what: message },
        _ => match status {
            Some(401 | 403) => ProviderError::Auth { message },
            Some(429 | 500..=599) | None => ProviderError::Transient { message },
            Some(_) => ProviderError::InvalidRequest { message },
        },
    }
}

/// [`classify`] for an SDK error of `call` in `region`: service errors by their code, failures
/// to connect or to read an answer as transient, requests the SDK could not build as invalid.
pub fn map_sdk_error<E>(region: &str, call: &str, err: SdkError<E>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().map(str::to_string);
    let detail = match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_string(),
        _ => DisplayErrorContext(&err).to_string(),
    };
    let message = format!("aws {region}: {call}: {detail}");
    match err {
        SdkError::ConstructionFailure(_) => ProviderError::InvalidRequest { message },
        SdkError::ServiceError(_) | SdkError::ResponseError(_) => classify(code.as_deref(), status, message),
        // Timeouts, connection failures, and whatever else the SDK may add.
        _ => {
            // A missing or refused credential surfaces here too, before anything is sent.
            if detail.contains("credentials") || detail.contains("identity") {
                ProviderError::Auth { message }
            } else {
                ProviderError::Transient { message }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_code_has_its_action() {
        let kind = |code: &str, status: u16| classify(Some(code), Some(status), String::new()).kind();
        for code in [
            "InsufficientInstanceCapacity",
            "InsufficientHostCapacity",
            "SpotMaxPriceTooLow",
            "MaxSpotInstanceCountExceeded",
            "Unsupported",
        ] {
            assert_eq!(kind(code, 500), "insufficient_capacity", "{code}");
        }
        for code in ["VcpuLimitExceeded", "InstanceLimitExceeded"] {
            assert_eq!(kind(code, 400), "quota_exceeded", "{code}");
        }
        for code in ["AuthFailure", "UnauthorizedOperation", "InvalidClientTokenId"] {
            assert_eq!(kind(code, 401), "auth", "{code}");
        }
        for code in [
            "RequestLimitExceeded",
            "Throttling",
            "InternalError",
            "Unavailable",
        ] {
            assert_eq!(kind(code, 503), "transient", "{code}");
        }
        assert_eq!(kind("InvalidInstanceID.NotFound", 400), "not_found");
        assert_eq!(kind("InvalidParameterValue", 400), "invalid_request");
        assert_eq!(kind("SomethingNew", 503), "transient");
        assert_eq!(kind("SomethingNew", 403), "auth");
        assert_eq!(classify(None, None, String::new()).kind(), "transient");
    }

    #[test]
    fn client_tokens_fit_and_are_stable() {
        assert_eq!(client_token("short-1"), "short-1");
        let long = format!("{}-0123456789abcdef-1", "c".repeat(63));
        let token = client_token(&long);
        assert!(token.len() <= 64, "{token}");
        assert_eq!(token, client_token(&long));
        assert_ne!(token, client_token(&long.replace("-1", "-2")));
    }
}
