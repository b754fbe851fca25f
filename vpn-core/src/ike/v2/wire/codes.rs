//! IANA code points of IKEv2 as open newtypes.
//!
//! Every code point is a transparent wrapper around its wire integer, so values
//! this crate does not know survive a decode/encode round trip unchanged. Known
//! values have associated constants named as in the IANA registries, and
//! `Debug`/`Display` print that name (or the number when unknown).

use core::fmt;

macro_rules! code_point {
    (
        $(#[$meta:meta])*
        $name:ident($int:ty) {
            $( $(#[$cmeta:meta])* $konst:ident = $value:expr, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub $int);

        impl $name {
            $( $(#[$cmeta])* pub const $konst: $name = $name($value); )*

            /// The registry name of a known value, `None` for unknown values.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $value => Some(stringify!($konst)), )*
                    #[allow(unreachable_patterns)]
                    _ => None,
                }
            }
        }

        impl From<$int> for $name {
            fn from(v: $int) -> $name {
                $name(v)
            }
        }

        impl From<$name> for $int {
            fn from(v: $name) -> $int {
                v.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(n) => write!(f, "{}({})", n, self.0),
                    None => write!(f, "{}({})", stringify!($name), self.0),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{}", self.0),
                }
            }
        }
    };
}

code_point! {
    /// Exchange type (RFC 7296 §3.1).
    ExchangeType(u8) {
        IKE_SA_INIT = 34,
        IKE_AUTH = 35,
        CREATE_CHILD_SA = 36,
        INFORMATIONAL = 37,
        /// RFC 5723.
        IKE_SESSION_RESUME = 38,
        /// RFC 9242.
        IKE_INTERMEDIATE = 43,
        /// RFC 9370 (additional key exchanges).
        IKE_FOLLOWUP_KE = 44,
    }
}

code_point! {
    /// Payload type, the value of a "Next Payload" field (RFC 7296 §3.2).
    PayloadType(u8) {
        /// No next payload.
        NONE = 0,
        /// Security Association.
        SA = 33,
        /// Key Exchange.
        KE = 34,
        /// Identification - Initiator.
        IDI = 35,
        /// Identification - Responder.
        IDR = 36,
        /// Certificate.
        CERT = 37,
        /// Certificate Request.
        CERTREQ = 38,
        /// Authentication.
        AUTH = 39,
        /// Nonce.
        NONCE = 40,
        /// Notify.
        NOTIFY = 41,
        /// Delete.
        DELETE = 42,
        /// Vendor ID.
        VENDOR_ID = 43,
        /// Traffic Selector - Initiator.
        TSI = 44,
        /// Traffic Selector - Responder.
        TSR = 45,
        /// Encrypted and Authenticated.
        SK = 46,
        /// Configuration.
        CP = 47,
        /// Extensible Authentication.
        EAP = 48,
        /// Encrypted and Authenticated Fragment (RFC 7383).
        SKF = 53,
    }
}

code_point! {
    /// Security protocol identifier (RFC 7296 §3.3.1); `NONE` (0) in notifies
    /// that concern no SA.
    ProtocolId(u8) {
        NONE = 0,
        IKE = 1,
        AH = 2,
        ESP = 3,
    }
}

code_point! {
    /// Transform type (RFC 7296 §3.3.2).
    TransformType(u8) {
        /// Encryption algorithm (ENCR).
        ENCR = 1,
        /// Pseudo-random function (PRF).
        PRF = 2,
        /// Integrity algorithm (INTEG).
        INTEG = 3,
        /// Diffie-Hellman group (D-H, "Key Exchange Method" since RFC 9370).
        DH = 4,
        /// Extended sequence numbers (ESN).
        ESN = 5,
    }
}

code_point! {
    /// Transform attribute type (RFC 7296 §3.3.5).
    AttributeType(u16) {
        /// Key length in bits, always in TV format.
        KEY_LENGTH = 14,
    }
}

code_point! {
    /// Identification type (RFC 7296 §3.5).
    IdType(u8) {
        ID_IPV4_ADDR = 1,
        ID_FQDN = 2,
        ID_RFC822_ADDR = 3,
        ID_IPV6_ADDR = 5,
        ID_DER_ASN1_DN = 9,
        ID_DER_ASN1_GN = 10,
        ID_KEY_ID = 11,
        /// RFC 4595.
        ID_FC_NAME = 12,
        /// RFC 7619.
        ID_NULL = 13,
    }
}

code_point! {
    /// Authentication method (RFC 7296 §3.8, RFC 7427).
    AuthMethod(u8) {
        /// RSA digital signature (PKCS#1 v1.5 with SHA-1).
        RSA_SIG = 1,
        /// Shared key message integrity code (PSK).
        SHARED_KEY_MIC = 2,
        /// DSS digital signature.
        DSS_SIG = 3,
        /// ECDSA with SHA-256 on P-256 (RFC 4754).
        ECDSA_SHA256_P256 = 9,
        /// ECDSA with SHA-384 on P-384 (RFC 4754).
        ECDSA_SHA384_P384 = 10,
        /// ECDSA with SHA-512 on P-521 (RFC 4754).
        ECDSA_SHA512_P521 = 11,
        /// Generic secure password methods (RFC 6467).
        GSPAM = 12,
        /// NULL authentication (RFC 7619).
        NULL_AUTH = 13,
        /// Digital signature (RFC 7427).
        DIGITAL_SIGNATURE = 14,
    }
}

code_point! {
    /// Certificate encoding (RFC 7296 §3.6).
    CertEncoding(u8) {
        PKCS7_WRAPPED_X509 = 1,
        PGP = 2,
        DNS_SIGNED_KEY = 3,
        X509_CERT_SIGNATURE = 4,
        KERBEROS_TOKEN = 6,
        CRL = 7,
        ARL = 8,
        SPKI = 9,
        X509_CERT_ATTRIBUTE = 10,
        RAW_RSA_KEY = 11,
        HASH_AND_URL_X509_CERT = 12,
        HASH_AND_URL_X509_BUNDLE = 13,
        /// RFC 7670.
        RAW_PUBLIC_KEY = 15,
    }
}

code_point! {
    /// Traffic selector type (RFC 7296 §3.13.1).
    TsType(u8) {
        TS_IPV4_ADDR_RANGE = 7,
        TS_IPV6_ADDR_RANGE = 8,
        /// RFC 4595.
        TS_FC_ADDR_RANGE = 9,
        /// RFC 9478.
        TS_SECLABEL = 10,
    }
}

code_point! {
    /// Configuration payload type (RFC 7296 §3.15).
    CfgType(u8) {
        CFG_REQUEST = 1,
        CFG_REPLY = 2,
        CFG_SET = 3,
        CFG_ACK = 4,
    }
}

code_point! {
    /// Configuration attribute type (RFC 7296 §3.15.1), 15 bits on the wire.
    CfgAttributeType(u16) {
        INTERNAL_IP4_ADDRESS = 1,
        INTERNAL_IP4_NETMASK = 2,
        INTERNAL_IP4_DNS = 3,
        INTERNAL_IP4_NBNS = 4,
        INTERNAL_IP4_DHCP = 6,
        APPLICATION_VERSION = 7,
        INTERNAL_IP6_ADDRESS = 8,
        INTERNAL_IP6_DNS = 10,
        INTERNAL_IP6_DHCP = 12,
        INTERNAL_IP4_SUBNET = 13,
        SUPPORTED_ATTRIBUTES = 14,
        INTERNAL_IP6_SUBNET = 15,
    }
}

code_point! {
    /// Notify message type (RFC 7296 §3.10.1 and later RFCs).
    ///
    /// Values below 16384 are errors ([`NotifyType::is_error`]), the rest
    /// status notifications.
    NotifyType(u16) {
        UNSUPPORTED_CRITICAL_PAYLOAD = 1,
        INVALID_IKE_SPI = 4,
        INVALID_MAJOR_VERSION = 5,
        INVALID_SYNTAX = 7,
        INVALID_MESSAGE_ID = 9,
        INVALID_SPI = 11,
        NO_PROPOSAL_CHOSEN = 14,
        INVALID_KE_PAYLOAD = 17,
        AUTHENTICATION_FAILED = 24,
        SINGLE_PAIR_REQUIRED = 34,
        NO_ADDITIONAL_SAS = 35,
        INTERNAL_ADDRESS_FAILURE = 36,
        FAILED_CP_REQUIRED = 37,
        TS_UNACCEPTABLE = 38,
        INVALID_SELECTORS = 39,
        /// RFC 4555 (MOBIKE).
        UNACCEPTABLE_ADDRESSES = 40,
        /// RFC 4555 (MOBIKE).
        UNEXPECTED_NAT_DETECTED = 41,
        /// RFC 5685.
        USE_ASSIGNED_HOA = 42,
        TEMPORARY_FAILURE = 43,
        CHILD_SA_NOT_FOUND = 44,
        /// RFC 7427.
        INVALID_GROUP_ID = 45,
        /// RFC 8019.
        AUTHORIZATION_FAILED = 46,
        /// RFC 9242.
        STATE_NOT_FOUND = 47,

        INITIAL_CONTACT = 16384,
        SET_WINDOW_SIZE = 16385,
        ADDITIONAL_TS_POSSIBLE = 16386,
        IPCOMP_SUPPORTED = 16387,
        NAT_DETECTION_SOURCE_IP = 16388,
        NAT_DETECTION_DESTINATION_IP = 16389,
        COOKIE = 16390,
        USE_TRANSPORT_MODE = 16391,
        HTTP_CERT_LOOKUP_SUPPORTED = 16392,
        REKEY_SA = 16393,
        ESP_TFC_PADDING_NOT_SUPPORTED = 16394,
        NON_FIRST_FRAGMENTS_ALSO = 16395,
        /// RFC 4555.
        MOBIKE_SUPPORTED = 16396,
        /// RFC 4555.
        ADDITIONAL_IP4_ADDRESS = 16397,
        /// RFC 4555.
        ADDITIONAL_IP6_ADDRESS = 16398,
        /// RFC 4555.
        NO_ADDITIONAL_ADDRESSES = 16399,
        /// RFC 4555.
        UPDATE_SA_ADDRESSES = 16400,
        /// RFC 4555.
        COOKIE2 = 16401,
        /// RFC 4555.
        NO_NATS_ALLOWED = 16402,
        /// RFC 5685.
        REDIRECT_SUPPORTED = 16406,
        /// RFC 5685.
        REDIRECT = 16407,
        /// RFC 5685.
        REDIRECTED_FROM = 16408,
        /// RFC 6311.
        IKEV2_MESSAGE_ID_SYNC_SUPPORTED = 16420,
        /// RFC 6023.
        CHILDLESS_IKEV2_SUPPORTED = 16418,
        /// RFC 6989.
        SENDER_REQUEST_ID = 16429,
        /// RFC 7383.
        IKEV2_FRAGMENTATION_SUPPORTED = 16430,
        /// RFC 7427.
        SIGNATURE_HASH_ALGORITHMS = 16431,
        /// RFC 9242.
        INTERMEDIATE_EXCHANGE_SUPPORTED = 16438,
    }
}

impl NotifyType {
    /// Error types occupy 0..=16383 (RFC 7296 §3.10.1).
    pub fn is_error(self) -> bool {
        self.0 < 16384
    }
}

/// Transform IDs of the IANA "Transform Type" registries that this stack
/// negotiates. Transform IDs are plain `u16`s in [`super::Transform`]; these
/// constants name the ones in use.
pub mod transform_id {
    /// ENCR_AES_CBC (type 1), needs a Key Length attribute.
    pub const ENCR_AES_CBC: u16 = 12;
    /// ENCR_AES_GCM_8 (type 1), needs a Key Length attribute.
    pub const ENCR_AES_GCM_8: u16 = 18;
    /// ENCR_AES_GCM_12 (type 1), needs a Key Length attribute.
    pub const ENCR_AES_GCM_12: u16 = 19;
    /// ENCR_AES_GCM_16 (type 1), needs a Key Length attribute.
    pub const ENCR_AES_GCM_16: u16 = 20;
    /// ENCR_CHACHA20_POLY1305 (type 1), no Key Length attribute.
    pub const ENCR_CHACHA20_POLY1305: u16 = 28;
    /// PRF_HMAC_SHA1 (type 2).
    pub const PRF_HMAC_SHA1: u16 = 2;
    /// PRF_HMAC_SHA2_256 (type 2).
    pub const PRF_HMAC_SHA2_256: u16 = 5;
    /// PRF_HMAC_SHA2_384 (type 2).
    pub const PRF_HMAC_SHA2_384: u16 = 6;
    /// PRF_HMAC_SHA2_512 (type 2).
    pub const PRF_HMAC_SHA2_512: u16 = 7;
    /// NONE (type 3): no integrity, as sent by some peers with AEAD ciphers.
    pub const AUTH_NONE: u16 = 0;
    /// AUTH_HMAC_SHA1_96 (type 3).
    pub const AUTH_HMAC_SHA1_96: u16 = 2;
    /// AUTH_HMAC_SHA2_256_128 (type 3).
    pub const AUTH_HMAC_SHA2_256_128: u16 = 12;
    /// AUTH_HMAC_SHA2_384_192 (type 3).
    pub const AUTH_HMAC_SHA2_384_192: u16 = 13;
    /// AUTH_HMAC_SHA2_512_256 (type 3).
    pub const AUTH_HMAC_SHA2_512_256: u16 = 14;
    /// NONE (type 4): no Diffie-Hellman (no PFS) in an ESP proposal.
    pub const DH_NONE: u16 = 0;
    /// 256-bit random ECP group (type 4).
    pub const DH_ECP_256: u16 = 19;
    /// 2048-bit MODP group (type 4).
    pub const DH_MODP_2048: u16 = 14;
    /// No extended sequence numbers (type 5).
    pub const ESN_NO: u16 = 0;
    /// Extended sequence numbers (type 5).
    pub const ESN_YES: u16 = 1;
}

/// The IKE header flags octet (RFC 7296 §3.1). Bits other than the three
/// defined ones are kept as received.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// I(nitiator): set in messages sent by the original initiator of the IKE SA.
    pub const INITIATOR: u8 = 0x08;
    /// V(ersion): the sender can speak a higher major version. Never set by us.
    pub const VERSION: u8 = 0x10;
    /// R(esponse): this message is a response.
    pub const RESPONSE: u8 = 0x20;

    /// Flags with I and R as given, V clear.
    pub fn new(initiator: bool, response: bool) -> Flags {
        let mut f = 0;
        if initiator {
            f |= Self::INITIATOR;
        }
        if response {
            f |= Self::RESPONSE;
        }
        Flags(f)
    }

    /// The I bit.
    pub fn initiator(self) -> bool {
        self.0 & Self::INITIATOR != 0
    }

    /// The V bit.
    pub fn version(self) -> bool {
        self.0 & Self::VERSION != 0
    }

    /// The R bit.
    pub fn response(self) -> bool {
        self.0 & Self::RESPONSE != 0
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Flags({:#04x}", self.0)?;
        for (bit, name) in [
            (Self::INITIATOR, " I"),
            (Self::VERSION, " V"),
            (Self::RESPONSE, " R"),
        ] {
            if self.0 & bit != 0 {
                f.write_str(name)?;
            }
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_unknown_values() {
        assert_eq!(NotifyType::COOKIE.name(), Some("COOKIE"));
        assert_eq!(NotifyType(16390), NotifyType::COOKIE);
        assert_eq!(format!("{:?}", NotifyType(9999)), "NotifyType(9999)");
        assert_eq!(
            format!("{:?}", NotifyType::NO_PROPOSAL_CHOSEN),
            "NO_PROPOSAL_CHOSEN(14)"
        );
        assert_eq!(PayloadType::SK.to_string(), "SK");
        assert!(NotifyType::AUTHENTICATION_FAILED.is_error());
        assert!(!NotifyType::INITIAL_CONTACT.is_error());
        let f = Flags::new(true, true);
        assert!(f.initiator() && f.response() && !f.version());
        assert_eq!(format!("{f:?}"), "Flags(0x28 I R)");
    }
}
