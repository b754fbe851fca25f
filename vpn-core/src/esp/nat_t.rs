//! UDP encapsulation of ESP (RFC 3948) and the port-4500 demultiplexing rule.
//!
//! On UDP port 4500 three kinds of datagram share one socket: ESP (starts
//! with a non-zero SPI), IKE (prefixed with the four-byte non-ESP marker) and
//! the one-byte NAT-keepalive `0xFF`.

/// Length of the UDP header the SA writes in [`Framing::UdpEncap`](super::Framing::UdpEncap) mode.
pub const UDP_HEADER_LEN: usize = 8;
/// Length of the non-ESP marker in front of IKE messages on port 4500.
pub const NON_ESP_MARKER_LEN: usize = 4;
/// The NAT-keepalive payload (RFC 3948 §2.3).
pub const NAT_KEEPALIVE: [u8; 1] = [0xFF];

/// What a UDP payload received on port 4500 carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatTDatagram<'a> {
    /// An ESP packet, starting at its SPI.
    Esp(&'a [u8]),
    /// An IKE message with the non-ESP marker removed.
    Ike(&'a [u8]),
    /// A NAT-keepalive: keeps the NAT mapping, carries nothing.
    Keepalive,
    /// Anything else: too short to be ESP, or garbage. Drop it.
    Invalid,
}

/// The kind of a [`NatTDatagram`], without its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatTKind {
    Esp,
    Ike,
    Keepalive,
    Invalid,
}

impl NatTDatagram<'_> {
    pub fn kind(&self) -> NatTKind {
        match self {
            NatTDatagram::Esp(_) => NatTKind::Esp,
            NatTDatagram::Ike(_) => NatTKind::Ike,
            NatTDatagram::Keepalive => NatTKind::Keepalive,
            NatTDatagram::Invalid => NatTKind::Invalid,
        }
    }
}

/// Classifies the payload of a UDP datagram received on port 4500
/// (RFC 3948 §2.2: a zero SPI field is the non-ESP marker).
pub fn classify(payload: &[u8]) -> NatTDatagram<'_> {
    match payload {
        [0xFF] => NatTDatagram::Keepalive,
        [0, 0, 0, 0, ike @ ..] if !ike.is_empty() => NatTDatagram::Ike(ike),
        // SPI and sequence number at least; the SA checks the rest.
        esp if esp.len() >= 8 && esp[..4] != [0, 0, 0, 0] => NatTDatagram::Esp(esp),
        _ => NatTDatagram::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_on_4500_are_told_apart() {
        assert_eq!(classify(&[0xFF]), NatTDatagram::Keepalive);
        let ike = [0, 0, 0, 0, 1, 2, 3];
        assert_eq!(classify(&ike), NatTDatagram::Ike(&ike[4..]));
        let esp = [0, 0, 1, 0, 0, 0, 0, 1, 9, 9];
        assert_eq!(classify(&esp), NatTDatagram::Esp(&esp));
        assert_eq!(classify(&[]), NatTDatagram::Invalid);
        assert_eq!(classify(&[0, 0, 0, 0]), NatTDatagram::Invalid);
        assert_eq!(classify(&[0xFE]), NatTDatagram::Invalid);
        assert_eq!(classify(&[0, 0, 1, 0, 0, 0, 0]), NatTDatagram::Invalid);
        assert_eq!(classify(&ike).kind(), NatTKind::Ike);
    }
}
